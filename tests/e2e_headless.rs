//! A headless, StatefulSet-like export across clusters without a flat
//! network, over real `causeway run` processes (static mode): bravo exports
//! demo/db with three endpoints db-0..2 (`headless: true`); from alpha,
//! `<hostname>.bravo.db.demo.svc.clusterset.local` resolves to an address of
//! alpha's where its gateway tunnels to that one endpoint, and a TCP echo
//! there is answered by exactly that endpoint.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use causeway::dev::demo_key;
use causeway_catalog::{Endpoint, Export, Port};
use support::clients::resolve;
use support::{Mesh, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LINK: Duration = Duration::from_secs(30);
const DB_PORT: u16 = 7100;

/// An endpoint that says who it is, then echoes.
async fn endpoint(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(format!("{name}\n").as_bytes()).await;
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    if s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Connects to `addr`, reads the endpoint's name, echoes `msg` through it.
async fn who_echoes(addr: SocketAddr, msg: &[u8]) -> Option<(String, Vec<u8>)> {
    let io = async {
        let mut s = TcpStream::connect(addr).await?;
        let mut hello = Vec::new();
        let mut b = [0u8; 1];
        while s.read(&mut b).await? == 1 && b[0] != b'\n' {
            hello.push(b[0]);
        }
        s.write_all(msg).await?;
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).await?;
        Ok::<_, std::io::Error>((String::from_utf8_lossy(&hello).into_owned(), back))
    };
    tokio::time::timeout(Duration::from_secs(3), io)
        .await
        .ok()?
        .ok()
}

#[tokio::test]
async fn each_pod_of_a_headless_export_is_reached_by_name_from_the_other_cluster() {
    let mut mesh = Mesh::plan(2, 23600, Ipv4Addr::new(127, 86, 0, 0), |_| {}).await;
    let names = ["db-0", "db-1", "db-2"];
    let mut db = Export::new(demo_key("db"), vec![Port::tcp("tcp", DB_PORT)]);
    db.headless = true;
    for n in names {
        db.endpoints.push(Endpoint {
            addr: endpoint(n).await,
            ready: true,
            hostname: Some(n.into()),
        });
    }
    mesh.plan.clusters[1].exports.push(db);
    mesh.start_all();
    mesh.wait_linked(LINK).await;
    let bravo = mesh.c(1).name.clone();
    let mut seen = Vec::new();
    for n in names {
        let fqdn = format!("{n}.{bravo}.db.demo.svc.clusterset.local");
        let ip = wait_for(&format!("{fqdn} resolves on alpha"), LINK, || async {
            let ips = resolve(mesh.dns(0), &fqdn).await.ok()?;
            (ips.len() == 1).then(|| ips[0])
        })
        .await;
        assert!(mesh.c(0).vip_range.contains(&ip), "{ip} is alpha's address");
        let msg = format!("hello {n}").into_bytes();
        let (who, back) = wait_for(&format!("an echo through {ip}"), LINK, || {
            who_echoes(SocketAddr::from((ip, DB_PORT)), &msg)
        })
        .await;
        assert_eq!(who, n, "{fqdn} reached {who}");
        assert_eq!(back, msg);
        seen.push(ip);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "one address per pod");
    let all = resolve(mesh.dns(0), "db.demo.svc.clusterset.local")
        .await
        .unwrap();
    assert_eq!(all.len(), 3, "the service name answers every ready pod");
}
