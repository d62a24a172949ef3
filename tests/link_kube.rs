//! Linking in Kubernetes mode against the in-memory API server
//! (federation/tests/fake_kube): the link endpoint writes the links Secret,
//! concurrent writers do not lose each other's changes, and a pod that
//! follows the Secret mounted the kubelet's way links the peer.
#![allow(clippy::unwrap_used)]

#[path = "../federation/tests/fake_kube/call.rs"]
mod call;
#[path = "../federation/tests/fake_kube/mod.rs"]
mod fake_kube;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use causeway::dev::{ClusterPlan, Plan, PlanOptions};
use causeway::link::apply::{Linker, Rotations};
use causeway::link::kube_store::{SecretStore, Writer};
use causeway::link::server::{self, Endpoint, Limiter};
use causeway::link::store::{LinkedPeer, Store};
use causeway::link::wire::{self, Card, Hello, Request, Response};
use causeway_catalog::ClusterId;
use causeway_identity::{CertPaths, PeerSet, ReloadingCert};
use fake_kube::FakeKube;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const NS: &str = "causeway";
const NAME: &str = "causeway-links";
const ID: &str = "0123456789abcdef";
const FAR: u64 = 4_000_000_000;

async fn secret_store(kube: &FakeKube, who: &str) -> SecretStore {
    let client = causeway_federation::kube_client(Some(&kube.url(who)))
        .await
        .unwrap();
    let api = kube::Api::<Secret>::namespaced(client, NS);
    SecretStore::new(api, NS, NAME, &std::env::temp_dir()).unwrap()
}

/// The Secret's data, decoded, by key.
fn data(kube: &FakeKube) -> std::collections::BTreeMap<String, String> {
    let s = kube.get("secrets", NS, NAME).expect("the links Secret");
    let b64 = base64::engine::general_purpose::STANDARD;
    s["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let bytes = b64.decode(v.as_str().unwrap()).unwrap();
            (k.clone(), String::from_utf8(bytes).unwrap())
        })
        .collect()
}

fn plan(dir: &Path) -> Plan {
    let plan = causeway::dev::plan(&PlanOptions::new(2, dir)).unwrap();
    plan.write().unwrap();
    plan
}

fn card(c: &ClusterPlan, link: &str) -> Card {
    Card {
        cluster: c.name.clone(),
        trust_domain: format!("{}.dev.causeway", c.name).parse().unwrap(),
        federation: c.federation.to_string(),
        link: link.to_owned(),
        ca_bundle: std::fs::read_to_string(c.dir.join("ca.pem")).unwrap(),
    }
}

/// Alpha's link endpoint in Kubernetes mode, on a local port.
async fn endpoint(kube: &FakeKube, alpha: &ClusterPlan, tasks: &TaskTracker) -> String {
    let secret = Arc::new(secret_store(kube, "federation").await);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let link = listener.local_addr().unwrap().to_string();
    let cert = ReloadingCert::load(CertPaths {
        cert: alpha.dir.join("federation.pem"),
        key: alpha.dir.join("federation-key.pem"),
    })
    .unwrap();
    let ep = Endpoint {
        store: secret.scratch().clone(),
        card: card(alpha, &link),
        ca_path: alpha.dir.join("ca.pem"),
        static_peers: Vec::new(),
        peers: Arc::new(PeerSet::new(Vec::new()).unwrap()),
        changed: Arc::new(Notify::new()),
        limiter: std::sync::Mutex::new(Limiter::new(10, 60, Duration::from_secs(60))),
        busy: Default::default(),
        secret: Some(secret),
    };
    server::spawn(ep, listener, cert, tasks, CancellationToken::new()).unwrap();
    link
}

/// Sends `req` to the link endpoint at `link` without a client certificate.
async fn ask(link: &str, req: &Request) -> Response {
    let mut tls = causeway_identity::pinning_client_config().unwrap();
    tls.alpn_protocols = vec![wire::ALPN.to_vec()];
    let tcp = tokio::net::TcpStream::connect(link).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("alpha.dev.causeway").unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let mut s = connector.connect(name, tcp).await.unwrap();
    let _: Hello = wire::recv(&mut s).await.unwrap();
    wire::send(&mut s, req).await.unwrap();
    wire::recv(&mut s).await.unwrap()
}

