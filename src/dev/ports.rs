//! Checking, before anything starts, that every planned port is free.

use std::net::SocketAddr;

use tokio::net::{TcpSocket, UdpSocket};

use super::plan::{Plan, Proto};

/// A planned socket someone else already holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    pub cluster: String,
    pub what: &'static str,
    pub addr: SocketAddr,
    pub proto: Proto,
    pub error: String,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        write!(
            f,
            "{} {} {}/{proto}: {}",
            self.cluster, self.what, self.addr, self.error
        )
    }
}

/// Every planned socket that cannot be bound now.
pub async fn busy(plan: &Plan) -> Vec<Busy> {
    let mut out = Vec::new();
    for c in &plan.clusters {
        for (what, addr, proto) in c.sockets() {
            if let Err(e) = probe(addr, proto).await {
                out.push(Busy {
                    cluster: c.name.to_string(),
                    what,
                    addr,
                    proto,
                    error: e.to_string(),
                });
            }
        }
    }
    if let Err(e) = probe(plan.ui, Proto::Tcp).await {
        out.push(Busy {
            cluster: "clusterset".into(),
            what: "ui",
            addr: plan.ui,
            proto: Proto::Tcp,
            error: e.to_string(),
        });
    }
    out
}

async fn probe(addr: SocketAddr, proto: Proto) -> std::io::Result<()> {
    match proto {
        Proto::Udp => UdpSocket::bind(addr).await.map(drop),
        Proto::Tcp => {
            let s = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            // As the real listeners do: old TIME_WAIT connections do not make a port busy.
            s.set_reuseaddr(true)?;
            s.bind(addr)?;
            s.listen(1).map(drop)
        }
    }
}
