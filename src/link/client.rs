//! The initiating side: redeem a token, tell a peer to forget this cluster,
//! push this cluster's next CA bundle to every linked peer.

use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::ClusterId;
use causeway_identity::{PeerTrust, Workload};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::kube_store::{SecretError, Writer};
use super::store::{LinkedPeer, Store, StoreError};
use super::token::{Token, now_unix, sha256_hex};
use super::wire::{self, Card, Hello, Request, Response, WireError};
use crate::config::Config;

const DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("token expired; ask {cluster}'s operator for a new token")]
    Expired { cluster: String },
    #[error("the token was issued by {0}, this cluster; redeem it on the other cluster")]
    OwnToken(String),
    #[error("cannot reach {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error(
        "the link endpoint at {addr} is not the cluster that issued this token (its CA bundle does not match the token's fingerprint, or its certificate does not chain to that bundle); refusing to send the secret"
    )]
    Pin { addr: String },
    #[error("{peer} refused: {reason}")]
    Refused { peer: String, reason: String },
    #[error("{addr}: {source}")]
    Wire { addr: String, source: WireError },
    #[error("{addr} answered out of turn; is it a causeway link endpoint?")]
    Unexpected { addr: String },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Secret(#[from] SecretError),
    #[error("{0}")]
    Config(#[from] super::config::LinkConfigError),
    #[error("{0}")]
    Identity(String),
    #[error(
        "could not tell {peer} to unlink ({message}); run again with --force to remove it on this cluster only, then unlink this cluster on {peer}"
    )]
    Untold { peer: ClusterId, message: String },
    #[error("{peer} is not linked by token here{hint}")]
    NotLinked { peer: ClusterId, hint: &'static str },
}

/// Connects and reads the server's hello.
async fn open(
    addr: &str,
    mut tls: ClientConfig,
    server_name: &str,
) -> Result<(TlsStream<TcpStream>, Hello), ClientError> {
    let connect = |message: String| ClientError::Connect {
        addr: addr.to_owned(),
        message,
    };
    tls.alpn_protocols = vec![wire::ALPN.to_vec()];
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| connect(e.to_string()))?;
    let exchange = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| connect(e.to_string()))?;
        let mut s = TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .map_err(|e| connect(e.to_string()))?;
        let hello = wire::recv(&mut s)
            .await
            .map_err(|source| ClientError::Wire {
                addr: addr.to_owned(),
                source,
            })?;
        Ok((s, hello))
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .map_err(|_| connect(format!("no answer within {DEADLINE:?}")))?
}

/// Sends one request and reads the answer.
async fn ask(
    s: &mut TlsStream<TcpStream>,
    addr: &str,
    peer: &str,
    req: &Request,
) -> Result<Response, ClientError> {
    let wire = |source| ClientError::Wire {
        addr: addr.to_owned(),
        source,
    };
    let exchange = async {
        wire::send(s, req).await.map_err(wire)?;
        wire::recv(s).await.map_err(wire)
    };
    let response = tokio::time::timeout(DEADLINE, exchange)
        .await
        .map_err(|_| ClientError::Connect {
            addr: addr.to_owned(),
            message: format!("no answer within {DEADLINE:?}"),
        })??;
    match response {
        Response::Refused { reason } => Err(ClientError::Refused {
            peer: peer.to_owned(),
            reason,
        }),
        other => Ok(other),
    }
}

