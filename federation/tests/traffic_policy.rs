//! TrafficPolicy objects through the real `kube::Client` and watchers
//! against the fake API server (which checks them against the chart's CRD):
//! the federation's policies follow create, update and delete; a bad object
//! is refused alone, with its `Accepted` condition and a metric; a gateway
//! run apart receives the policies over the `WatchCatalog` feed.

#![allow(clippy::unwrap_used)]

#[path = "fake_kube/call.rs"]
mod call;
mod common;
mod fake_kube;

use std::sync::Arc;
use std::time::Duration;

use call::call;
use causeway_catalog::ServiceKey;
use causeway_federation::{Federation, FederationInputs, KubeSourceConfig, SourceConfig};
use causeway_identity::Workload;
use causeway_policy::Policies;
use common::{Identity, free_addr, init_tracing, test_config, wait_until};
use fake_kube::FakeKube;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(15);

struct Cluster {
    kube: FakeKube,
    id: Identity,
    fed: Federation,
    registry: Registry,
    stop: CancellationToken,
}

/// One cluster in Kubernetes mode, no peers, after `seed` ran on its API server.
async fn cluster(seed: impl FnOnce(&FakeKube)) -> Cluster {
    init_tracing();
    let kube = FakeKube::start().await;
    seed(&kube);
    let id = Identity::new("west");
    let source = KubeSourceConfig {
        api_url: Some(kube.url("west-source")),
        sync_timeout: Duration::from_secs(5),
    };
    let stop = CancellationToken::new();
    let inputs = FederationInputs {
        cfg: test_config(free_addr(), None),
        source: SourceConfig::Kubernetes(source),
        local: id.info(),
        cert: id.cert(),
        peers: vec![],
        own: Some(id.trust()),
        vip_ranges: vec!["10.96.200.0/24".parse().unwrap()],
        shutdown: stop.clone(),
    };
    let mut registry = Registry::default();
    let fed = Federation::start(inputs, &mut registry).await.unwrap();
    Cluster {
        kube,
        id,
        fed,
        registry,
        stop,
    }
}

impl Cluster {
    async fn stop(self) {
        self.stop.cancel();
        self.fed.closed().await;
    }

    fn metrics(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }
}

fn policy(name: &str, spec: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "demo"}, "spec": spec})
}

/// `(service, port) -> spec as JSON` of every policy in `rx`.
fn summary(rx: &watch::Receiver<Arc<Policies>>) -> Vec<(String, Option<u16>, Value)> {
    rx.borrow()
        .iter()
        .map(|p| {
            let spec = serde_json::to_value(&p.spec).unwrap();
            (p.key.to_string(), p.spec.port, spec)
        })
        .collect()
}

fn split_of(rx: &watch::Receiver<Arc<Policies>>, key: &str) -> Option<Value> {
    let key: ServiceKey = key.parse().unwrap();
    let p = rx.borrow().find(&key, 80)?.clone();
    Some(serde_json::to_value(&p.spec.split).unwrap())
}

/// `(status, reason, message)` of the object's `Accepted` condition.
fn accepted(kube: &FakeKube, name: &str) -> Option<(String, String, String)> {
    let tp = kube.get("trafficpolicies", "demo", name)?;
    let c = tp["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Accepted")?
        .clone();
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    Some((s("status"), s("reason"), s("message")))
}

