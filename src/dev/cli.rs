//! The `causeway dev` subcommands: their arguments and dispatch.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum DevCmd {
    /// Start N local clusters on loopback with demo services; Ctrl-C stops them.
    Up {
        /// Number of clusters (1 to 8).
        #[arg(long, default_value_t = 2)]
        clusters: usize,
        /// Where certificates, configs, state and logs go (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Cluster i uses ports BASE+10*i to BASE+10*i+5.
        #[arg(long, default_value_t = 17000)]
        base_port: u16,
        /// Give up if the clusters are not all linked within this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
        /// Once ready, print DIR/clusters.json (one line) instead of the guide.
        #[arg(long)]
        json: bool,
    },
    /// Serve one cluster's demo service (HTTP hello and TCP echo) until stopped.
    #[command(hide = true)]
    Demo {
        #[arg(long)]
        name: String,
        #[arg(long)]
        http: SocketAddr,
        #[arg(long)]
        echo: SocketAddr,
    },
    /// Relay TCP and UDP to targets after a fixed delay each way (a WAN stand-in).
    #[command(hide = true)]
    Delay {
        /// LISTEN=TARGET, repeatable.
        #[arg(long)]
        tcp: Vec<crate::dev::delay::Route>,
        /// LISTEN=TARGET, repeatable.
        #[arg(long)]
        udp: Vec<crate::dev::delay::Route>,
        #[arg(long, default_value_t = 25)]
        delay_ms: u64,
    },
    /// Check a service through the mesh: echo N bytes back identically, or GET / over HTTP.
    #[command(hide = true)]
    Probe {
        #[arg(long, conflicts_with = "http", required_unless_present = "http")]
        echo: Option<SocketAddr>,
        #[arg(long, default_value_t = 1 << 20)]
        bytes: usize,
        #[arg(long)]
        http: Option<SocketAddr>,
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
}

pub fn dispatch(cmd: DevCmd) -> anyhow::Result<()> {
    match cmd {
        DevCmd::Up {
            clusters,
            dir,
            base_port,
            timeout_secs,
            json,
        } => crate::dev::up(crate::dev::UpArgs {
            clusters,
            dir,
            base_port,
            timeout: std::time::Duration::from_secs(timeout_secs),
            json,
        }),
        DevCmd::Demo { name, http, echo } => crate::dev::demo(&name, http, echo),
        DevCmd::Delay { tcp, udp, delay_ms } => {
            crate::dev::delay::serve(&tcp, &udp, std::time::Duration::from_millis(delay_ms))
        }
        DevCmd::Probe {
            echo,
            bytes,
            http,
            timeout_secs,
        } => {
            let limit = std::time::Duration::from_secs(timeout_secs);
            match (echo, http) {
                (Some(addr), _) => crate::dev::probe::echo(addr, bytes, limit),
                (None, Some(addr)) => crate::dev::probe::http(addr, limit),
                (None, None) => anyhow::bail!("pass --echo ADDR or --http ADDR"),
            }
        }
    }
}
