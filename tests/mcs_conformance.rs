//! Every case of the upstream MCS conformance suite (kubernetes-sigs/mcs-api
//! v0.5.0, `conformance/`), Required and Optional, as a named test against
//! the strict fake API server, and the DNS cases with hickory's resolver.
//! Each test names its upstream spec and labels; docs/kubernetes.md lists them
//! with pass/fail. What differs from a real cluster is said at the case.

#![allow(clippy::unwrap_used)]

mod mcs;

use std::net::IpAddr;

use hickory_resolver::proto::rr::RecordType;
use mcs::*;
use serde_json::{Value, json};

// After the link, as exports in a live clusterset are: a peer's created_at
// counts from when this cluster first saw the export (docs/security.md), so
// exports dated before it would all look as old as the link.
const T0: &str = "2099-01-01T00:00:00Z";
const T1: &str = "2099-01-01T00:00:02Z";

/// Upstream's two-cluster driver: export in west first, then (older by a
/// second, as upstream waits 1.1 s) `svc2` in east.
async fn exported_on_two(cs: &[Cluster; 2], svc2: Value) {
    deploy_and_export(&cs[0], 0, hello_service(), T0);
    await_import(&cs[0], "the first cluster's ServiceImport", |_| true).await;
    deploy_and_export(&cs[1], 1, svc2, T1);
}

fn clusters_of(si: &Value) -> Vec<String> {
    let list = si["status"]["clusters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    list.iter()
        .filter_map(|c| c["cluster"].as_str().map(str::to_owned))
        .collect()
}

/// [Required] "A ServiceImport should only exist as long as there's at least one exporting cluster"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_a_service_import_should_only_exist_as_long_as_there_is_at_least_one_exporting_cluster()
 {
    let cs = clusters().await;
    exported_on_two(&cs, hello_service()).await;
    await_import(&cs[0], "both clusters export", |si| {
        clusters_of(si).len() == 2
    })
    .await;
    unexport(&cs[0]);
    let si = await_import(&cs[0], "only east exports", |si| {
        clusters_of(si) == ["east"]
    })
    .await;
    assert_eq!(
        si["spec"]["type"], "ClusterSetIP",
        "still imported while east exports"
    );
    unexport(&cs[1]);
    await_no_import(&cs[0]).await;
    shutdown(cs).await;
}

/// A ServiceExport of hello with `spec.exportedLabels`/`exportedAnnotations` `{key: "true"}`.
fn export_with(c: &Cluster, key: &str, created: &str) {
    c.kube.put(
        "serviceexports",
        json!({"metadata": {"name": HELLO, "namespace": NS, "creationTimestamp": created,
                "labels": {"dummy-svcexport": "dummy"}, "annotations": {"dummy-svcexport": "dummy"}},
            "spec": {"exportedLabels": {key: "true"}, "exportedAnnotations": {key: "true"}}}),
    );
}

fn has(si: &Value, field: &str, key: &str, value: &str) -> bool {
    si["metadata"][field][key] == value
}

/// [Optional, ExportedLabels] "Only labels and annotations specified as exported in the ServiceExport should be propagated to the ServiceImport"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_only_exported_labels_and_annotations_are_propagated() {
    let cs = clusters().await;
    cs[0].kube.put("services", hello_service());
    export_with(&cs[0], "dummy-label", T0);
    let si = await_import(&cs[0], "the exported labels", |si| {
        has(si, "labels", "dummy-label", "true") && has(si, "annotations", "dummy-label", "true")
    })
    .await;
    for field in ["labels", "annotations"] {
        assert!(
            !has(&si, field, "dummy-svc", "dummy"),
            "the Service's {field} stay home"
        );
        assert!(
            !has(&si, field, "dummy-svcexport", "dummy"),
            "so do the ServiceExport's own"
        );
    }
    shutdown(cs).await;
}

/// [Optional, ExportedLabels] "A service exported on two clusters with conflicting annotations and labels should apply the conflict resolution policy and report a Conflict condition on each ServiceExport"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_conflicting_exported_labels_and_annotations_raise_a_conflict_on_each_export() {
    let cs = clusters().await;
    cs[0].kube.put("services", hello_service());
    export_with(&cs[0], "dummy-label", T0);
    await_import(&cs[0], "the first cluster's ServiceImport", |_| true).await;
    cs[1].kube.put("services", hello_service());
    export_with(&cs[1], "dummy-label2", T1);
    for c in &cs {
        let reason = await_condition(c, "Conflict", "True").await;
        assert_eq!(reason, "LabelsConflict,AnnotationsConflict");
    }
    let si = await_import(&cs[0], "the import of both exports", |si| {
        clusters_of(si).len() == 2 && has(si, "labels", "dummy-label", "true")
    })
    .await;
    for field in ["labels", "annotations"] {
        assert!(
            has(&si, field, "dummy-label", "true"),
            "the oldest export's {field}: {si}"
        );
        assert!(!has(&si, field, "dummy-label2", "true"));
    }
    shutdown(cs).await;
}

