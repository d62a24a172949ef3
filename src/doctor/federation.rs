//! Layer 3: each peer's federation listener. TCP connect, then mutual TLS with
//! our federation certificate against the peer's CA bundle (the verifier and
//! ALPN the federation client uses), then an HTTP/2 preface: a TLS 1.3 server
//! checks our certificate after our side finished, so its refusal arrives as
//! an alert on the first read.

use std::io;
use std::sync::Arc;

use causeway_identity::{PeerTrust, ReloadingCert, Workload};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::STEP;
use super::report::{Check, Layer, Problem};
use super::tls_why::{Link, Refusal, ours_rejects, theirs_closes, theirs_rejects};
use super::{Ctx, Problem as P};
use crate::config::PeerConfig;

/// The HTTP/2 client preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

pub(super) async fn check(ctx: &mut Ctx) -> Vec<Check> {
    let Some(cert) = ctx.federation_cert.clone() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in ctx.peers.clone() {
        let target = format!("{} {}", p.name, p.federation);
        let r = match load_trust(ctx, &p) {
            Ok(trust) => {
                let r = probe(ctx, &p, &trust, cert.clone()).await;
                ctx.trusts.insert(p.name.clone(), trust);
                r
            }
            Err(e) => Err(e),
        };
        out.push(Check::from_result(Layer::Federation, target, r));
    }
    out
}

fn load_trust(ctx: &Ctx, p: &PeerConfig) -> Result<PeerTrust, (String, Problem)> {
    let td = ctx.cfg.peer_trust_domain(p).map_err(|e| {
        (
            "trust domain".into(),
            P::new(e.to_string(), "fix peers[].trust_domain"),
        )
    })?;
    PeerTrust::load(p.name.clone(), td, &p.ca).map_err(|e| {
        let fix = format!(
            "point peers.{}.ca at {}'s CA certificate (ca.pem from its `causeway ca init`)",
            p.name, p.name
        );
        ("CA bundle unusable".into(), P::new(e.to_string(), fix))
    })
}

async fn probe(
    ctx: &Ctx,
    p: &PeerConfig,
    trust: &PeerTrust,
    cert: Arc<ReloadingCert>,
) -> Result<String, (String, Problem)> {
    let our_td = ctx.our_td();
    let link = Link {
        us: ctx.us(),
        our_td: &our_td,
        peer: &p.name,
        what: Workload::Federation,
        bundle: &p.ca,
    };
    let tcp = connect(p).await?;
    let tls = handshake(&link, trust, cert, tcp).await?;
    answer(&link, tls).await?;
    Ok("TCP, mutual TLS and HTTP/2 preface answered (both sides accept each other)".into())
}

async fn connect(p: &PeerConfig) -> Result<TcpStream, (String, Problem)> {
    let addr = &p.federation;
    let down = format!(
        "check that {}'s causeway runs and that peers.{}.federation names its federation.listen address",
        p.name, p.name
    );
    match tokio::time::timeout(STEP, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Err((
            "TCP connect refused".into(),
            P::new(
                format!(
                    "nothing listens on {addr}: {}'s federation is down or the port is wrong ({e})",
                    p.name
                ),
                down,
            ),
        )),
        Ok(Err(e)) => Err((
            "TCP connect failed".into(),
            P::new(format!("cannot connect to {addr}: {e}"), down),
        )),
        Err(_) => Err((
            "TCP connect timed out".into(),
            P::new(
                format!(
                    "no answer from {addr} within {STEP:?}: a firewall drops TCP to it, or the host is down"
                ),
                format!("allow TCP from this host to {addr}; {down}"),
            ),
        )),
    }
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn handshake(
    link: &Link<'_>,
    trust: &PeerTrust,
    cert: Arc<ReloadingCert>,
    tcp: TcpStream,
) -> Result<Tls, (String, Problem)> {
    let mut config =
        causeway_identity::client_config(cert, trust, Workload::Federation).map_err(|e| {
            (
                "TLS config".to_string(),
                P::new(e.to_string(), "check the CA bundle"),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from(trust.trust_domain.to_string()).map_err(|e| {
        (
            "server name".to_string(),
            P::new(e.to_string(), "check the trust domain"),
        )
    })?;
    let connector = TlsConnector::from(Arc::new(config));
    match tokio::time::timeout(STEP, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => match rustls_error(&e) {
            Some(rustls::Error::AlertReceived(alert)) => {
                Err(("TLS handshake refused".into(), theirs_rejects(link, *alert)))
            }
            Some(err @ rustls::Error::InvalidCertificate(_)) => {
                let text = causeway_identity::VerifyError::from_rustls(err)
                    .map_or_else(|| err.to_string(), ToString::to_string);
                let why = ours_rejects(link, Refusal::of(err), &text);
                Err((
                    "TLS handshake failed: we reject their certificate".into(),
                    why,
                ))
            }
            Some(err) => Err(generic(link, err.to_string())),
            None => Err(generic(link, e.to_string())),
        },
        Err(_) => Err((
            "TLS handshake timed out".into(),
            P::new(
                format!(
                    "{} accepted TCP but did not finish a TLS handshake within {STEP:?}",
                    link.peer
                ),
                format!(
                    "check that peers.{0}.federation points at {0}'s federation port (not another service)",
                    link.peer
                ),
            ),
        )),
    }
}

/// Sends the HTTP/2 preface; any bytes back mean the peer accepted us.
async fn answer(link: &Link<'_>, mut tls: Tls) -> Result<(), (String, Problem)> {
    let exchange = async {
        tls.write_all(H2_PREFACE).await?;
        tls.flush().await?;
        let mut buf = [0u8; 9];
        tls.read(&mut buf).await
    };
    let refused = "TLS handshake refused by the peer".to_string();
    match tokio::time::timeout(STEP, exchange).await {
        Ok(Ok(n)) if n > 0 => Ok(()),
        Ok(Ok(_)) => Err((refused, theirs_closes(link, "clean close, no alert"))),
        Ok(Err(e)) => match rustls_error(&e) {
            Some(rustls::Error::AlertReceived(alert)) => {
                Err((refused, theirs_rejects(link, *alert)))
            }
            _ => Err((refused, theirs_closes(link, &e.to_string()))),
        },
        Err(_) => Err((
            "no HTTP/2 answer".into(),
            theirs_closes(link, &format!("silent for {STEP:?} after the handshake")),
        )),
    }
}

fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// A handshake failure known only by its text.
fn generic(link: &Link<'_>, cause: String) -> (String, Problem) {
    let fix = format!(
        "check that peers.{0}.federation is {0}'s federation listener and that it speaks TLS 1.3 (causeway)",
        link.peer
    );
    ("TLS handshake failed".into(), P::new(cause, fix))
}
