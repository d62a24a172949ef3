//! Kubernetes mode end to end without a cluster: two federations (west,
//! east) over mutual TLS on loopback, each reading and writing its own
//! in-memory fake API server through the real `kube::Client` and watchers.

#![allow(clippy::unwrap_used)]

#[path = "fake_kube/call.rs"]
mod call;
mod common;
mod fake_kube;

use std::collections::BTreeMap;
use std::time::Duration;

use call::call;
use causeway_federation::{
    Federation, FederationInputs, KubeSinkConfig, KubeSource, KubeSourceConfig, PeerEndpoint,
    SourceConfig, spawn_sink,
};
use common::{Identity, free_addr, init_tracing, test_config, wait_until};
use fake_kube::FakeKube;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const LIMIT: Duration = Duration::from_secs(15);

fn sink_config(url: String, identity: &str) -> KubeSinkConfig {
    sink_with_lease(url, identity, Duration::from_secs(1))
}

fn sink_with_lease(url: String, identity: &str, lease: Duration) -> KubeSinkConfig {
    KubeSinkConfig {
        api_url: Some(url),
        namespace: "causeway".into(),
        gateway_selector: BTreeMap::from([("app".into(), "causeway-gateway".into())]),
        port_base: 20000,
        port_count: 1000,
        lease_name: "causeway-federation".into(),
        identity: Some(identity.into()),
        lease_duration: lease,
        label_leader_pod: true,
        renew_interval: Duration::from_millis(200),
        resync_interval: Duration::from_secs(30),
        links_secret: "causeway-links".into(),
    }
}

struct Cluster {
    kube: FakeKube,
    fed: Federation,
    stop: CancellationToken,
}

/// Two clusters; each federation runs the sink itself when `sinks` is set.
async fn pair(sinks: bool) -> (Cluster, Cluster) {
    pair_seeded(sinks, |_, _| {}).await
}

/// As [`pair`], with `seed(i, kube)` run on each API server before its federation starts.
async fn pair_seeded(sinks: bool, seed: impl Fn(usize, &FakeKube)) -> (Cluster, Cluster) {
    let ids = [Identity::new("west"), Identity::new("east")];
    let addrs = [free_addr(), free_addr()];
    let mut out = Vec::new();
    for i in 0..2 {
        let kube = FakeKube::start().await;
        seed_gateway(&kube);
        seed_federation_pods(&kube, ids[i].name.as_str());
        seed(i, &kube);
        let me = ids[i].name.to_string();
        let mut cfg = test_config(addrs[i], None);
        cfg.kubernetes =
            sinks.then(|| sink_config(kube.url(&format!("{me}-0")), &format!("{me}-0")));
        let source = KubeSourceConfig {
            api_url: Some(kube.url(&format!("{me}-source"))),
            sync_timeout: Duration::from_secs(5),
        };
        let peer = PeerEndpoint {
            trust: ids[1 - i].trust(),
            addr: addrs[1 - i].to_string(),
            policy: Default::default(),
        };
        let stop = CancellationToken::new();
        let inputs = FederationInputs {
            cfg,
            source: SourceConfig::Kubernetes(source),
            local: ids[i].info(),
            cert: ids[i].cert(),
            peers: vec![peer],
            own: Some(ids[i].trust()),
            vip_ranges: vec![format!("10.96.{}.0/24", 200 + i).parse().unwrap()],
            shutdown: stop.clone(),
        };
        let fed = Federation::start(inputs, &mut Registry::default())
            .await
            .unwrap();
        out.push(Cluster { kube, fed, stop });
    }
    let east = out.pop().unwrap();
    (out.pop().unwrap(), east)
}

fn seed_federation_pods(kube: &FakeKube, cluster: &str) {
    for i in 0..2 {
        kube.put(
            "pods",
            json!({"metadata": {"name": format!("{cluster}-{i}"), "namespace": "causeway", "labels": {"app": "causeway-federation"}}}),
        );
    }
}