/// [Required, ClusterIP] "Exporting a ClusterIP service should create a ServiceImport of type ClusterSetIP in the service's namespace in each cluster. Unexporting should delete the ServiceImport"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_exporting_a_cluster_ip_service_creates_a_cluster_set_ip_service_import_in_each_cluster()
 {
    let cs = clusters().await;
    deploy_and_export(&cs[0], 0, hello_service(), T0);
    await_condition(&cs[0], "Valid", "True").await;
    for c in &cs {
        let si = await_import(c, "the ServiceImport", |_| true).await;
        assert_eq!(si["spec"]["type"], "ClusterSetIP");
    }
    assert_eq!(await_condition(&cs[0], "Ready", "True").await, "Exported");
    unexport(&cs[0]);
    for c in &cs {
        await_no_import(c).await;
    }
    shutdown(cs).await;
}

/// [Required, ClusterIP] "The SessionAffinity for a ClusterSetIP ServiceImport should match the exported service's SessionAffinity"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_session_affinity_matches_the_exported_service() {
    let cs = clusters().await;
    deploy_and_export(&cs[0], 0, hello_service(), T0);
    let si = await_import(&cs[0], "the ServiceImport", |_| true).await;
    let svc = cs[0].kube.get("services", NS, HELLO).unwrap();
    assert_eq!(
        si["spec"]["sessionAffinity"],
        svc["spec"]["sessionAffinity"]
    );
    assert_eq!(
        si["spec"]["sessionAffinityConfig"],
        svc["spec"]["sessionAffinityConfig"]
    );
    assert_eq!(
        si["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
        10
    );
    shutdown(cs).await;
}

/// [Required, ClusterIP] "The InternalTrafficPolicy for a ClusterSetIP ServiceImport should match the exported service's InternalTrafficPolicy"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_internal_traffic_policy_matches_the_exported_service() {
    let cs = clusters().await;
    let mut svc = hello_service();
    svc["spec"]["internalTrafficPolicy"] = json!("Cluster");
    deploy_and_export(&cs[0], 0, svc, T0);
    let si = await_import(&cs[0], "the ServiceImport", |_| true).await;
    assert_eq!(si["spec"]["internalTrafficPolicy"], "Cluster");
    shutdown(cs).await;
}

/// [Required, ClusterIP] "The TrafficDistribution for a ClusterSetIP ServiceImport should match the exported service's TrafficDistribution"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_traffic_distribution_matches_the_exported_service() {
    let cs = clusters().await;
    let mut svc = hello_service();
    svc["spec"]["trafficDistribution"] = json!("PreferClose");
    deploy_and_export(&cs[0], 0, svc, T0);
    let si = await_import(&cs[0], "the ServiceImport", |_| true).await;
    assert_eq!(si["spec"]["trafficDistribution"], "PreferClose");
    shutdown(cs).await;
}

/// [Required, ClusterIP] "An IP should be allocated for a ClusterSetIP ServiceImport for each IP family"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_an_ip_is_allocated_for_each_ip_family() {
    let cs = clusters().await;
    deploy_and_export(&cs[0], 0, hello_service(), T0);
    let si = await_import(&cs[0], "IPs", |si| {
        si["spec"]["ips"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let ips = si["spec"]["ips"].as_array().unwrap();
    let families = si["spec"]["ipFamilies"].as_array().unwrap();
    assert_eq!(ips.len(), families.len());
    for (ip, family) in ips.iter().zip(families) {
        let ip: IpAddr = ip.as_str().unwrap().parse().unwrap();
        assert_eq!(family, if ip.is_ipv4() { "IPv4" } else { "IPv6" });
    }
    shutdown(cs).await;
}

/// [Required, ClusterIP] "The ports for a ClusterSetIP ServiceImport should match those of the exported service"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_the_ports_match_those_of_the_exported_service() {
    let cs = clusters().await;
    deploy_and_export(&cs[0], 0, hello_service(), T0);
    let si = await_import(&cs[0], "the ServiceImport", |_| true).await;
    assert_eq!(
        sorted_ports(&si),
        [
            json!({"name": "tcp", "port": 42, "protocol": "TCP"}),
            json!({"name": "udp", "port": 42, "protocol": "UDP"})
        ]
    );
    shutdown(cs).await;
}

/// [Required, ClusterIP] "A ClusterIP service exported on two clusters should expose the union of the constituent service ports and raise a conflict"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_two_clusters_expose_the_union_of_ports_and_raise_a_conflict() {
    let cs = clusters().await;
    let mut svc2 = hello_service();
    svc2["spec"]["ports"] = json!([{"name": "tcp", "port": 42, "protocol": "TCP"}, {"name": "stcp", "port": 142, "protocol": "SCTP"}]);
    exported_on_two(&cs, svc2).await;
    for c in &cs {
        assert!(
            await_condition(c, "Conflict", "True")
                .await
                .contains("PortConflict")
        );
    }
    let si = await_import(&cs[0], "three ports", |si| sorted_ports(si).len() == 3).await;
    assert_eq!(
        sorted_ports(&si),
        [
            json!({"name": "stcp", "port": 142, "protocol": "SCTP"}),
            json!({"name": "tcp", "port": 42, "protocol": "TCP"}),
            json!({"name": "udp", "port": 42, "protocol": "UDP"})
        ]
    );
    shutdown(cs).await;
}

