//! The gateway's policies: causeway.yaml's `policies:` plus the federation's
//! TrafficPolicy objects (Kubernetes mode; none otherwise). On the same
//! service and port the config's entry wins and the object is logged as
//! shadowed. Either side changing republishes; new connections use it.

use std::sync::Arc;

use causeway_policy::Policies;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The merged set, and the objects' policies the config shadows (as `service[ port]`).
pub fn merged(config: &Policies, objects: &Policies) -> (Policies, Vec<String>) {
    let mut set = config.clone();
    let mut shadowed = Vec::new();
    for p in objects.iter() {
        let port = p
            .spec
            .port
            .map(|n| format!(" port {n}"))
            .unwrap_or_default();
        let at = format!("TrafficPolicy for {}{port}", p.key);
        if set.insert(&at, p.key.clone(), p.spec.clone()).is_err() {
            shadowed.push(format!("{}{port}", p.key));
        }
    }
    (set, shadowed)
}

/// Follows both sides until `shutdown`; a side whose sender is gone keeps
/// its last value.
pub fn spawn(
    mut config: watch::Receiver<Arc<Policies>>,
    mut objects: watch::Receiver<Arc<Policies>>,
    registry: &mut Registry,
    shutdown: CancellationToken,
) -> watch::Receiver<Arc<Policies>> {
    let in_force = Gauge::<i64>::default();
    registry.sub_registry_with_prefix("policy").register(
        "in_force",
        "Policies in force: causeway.yaml's plus the TrafficPolicy objects it does not shadow",
        in_force.clone(),
    );
    let mut shadowed = Vec::new();
    let first = publish(&config, &objects, &mut shadowed, &in_force);
    let (tx, rx) = watch::channel(Arc::new(first));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = changed(&mut config) => {}
                () = changed(&mut objects) => {}
            }
            let set = publish(&config, &objects, &mut shadowed, &in_force);
            tx.send_if_modified(|cur| {
                let changed = **cur != set;
                if changed {
                    *cur = Arc::new(set);
                }
                changed
            });
        }
    });
    rx
}

fn publish(
    config: &watch::Receiver<Arc<Policies>>,
    objects: &watch::Receiver<Arc<Policies>>,
    logged: &mut Vec<String>,
    in_force: &Gauge,
) -> Policies {
    let (set, shadowed) = merged(&config.borrow(), &objects.borrow());
    for s in shadowed.iter().filter(|s| !logged.contains(s)) {
        tracing::warn!(service = %s, "a TrafficPolicy is shadowed by causeway.yaml's policies: for the same service and port; the config's entry is in force");
    }
    *logged = shadowed;
    in_force.set(i64::try_from(set.len()).unwrap_or(i64::MAX));
    set
}

/// Completes on a change; never once the sender is gone.
async fn changed(rx: &mut watch::Receiver<Arc<Policies>>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_policy::PolicySpec;

    fn set(specs: serde_json::Value) -> Policies {
        let specs: Vec<PolicySpec> = serde_json::from_value(specs).unwrap();
        Policies::from_config(&specs).unwrap()
    }

    #[test]
    fn the_config_wins_on_the_same_service_and_port() {
        let config = set(serde_json::json!([
            {"service": "demo/web", "attempts": 1},
            {"service": "demo/db", "port": 5432, "attempts": 1},
        ]));
        let objects = set(serde_json::json!([
            {"service": "demo/web", "attempts": 2},
            {"service": "demo/web", "port": 80, "attempts": 3},
            {"service": "demo/db", "port": 5432, "attempts": 4},
            {"service": "demo/api", "attempts": 5},
        ]));
        let (m, shadowed) = merged(&config, &objects);
        assert_eq!(shadowed, ["demo/db port 5432", "demo/web"]);
        let attempts = |k: &str, port| {
            let key = k.parse().unwrap();
            m.find(&key, port).and_then(|p| p.spec.attempts)
        };
        assert_eq!(attempts("demo/web", 443), Some(1));
        assert_eq!(attempts("demo/web", 80), Some(3));
        assert_eq!(attempts("demo/db", 5432), Some(1));
        assert_eq!(attempts("demo/api", 1), Some(5));
        assert_eq!(m.len(), 4);
    }

    #[tokio::test]
    async fn either_side_changing_republishes_and_a_closed_side_keeps_its_value() {
        let config = watch::channel(Arc::new(set(serde_json::json!([{"service": "demo/web"}])))).1;
        let (objects_tx, objects) = watch::channel(Arc::new(Policies::default()));
        let stop = CancellationToken::new();
        let mut rx = spawn(config, objects, &mut Registry::default(), stop.clone());
        assert_eq!(rx.borrow().len(), 1);
        objects_tx.send_replace(Arc::new(set(serde_json::json!([{"service": "demo/api"}]))));
        let changed = tokio::time::timeout(std::time::Duration::from_secs(5), rx.changed()).await;
        assert!(matches!(changed, Ok(Ok(()))));
        assert_eq!(rx.borrow().len(), 2);
        stop.cancel();
    }
}
