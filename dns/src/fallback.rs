//! The hickory path for UDP packets the fast path leaves alone, run on the worker thread.
//!
//! These are the steps of hickory-server's UDP loop (`ServerContext::handle_request`,
//! private there): no answer to runts or responses, FORMERR for undecodable
//! messages, then our `Catalog` handler. The response is encoded exactly as
//! hickory's `ResponseHandle` does for UDP, but captured instead of sent.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder,
};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};
use tokio::runtime::Runtime;

use crate::metrics::Handler;

/// UDP size limit without EDNS (RFC 1035 4.2.1).
const UDP_DEFAULT_LIMIT: u16 = 512;

pub struct Fallback {
    handler: Handler,
    /// Drives the handler's futures; they never wait on I/O (the index is in memory).
    runtime: Runtime,
}

impl Fallback {
    pub fn new(handler: Handler) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        Ok(Self { handler, runtime })
    }

    /// The bytes hickory-server would send in reply to `packet` from `src`, if any.
    pub fn respond(&self, packet: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
        let mut decoder = BinDecoder::new(packet);
        let header = Header::read(&mut decoder).ok()?;
        let capture = Capture::default();
        match Request::from_bytes(packet.to_vec(), src, Protocol::Udp) {
            // Answering responses would let anyone reflect traffic through us.
            Ok(request) if request.metadata.message_type == MessageType::Response => return None,
            Ok(request) => {
                let handled = self
                    .handler
                    .handle_request::<_, TokioTime>(&request, capture.clone());
                self.runtime.block_on(handled);
            }
            Err(_) => self.runtime.block_on(formerr(&header, capture.clone())),
        }
        capture.take()
    }
}

/// FORMERR with no question, as hickory-server answers a message it cannot decode.
async fn formerr(header: &Header, mut capture: Capture) {
    let Ok(queries) = Queries::read(&mut BinDecoder::new(&[]), 0) else {
        return;
    };
    let response = MessageResponseBuilder::new(&queries, None);
    let _ = capture
        .send_response(response.error_msg(&header.metadata, ResponseCode::FormErr))
        .await;
}

/// Keeps the encoded response for the worker to send.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

impl Capture {
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().ok()?.take()
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let (info, bytes) = encode_udp(response)?;
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(bytes);
        }
        Ok(info)
    }
}

/// hickory's `MessageResponse::encode` for UDP: within the client's size (TC set
/// by the encoder when records are left out), or a bare SERVFAIL if encoding fails.
fn encode_udp<'a>(
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> Result<(ResponseInfo, Vec<u8>), NetError> {
    let id = response.metadata().id;
    let limit = response
        .edns()
        .map_or(UDP_DEFAULT_LIMIT, |e| e.max_payload());
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(limit);
    if let Ok(info) = response.destructive_emit(&mut encoder) {
        return Ok((info, bytes));
    }
    bytes.clear();
    let mut encoder = BinEncoder::new(&mut bytes);
    let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    header.emit(&mut encoder).map_err(NetError::from)?;
    Ok((ResponseInfo::from(header), bytes))
}
