//! UDP helpers: echo servers, UDP exports and imports, a client that retries.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use causeway_catalog::{Export, ExportTo, Import, Port, Protocol};
use tokio::net::UdpSocket;

use super::{ClusterInfo, export, import};

pub fn udp_port(port: u16) -> Port {
    let mut p = Port::tcp("udp", port);
    p.protocol = Protocol::Udp;
    p
}

pub fn udp_export(service: &str, port: u16, endpoint: SocketAddr, to: ExportTo) -> Export {
    let mut e = export(service, port, endpoint, to);
    e.ports = vec![udp_port(port)];
    e
}

pub fn udp_import(service: &str, port: u16, vip: &str, serving: &[&ClusterInfo]) -> Import {
    let mut i = import(service, port, vip, serving);
    i.ports = vec![udp_port(port)];
    i
}

/// A UDP echo server answering `tag:payload`; counts datagrams it received.
pub async fn udp_echo(tag: &'static str) -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let mut reply = format!("{tag}:").into_bytes();
            reply.extend_from_slice(&buf[..n]);
            let _ = s.send_to(&reply, from).await;
        }
    });
    addr
}

/// A client socket of its own (one flow).
pub async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// Sends `payload` to `to` and waits `wait` for one reply, resending up to
/// `tries` times (UDP may drop); the reply, if any.
pub async fn ask(
    s: &UdpSocket,
    to: SocketAddr,
    payload: &[u8],
    tries: u32,
    wait: Duration,
) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65_535];
    for _ in 0..tries {
        s.send_to(payload, to).await.unwrap();
        if let Ok(Ok((n, _))) = tokio::time::timeout(wait, s.recv_from(&mut buf)).await {
            return Some(buf[..n].to_vec());
        }
    }
    None
}