/// [Required, ClusterIP] "A ClusterIP service exported on two clusters with conflicting ports should apply the conflict resolution policy and report a Conflict condition on each ServiceExport"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_conflicting_ports_resolve_to_the_oldest_and_raise_a_conflict_on_each_export() {
    let cs = clusters().await;
    let mut svc2 = hello_service();
    svc2["spec"]["ports"] = json!([{"name": "tcp", "port": 43, "protocol": "TCP"}]);
    exported_on_two(&cs, svc2).await;
    for c in &cs {
        assert_eq!(await_condition(c, "Conflict", "True").await, "PortConflict");
    }
    let si = await_import(&cs[0], "the import of both exports", |si| {
        clusters_of(si).len() == 2
    })
    .await;
    assert_eq!(
        sorted_ports(&si),
        [
            json!({"name": "tcp", "port": 42, "protocol": "TCP"}),
            json!({"name": "udp", "port": 42, "protocol": "UDP"})
        ],
        "the oldest export's ports win"
    );
    shutdown(cs).await;
}

fn headless(mut svc: Value) -> Value {
    svc["spec"]["clusterIP"] = json!("None");
    svc
}

/// [Required, Headless] "Exporting a headless service should create a ServiceImport of type Headless in the service's namespace in each cluster. Unexporting should delete the ServiceImport"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_exporting_a_headless_service_creates_a_headless_service_import_in_each_cluster() {
    let cs = clusters().await;
    deploy_and_export(&cs[0], 0, headless(hello_service()), T0);
    for c in &cs {
        let si = await_import(c, "the ServiceImport", |_| true).await;
        assert_eq!(si["spec"]["type"], "Headless");
    }
    unexport(&cs[0]);
    for c in &cs {
        await_no_import(c).await;
    }
    shutdown(cs).await;
}

/// [Required, Headless] "No clusterset IP should be allocated for a Headless ServiceImport"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_no_clusterset_ip_is_allocated_for_a_headless_service_import() {
    let cs = clusters().await;
    deploy_and_export(&cs[0], 0, headless(hello_service()), T0);
    // Once east wrote the endpoint's Service the import is complete: no IP came with it.
    wait_until(
        "east's derived Service of the remote endpoint",
        LIMIT,
        || {
            cs[1]
                .kube
                .names("services")
                .iter()
                .any(|n| n.contains("hello-west-"))
        },
    )
    .await;
    for c in &cs {
        let si = await_import(c, "the ServiceImport", |_| true).await;
        assert!(si["spec"]["ips"].is_null(), "{si}");
    }
    shutdown(cs).await;
}

/// [Required, ExternalName] "Exporting an ExternalName service should set ServiceExport Valid condition to False"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_exporting_an_external_name_service_sets_valid_false() {
    let cs = clusters().await;
    let mut svc = hello_service();
    svc["spec"] = json!({"type": "ExternalName", "externalName": "example.com"});
    cs[0].kube.put("services", svc);
    export(&cs[0], T0);
    wait_until("Valid=False with InvalidServiceType", LIMIT, || {
        export_condition(&cs[0], "Valid") == Some(("False".into(), "InvalidServiceType".into()))
    })
    .await;
    assert_eq!(await_condition(&cs[0], "Ready", "False").await, "Failed");
    assert!(service_import(&cs[0]).is_none());
    shutdown(cs).await;
}

