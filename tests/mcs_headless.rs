//! Kubernetes mode, against the strict fake API server: a headless,
//! StatefulSet-like export with three pods in west. From east, each
//! `<hostname>.west.<svc>.<ns>.svc.clusterset.local` resolves (causeway's DNS
//! on east's catalog) to that pod's derived Service's ClusterIP, and a TCP
//! echo sent where kube-proxy would send it (east's gateway, at the Service's
//! target port) is answered by exactly that pod in west, through the tunnel.

#![allow(clippy::unwrap_used)]

mod mcs;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::proto::rr::RecordType;
use mcs::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PODS: [&str; 3] = ["db-0", "db-1", "db-2"];

/// Three pods on 127.0.90.2-4, one port (an EndpointSlice has one per name).
async fn pods() -> u16 {
    'again: for _ in 0..20 {
        let first = TcpListener::bind("127.0.90.2:0").await.unwrap();
        let port = first.local_addr().unwrap().port();
        let mut ls = vec![first];
        for ip in ["127.0.90.3", "127.0.90.4"] {
            match TcpListener::bind((ip, port)).await {
                Ok(l) => ls.push(l),
                Err(_) => continue 'again,
            }
        }
        for (l, name) in ls.into_iter().zip(PODS) {
            tokio::spawn(serve(l, name));
        }
        return port;
    }
    panic!("no port free on 127.0.90.2-4")
}

async fn serve(l: TcpListener, name: &'static str) {
    while let Ok((mut s, _)) = l.accept().await {
        tokio::spawn(async move {
            let _ = s.write_all(format!("{name}\n").as_bytes()).await;
            let mut buf = [0u8; 512];
            while let Ok(n @ 1..) = s.read(&mut buf).await {
                if s.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
    }
}

async fn who_echoes(addr: SocketAddr, msg: &[u8]) -> Option<String> {
    let io = async {
        let mut s = TcpStream::connect(addr).await?;
        let mut hello = [0u8; 5];
        s.read_exact(&mut hello).await?;
        s.write_all(msg).await?;
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).await?;
        Ok::<_, std::io::Error>(
            (back == msg).then(|| String::from_utf8_lossy(&hello[..4]).into_owned()),
        )
    };
    tokio::time::timeout(Duration::from_secs(3), io)
        .await
        .ok()?
        .ok()?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pod_of_a_headless_export_resolves_by_name_and_is_reached_through_the_gateways() {
    let cs = clusters_with(Some(0)).await;
    let port = pods().await;
    let (west, east) = (&cs[0], &cs[1]);
    west.kube.put("services", json!({"metadata": {"name": "db", "namespace": NS},
        "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"name": "tcp", "port": 5432, "targetPort": port}]}}));
    let eps: Vec<_> = PODS
        .iter()
        .enumerate()
        .map(|(i, h)| json!({"addresses": [format!("127.0.90.{}", i + 2)], "hostname": h, "conditions": {"ready": true}}))
        .collect();
    west.kube.put("endpointslices", json!({"metadata": {"name": "db-x", "namespace": NS, "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4", "ports": [{"name": "tcp", "port": port}], "endpoints": eps}));
    west.kube.put(
        "serviceexports",
        json!({"metadata": {"name": "db", "namespace": NS}}),
    );
    let r = resolver(east.dns);
    for pod in PODS {
        let name = format!("{pod}.west.db.{NS}.svc.clusterset.local.");
        let ip: IpAddr = wait_for_answer(&r, &name).await;
        // What kube-proxy does for the ClusterIP: the derived Service's target port on a gateway pod.
        let mut target = None;
        wait_until(
            &format!("east's derived Service with ClusterIP {ip}"),
            LIMIT,
            || {
                target = east.kube.names("services").iter().find_map(|n| {
                    let (ns, svc) = n.split_once('/')?;
                    let s = east.kube.get("services", ns, svc)?;
                    (s["spec"]["clusterIP"] == ip.to_string())
                        .then(|| s["spec"]["ports"][0]["targetPort"].as_u64())?
                });
                target.is_some()
            },
        )
        .await;
        let gw = SocketAddr::new(east.gateway_ip, u16::try_from(target.unwrap()).unwrap());
        let msg = format!("hello {pod}").into_bytes();
        let mut who = None;
        let deadline = std::time::Instant::now() + LIMIT;
        while who.is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "no echo through {gw} for {pod}"
            );
            who = who_echoes(gw, &msg).await;
            if who.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        assert_eq!(who.as_deref(), Some(pod), "{name} reached {who:?}");
    }
    shutdown(cs).await;
}

async fn wait_for_answer(r: &R, name: &str) -> IpAddr {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        if let Ok(l) = r.lookup(name, RecordType::A).await
            && let Some(ip) = l
                .answers()
                .first()
                .and_then(|a| a.data.to_string().parse().ok())
        {
            return ip;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} does not resolve"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
