//! Layer 8: our DNS server answers. With `--service`, the service's name
//! must resolve to the ClusterSetIP in our catalog; without, the zone's
//! `dns-version` TXT record must answer.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use causeway_catalog::Import;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

use super::report::{Check, Layer, Problem};
use super::{Ctx, STEP};

/// Replies that are not ours (wrong id) are skipped, at most this many.
const MAX_STRAY: usize = 8;

pub(super) async fn check(ctx: &mut Ctx) -> Vec<Check> {
    let server = Ctx::local(ctx.cfg.dns.listen);
    let zone = ctx.cfg.dns.zone.trim_end_matches('.').to_owned();
    let import = ctx
        .opts
        .service
        .as_ref()
        .and_then(|s| ctx.catalog.as_ref()?.imports.get(&s.key));
    let (name, qtype) = match import {
        Some(im) => (
            format!("{}.{}.svc.{zone}", im.key.name(), im.key.namespace()),
            query_type(im),
        ),
        None => (format!("dns-version.{zone}"), RecordType::TXT),
    };
    let target = format!("{name} @{server}");
    let r = match query(server, &name, qtype).await {
        Ok(reply) => judge(&reply, import),
        Err(p) => Err(("no answer".into(), p)),
    };
    vec![Check::from_result(Layer::Dns, target, r)]
}

fn query_type(im: &Import) -> RecordType {
    if im.vips.iter().all(IpAddr::is_ipv6) && !im.vips.is_empty() {
        RecordType::AAAA
    } else {
        RecordType::A
    }
}

async fn query(server: SocketAddr, name: &str, qtype: RecordType) -> Result<Message, Problem> {
    let fix = "start our causeway (it serves DNS) or correct dns.listen; then clients and CoreDNS stub domains must point at that address";
    let io = |e: std::io::Error| {
        let cause = if e.kind() == std::io::ErrorKind::ConnectionRefused {
            format!(
                "nothing listens on {server}/udp: our DNS server is down or dns.listen is wrong"
            )
        } else {
            format!("querying {server}: {e}")
        };
        Problem::new(cause, fix)
    };
    let id = (std::process::id() & 0xffff) as u16;
    let bytes = request(id, name, qtype).map_err(|e| Problem::new(e, "report this as a bug"))?;
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).await.map_err(io)?;
    sock.connect(server).await.map_err(io)?;
    sock.send(&bytes).await.map_err(io)?;
    let mut buf = vec![0u8; 4096];
    for _ in 0..MAX_STRAY {
        let n = match tokio::time::timeout(STEP, sock.recv(&mut buf)).await {
            Ok(r) => r.map_err(io)?,
            Err(_) => {
                let cause = format!(
                    "no DNS answer from {server} within {STEP:?}: our DNS server is down, stuck, or dns.listen is wrong"
                );
                return Err(Problem::new(cause, fix));
            }
        };
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.metadata.id == id => return Ok(m),
            _ => {}
        }
    }
    Err(Problem::new(
        format!("{server} sent only replies that do not match the query"),
        fix,
    ))
}

fn request(id: u16, name: &str, qtype: RecordType) -> Result<Vec<u8>, String> {
    let name = Name::from_ascii(name).map_err(|e| format!("{name}: {e}"))?;
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name, qtype));
    m.to_vec().map_err(|e| e.to_string())
}

/// The reply against what the catalog says.
pub(super) fn judge(reply: &Message, import: Option<&Import>) -> Result<String, (String, Problem)> {
    let code = reply.metadata.response_code;
    let got: BTreeSet<IpAddr> = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    let show = |s: &BTreeSet<IpAddr>| {
        s.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(im) = import else {
        return match code {
            ResponseCode::NoError if !reply.answers.is_empty() => {
                Ok("our DNS server answers (dns-version)".into())
            }
            _ => Err((
                format!("answered {code}"),
                Problem::new(
                    format!("our DNS server answered {code} for its own dns-version record"),
                    "check dns.zone and our log",
                ),
            )),
        };
    };
    let want: BTreeSet<IpAddr> = im.vips.iter().copied().collect();
    if code != ResponseCode::NoError || got.is_empty() {
        let cause = format!(
            "our DNS server answered {code} with no address, though our catalog has {} (ClusterSetIP {})",
            im.key,
            show(&want)
        );
        return Err((
            format!("answered {code}"),
            Problem::new(
                cause,
                "check dns.zone matches the name clients use, and our log for DNS errors",
            ),
        ));
    }
    if im.headless || got == want {
        return Ok(format!("answers {}", show(&got)));
    }
    let cause = format!(
        "our DNS server answers {} but our catalog's ClusterSetIP is {}",
        show(&got),
        show(&want)
    );
    let fix = "the DNS server and the gateway disagree: restart causeway; if it persists, report it with both /v1/catalog outputs";
    Err(("wrong address".into(), Problem::new(cause, fix)))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use causeway_catalog::Import;
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::A;

    use super::*;

    fn reply(ips: &[Ipv4Addr], code: ResponseCode) -> Message {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        m.metadata.response_code = code;
        let name = Name::from_ascii("x.demo.svc.clusterset.local.").unwrap();
        for ip in ips {
            m.answers
                .push(Record::from_rdata(name.clone(), 5, RData::A(A(*ip))));
        }
        m
    }

    #[test]
    fn compares_answers_with_the_catalog() {
        let vip = Ipv4Addr::new(127, 77, 1, 9);
        let mut im = Import::new("demo/x".parse().unwrap());
        im.vips = vec![IpAddr::V4(vip)];
        assert!(judge(&reply(&[vip], ResponseCode::NoError), Some(&im)).is_ok());
        let other = Ipv4Addr::new(127, 77, 1, 10);
        let (detail, p) = judge(&reply(&[other], ResponseCode::NoError), Some(&im)).unwrap_err();
        assert_eq!(detail, "wrong address");
        assert!(
            p.cause
                .contains("answers 127.77.1.10 but our catalog's ClusterSetIP is 127.77.1.9")
        );
        let (detail, _) = judge(&reply(&[], ResponseCode::NXDomain), Some(&im)).unwrap_err();
        assert!(detail.starts_with("answered"), "{detail}");
    }
}
