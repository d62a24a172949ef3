//! `causeway run` child processes: spawned with their output in a log file,
//! watched, and stopped as a protocol (SIGTERM, a deadline, then SIGKILL).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChildError {
    #[error("cannot create log file {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {program} for {name}: {source}")]
    Spawn {
        name: String,
        program: PathBuf,
        source: std::io::Error,
    },
}

/// One supervised process.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Child,
    exited: Option<ExitStatus>,
}

/// A process that ended on its own.
pub struct Death {
    pub name: String,
    pub pid: u32,
    pub status: ExitStatus,
    pub log: PathBuf,
    pub tail: String,
}

impl std::fmt::Display for Death {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} (pid {}) exited: {}; last lines of {}:",
            self.name,
            self.pid,
            self.status,
            self.log.display()
        )?;
        for line in self.tail.lines() {
            writeln!(f, "  | {line}")?;
        }
        Ok(())
    }
}

impl Proc {
    /// Starts `program args` in its own process group (a terminal's Ctrl-C reaches
    /// only us; we stop the children), output appended to `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[&str],
        log: &Path,
    ) -> Result<Proc, ChildError> {
        let log_err = |source| ChildError::Log {
            path: log.to_owned(),
            source,
        };
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(log_err)?;
        let err = out.try_clone().map_err(log_err)?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env("CAUSEWAY_LOG", "info,hickory_server=warn")
            .process_group(0)
            .spawn()
            .map_err(|source| ChildError::Spawn {
                name: name.to_owned(),
                program: program.to_owned(),
                source,
            })?;
        Ok(Proc {
            name: name.to_owned(),
            log: log.to_owned(),
            child,
            exited: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reports the process's end once, the first time it is seen.
    pub fn check(&mut self) -> Option<Death> {
        if self.exited.is_some() {
            return None;
        }
        let status = self.child.try_wait().ok().flatten()?;
        self.exited = Some(status);
        Some(Death {
            name: self.name.clone(),
            pid: self.pid(),
            status,
            log: self.log.clone(),
            tail: tail(&self.log, 12),
        })
    }

    pub fn is_running(&mut self) -> bool {
        self.exited.is_none() && self.check().is_none()
    }

    fn signal(&self, sig: Signal) {
        let pid = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw);
        if let Some(pid) = pid {
            // Already gone is fine: the process is reaped by `check`.
            let _ = kill_process(pid, sig);
        }
    }
}

/// How stopping went.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Exited 0 after SIGTERM.
    pub clean: Vec<String>,
    /// Exited otherwise after SIGTERM: name and status.
    pub failed: Vec<(String, String)>,
    /// Still running at the deadline.
    pub killed: Vec<String>,
}

/// SIGTERM to all, wait until `deadline`, SIGKILL whoever is left, reap everyone.
pub async fn stop_all(procs: &mut [Proc], deadline: Duration) -> Stopped {
    let mut out = Stopped::default();
    let mut signalled = Vec::new();
    for (i, p) in procs.iter_mut().enumerate() {
        if p.is_running() {
            p.signal(Signal::TERM);
            signalled.push(i);
        }
    }
    let until = Instant::now() + deadline;
    while procs.iter_mut().any(Proc::is_running) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for p in procs.iter_mut() {
        if !p.is_running() {
            continue;
        }
        p.signal(Signal::KILL);
        let _ = p.child.wait();
        out.killed.push(p.name.clone());
    }
    for i in signalled {
        match procs[i].exited {
            Some(s) if s.success() => out.clean.push(procs[i].name.clone()),
            Some(s) => out.failed.push((procs[i].name.clone(), s.to_string())),
            None => {}
        }
    }
    out
}

/// The last `n` lines of a log file (at most its last 64 KiB are read).
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
