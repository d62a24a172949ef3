//! `causeway dev up` and `causeway status` as a user runs them: real processes,
//! real DNS clients, signals.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use causeway::dev::{ClustersFile, PlanOptions};
use rustix::process::{Pid, Signal, kill_process};
use support::clients::{dig, resolve};
use support::{BIN, Guard, have, skip, wait_for};

fn signal(pid: u32, sig: Signal) {
    let _ = kill_process(Pid::from_raw(pid as i32).unwrap(), sig);
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// A base port whose whole plan is free now.
async fn free_base(n: usize, dir: &Path, mut base: u16) -> u16 {
    for _ in 0..50 {
        let mut o = PlanOptions::new(n, dir);
        o.base_port = base;
        if causeway::dev::busy(&causeway::dev::plan(&o).unwrap())
            .await
            .is_empty()
        {
            return base;
        }
        base += 100;
    }
    panic!("no free ports");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn dev_up_links_clusters_reports_deaths_and_stops_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dev");
    let base = free_base(2, &dir, 21000).await;
    let (out, err) = (tmp.path().join("stdout"), tmp.path().join("stderr"));
    let child = Command::new(BIN)
        .args([
            "dev",
            "up",
            "--clusters",
            "2",
            "--base-port",
            &base.to_string(),
            "--dir",
        ])
        .arg(&dir)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut up = Guard(Some(child));
    let pid = up.pid();
    let limit = Duration::from_secs(60);
    wait_for("the guide", limit, || async {
        read(&out).contains("Ctrl-C stops").then_some(())
    })
    .await;
    let guide = read(&out);
    assert!(
        guide.contains("dig @127.0.0.1 -p")
            && guide.contains("hello-bravo.demo.svc.clusterset.local"),
        "{guide}"
    );
    assert!(guide.contains("curl -s http://$(dig"), "{guide}");
    let ui = format!("UI:       http://127.0.0.1:{}/ui", base + 9);
    assert!(guide.contains(&ui), "{guide}");

    let file = ClustersFile::load(&dir).unwrap();
    let names: Vec<_> = file.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["alpha", "bravo"]);
    let (alpha, bravo) = (&file.clusters[0], &file.clusters[1]);
    assert!(alive(alpha.pid.unwrap()) && alive(bravo.pid.unwrap()));
    let svc = file
        .services
        .iter()
        .find(|s| s.name == "demo/hello-bravo")
        .unwrap();
    assert_eq!(svc.served_by, ["bravo"]);
    let vip = svc.cluster_set_ips["alpha"];
    assert!(vip.to_string().starts_with("127.77.1."), "{vip}");

    // Real resolvers on alpha's DNS find bravo's service at alpha's ClusterSetIP.
    let name = "hello-bravo.demo.svc.clusterset.local";
    assert_eq!(resolve(alpha.dns, name).await.unwrap(), [vip]);
    if have("dig") {
        assert_eq!(dig(None, alpha.dns, name), [vip.to_string()]);
    } else {
        skip(
            "dig part",
            "dig is not installed (apt-get install bind9-dnsutils)",
        );
    }

    // The guide's curl line: bravo's demo answers through alpha's gateway.
    let web = std::net::SocketAddr::from((vip, causeway::dev::HELLO_PORT));
    let body = wait_for("hello from bravo through the mesh", limit, || async {
        support::clients::http_body(web, Duration::from_secs(3))
            .await
            .ok()
    })
    .await;
    assert_eq!(body, "hello from bravo\n");

    // causeway status --dir, as JSON.
    let st = Command::new(BIN)
        .args(["status", "--json", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(json[0]["cluster"], "alpha");
    assert_eq!(json[0]["peers"][0]["name"], "bravo");
    assert_eq!(json[0]["peers"][0]["state"], "connected");
    let imports = json[0]["imports"].as_array().unwrap();
    assert!(
        imports
            .iter()
            .any(|i| i["key"] == "demo/hello-bravo" && i["vips"][0] == vip.to_string()),
        "{json}"
    );
    let table = Command::new(BIN)
        .args(["status", "--admin", &alpha.admin.to_string()])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("cluster alpha") && table.contains("demo/hello-bravo"),
        "{table}"
    );

    // A cluster that dies is reported with its log.
    signal(bravo.pid.unwrap(), Signal::KILL);
    wait_for("the death report", limit, || async {
        read(&err).contains("bravo (pid").then_some(())
    })
    .await;
    let text = read(&err);
    assert!(
        text.contains("last lines of") && text.contains("  | "),
        "{text}"
    );

    // SIGTERM stops every child and says so.
    signal(pid, Signal::TERM);
    let start = Instant::now();
    let status = wait_for("dev up to exit", Duration::from_secs(20), || {
        let s = up.0.as_mut().unwrap().try_wait().unwrap();
        async move { s }
    })
    .await;
    up.0 = None;
    let text = read(&err);
    assert!(status.success(), "dev up exited with {status}: {text}");
    assert!(text.contains("stopped cleanly: alpha"), "{text}");
    assert!(!alive(alpha.pid.unwrap()), "alpha still running");
    eprintln!("dev up stopped in {:?}", start.elapsed());
}

#[tokio::test]
async fn dev_up_names_ports_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dev");
    let base = free_base(2, &dir, 22000).await;
    let held = std::net::TcpListener::bind(("127.0.0.1", base + 10)).unwrap();
    let out = Command::new(BIN)
        .args(["dev", "up", "--base-port", &base.to_string(), "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    drop(held);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("bravo admin 127.0.0.1:{}/tcp", base + 10)),
        "{err}"
    );
    assert!(err.contains("--base-port"), "{err}");
}

#[test]
fn dev_up_refuses_too_many_clusters() {
    let out = Command::new(BIN)
        .args(["dev", "up", "--clusters", "9"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("1 to 8"), "{err}");
}
