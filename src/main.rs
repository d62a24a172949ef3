//! causeway: thin entry point. Parses the command line, sets up logging and
//! hands off to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use causeway::run::Component;
use causeway_catalog::ClusterId;
use causeway_identity::{TrustDomain, Workload};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "causeway", version, about = "Multi-cluster mesh gateway")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run gateway, federation, DNS and admin for one cluster until SIGINT/SIGTERM.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run only the gateway (and admin), following the federation's WatchCatalog API.
    Gateway {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run only the federation (and admin); serve `federation.watch_listen` for the others.
    Federation {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run only the DNS server (and admin), following the federation's WatchCatalog API.
    Dns {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Create a cluster's CA and issue its certificates.
    Ca {
        #[command(subcommand)]
        cmd: CaCmd,
    },
    /// Validate a config file and print the effective config.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// A local clusterset for development.
    Dev {
        #[command(subcommand)]
        cmd: causeway::dev::cli::DevCmd,
    },
    /// Peers, imports and recent errors of a cluster (or of every cluster of a `dev up` directory).
    Status {
        /// Admin address of one cluster.
        #[arg(long, conflicts_with = "dir", default_value = "127.0.0.1:15000")]
        admin: std::net::SocketAddr,
        /// A `causeway dev up` directory: every cluster in DIR/clusters.json.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// One-time tokens that link two clusters both ways.
    Token {
        #[command(subcommand)]
        cmd: causeway::link::cli::TokenCmd,
    },
    /// Remove a peer linked by token, on both sides.
    Unlink(causeway::link::cli::UnlinkArgs),
    /// Check config, certificates, federation, lease, QUIC, MTU, export, DNS and a
    /// connection, in order; name the first broken layer, its cause and a fix.
    Doctor {
        #[arg(long, short, required_unless_present = "dir", conflicts_with = "dir")]
        config: Option<PathBuf>,
        /// A `causeway dev up` directory: every cluster in DIR/clusters.json.
        #[arg(long, conflicts_with = "peer")]
        dir: Option<PathBuf>,
        /// Only this peer.
        #[arg(long)]
        peer: Option<ClusterId>,
        /// Follow a service through export, DNS and a connection: NAMESPACE/NAME[:PORT].
        #[arg(long)]
        service: Option<causeway::doctor::ServiceArg>,
        /// JSON for scripts (schema in docs/operations.md).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum CaCmd {
    /// Create a CA for one cluster: OUT/ca.pem and OUT/ca-key.pem (mode 0600).
    Init {
        #[arg(long)]
        cluster: ClusterId,
        /// SPIFFE trust domain, e.g. east.demo.causeway.
        #[arg(long)]
        trust_domain: TrustDomain,
        #[arg(long)]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        /// JSON for scripts: the files written (schema in docs/operations.md).
        #[arg(long)]
        json: bool,
    },
    /// Issue a leaf certificate: OUT/<workload>.pem and OUT/<workload>-key.pem (mode 0600).
    Issue {
        /// Directory holding ca.pem and ca-key.pem.
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        workload: Workload,
        #[arg(long)]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        /// JSON for scripts: the files written (schema in docs/operations.md).
        #[arg(long)]
        json: bool,
    },
    /// Send the next CA bundle to every peer linked by token (overlap, then alone).
    Rotate(causeway::link::cli::RotateArgs),
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate FILE and the certificates it names; print the effective config (YAML) or the first problem found.
    Check {
        file: PathBuf,
        /// Print the effective config as JSON (as the admin endpoint's /v1/config serves it).
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // doctor's report is the output; only warnings from the links it builds join it.
    let quiet = matches!(cli.cmd, Cmd::Doctor { .. });
    init_logging(if quiet {
        "warn"
    } else {
        "info,hickory_server=warn"
    });
    let result = match cli.cmd {
        Cmd::Run { config } => run(&config, Component::All),
        Cmd::Gateway { config } => run(&config, Component::Gateway),
        Cmd::Federation { config } => run(&config, Component::Federation),
        Cmd::Dns { config } => run(&config, Component::Dns),
        Cmd::Ca {
            cmd:
                CaCmd::Init {
                    cluster,
                    trust_domain,
                    out,
                    force,
                    json,
                },
        } => causeway::ca::init(&cluster, &trust_domain, &out, force, json),
        Cmd::Ca {
            cmd:
                CaCmd::Issue {
                    ca,
                    workload,
                    out,
                    force,
                    json,
                },
        } => causeway::ca::issue(&ca, workload, &out, force, json),
        Cmd::Ca {
            cmd: CaCmd::Rotate(args),
        } => causeway::link::cli::rotate(args),
        Cmd::Token { cmd } => causeway::link::cli::token(cmd),
        Cmd::Unlink(args) => causeway::link::cli::unlink(args),
        Cmd::Config {
            cmd: ConfigCmd::Check { file, json },
        } => config_check(&file, json),
        Cmd::Dev { cmd } => causeway::dev::cli::dispatch(cmd),
        Cmd::Status { admin, dir, json } => status(admin, dir, json),
        Cmd::Doctor {
            config,
            dir,
            peer,
            service,
            json,
        } => {
            return doctor(
                config,
                dir,
                causeway::doctor::Options { peer, service },
                json,
            );
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAUSEWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn status(admin: std::net::SocketAddr, dir: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let target = match dir {
        Some(d) => causeway::status::Target::Dir(d),
        None => causeway::status::Target::Admin(admin),
    };
    if !causeway::status::status(target, json)? {
        anyhow::bail!("some clusters could not be read");
    }
    Ok(())
}

/// Exit 0 when every check passed, 1 when one failed (the report says which).
fn doctor(
    config: Option<PathBuf>,
    dir: Option<PathBuf>,
    opts: causeway::doctor::Options,
    json: bool,
) -> ExitCode {
    let target = match (dir, config) {
        (Some(d), _) => causeway::doctor::Target::Dir(d),
        (None, Some(c)) => causeway::doctor::Target::Config(c),
        (None, None) => {
            eprintln!("error: pass --config FILE or --dir DIR");
            return ExitCode::FAILURE;
        }
    };
    match causeway::doctor::doctor(target, &opts, json) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn config_check(file: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let cfg = causeway::config::Config::load(file)?;
    causeway::identities::Identities::load(&cfg)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&cfg)?);
    } else {
        print!("{}", serde_saphyr::to_string(&cfg)?);
    }
    eprintln!("{}: ok", file.display());
    Ok(())
}

/// The error and its causes, skipping causes whose text the message already carries.
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !msg.contains(&text) {
            msg = format!("{msg}: {text}");
        }
    }
    msg
}

fn run(file: &std::path::Path, component: Component) -> anyhow::Result<()> {
    let cfg = causeway::config::Config::load(file)?;
    // The control plane (federation, DNS, admin, catalog watch) on one thread;
    // the gateway starts its own data-plane workers (gateway.workers).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        causeway::run::cancel_on_signal(shutdown.clone())?;
        causeway::run::run(cfg, Some(file.to_owned()), component, shutdown).await?;
        eprintln!("causeway stopped cleanly");
        Ok(())
    })
}