#[tokio::test]
async fn a_redemption_in_kubernetes_mode_writes_the_peer_and_its_bundle_to_the_secret() {
    causeway_identity::install_default_provider();
    let (kube, dir, tasks) = (
        FakeKube::start().await,
        tempfile::tempdir().unwrap(),
        TaskTracker::new(),
    );
    let plan = plan(dir.path());
    // `causeway token issue` in the federation pod: the Secret does not exist yet.
    let cli = Writer::Secret(Arc::new(secret_store(&kube, "cli").await));
    cli.write(|s| s.issue(ID, "s3cret", FAR))
        .await
        .unwrap()
        .unwrap();
    let token: Value = serde_json::from_str(&data(&kube)[&format!("token-{ID}.json")]).unwrap();
    assert_eq!(token["redeemed"], json!(false));

    let link = endpoint(&kube, &plan.clusters[0], &tasks).await;
    let bravo = card(&plan.clusters[1], "127.0.0.1:1");
    let redeem = |secret: &str| Request::Redeem {
        id: ID.into(),
        secret: secret.into(),
        card: bravo.clone(),
    };
    let wrong = ask(&link, &redeem("wrong")).await;
    assert!(matches!(wrong, Response::Refused { .. }), "{wrong:?}");
    let linked = ask(&link, &redeem("s3cret")).await;
    assert!(matches!(linked, Response::Linked { .. }), "{linked:?}");

    let files = data(&kube);
    let links: causeway::link::store::Links = serde_saphyr::from_str(&files["links.yaml"]).unwrap();
    let names: Vec<&str> = links.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["bravo"]);
    assert_eq!(links.peers[0].federation, bravo.federation);
    assert_eq!(files["bravo-ca.pem"], bravo.ca_bundle);
    let token: Value = serde_json::from_str(&files[&format!("token-{ID}.json")]).unwrap();
    assert_eq!(token["redeemed"], json!(true));
    assert_eq!(kube.writers("secrets"), ["cli", "federation"]);

    let again = ask(&link, &redeem("s3cret")).await;
    let Response::Refused { reason } = again else {
        panic!("a second redemption: {again:?}");
    };
    assert!(reason.contains("already redeemed"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_write_during_a_redemption_is_not_lost() {
    let kube = FakeKube::start().await;
    let (process, cli) = (
        secret_store(&kube, "federation").await,
        secret_store(&kube, "cli").await,
    );
    process
        .write(|s| s.issue(ID, "first", FAR))
        .await
        .unwrap()
        .unwrap();
    let (started, wait_started) = mpsc::channel();
    let (cli_done, wait_cli) = mpsc::channel::<()>();
    let wait_cli = std::sync::Mutex::new(wait_cli);
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    // The process reads the Secret and, before it writes, the CLI writes.
    let redeem = tokio::spawn(async move {
        let out = process
            .write(|s| {
                if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                    started.send(()).unwrap();
                    wait_cli.lock().unwrap().recv().unwrap();
                }
                s.redeem(ID, "first", 1)?;
                s.add(peer("bravo"), b"bundle\n")
                    .map_err(|_| causeway::link::store::Refusal::Refused)
            })
            .await;
        (out, process)
    });
    tokio::task::spawn_blocking(move || wait_started.recv().unwrap())
        .await
        .unwrap();
    cli.write(|s| s.issue("fedcba9876543210", "second", FAR))
        .await
        .unwrap()
        .unwrap();
    cli_done.send(()).unwrap();
    let (out, _process) = redeem.await.unwrap();
    assert_eq!(out.unwrap(), Ok(()));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "a conflict, then a rerun on the newer Secret"
    );

    let files = data(&kube);
    let keys: BTreeSet<&str> = files.keys().map(String::as_str).collect();
    let want = [
        "bravo-ca.pem",
        "links.yaml",
        "token-0123456789abcdef.json",
        "token-fedcba9876543210.json",
    ];
    assert_eq!(keys, want.into_iter().collect());
    let first: Value = serde_json::from_str(&files[&format!("token-{ID}.json")]).unwrap();
    assert_eq!(first["redeemed"], json!(true));
}

/// A gateway's or federation's linker following the mount under `state`.
fn linker(state: &Path, peers: &Arc<PeerSet>, rotations: Rotations) -> Linker {
    Linker {
        store: Store::new(Some(state)).unwrap(),
        peers: peers.clone(),
        fed: None,
        applied: BTreeSet::new(),
        fixed: BTreeSet::new(),
        changed: Arc::new(Notify::new()),
        busy: Default::default(),
        errors: Default::default(),
        rotations,
    }
}

fn peer(name: &str) -> LinkedPeer {
    LinkedPeer {
        name: name.parse().unwrap(),
        trust_domain: format!("{name}.dev.causeway").parse().unwrap(),
        federation: "127.0.0.1:1".into(),
        link: "127.0.0.1:2".into(),
        rotation_until: None,
    }
}