/// demo/web split 9:1 between east and west.
fn put_web_split(kube: &FakeKube) {
    let spec = json!({"service": "web", "split": {"east": 9, "west": 1}});
    kube.put("trafficpolicies", policy("web", spec));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_follow_their_objects_and_a_bad_one_is_refused_alone() {
    let c = cluster(put_web_split).await;
    let rx = c.fed.policies();
    assert_eq!(
        split_of(&rx, "demo/web"),
        Some(json!({"east": 9, "west": 1})),
        "in force as soon as the federation has started"
    );
    let ok = || accepted(&c.kube, "web").map(|a| (a.0, a.1));
    wait_until("web accepted", LIMIT, || {
        ok() == Some(("True".into(), "Accepted".into()))
    })
    .await;

    // Update: the policy changes.
    c.kube.put(
        "trafficpolicies",
        policy(
            "web",
            json!({"service": "web", "split": {"east": 1}, "attempts": 2}),
        ),
    );
    wait_until("update", LIMIT, || {
        split_of(&rx, "demo/web") == Some(json!({"east": 1}))
    })
    .await;
    let generation =
        c.kube.get("trafficpolicies", "demo", "web").unwrap()["metadata"]["generation"].clone();
    assert_eq!(generation, 2);

    // Two bad objects: refused alone, each saying why; web stays in force.
    c.kube.put(
        "trafficpolicies",
        policy(
            "zero",
            json!({"service": "api", "split": {"east": 0, "west": 0}}),
        ),
    );
    c.kube.put(
        "trafficpolicies",
        policy(
            "abort",
            json!({"service": "db", "failover": ["east", "east"]}),
        ),
    );
    wait_until("refusals reported", LIMIT, || {
        accepted(&c.kube, "zero").is_some_and(|a| a.0 == "False")
            && accepted(&c.kube, "abort").is_some_and(|a| a.0 == "False")
    })
    .await;
    let (_, reason, message) = accepted(&c.kube, "zero").unwrap();
    assert_eq!(reason, "Invalid");
    assert!(
        message.contains("TrafficPolicy demo/zero") && message.contains("every weight is 0"),
        "{message}"
    );
    let (_, _, message) = accepted(&c.kube, "abort").unwrap();
    assert!(
        message.contains("failover: cluster east is listed twice"),
        "{message}"
    );
    let keys: Vec<String> = summary(&rx).into_iter().map(|s| s.0).collect();
    assert_eq!(keys, ["demo/web"]);
    let metrics = c.metrics();
    assert!(
        metrics.contains("federation_traffic_policies{state=\"refused\"} 2")
            && metrics.contains("federation_traffic_policies{state=\"accepted\"} 1"),
        "{metrics}"
    );

    // A second object for the same service and port: the first name wins.
    c.kube.put(
        "trafficpolicies",
        policy("web-again", json!({"service": "web", "attempts": 3})),
    );
    wait_until("duplicate refused", LIMIT, || {
        accepted(&c.kube, "web-again").is_some_and(|a| a.1 == "Duplicate")
    })
    .await;

    // Fixing a bad object puts it in force; deleting one takes it out.
    c.kube.put(
        "trafficpolicies",
        policy(
            "zero",
            json!({"service": "api", "split": {"east": 1, "west": 0}}),
        ),
    );
    wait_until("fixed", LIMIT, || split_of(&rx, "demo/api").is_some()).await;
    wait_until("fixed is accepted", LIMIT, || {
        accepted(&c.kube, "zero").is_some_and(|a| a.0 == "True")
    })
    .await;
    c.kube.delete("trafficpolicies", "demo", "web");
    let web: ServiceKey = "demo/web".parse().unwrap();
    wait_until("delete", LIMIT, || {
        rx.borrow().find(&web, 80).and_then(|p| p.spec.attempts) == Some(3)
            && accepted(&c.kube, "web-again").is_some_and(|a| a.0 == "True")
    })
    .await;
    assert_eq!(
        summary(&rx)
            .into_iter()
            .map(|s| s.0)
            .collect::<Vec<String>>(),
        ["demo/api", "demo/web"],
        "web-again is in force once web is gone"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_api_server_checks_traffic_policies_against_the_crd() {
    let kube = FakeKube::start().await;
    let path = "/apis/causeway.io/v1alpha1/namespaces/demo/trafficpolicies";
    let create = |name: &str, spec: Value| policy(name, spec);
    let refused = [
        ("port-type", json!({"service": "web", "port": "http"})),
        ("port-range", json!({"service": "web", "port": 70000})),
        (
            "weight-type",
            json!({"service": "web", "split": {"east": "most"}}),
        ),
        (
            "weight-sign",
            json!({"service": "web", "split": {"east": -1}}),
        ),
        (
            "percent-type",
            json!({"service": "web", "fault": {"abort_percent": "half"}}),
        ),
        (
            "percent-range",
            json!({"service": "web", "fault": {"abort_percent": 150.0}}),
        ),
        ("attempts-range", json!({"service": "web", "attempts": 0})),
        (
            "hash-enum",
            json!({"service": "web", "hash": "round_robin"}),
        ),
        ("no-service", json!({"port": 80})),
        (
            "mirror-cluster",
            json!({"service": "web", "mirror": {"percent": 5.0}}),
        ),
        (
            "failover-type",
            json!({"service": "web", "failover": "east"}),
        ),
    ];
    for (name, spec) in refused {
        assert_eq!(
            call(&kube, "POST", path, create(name, spec)).await,
            422,
            "{name}"
        );
    }
    assert_eq!(
        call(
            &kube,
            "GET",
            "/apis/causeway.io/v1beta1/trafficpolicies",
            Value::Null
        )
        .await,
        404,
        "only v1alpha1 is served"
    );
    // An unknown field: refused when the client asks for strict validation
    // (kubectl does), dropped otherwise, nested too.
    let bogus =
        json!({"service": "web", "fault": {"abort_percent": 5.0, "bogus": 1}, "extra": true});
    let strict = format!("{path}?fieldValidation=Strict");
    assert_eq!(
        call(&kube, "POST", &strict, create("strict", bogus.clone())).await,
        422
    );
    assert_eq!(
        call(&kube, "POST", path, create("lenient", bogus)).await,
        200
    );
    let stored = kube.get("trafficpolicies", "demo", "lenient").unwrap();
    assert_eq!(
        stored["spec"],
        json!({"service": "web", "fault": {"abort_percent": 5.0}})
    );
    let full = json!({"service": "web", "port": 80, "split": {"east": 9, "west": 1},
        "hash": "client_ip", "fault": {"delay": "50ms", "delay_percent": 10.0, "abort_percent": 1.5, "sources": ["east"]},
        "mirror": {"cluster": "west", "percent": 5.0}, "connect_timeout": "2s", "attempts": 2,
        "failover": ["east", "west"], "limits": {"each_source": {"connections_per_second": 200.0, "max_connections": 100},
        "sources": {"east": {"bytes_per_second": 12500000}}}});
    assert_eq!(
        call(&kube, "POST", &strict, create("full", full.clone())).await,
        200
    );
    let stored = kube.get("trafficpolicies", "demo", "full").unwrap();
    assert_eq!(stored["spec"], full);
    assert_eq!(stored["metadata"]["generation"], 1);
    let tp: causeway_federation::TrafficPolicy = serde_json::from_value(stored).unwrap();
    assert_eq!(
        tp.spec.0.split.len(),
        2,
        "the stored object reads as a PolicySpec"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_run_apart_gets_the_policies_over_the_catalog_feed() {
    let c = cluster(put_web_split).await;
    let addr = c.fed.watch_addr().unwrap();
    let target = c.id.watch_target(addr, Workload::Gateway);
    let stop = CancellationToken::new();
    let remote = causeway_federation::watch_remote(target, stop.clone());
    let rx = remote.policies;
    wait_until("first policies", LIMIT, || {
        split_of(&rx, "demo/web") == Some(json!({"east": 9, "west": 1}))
    })
    .await;
    assert_eq!(summary(&rx), summary(&c.fed.policies()));
    c.kube.put(
        "trafficpolicies",
        policy("web", json!({"service": "web", "split": {"west": 1}})),
    );
    c.kube.put(
        "trafficpolicies",
        policy("api", json!({"service": "api", "port": 80, "attempts": 2})),
    );
    wait_until("changes", LIMIT, || {
        split_of(&rx, "demo/web") == Some(json!({"west": 1})) && rx.borrow().len() == 2
    })
    .await;
    c.kube.delete("trafficpolicies", "demo", "web");
    wait_until("delete", LIMIT, || split_of(&rx, "demo/web").is_none()).await;
    assert_eq!(summary(&rx), summary(&c.fed.policies()));
    stop.cancel();
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_crd_the_federation_starts_and_follows_policies_once_it_is_applied() {
    let c = cluster(|kube| kube.set_crd_installed("trafficpolicies", false)).await;
    let rx = c.fed.policies();
    assert!(rx.borrow().is_empty());
    c.kube.set_crd_installed("trafficpolicies", true);
    c.kube.put(
        "trafficpolicies",
        policy("web", json!({"service": "web", "attempts": 2})),
    );
    wait_until(
        "policies once the CRD is there",
        Duration::from_secs(40),
        || rx.borrow().len() == 1,
    )
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_in_the_docs_is_accepted() {
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/kubernetes.md"),
    )
    .unwrap();
    let start = docs
        .find("```yaml\napiVersion: causeway.io/v1alpha1")
        .unwrap()
        + 8;
    let len = docs[start..].find("```").unwrap();
    let example: Value = serde_saphyr::from_str(&docs[start..start + len]).unwrap();
    let c = cluster(|_| {}).await;
    let path = "/apis/causeway.io/v1alpha1/namespaces/demo/trafficpolicies?fieldValidation=Strict";
    assert_eq!(call(&c.kube, "POST", path, example).await, 200);
    let rx = c.fed.policies();
    wait_until("the example in force", LIMIT, || {
        split_of(&rx, "demo/web") == Some(json!({"east": 90, "west": 10}))
    })
    .await;
    wait_until("accepted", LIMIT, || {
        accepted(&c.kube, "web").is_some_and(|a| a.0 == "True")
    })
    .await;
    c.stop().await;
}