/// [Required] "A service exported on two clusters with conflicting headlessness should apply the conflict resolution policy and report a Conflict condition on the ServiceExport"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_conflicting_headlessness_resolves_to_the_oldest_and_raises_a_conflict() {
    let cs = clusters().await;
    exported_on_two(&cs, headless(hello_service())).await;
    for c in &cs {
        assert_eq!(await_condition(c, "Conflict", "True").await, "TypeConflict");
    }
    for c in &cs {
        let si = await_import(c, "the import of both exports", |si| {
            clusters_of(si).len() == 2
        })
        .await;
        assert_eq!(si["spec"]["type"], "ClusterSetIP");
    }
    shutdown(cs).await;
}

/// [Optional, EndpointSlice] "Exporting a service should create an MCS EndpointSlice in the service's namespace in each cluster with the required MCS labels. Unexporting should delete the EndpointSlice."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_exporting_creates_mcs_endpoint_slices_with_the_mcs_labels_and_unexporting_deletes_them()
 {
    let cs = clusters().await;
    deploy_and_export(&cs[0], 0, hello_service(), T0);
    let mut names = Vec::new();
    for c in &cs {
        let mut found = None;
        wait_until(
            &format!("an MCS EndpointSlice on {}", c.name),
            LIMIT,
            || {
                found = mcs_slices(c)
                    .into_iter()
                    .find(|s| s["addressType"] == "IPv4" && non_empty(s));
                found.is_some()
            },
        )
        .await;
        let s = found.unwrap();
        let labels = &s["metadata"]["labels"];
        assert_eq!(labels["multicluster.kubernetes.io/service-name"], HELLO);
        assert_eq!(labels["multicluster.kubernetes.io/source-cluster"], "west");
        assert_ne!(
            labels["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert!(labels["endpointslice.kubernetes.io/managed-by"].is_string());
        names.push(s["metadata"]["name"].as_str().unwrap().to_owned());
    }
    unexport(&cs[0]);
    for (c, name) in cs.iter().zip(&names) {
        wait_until(&format!("{name} deleted on {}", c.name), LIMIT, || {
            c.kube.get("endpointslices", NS, name).is_none()
        })
        .await;
    }
    shutdown(cs).await;
}

fn mcs_slices(c: &Cluster) -> Vec<Value> {
    c.kube
        .names("endpointslices")
        .iter()
        .filter_map(|n| {
            let (ns, name) = n.split_once('/')?;
            c.kube.get("endpointslices", ns, name)
        })
        .filter(|s| {
            let l = &s["metadata"]["labels"];
            l["multicluster.kubernetes.io/service-name"].is_string()
                && l["multicluster.kubernetes.io/source-cluster"].is_string()
        })
        .collect()
}

fn non_empty(s: &Value) -> bool {
    s["endpoints"].as_array().is_some_and(|e| !e.is_empty())
}

async fn lookup(r: &R, name: &str, ty: RecordType) -> Vec<String> {
    match r.lookup(name, ty).await {
        Ok(l) => {
            let mut v: Vec<String> = l.answers().iter().map(|rec| rec.data.to_string()).collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

async fn await_records(c: &Cluster, name: &str, ty: RecordType, want: usize) -> Vec<String> {
    let r = resolver(c.dns);
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let got = lookup(&r, name, ty).await;
        if got.len() == want {
            return got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} {ty} on {}: {got:?}",
            c.name
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

const HELLO_FQDN: &str = "hello.mcs-conformance.svc.clusterset.local.";

/// [Optional, DNS, ClusterIP] "A DNS lookup of the <service>.<ns>.svc.clusterset.local domain for a ClusterIP service should resolve to the clusterset IP"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_dns_a_lookup_of_a_cluster_ip_service_resolves_to_the_clusterset_ip() {
    let cs = clusters().await;
    deploy_and_export(&cs[0], 0, hello_service(), T0);
    for c in &cs {
        let si = await_import(c, "IPs", |si| si["spec"]["ips"].is_array()).await;
        let got = await_records(c, HELLO_FQDN, RecordType::A, 1).await;
        assert_eq!(got, [si["spec"]["ips"][0].as_str().unwrap()]);
    }
    shutdown(cs).await;
}

/// [Optional, DNS, ClusterIP] "A DNS SRV query of the <service>.<ns>.svc.clusterset.local domain for a ClusterIP service should return valid SRV records"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_dns_srv_query_of_a_cluster_ip_service_returns_valid_srv_records() {
    let cs = clusters().await;
    deploy_and_export(&cs[0], 0, hello_service(), T0);
    for c in &cs {
        let got = await_records(c, HELLO_FQDN, RecordType::SRV, 1).await;
        assert_eq!(got, [format!("0 100 42 {HELLO_FQDN}")]);
    }
    shutdown(cs).await;
}

/// [Optional, DNS, ClusterIP] "DNS lookups of the <service>.<ns>.svc.cluster.local domain for a ClusterIP service should only resolve local services"
/// cluster.local is the cluster DNS's (CoreDNS): causeway's server refuses it, so it never answers for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_dns_cluster_local_lookups_are_left_to_the_cluster_dns() {
    let cs = clusters().await;
    deploy_and_export(&cs[0], 0, hello_service(), T0);
    await_records(&cs[1], HELLO_FQDN, RecordType::A, 1).await;
    let r = resolver(cs[1].dns);
    let err = r
        .lookup("hello.mcs-conformance.svc.cluster.local.", RecordType::A)
        .await
        .unwrap_err();
    assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
    shutdown(cs).await;
}

/// The headless hello service with `hosts` ready pods in west (a StatefulSet's when `stateful`).
async fn headless_hello(cs: &[Cluster; 2], hosts: usize, stateful: bool) {
    cs[0].kube.put("services", headless(hello_service()));
    cs[0]
        .kube
        .put("endpointslices", hello_slice(0, hosts, stateful));
    export(&cs[0], T0);
}

/// [Optional, DNS, Headless] "A DNS query of the <service>.<ns>.svc.clusterset.local domain for a headless service should return the ready endpoint addresses of all the backing pods"
/// causeway has no flat network: in the exporting cluster the answer is the
/// pods' addresses; in an importing cluster it is the local address of each
/// pod, where its gateway tunnels to that pod (the addresses its MCS
/// EndpointSlice lists).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_dns_a_query_of_a_headless_service_returns_the_ready_endpoint_addresses() {
    let cs = clusters().await;
    headless_hello(&cs, 2, false).await;
    assert_eq!(
        await_records(&cs[0], HELLO_FQDN, RecordType::A, 2).await,
        ["10.10.0.5", "10.10.0.6"]
    );
    let got = await_records(&cs[1], HELLO_FQDN, RecordType::A, 2).await;
    let listed = || {
        let mut v: Vec<String> = mcs_slices(&cs[1])
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["addresses"][0].as_str().map(str::to_owned))
            .collect();
        v.sort();
        v
    };
    wait_until("east's MCS EndpointSlice lists both pods", LIMIT, || {
        listed().len() == 2
    })
    .await;
    let listed = listed();
    assert_eq!(got, listed);
    assert!(
        got.iter().all(|a| a.starts_with("10.96.201.")),
        "east's local addresses: {got:?}"
    );
    shutdown(cs).await;
}

/// [Optional, DNS, Headless, EndpointSlice] "A DNS query of the <hostname>.<clusterid>.<service>.<ns>.svc.clusterset.local domain for a headless StatefulSet service should return the requested pod's endpoint address"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_dns_a_query_of_hostname_clusterid_returns_the_requested_pods_address() {
    let cs = clusters().await;
    headless_hello(&cs, 2, true).await;
    for c in &cs {
        let mut slices = Vec::new();
        wait_until(
            &format!("the MCS EndpointSlice with 2 hostnames on {}", c.name),
            LIMIT,
            || {
                slices = mcs_slices(c);
                slices
                    .iter()
                    .any(|s| s["endpoints"].as_array().is_some_and(|e| e.len() == 2))
            },
        )
        .await;
        let s = &slices[0];
        let cluster = s["metadata"]["labels"]["multicluster.kubernetes.io/source-cluster"]
            .as_str()
            .unwrap();
        for ep in s["endpoints"].as_array().unwrap() {
            assert_eq!(ep["conditions"]["ready"], true);
            let host = ep["hostname"].as_str().unwrap();
            let name = format!("{host}.{cluster}.{HELLO_FQDN}");
            let got = await_records(c, &name, RecordType::A, 1).await;
            assert_eq!(
                got,
                [ep["addresses"][0].as_str().unwrap()],
                "{name} on {}",
                c.name
            );
        }
    }
    shutdown(cs).await;
}

/// [Optional, DNS, Headless] "A DNS SRV query of the <service>.<ns>.svc.clusterset.local domain for a headless service should return valid SRV records"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_dns_srv_query_of_a_headless_service_returns_valid_srv_records() {
    let cs = clusters().await;
    headless_hello(&cs, 2, false).await;
    for c in &cs {
        let got = await_records(c, HELLO_FQDN, RecordType::SRV, 2).await;
        for host in ["10-10-0-5", "10-10-0-6"] {
            let want = format!("0 100 42 {host}.west.{HELLO_FQDN}");
            assert!(got.contains(&want), "{want} in {got:?}");
        }
    }
    shutdown(cs).await;
}