/// Redeems `token` at its issuer for the cluster of `cfg`, and records the
/// issuer as a linked peer here.
pub async fn redeem(cfg: &Config, token: &Token) -> Result<Card, ClientError> {
    if token.expired(now_unix()) {
        return Err(ClientError::Expired {
            cluster: token.cluster.clone(),
        });
    }
    if token.cluster == cfg.cluster.name.as_str() {
        return Err(ClientError::OwnToken(token.cluster.clone()));
    }
    let writer = Writer::for_config(cfg).await?;
    let me = super::local_card(cfg)?;
    let tls = causeway_identity::pinning_client_config()
        .map_err(|e| ClientError::Identity(e.to_string()))?;
    let (mut s, hello) = open(&token.link, tls, &token.trust_domain).await?;
    let trust = pinned(token, &hello, &s).ok_or_else(|| ClientError::Pin {
        addr: token.link.clone(),
    })?;
    let req = Request::Redeem {
        id: token.id.clone(),
        secret: token.secret.clone(),
        card: me,
    };
    let Response::Linked { card } = ask(&mut s, &token.link, &token.cluster, &req).await? else {
        return Err(ClientError::Unexpected {
            addr: token.link.clone(),
        });
    };
    if card.cluster != trust.name || card.ca_bundle != hello.ca_bundle {
        return Err(ClientError::Unexpected {
            addr: token.link.clone(),
        });
    }
    let peer = LinkedPeer::from_card(&card);
    let bundle = card.ca_bundle.as_bytes();
    writer.write(|s| s.add(peer.clone(), bundle)).await??;
    Ok(card)
}

/// The issuer's trust, if the server's bundle matches the token's pin and
/// its certificate chains to that bundle and names the issuer's federation.
fn pinned(token: &Token, hello: &Hello, s: &TlsStream<TcpStream>) -> Option<PeerTrust> {
    let same = sha256_hex(hello.ca_bundle.as_bytes()) == token.pin
        && hello.cluster.as_str() == token.cluster
        && hello.trust_domain.as_str() == token.trust_domain;
    if !same {
        return None;
    }
    let bundle = hello.ca_bundle.as_bytes();
    let trust = super::bundle_trust(&hello.cluster, &hello.trust_domain, bundle).ok()?;
    let chain = s.get_ref().1.peer_certificates()?;
    causeway_identity::verify_server_chain(&trust, chain, Workload::Federation).ok()?;
    Some(trust)
}

/// A mutual-TLS connection to a linked peer's link endpoint, as this
/// cluster's federation.
async fn open_linked(
    cfg: &Config,
    store: &Store,
    peer: &LinkedPeer,
) -> Result<TlsStream<TcpStream>, ClientError> {
    let ident = |e: &dyn std::fmt::Display| ClientError::Identity(e.to_string());
    let trust = PeerTrust::load(
        peer.name.clone(),
        peer.trust_domain.clone(),
        &store.ca_path(&peer.name),
    )
    .map_err(|e| ident(&e))?;
    let cert = crate::identities::load_cert(cfg, Workload::Federation).map_err(|e| ident(&e))?;
    let tls = causeway_identity::client_config(cert, &trust, Workload::Federation)
        .map_err(|e| ident(&e))?;
    Ok(open(&peer.link, tls, peer.trust_domain.as_str()).await?.0)
}

/// Tells `name` to forget this cluster, then forgets it here. With `force`,
/// forgets it here even when it cannot be told. Returns whether it was told.
pub async fn unlink(cfg: &Config, name: &ClusterId, force: bool) -> Result<bool, ClientError> {
    let writer = Writer::for_config(cfg).await?;
    let store = writer.store();
    let links = writer.write(|s| s.links()).await??;
    let Some(peer) = links.peers.into_iter().find(|p| p.name == *name) else {
        let hint = match cfg.peers.iter().any(|p| p.name == *name) {
            true => " (it is in causeway.yaml's peers: remove it there, on both clusters)",
            false => "",
        };
        return Err(ClientError::NotLinked {
            peer: name.clone(),
            hint,
        });
    };
    let told = async {
        let mut s = open_linked(cfg, store, &peer).await?;
        ask(&mut s, &peer.link, name.as_str(), &Request::Unlink).await
    }
    .await;
    let told = match told {
        Ok(_) => true,
        Err(e) if !force => {
            return Err(ClientError::Untold {
                peer: name.clone(),
                message: e.to_string(),
            });
        }
        Err(e) => {
            tracing::warn!("{e}; removing {name} here only (--force)");
            false
        }
    };
    writer.write(|s| s.remove(name)).await??;
    Ok(told)
}