/// The leader label on pod `name`, if any.
fn leader_label(kube: &FakeKube, name: &str) -> Option<String> {
    let pod = kube.get("pods", "causeway", name)?;
    pod["metadata"]["labels"][causeway_federation::LEADER_LABEL]
        .as_str()
        .map(str::to_owned)
}

fn seed_gateway(kube: &FakeKube) {
    kube.put("pods", json!({"metadata": {"name": "gw-0", "namespace": "causeway", "labels": {"app": "causeway-gateway"}},
        "status": {"podIP": "10.244.1.10", "conditions": [{"type": "Ready", "status": "True"}]}}));
}

fn export_web(kube: &FakeKube, ports: Value) {
    kube.put(
        "services",
        json!({"metadata": {"name": "web", "namespace": "demo"}, "spec": {"ports": ports}}),
    );
    kube.put("endpointslices", json!({"metadata": {"name": "web-abc", "namespace": "demo", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}], "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": true}}]}));
    kube.put(
        "serviceexports",
        json!({"metadata": {"name": "web", "namespace": "demo"}}),
    );
}

fn condition(kube: &FakeKube, name: &str, ty: &str) -> Option<(String, String)> {
    let se = kube.get("serviceexports", "demo", name)?;
    let conds = se["status"]["conditions"].as_array()?.clone();
    let c = conds.iter().find(|c| c["type"] == ty)?;
    Some((
        c["status"].as_str()?.to_owned(),
        c["reason"].as_str()?.to_owned(),
    ))
}

