//! `causeway token issue|redeem`, `causeway unlink` and `causeway ca rotate`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use causeway_catalog::ClusterId;
use causeway_identity::PeerTrust;
use clap::{Args, Subcommand};

use super::client;
use super::kube_store::Writer;
use super::token::{Token, now_unix, random_hex, sha256_hex};
use crate::config::Config;

/// The longest a token may stay redeemable.
const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Print a one-time token that links another cluster to this one.
    Issue {
        /// This cluster's config (the running process must serve `link.listen`).
        #[arg(long, short)]
        config: PathBuf,
        /// Refuse unless the config is this cluster's.
        #[arg(long)]
        cluster: Option<ClusterId>,
        /// How long the token stays redeemable (at most 7d).
        #[arg(long, default_value = "1h", value_parser = humantime_serde::re::humantime::parse_duration)]
        expires: Duration,
        #[arg(long)]
        json: bool,
    },
    /// Link this cluster and the token's issuer, both ways.
    Redeem {
        /// The token, or `-` to read it from standard input (keeps it out of `ps`).
        token: String,
        /// This cluster's config.
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct UnlinkArgs {
    /// The linked peer to remove, on both sides.
    pub peer: ClusterId,
    #[arg(long, short)]
    pub config: PathBuf,
    /// Remove it here even if it cannot be told.
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RotateArgs {
    #[arg(long, short)]
    pub config: PathBuf,
    /// The next CA bundle (PEM); peers trust it beside the current one for
    /// the overlap, then alone. Default: identity.ca.
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    #[arg(long, default_value = "1h", value_parser = humantime_serde::re::humantime::parse_duration)]
    pub overlap: Duration,
    #[arg(long)]
    pub json: bool,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    causeway_identity::install_default_provider();
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn print(json: bool, value: serde_json::Value, text: String) -> anyhow::Result<()> {
    match json {
        true => println!("{}", serde_json::to_string_pretty(&value)?),
        false => println!("{text}"),
    }
    Ok(())
}

pub fn token(cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Issue {
            config,
            cluster,
            expires,
            json,
        } => issue(&config, cluster, expires, json),
        TokenCmd::Redeem {
            token,
            config,
            json,
        } => redeem(&token, &config, json),
    }
}

fn issue(
    config: &Path,
    cluster: Option<ClusterId>,
    expires: Duration,
    json: bool,
) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    if let Some(c) = cluster.filter(|c| *c != cfg.cluster.name) {
        bail!(
            "--cluster {c}, but {} is cluster {}'s config",
            config.display(),
            cfg.cluster.name
        );
    }
    if expires.is_zero() || expires > MAX_EXPIRY {
        bail!("--expires {expires:?}: use a duration above zero and at most 7d");
    }
    let card = super::local_card(&cfg)?;
    let ca = cfg.identity.ca.clone().unwrap_or_default();
    PeerTrust::load(cfg.cluster.name.clone(), card.trust_domain.clone(), &ca)
        .with_context(|| format!("identity.ca {}", ca.display()))?;
    let random =
        |n| random_hex(n).map_err(|_| anyhow::anyhow!("the system's random generator failed"));
    let (id, secret) = (random(8)?, random(16)?);
    let at = now_unix().saturating_add(expires.as_secs());
    runtime()?.block_on(async {
        let writer = Writer::for_config(&cfg).await?;
        let issued = writer.write(|s| s.issue(&id, &secret, at)).await?;
        anyhow::Ok(issued?)
    })?;
    let token = Token {
        cluster: card.cluster.to_string(),
        trust_domain: card.trust_domain.to_string(),
        federation: card.federation,
        link: card.link,
        pin: sha256_hex(card.ca_bundle.as_bytes()),
        id,
        secret,
        expires: at,
    }
    .encode();
    let value =
        serde_json::json!({ "token": token, "cluster": cfg.cluster.name, "expires_at": at });
    if !json {
        eprintln!(
            "One-time token for linking to {}, valid {}. On the other cluster run:\n  causeway token redeem TOKEN --config <its causeway.yaml>",
            cfg.cluster.name,
            humantime_serde::re::humantime::format_duration(expires)
        );
    }
    print(json, value, token)
}

fn redeem(text: &str, config: &Path, json: bool) -> anyhow::Result<()> {
    let text = match text {
        "-" => std::io::read_to_string(std::io::stdin()).context("reading the token from stdin")?,
        t => t.to_owned(),
    };
    let token = Token::decode(&text)?;
    let cfg = Config::load(config)?;
    let card = runtime()?.block_on(client::redeem(&cfg, &token))?;
    let value = serde_json::json!({
        "linked": card.cluster,
        "trust_domain": card.trust_domain,
        "federation": card.federation,
        "link": card.link,
    });
    let text = format!(
        "linked {} with {} (federation {}); both sides pick the link up within seconds",
        cfg.cluster.name, card.cluster, card.federation
    );
    print(json, value, text)
}

pub fn unlink(a: UnlinkArgs) -> anyhow::Result<()> {
    let cfg = Config::load(&a.config)?;
    let told = runtime()?.block_on(client::unlink(&cfg, &a.peer, a.force))?;
    let value = serde_json::json!({ "unlinked": a.peer, "peer_told": told });
    let text = match told {
        true => format!("unlinked {} on both sides", a.peer),
        false => format!("unlinked {} here only; it could not be told", a.peer),
    };
    print(a.json, value, text)
}

pub fn rotate(a: RotateArgs) -> anyhow::Result<()> {
    let cfg = Config::load(&a.config)?;
    let path = match a.bundle.or(cfg.identity.ca.clone()) {
        Some(p) => p,
        None => bail!("pass --bundle FILE (the next CA bundle) or set identity.ca"),
    };
    if a.overlap > super::MAX_OVERLAP {
        bail!("--overlap {:?} is over the 30 days a peer takes", a.overlap);
    }
    let td = cfg.cluster.trust_domain()?;
    PeerTrust::load(cfg.cluster.name.clone(), td, &path)
        .with_context(|| format!("--bundle {}", path.display()))?;
    let bundle = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let until = now_unix().saturating_add(a.overlap.as_secs());
    let peers = runtime()?.block_on(async {
        let writer = Writer::for_config(&cfg).await?;
        let links = writer
            .write(|s| s.announce(&bundle, until).and_then(|()| s.links()))
            .await??;
        anyhow::Ok(links.peers.into_iter().map(|p| p.name).collect::<Vec<_>>())
    })?;
    let value = serde_json::json!({ "overlap_until": until, "linked_peers": peers });
    let text = format!(
        "the running federation tells the new bundle to its {} linked peer(s) within seconds \
         (and to any that is down when it reconnects); they trust it beside the current one, \
         alone after {}. Reissue this cluster's certificates from the new CA within the overlap.",
        peers.len(),
        humantime_serde::re::humantime::format_duration(a.overlap)
    );
    print(a.json, value, text)
}
