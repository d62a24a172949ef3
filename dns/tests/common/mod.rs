//! Shared harness: a DNS server on 127.0.0.1:0 fed by a watch channel, plus
//! raw-packet helpers. Each test binary uses a subset of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use causeway_catalog::{CatalogSnapshot, Import, Port, Protocol, ServiceKey};
use causeway_dns::{Config, DnsServer};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const DEADLINE: Duration = Duration::from_secs(10);
const UDP_TRIES: usize = 10;
const UDP_TRY_WAIT: Duration = Duration::from_secs(1);

pub fn import(key: &str, vips: &[&str], ports: Vec<Port>) -> Import {
    Import {
        key: ServiceKey::from_str(key).unwrap(),
        ports,
        clusters: Vec::new(),
        vips: vips.iter().map(|v| v.parse().unwrap()).collect(),
        serve_stale: false,
        conditions: Vec::new(),
        endpoints: Vec::new(),
        headless: false,
        props: Default::default(),
    }
}

pub fn udp_port(name: &str, number: u16) -> Port {
    Port {
        name: Some(name.into()),
        number,
        protocol: Protocol::Udp,
        app_protocol: None,
    }
}

/// v4, v6, dual-stack and several named ports; `big` has 60 addresses so its A
/// answer (~1 KB) does not fit in 512 bytes.
pub fn fixture() -> CatalogSnapshot {
    let big: Vec<String> = (1..=60).map(|i| format!("10.200.0.{i}")).collect();
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    let imports = [
        import(
            "demo/web",
            &["10.96.0.10"],
            vec![Port::tcp("http", 80), Port::tcp("https", 443)],
        ),
        import(
            "demo/v6only",
            &["fd00:77::20"],
            vec![udp_port("dns", 53), Port::tcp("dns-tcp", 53)],
        ),
        import(
            "demo/dual",
            &["10.96.0.30", "fd00:77::30"],
            vec![Port::tcp("grpc", 9090), Port::tcp("metrics", 9100)],
        ),
        import("demo/big", &big, vec![Port::tcp("http", 80)]),
    ];
    snapshot(imports)
}

pub fn snapshot(imports: impl IntoIterator<Item = Import>) -> CatalogSnapshot {
    CatalogSnapshot {
        imports: imports.into_iter().map(|i| (i.key.clone(), i)).collect(),
        ..CatalogSnapshot::default()
    }
}

pub fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        reverse_zones: vec![
            "10.96.0.0/16".parse().unwrap(),
            "fd00:77::/64".parse().unwrap(),
        ],
        ..Config::default()
    }
}

pub struct Running {
    pub addr: SocketAddr,
    pub catalog: watch::Sender<Arc<CatalogSnapshot>>,
    pub registry: Registry,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), causeway_dns::DnsError>>,
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.cancel();
        let r = tokio::time::timeout(DEADLINE, self.task).await;
        r.expect("server drains in time").unwrap().unwrap();
    }
}

pub async fn start(snapshot: CatalogSnapshot) -> Running {
    start_with(config(), snapshot).await
}

pub async fn start_with(cfg: Config, snapshot: CatalogSnapshot) -> Running {
    let (tx, rx) = watch::channel(Arc::new(snapshot));
    let mut registry = Registry::default();
    let server = DnsServer::bind(&cfg, rx, &mut registry).await.unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));
    Running {
        addr,
        catalog: tx,
        registry,
        shutdown,
        task,
    }
}

pub fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    // from_ascii keeps the case as written (from_str would lowercase via IDNA).
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m
}

/// Sends raw bytes over UDP; `None` if nothing came back within `wait`.
pub async fn udp_raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(bytes, addr).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(wait, sock.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

/// One UDP exchange, retried like a resolver would: a loaded host may drop a datagram.
pub async fn udp(addr: SocketAddr, msg: &Message) -> Message {
    let bytes = msg.to_vec().unwrap();
    for _ in 0..UDP_TRIES {
        if let Some(answer) = udp_raw(addr, &bytes, UDP_TRY_WAIT).await {
            return Message::from_vec(&answer).unwrap();
        }
    }
    panic!("no UDP answer from {addr} after {UDP_TRIES} tries");
}

pub async fn tcp(addr: SocketAddr, msg: &Message) -> Message {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let bytes = msg.to_vec().unwrap();
    s.write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    s.write_all(&bytes).await.unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len).into()];
    s.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

/// Polls `check` until it returns true or the deadline passes.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if check().await {
            return;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for: {what}");
}