fn port_count(obj: Option<Value>, pointer: &str) -> usize {
    obj.and_then(|o| o.pointer(pointer).and_then(Value::as_array).map(Vec::len))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_in_west_becomes_an_import_with_a_derived_service_in_east() {
    init_tracing();
    let (west, east) = pair(true).await;
    east.kube.put("services", json!({"metadata": {"name": "mine", "namespace": "demo"}, "spec": {"ports": [{"port": 1}]}}));
    export_web(
        &west.kube,
        json!([{"name": "http", "port": 80, "targetPort": 8080}]),
    );
    wait_until(
        "east has the ServiceImport, Service and EndpointSlice",
        LIMIT,
        || {
            east.kube
                .get("endpointslices", "demo", "web-clusterset")
                .is_some()
        },
    )
    .await;
    let si = east.kube.get("serviceimports", "demo", "web").unwrap();
    assert_eq!(si["spec"]["type"], "ClusterSetIP");
    assert_eq!(
        si["spec"]["ports"],
        json!([{"name": "http", "protocol": "TCP", "port": 80}])
    );
    assert_eq!(si["status"]["clusters"], json!([{"cluster": "west"}]));
    assert_eq!(
        si["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "causeway"
    );
    let vip = east
        .fed
        .catalog()
        .borrow()
        .imports
        .values()
        .next()
        .unwrap()
        .vips[0]
        .to_string();
    let svc = east.kube.get("services", "demo", "web-clusterset").unwrap();
    assert_eq!(
        svc["spec"]["clusterIP"],
        vip.as_str(),
        "the derived Service's ClusterIP is the ClusterSetIP DNS answers"
    );
    assert_eq!(
        svc["metadata"]["ownerReferences"][0]["uid"],
        si["metadata"]["uid"]
    );
    let gw_port = svc["spec"]["ports"][0]["targetPort"].as_i64().unwrap();
    let recorded = si["metadata"]["annotations"]["causeway.io/gateway-ports"]
        .as_str()
        .unwrap();
    assert_eq!(recorded, format!("80/tcp={gw_port}"));
    let slice = east
        .kube
        .get("endpointslices", "demo", "web-clusterset")
        .unwrap();
    assert_eq!(slice["endpoints"][0]["addresses"], json!(["10.244.1.10"]));
    assert_eq!(slice["ports"][0]["port"].as_i64(), Some(gw_port));
    wait_until("west's ServiceExport is Valid", LIMIT, || {
        condition(&west.kube, "web", "Valid") == Some(("True".into(), "Valid".into()))
    })
    .await;
    assert_eq!(
        condition(&west.kube, "web", "Conflict"),
        Some(("False".into(), "NoConflicts".into()))
    );

    // The Service gains a port: the import and the derived Service follow.
    export_web(
        &west.kube,
        json!([{"name": "http", "port": 80}, {"name": "grpc", "port": 9000}]),
    );
    wait_until("east's import has both ports", LIMIT, || {
        port_count(
            east.kube.get("serviceimports", "demo", "web"),
            "/spec/ports",
        ) == 2
            && port_count(
                east.kube.get("services", "demo", "web-clusterset"),
                "/spec/ports",
            ) == 2
            && port_count(
                east.kube.get("endpointslices", "demo", "web-clusterset"),
                "/ports",
            ) == 2
    })
    .await;

    // ExternalName cannot be exported.
    west.kube.put("services", json!({"metadata": {"name": "ext", "namespace": "demo"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}));
    west.kube.put(
        "serviceexports",
        json!({"metadata": {"name": "ext", "namespace": "demo"}}),
    );
    wait_until("ext is marked invalid", LIMIT, || {
        condition(&west.kube, "ext", "Valid") == Some(("False".into(), "InvalidServiceType".into()))
    })
    .await;
    assert!(east.kube.get("serviceimports", "demo", "ext").is_none());

    // Unexported: east's objects go; the Service east owns itself stays.
    west.kube.delete("serviceexports", "demo", "web");
    wait_until("east's objects for demo/web are deleted", LIMIT, || {
        east.kube.names("serviceimports").is_empty()
            && east
                .kube
                .get("services", "demo", "web-clusterset")
                .is_none()
            && east
                .kube
                .get("endpointslices", "demo", "web-clusterset")
                .is_none()
    })
    .await;
    assert!(
        east.kube.get("services", "demo", "mine").is_some(),
        "an unlabelled Service is never touched"
    );
    assert!(east.kube.writers("services").iter().all(|w| w == "east-0"));
    for c in [west, east] {
        c.stop.cancel();
        c.fed.closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_only_the_leader_writes_and_the_other_takes_over() {
    init_tracing();
    let (west, east) = pair(false).await;
    let tasks = TaskTracker::new();
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    // A lease far longer than the test: the takeover below can only come from a release.
    let lease = Duration::from_secs(120);
    let (lead_a, mut leads_a) = tokio::sync::watch::channel(false);
    let (lead_b, mut leads_b) = tokio::sync::watch::channel(false);
    spawn_sink(
        &sink_with_lease(east.kube.url("east-0"), "east-0", lease),
        (east.fed.catalog(), east.fed.settled()),
        lead_a,
        &tasks,
        stop_a.clone(),
    )
    .await
    .unwrap();
    wait_until("east-0 holds the lease", LIMIT, || {
        east.kube
            .get("leases", "causeway", "causeway-federation")
            .is_some_and(|l| l["spec"]["holderIdentity"] == "east-0")
    })
    .await;
    spawn_sink(
        &sink_with_lease(east.kube.url("east-1"), "east-1", lease),
        (east.fed.catalog(), east.fed.settled()),
        lead_b,
        &tasks,
        stop_b.clone(),
    )
    .await
    .unwrap();
    export_web(&west.kube, json!([{"name": "http", "port": 80}]));
    wait_until("the import is written", LIMIT, || {
        east.kube
            .get("endpointslices", "demo", "web-clusterset")
            .is_some()
    })
    .await;
    // Several renew rounds of both replicas (they run on the same interval).
    let mut renewals = std::collections::BTreeSet::new();
    wait_until("the leader renews three times", LIMIT, || {
        let lease = east.kube.get("leases", "causeway", "causeway-federation");
        renewals.extend(lease.map(|l| l["spec"]["renewTime"].to_string()));
        renewals.len() > 3
    })
    .await;
    assert_eq!(east.kube.writers("serviceimports"), ["east-0"]);
    assert_eq!(leader_label(&east.kube, "east-0").as_deref(), Some("true"));
    assert_eq!(leader_label(&east.kube, "east-1"), None);
    // Only the leader would serve the catalog feed.
    assert!(*leads_a.borrow() && !*leads_b.borrow());
    assert_eq!(
        east.kube.writers("leases"),
        ["east-0"],
        "the follower never writes the live lease"
    );

    // The leader stops and hands the lease back; the follower takes over and writes.
    stop_a.cancel();
    wait_until("east-1 holds the lease", LIMIT, || {
        east.kube
            .get("leases", "causeway", "causeway-federation")
            .is_some_and(|l| l["spec"]["holderIdentity"] == "east-1")
    })
    .await;
    let lease = east
        .kube
        .get("leases", "causeway", "causeway-federation")
        .unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    tokio::time::timeout(LIMIT, leads_b.wait_for(|l| *l))
        .await
        .unwrap()
        .unwrap();
    assert!(!*leads_a.borrow_and_update());
    wait_until("only east-1's pod carries the leader label", LIMIT, || {
        leader_label(&east.kube, "east-1").is_some() && leader_label(&east.kube, "east-0").is_none()
    })
    .await;
    west.kube.delete("serviceexports", "demo", "web");
    wait_until("east-1 deletes the import", LIMIT, || {
        east.kube.names("serviceimports").is_empty()
    })
    .await;
    assert_eq!(east.kube.writers("serviceimports"), ["east-0", "east-1"]);
    stop_b.cancel();
    tasks.close();
    tasks.wait().await;
    for c in [west, east] {
        c.stop.cancel();
        c.fed.closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_exporter_keeps_its_imports_until_its_lease_expires() {
    init_tracing();
    let (west, east) = pair(true).await;
    export_web(&west.kube, json!([{"name": "http", "port": 80}]));
    wait_until("east imports demo/web", LIMIT, || {
        east.kube
            .get("endpointslices", "demo", "web-clusterset")
            .is_some()
    })
    .await;
    // West goes silent (process gone; its ServiceExport is still there).
    west.stop.cancel();
    west.fed.closed().await;
    let gone = std::time::Instant::now();
    wait_until("east withdraws demo/web", LIMIT, || {
        east.kube.get("serviceimports", "demo", "web").is_none()
            && east
                .kube
                .get("services", "demo", "web-clusterset")
                .is_none()
    })
    .await;
    let after = gone.elapsed();
    let expire = common::EXPIRE - common::HEARTBEAT;
    assert!(
        after >= expire,
        "withdrawn after {after:?}, before the lease expired ({:?})",
        common::EXPIRE
    );
    east.stop.cancel();
    east.fed.closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_export_of_a_conflicting_port_gets_the_conflict_condition() {
    init_tracing();
    let (west, east) = pair(false).await;
    // A peer's created_at counts from when this cluster first saw the export
    // (docs/security.md): east's export is made after the link, west's before.
    for (kube, port, created) in [
        (&west.kube, 80, "2026-01-01T00:00:00Z"),
        (&east.kube, 8080, "2099-02-01T00:00:00Z"),
    ] {
        kube.put("services", json!({"metadata": {"name": "web", "namespace": "demo"}, "spec": {"ports": [{"name": "http", "port": port}]}}));
        kube.put(
            "serviceexports",
            json!({"metadata": {"name": "web", "namespace": "demo", "creationTimestamp": created}}),
        );
    }
    wait_until("east's export is marked as conflicting", LIMIT, || {
        condition(&east.kube, "web", "Conflict") == Some(("True".into(), "PortConflict".into()))
    })
    .await;
    assert_eq!(
        condition(&east.kube, "web", "Valid"),
        Some(("True".into(), "Valid".into()))
    );
    wait_until(
        "west's export, the older, is told too (KEP-1645)",
        LIMIT,
        || condition(&west.kube, "web", "Conflict") == Some(("True".into(), "PortConflict".into())),
    )
    .await;
    for c in [west, east] {
        c.stop.cancel();
        c.fed.closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_into_a_missing_namespace_waits_without_holding_up_others() {
    init_tracing();
    let (west, east) = pair(true).await;
    east.kube.set_namespace_missing("other", true);
    for ns in ["other", "demo"] {
        west.kube.put("services", json!({"metadata": {"name": "api", "namespace": ns}, "spec": {"ports": [{"port": 80}]}}));
        west.kube.put(
            "serviceexports",
            json!({"metadata": {"name": "api", "namespace": ns}}),
        );
    }
    wait_until("demo/api is imported in east", LIMIT, || {
        east.kube
            .get("endpointslices", "demo", "api-clusterset")
            .is_some()
    })
    .await;
    assert!(east.kube.get("serviceimports", "other", "api").is_none());
    east.kube.set_namespace_missing("other", false);
    wait_until("other/api follows once its namespace exists", LIMIT, || {
        east.kube
            .get("endpointslices", "other", "api-clusterset")
            .is_some()
    })
    .await;
    for c in [west, east] {
        c.stop.cancel();
        c.fed.closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_id_from_the_about_api_must_be_the_configured_name() {
    init_tracing();
    let kube = FakeKube::start().await;
    let cfg = KubeSourceConfig {
        api_url: Some(kube.url("west-source")),
        sync_timeout: Duration::from_secs(5),
    };
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let west = causeway_catalog::ClusterId::new("west").unwrap();
    // No About API installed: the configured name is the id.
    assert!(KubeSource::start(&cfg, &west, &tasks, &stop).await.is_ok());
    kube.install_cluster_id("west");
    assert!(KubeSource::start(&cfg, &west, &tasks, &stop).await.is_ok());
    kube.install_cluster_id("cluster-7");
    let err = KubeSource::start(&cfg, &west, &tasks, &stop)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cluster-7") && err.contains("west"), "{err}");
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_derived_service_keeps_its_cluster_ip_when_another_replica_leads() {
    init_tracing();
    // The previous leader wrote demo/web's derived Service with .77 (this
    // replica's allocator, fresh and without state, would hash elsewhere).
    let (west, east) = pair_seeded(false, |i, kube| {
        if i == 1 {
            kube.put("services", json!({"metadata": {"name": "web-clusterset", "namespace": "demo",
                "labels": {"app.kubernetes.io/managed-by": "causeway", "multicluster.kubernetes.io/service-name": "web"}},
                "spec": {"clusterIP": "10.96.201.77", "ports": [{"name": "http", "port": 80, "targetPort": 20001}]}}));
        }
    })
    .await;
    let uid =
        east.kube.get("services", "demo", "web-clusterset").unwrap()["metadata"]["uid"].clone();
    export_web(&west.kube, json!([{"name": "http", "port": 80}]));
    // The new leader takes over a catalog that has the import (it has been
    // following the clusterset all along).
    let catalog = east.fed.catalog();
    wait_until("east's catalog has demo/web", LIMIT, || {
        !catalog.borrow().imports.is_empty()
    })
    .await;
    let tasks = TaskTracker::new();
    let stop = CancellationToken::new();
    spawn_sink(
        &sink_config(east.kube.url("east-1"), "east-1"),
        (east.fed.catalog(), east.fed.settled()),
        tokio::sync::watch::channel(false).0,
        &tasks,
        stop.clone(),
    )
    .await
    .unwrap();
    wait_until("east's import is written", LIMIT, || {
        east.kube
            .get("endpointslices", "demo", "web-clusterset")
            .is_some()
    })
    .await;
    let si = east.kube.get("serviceimports", "demo", "web").unwrap();
    assert_eq!(si["spec"]["ips"], json!(["10.96.201.77"]));
    let svc = east.kube.get("services", "demo", "web-clusterset").unwrap();
    assert_eq!(svc["spec"]["clusterIP"], "10.96.201.77");
    assert_eq!(
        svc["metadata"]["uid"], uid,
        "updated in place, never recreated"
    );
    stop.cancel();
    tasks.close();
    tasks.wait().await;
    for c in [west, east] {
        c.stop.cancel();
        c.fed.closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_ports_from_two_clusters_never_make_a_service_the_api_server_refuses() {
    init_tracing();
    let (west, east) = pair(true).await;
    // A peer's created_at counts from when this cluster first saw the export
    // (docs/security.md): east's export is made after the link, west's before.
    for (kube, ports, created) in [
        (&west.kube, json!([{"port": 80}]), "2026-01-01T00:00:00Z"),
        (
            &east.kube,
            json!([{"name": "http", "port": 81}, {"name": "grpc", "port": 82}]),
            "2099-02-01T00:00:00Z",
        ),
    ] {
        kube.put(
            "services",
            json!({"metadata": {"name": "web", "namespace": "demo"}, "spec": {"ports": ports}}),
        );
        kube.put(
            "serviceexports",
            json!({"metadata": {"name": "web", "namespace": "demo", "creationTimestamp": created}}),
        );
    }
    for c in [&west, &east] {
        wait_until("the derived Service has the three ports", LIMIT, || {
            port_count(
                c.kube.get("services", "demo", "web-clusterset"),
                "/spec/ports",
            ) == 3
        })
        .await;
        let svc = c.kube.get("services", "demo", "web-clusterset").unwrap();
        let names: Vec<&str> = svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(names, ["tcp-80", "http", "grpc"]);
        assert_eq!(
            condition(&c.kube, "web", "Conflict")
                .map(|c| c.1)
                .as_deref(),
            Some("PortConflict")
        );
    }
    for c in [west, east] {
        c.stop.cancel();
        c.fed.closed().await;
    }
}

/// Finding 9 (docs/security.md): derived EndpointSlices follow the gateway
/// pods as they change, not on the next resync (30 s here, longer than the
/// test may take): a gateway pod that stops being ready leaves the slice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_slices_follow_gateway_pods_without_waiting_for_a_resync() {
    init_tracing();
    let (west, east) = pair(true).await;
    export_web(&west.kube, json!([{"name": "http", "port": 80}]));
    let addresses = || {
        let slice = east.kube.get("endpointslices", "demo", "web-clusterset")?;
        let eps = slice["endpoints"].as_array()?.clone();
        let ips: Vec<String> = eps
            .iter()
            .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        Some(ips)
    };
    wait_until("the slice points at gw-0", LIMIT, || {
        addresses() == Some(vec!["10.244.1.10".into()])
    })
    .await;
    // A rollout: gw-1 comes up, gw-0 goes away.
    east.kube.put("pods", json!({"metadata": {"name": "gw-1", "namespace": "causeway", "labels": {"app": "causeway-gateway"}},
        "status": {"podIP": "10.244.1.11", "conditions": [{"type": "Ready", "status": "True"}]}}));
    east.kube.delete("pods", "causeway", "gw-0");
    let took = wait_until(
        "the slice points at gw-1 only",
        Duration::from_secs(10),
        || addresses() == Some(vec!["10.244.1.11".into()]),
    )
    .await;
    assert!(took < Duration::from_secs(10));
    for c in [west, east] {
        c.stop.cancel();
        c.fed.closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_api_server_is_as_strict_as_a_real_one() {
    let kube = FakeKube::start().await;
    let mcs = "/apis/multicluster.x-k8s.io";
    assert_eq!(
        call(
            &kube,
            "GET",
            &format!("{mcs}/v1beta1/serviceimports"),
            Value::Null
        )
        .await,
        200
    );
    assert_eq!(
        call(
            &kube,
            "GET",
            &format!("{mcs}/v1alpha1/serviceimports"),
            Value::Null
        )
        .await,
        200
    );
    assert_eq!(
        call(
            &kube,
            "GET",
            &format!("{mcs}/v1alpha2/serviceimports"),
            Value::Null
        )
        .await,
        404
    );
    assert_eq!(
        call(
            &kube,
            "GET",
            "/apis/about.k8s.io/v1beta1/clusterproperties",
            Value::Null
        )
        .await,
        404
    );
    let si = |ty: &str, ips: Value| {
        json!({"metadata": {"name": "x", "namespace": "demo"},
        "spec": {"type": ty, "ports": [{"port": 80}], "ips": ips, "bogus": 1}})
    };
    let path = format!("{mcs}/v1beta1/namespaces/demo/serviceimports");
    assert_eq!(
        call(&kube, "POST", &path, si("Bogus", json!([]))).await,
        422,
        "enum"
    );
    assert_eq!(
        call(&kube, "POST", &path, si("Headless", json!(["a", "b", "c"]))).await,
        422,
        "maxItems"
    );
    assert_eq!(
        call(&kube, "POST", &path, si("Headless", json!([]))).await,
        200
    );
    let stored = kube.get("serviceimports", "demo", "x").unwrap();
    assert!(
        stored["spec"].get("bogus").is_none(),
        "unknown fields are pruned"
    );
    let svc = |ports: Value, ip: &str| json!({"metadata": {"name": "s", "namespace": "demo"}, "spec": {"clusterIP": ip, "ports": ports}});
    let path = "/api/v1/namespaces/demo/services";
    let two_unnamed = json!([{"port": 80}, {"port": 81}]);
    assert_eq!(
        call(&kube, "POST", path, svc(two_unnamed, "10.96.0.50")).await,
        422
    );
    let one = json!([{"port": 80}]);
    assert_eq!(
        call(&kube, "POST", path, svc(one.clone(), "10.97.0.50")).await,
        422,
        "outside the CIDR"
    );
    assert_eq!(
        call(&kube, "POST", path, svc(one.clone(), "10.96.0.50")).await,
        200
    );
    let mut other = svc(one, "10.96.0.50");
    other["metadata"]["name"] = json!("t");
    assert_eq!(call(&kube, "POST", path, other).await, 422, "taken");
    let stored = kube.get("services", "demo", "s").unwrap();
    assert_eq!(stored["spec"]["internalTrafficPolicy"], "Cluster");
    assert_eq!(stored["spec"]["sessionAffinity"], "None");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_starts_alone_keeps_the_imports_until_its_peers_are_heard_or_expired() {
    init_tracing();
    let kube = FakeKube::start().await;
    seed_gateway(&kube);
    // What the previous leader wrote for an import from west.
    kube.put("services", json!({"metadata": {"name": "web-clusterset", "namespace": "demo",
        "labels": {"app.kubernetes.io/managed-by": "causeway", "multicluster.kubernetes.io/service-name": "web"}},
        "spec": {"clusterIP": "10.96.201.77", "ports": [{"name": "http", "port": 80}]}}));
    let (east, west) = (Identity::new("east"), Identity::new("west"));
    let mut cfg = test_config(free_addr(), None);
    cfg.kubernetes = Some(sink_config(kube.url("east-0"), "east-0"));
    let stop = CancellationToken::new();
    let inputs = FederationInputs {
        cfg,
        source: SourceConfig::Kubernetes(KubeSourceConfig {
            api_url: Some(kube.url("east-source")),
            sync_timeout: Duration::from_secs(5),
        }),
        local: east.info(),
        cert: east.cert(),
        // West is down: nothing listens there.
        peers: vec![PeerEndpoint {
            trust: west.trust(),
            addr: free_addr().to_string(),
            policy: Default::default(),
        }],
        own: Some(east.trust()),
        vip_ranges: vec!["10.96.201.0/24".parse().unwrap()],
        shutdown: stop.clone(),
    };
    let started = std::time::Instant::now();
    let fed = Federation::start(inputs, &mut Registry::default())
        .await
        .unwrap();
    wait_until("east holds the lease", LIMIT, || {
        kube.get("leases", "causeway", "causeway-federation")
            .is_some_and(|l| l["spec"]["holderIdentity"] == "east-0")
    })
    .await;
    wait_until(
        "the orphan goes once west would have expired",
        LIMIT,
        || kube.get("services", "demo", "web-clusterset").is_none(),
    )
    .await;
    let after = started.elapsed();
    assert!(
        after >= common::EXPIRE,
        "deleted after {after:?}, before west could expire"
    );
    stop.cancel();
    fed.closed().await;
}
