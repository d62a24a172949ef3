//! `causeway dev up`: N local clusters as child processes, with demo services,
//! certificates and links made for you; waits until every cluster sees every
//! other, prints a guide, supervises, and stops everything on Ctrl-C/SIGTERM.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::children::{Proc, stop_all};
use super::demo::Demo;
use super::guide::{ClustersFile, guide};
use super::plan::{Plan, PlanOptions, plan};
use super::progress::Progress;
use super::ready::{Stage, catalog, stage};

/// SIGTERM to SIGKILL: longer than the gateway's default drain deadline (10 s).
const STOP_DEADLINE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct UpArgs {
    pub clusters: usize,
    pub dir: Option<PathBuf>,
    pub base_port: u16,
    /// How long start-up may take before giving up.
    pub timeout: Duration,
    /// Print clusters.json instead of the guide once ready.
    pub json: bool,
}

pub fn up(args: UpArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: UpArgs) -> anyhow::Result<()> {
    let mut opts = PlanOptions::new(args.clusters, Path::new("."));
    opts.base_port = args.base_port;
    plan(&opts)?; // options checked before anything is created
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => fresh_dir()?,
    };
    opts.dir = dir.clone();
    let plan = plan(&opts)?;
    let mut progress = Progress::new();
    progress.line(&format!(
        "causeway dev: {} clusters in {}",
        args.clusters,
        dir.display()
    ));
    check_ports(&plan).await?;
    plan.write()?;
    progress.line("certificates, configs and exports written");

    let shutdown = CancellationToken::new();
    crate::run::cancel_on_signal(shutdown.clone())?;
    let demos = start_demos(&plan, &shutdown).await?;
    let mut procs = spawn_clusters(&plan)?;
    let started = wait_ready(&plan, &mut procs, &mut progress, &shutdown, args.timeout).await;
    progress.finish();
    let result = match started {
        Ok(()) => serve(&plan, &mut procs, &shutdown, args.json).await,
        Err(e) => Err(e),
    };
    stop(&mut procs).await;
    shutdown.cancel();
    demos.wait().await;
    result
}

/// A new directory under the system's temporary directory, kept after exit (logs).
fn fresh_dir() -> anyhow::Result<PathBuf> {
    let dir = tempfile::Builder::new()
        .prefix("causeway-dev-")
        .tempdir()
        .context("creating a temporary directory (or pass --dir)")?;
    Ok(dir.keep())
}

async fn check_ports(plan: &Plan) -> anyhow::Result<()> {
    let busy = super::ports::busy(plan).await;
    if busy.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = busy.iter().map(|b| format!("  {b}")).collect();
    bail!(
        "these ports are in use:\n{}\n(another `causeway dev up` running? stop it, or pick other ports with --base-port)",
        list.join("\n")
    )
}

async fn start_demos(plan: &Plan, shutdown: &CancellationToken) -> anyhow::Result<TaskTracker> {
    let tasks = TaskTracker::new();
    for c in &plan.clusters {
        let demo = Demo::bind(c.name.as_str(), c.demo_http, c.demo_echo).await?;
        tasks.spawn(demo.serve(shutdown.clone()));
    }
    tasks.close();
    Ok(tasks)
}

fn spawn_clusters(plan: &Plan) -> anyhow::Result<Vec<Proc>> {
    let exe = std::env::current_exe().context("finding the causeway binary")?;
    let mut procs = Vec::new();
    for c in &plan.clusters {
        let config = c.config_path();
        let args = ["run", "--config", path_str(&config)?];
        procs.push(Proc::spawn(c.name.as_str(), &exe, &args, &c.log_path())?);
    }
    Ok(procs)
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().with_context(|| {
        format!(
            "{} is not UTF-8; pass a --dir with a UTF-8 path",
            p.display()
        )
    })
}

async fn wait_ready(
    plan: &Plan,
    procs: &mut [Proc],
    progress: &mut Progress,
    shutdown: &CancellationToken,
    limit: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if let Some(death) = procs.iter_mut().find_map(Proc::check) {
            bail!("cluster {death}");
        }
        let mut stages = Vec::new();
        for c in &plan.clusters {
            stages.push((c.name.as_str(), stage(plan, c).await));
        }
        let text: Vec<String> = stages.iter().map(|(n, s)| format!("{n}: {s}")).collect();
        if stages.iter().all(|(_, s)| *s == Stage::Ready) {
            progress.line(&format!(
                "all {} clusters ready in {:.1?}",
                stages.len(),
                start.elapsed()
            ));
            return Ok(());
        }
        progress.set(&text.join(" | "));
        if start.elapsed() > limit {
            bail!(
                "not ready after {limit:?}: {}; logs in {}/<cluster>/causeway.log",
                text.join("; "),
                plan.dir.display()
            );
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = shutdown.cancelled() => bail!("interrupted while starting"),
        }
    }
}

/// Writes clusters.json, prints the guide, then reports deaths until a signal.
async fn serve(
    plan: &Plan,
    procs: &mut [Proc],
    shutdown: &CancellationToken,
    json: bool,
) -> anyhow::Result<()> {
    let mut catalogs = Vec::new();
    for c in &plan.clusters {
        catalogs.push(catalog(c).await?);
    }
    let pids: Vec<Option<u32>> = procs.iter().map(|p| Some(p.pid())).collect();
    let file = ClustersFile::new(plan, &pids, &catalogs);
    file.save().context("writing clusters.json")?;
    start_ui(plan, shutdown).await?;
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or("causeway".into());
    if json {
        println!("{}", serde_json::to_string(&file)?);
    } else {
        println!("{}", guide(plan, &exe));
    }
    loop {
        for death in procs.iter_mut().filter_map(Proc::check) {
            eprintln!("cluster {death}");
        }
        if !procs.iter_mut().any(Proc::is_running) {
            bail!("every cluster has exited; logs in {}", plan.dir.display());
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
    }
}

/// Serves the clusterset page at `plan.ui` until `shutdown`.
async fn start_ui(plan: &Plan, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let listener = crate::admin::bind_key("the dev up page (--base-port + 9)", plan.ui).await?;
    let clusters = plan
        .clusters
        .iter()
        .map(|c| (c.name.to_string(), c.admin))
        .collect();
    let serve = crate::ui::clusterset::serve(listener, clusters, shutdown.clone());
    tokio::spawn(async move {
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "the dev up page stopped");
        }
    });
    Ok(())
}

async fn stop(procs: &mut [Proc]) {
    eprintln!(
        "stopping {} clusters (SIGTERM, up to {STOP_DEADLINE:?})",
        procs.len()
    );
    let stopped = stop_all(procs, STOP_DEADLINE).await;
    if !stopped.clean.is_empty() {
        eprintln!("stopped cleanly: {}", stopped.clean.join(", "));
    }
    for (name, status) in &stopped.failed {
        eprintln!("{name} {status} after SIGTERM; see its log");
    }
    if !stopped.killed.is_empty() {
        eprintln!("killed after the deadline: {}", stopped.killed.join(", "));
    }
}