/// Lays `files` out under `mount` as the kubelet does a Secret volume: a
/// timestamped directory, `..data` pointing at it (swapped by a rename), and
/// one symlink per key into `..data`.
fn kubelet_mount(mount: &Path, files: &std::collections::BTreeMap<String, String>, n: u32) {
    let version = format!("..2026_12_03_00_00_0{n}");
    std::fs::create_dir_all(mount.join(&version)).unwrap();
    for (key, text) in files {
        std::fs::write(mount.join(&version).join(key), text).unwrap();
    }
    let tmp = mount.join("..data_tmp");
    std::os::unix::fs::symlink(&version, &tmp).unwrap();
    std::fs::rename(&tmp, mount.join("..data")).unwrap();
    for entry in std::fs::read_dir(mount).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !files.contains_key(&name) {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    for key in files.keys() {
        let _ = std::os::unix::fs::symlink(format!("..data/{key}"), mount.join(key));
    }
}

#[tokio::test]
async fn a_pod_following_the_mounted_secret_links_and_unlinks_the_peer() {
    let (kube, dir) = (FakeKube::start().await, tempfile::tempdir().unwrap());
    let plan = plan(dir.path());
    let bravo = &plan.clusters[1];
    let bundle = std::fs::read(bravo.dir.join("ca.pem")).unwrap();
    let process = secret_store(&kube, "federation").await;
    let mut linked = peer("bravo");
    linked.federation = bravo.federation.to_string();
    process
        .write(|s| s.add(linked.clone(), &bundle))
        .await
        .unwrap()
        .unwrap();

    let state = tempfile::tempdir().unwrap();
    kubelet_mount(&state.path().join("links"), &data(&kube), 1);
    let peers = Arc::new(PeerSet::new(Vec::new()).unwrap());
    let mut linker = linker(state.path(), &peers, Rotations::Elsewhere);
    linker.reconcile(1).await;
    let name: ClusterId = "bravo".parse().unwrap();
    assert!(peers.get(&name).is_some(), "bravo linked from the mount");
    assert!(linker.errors.is_empty(), "{:?}", linker.errors);

    process.write(|s| s.remove(&name)).await.unwrap().unwrap();
    assert!(!data(&kube).contains_key("bravo-ca.pem"));
    kubelet_mount(&state.path().join("links"), &data(&kube), 2);
    linker.reconcile(2).await;
    assert!(peers.get(&name).is_none(), "bravo unlinked from the mount");
}

#[tokio::test]
async fn the_fake_api_server_refuses_secrets_as_the_real_one_does() {
    let kube = FakeKube::start().await;
    let url = format!("/api/v1/namespaces/{NS}/secrets");
    let secret = |data: Value| json!({"metadata": {"name": NAME}, "data": data});
    let ok = secret(json!({"links.yaml": "cGVlcnM6IFtdCg=="}));
    assert_eq!(call::call(&kube, "POST", &url, ok.clone()).await, 200);
    assert_eq!(
        call::call(&kube, "POST", &url, ok.clone()).await,
        409,
        "exists"
    );
    let one = format!("{url}/{NAME}");
    assert_eq!(
        call::call(&kube, "GET", &format!("{url}/nope"), Value::Null).await,
        404
    );
    let mut stale = ok.clone();
    stale["metadata"]["resourceVersion"] = json!("0");
    assert_eq!(
        call::call(&kube, "PUT", &one, stale).await,
        409,
        "stale resourceVersion"
    );
    for bad in [
        json!({"a/b": "eA=="}),
        json!({"..data": "eA=="}),
        json!({"": "eA=="}),
    ] {
        assert_eq!(
            call::call(&kube, "PUT", &one, secret(bad.clone())).await,
            422,
            "{bad}"
        );
    }
    assert_eq!(
        call::call(&kube, "PUT", &one, secret(json!({"k": "not base64!"}))).await,
        400
    );
    let big = base64::engine::general_purpose::STANDARD.encode(vec![0u8; 1024 * 1024 + 1]);
    assert_eq!(
        call::call(&kube, "PUT", &one, secret(json!({"k": big}))).await,
        422,
        "over 1 MiB"
    );
    let missing = format!("{url}/other");
    assert_eq!(
        call::call(&kube, "PUT", &missing, secret(json!({}))).await,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn causeway_token_issue_in_kubernetes_mode_writes_the_secret_and_not_the_state_dir() {
    let (kube, dir) = (FakeKube::start().await, tempfile::tempdir().unwrap());
    let plan = plan(dir.path());
    let alpha = &plan.clusters[0];
    let yaml = plan.config_yaml(alpha);
    let head = yaml.split("peers:").next().unwrap();
    let fed = "federation: { cert: federation.pem, key: federation-key.pem }\n";
    let head = head.replace(fed, &format!("{fed}  ca: ca.pem\n"));
    let k8s = format!(
        "  state_dir: state\n  kubernetes: {{ api_url: \"{}\", namespace: {NS}, gateway_selector: {{ app: gateway }}, links_secret: {NAME} }}\n",
        kube.url("cli")
    );
    let head = head.replace("  state_dir: state\n", &k8s);
    let config = alpha.config_path();
    std::fs::write(
        &config,
        format!("{head}peers: []\nlink: {{ listen: \"127.0.0.1:15999\" }}\n"),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_causeway"))
            .args(["token", "issue", "--json", "--config"])
            .arg(config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "token issue: {stderr}");

    let files = data(&kube);
    let tokens: Vec<&String> = files.keys().filter(|k| k.starts_with("token-")).collect();
    assert_eq!(tokens.len(), 1, "{files:?}");
    let record: Value = serde_json::from_str(&files[tokens[0]]).unwrap();
    assert_eq!(record["redeemed"], json!(false));
    assert!(
        record.get("secret").is_none(),
        "only the secret's hash: {record}"
    );
    assert_eq!(kube.writers("secrets"), ["cli"]);
    let local = alpha.dir.join("state/links/tokens");
    assert!(
        !local.exists(),
        "a token record in the state_dir: {local:?}"
    );
}

/// The federation ends a due CA rotation through the Secret; a pod sees the
/// bundle change when the kubelet swaps the mount.
#[tokio::test]
async fn the_federation_ends_a_due_rotation_in_the_secret_and_pods_reload_the_bundle() {
    let (kube, dir) = (FakeKube::start().await, tempfile::tempdir().unwrap());
    let plan = plan(dir.path());
    let bravo = &plan.clusters[1];
    let bundle = std::fs::read(bravo.dir.join("ca.pem")).unwrap();
    let next_dir = dir.path().join("bravo-next");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(["ca", "init", "--cluster", "bravo"])
        .args(["--trust-domain", "bravo.dev.causeway", "--out"])
        .arg(&next_dir)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let next = std::fs::read(next_dir.join("ca.pem")).unwrap();
    let process = Arc::new(secret_store(&kube, "federation").await);
    let name: ClusterId = "bravo".parse().unwrap();
    process
        .write(|s| s.add(peer("bravo"), &bundle))
        .await
        .unwrap()
        .unwrap();
    process
        .write(|s| s.rotate(&name, &next, 1))
        .await
        .unwrap()
        .unwrap();
    assert!(data(&kube).contains_key("bravo-ca-next.pem"));

    let state = tempfile::tempdir().unwrap();
    let mount = state.path().join("links");
    kubelet_mount(&mount, &data(&kube), 1);
    let peers = Arc::new(PeerSet::new(Vec::new()).unwrap());
    let linker = linker(state.path(), &peers, Rotations::Secret(process.clone()));
    let stop = CancellationToken::new();
    let running = tokio::spawn(linker.run(Duration::from_millis(20), stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while data(&kube).contains_key("bravo-ca-next.pem") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotation never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let files = data(&kube);
    assert_eq!(files["bravo-ca.pem"].as_bytes(), next.as_slice());
    assert!(
        !files["links.yaml"].contains("rotation_until"),
        "{}",
        files["links.yaml"]
    );
    assert!(peers.get(&name).is_some(), "bravo linked from the mount");
    assert_eq!(peers.reload_all(), 0, "the mount has not changed yet");
    kubelet_mount(&mount, &files, 2);
    assert_eq!(peers.reload_all(), 1, "the swapped bundle is picked up");
    stop.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn a_forbidden_write_names_the_secret_and_the_role() {
    let kube = FakeKube::start().await;
    kube.forbid("gateway");
    let writer = Writer::Secret(Arc::new(secret_store(&kube, "gateway").await));
    let e = writer
        .write(|s| s.issue(ID, "s3cret", FAR))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("cannot create Secret causeway/causeway-links: "),
        "{e}"
    );
    assert!(e.contains("forbidden") && e.contains("Role"), "{e}");
    assert!(e.contains("cannot create resource \"secrets\""), "{e}");
    assert!(kube.get("secrets", NS, NAME).is_none());
}

#[tokio::test]
async fn a_secret_past_one_mib_is_refused_with_what_to_do() {
    let kube = FakeKube::start().await;
    let writer = Writer::Secret(Arc::new(secret_store(&kube, "federation").await));
    writer
        .write(|s| s.issue(ID, "s3cret", FAR))
        .await
        .unwrap()
        .unwrap();
    let huge = vec![b'x'; 1024 * 1024];
    let e = writer
        .write(|s| s.add(peer("bravo"), &huge))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("cannot update Secret causeway/causeway-links: "),
        "{e}"
    );
    assert!(e.contains("at most 1 MiB"), "{e}");
    assert!(
        !data(&kube).contains_key("bravo-ca.pem"),
        "nothing half written"
    );
}
