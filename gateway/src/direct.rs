//! The local cluster serves the service: connect straight to a local endpoint, no tunnel.
//!
//! Byte counters are updated when the connection ends; the idle timeout does not
//! apply here (both sides are local TCP with their own keep-alives).

use tokio::io::copy_bidirectional_with_sizes;
use tokio::net::TcpStream;

use crate::local;
use crate::metrics::ServiceHandles;
use crate::protocol::{Request, Status};
use crate::record::ConnRecord;
use crate::shared::Shared;

pub async fn serve(
    shared: &Shared,
    tcp: &mut TcpStream,
    req: &Request,
    h: &ServiceHandles,
    rec: &mut ConnRecord,
) -> Result<(), Status> {
    let exports = shared.exports();
    let export = local::find(&exports, &req.service, req.port, req.protocol)
        .ok_or(Status::UnknownService)?;
    let targets = match &req.endpoint {
        Some(host) => crate::headless::targets(export, req.port, host),
        None => local::ready_targets(export, req.port),
    };
    let (mut upstream, _load) =
        local::connect(&shared.loads, &targets, shared.cfg.timeouts.connect).await?;
    rec.endpoint = upstream.peer_addr().ok();
    rec.cluster = Some(shared.local.name.clone());
    rec.status = Some(Status::Ok.as_str());
    rec.result = "aborted"; // until the copy ends on its own
    let size = shared.cfg.transport.splice_buffer as usize;
    let copy = copy_bidirectional_with_sizes(tcp, &mut upstream, size, size);
    tokio::select! {
        r = copy => {
            rec.result = "reset";
            if let Ok((up, down)) = r {
                h.request.inc_by(up);
                h.response.inc_by(down);
                (rec.request_bytes, rec.response_bytes, rec.result) = (up, down, "ok");
            }
        }
        () = shared.hard.cancelled() => {}
    }
    Ok(())
}
