//! The Helm chart's rendered causeway.yaml loads with `causeway config check`,
//! with certificates made by `causeway ca` laid out as the chart mounts them.
//! Needs `helm` on PATH (CI installs it); skipped with a reason otherwise.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn causeway(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "causeway {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `helm template` of the chart with its CI values, or None when helm is missing.
fn render() -> Option<String> {
    render_with(&["--show-only", "templates/configmap.yaml"])
}

/// The whole chart, or None when helm is missing.
fn render_with(extra: &[&str]) -> Option<String> {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/causeway");
    let values = chart.join("ci/test-values.yaml");
    let out = Command::new("helm")
        .args(["template", "t", "--namespace", "causeway"])
        .arg(&chart)
        .arg("-f")
        .arg(&values)
        .args(extra)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipping: helm is not on PATH ({e}); .ci/run installs it");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// The `causeway.yaml: |` block of the rendered ConfigMap, dedented.
fn config_of(manifest: &str) -> String {
    let (_, block) = manifest.split_once("causeway.yaml: |\n").unwrap();
    block
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.get(4..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// This cluster's certificates and the peer's CA, named as the chart mounts them.
fn make_certs(dir: &Path) {
    let d = |p: &str| dir.join(p).to_str().unwrap().to_owned();
    for (cluster, td) in [
        ("east", "east.demo.causeway"),
        ("west", "west.demo.causeway"),
    ] {
        let ca = d(&format!("ca-{cluster}"));
        causeway(&[
            "ca",
            "init",
            "--cluster",
            cluster,
            "--trust-domain",
            td,
            "--out",
            &ca,
        ]);
    }
    for w in ["gateway", "federation", "dns"] {
        causeway(&[
            "ca",
            "issue",
            "--ca",
            &d("ca-east"),
            "--workload",
            w,
            "--out",
            &d("certs"),
        ]);
    }
    std::fs::copy(
        dir.join("ca-west/ca.pem"),
        dir.join("certs/peer-west-ca.pem"),
    )
    .unwrap();
    std::fs::copy(dir.join("ca-east/ca.pem"), dir.join("certs/ca.pem")).unwrap();
}

#[test]
fn the_chart_renders_a_config_causeway_accepts() {
    let Some(manifest) = render() else {
        return;
    };
    let text = config_of(&manifest);
    assert!(text.contains("kubernetes:"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let file = dir.path().join("causeway.yaml");
    std::fs::write(&file, &text).unwrap();
    let out = causeway(&["config", "check", file.to_str().unwrap()]);
    let effective = String::from_utf8_lossy(&out.stdout);
    assert!(effective.contains("gateway_selector"), "{effective}");
    assert_eq!(
        effective.matches("port_base: 20000").count(),
        2,
        "gateway and federation share the port range: {effective}"
    );
    assert!(effective.contains("name: west"), "{effective}");
    assert!(
        effective.contains("advertise: 172.18.0.2:31012"),
        "{effective}"
    );
    // A broken render is caught: the same config without its certificates fails.
    std::fs::remove_file(dir.path().join("certs/gateway.pem")).unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(["config", "check", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

/// The default ClusterSetIP range never hands out what Kubernetes reserves in
/// the default service CIDR (the API server's .1, the DNS Service's .10), and
/// docs/kubernetes.md recommends the same range.
#[test]
fn the_default_vip_range_avoids_the_reserved_addresses_and_the_docs_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let values = std::fs::read_to_string(root.join("charts/causeway/values.yaml")).unwrap();
    let values: serde_json::Value = serde_saphyr::from_str(&values).unwrap();
    let ranges: Vec<ipnet::IpNet> = values["gateway"]["vipRanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().parse().unwrap())
        .collect();
    let cidr: ipnet::IpNet = "10.96.0.0/16".parse().unwrap();
    for reserved in ["10.96.0.1", "10.96.0.10"] {
        let ip: std::net::IpAddr = reserved.parse().unwrap();
        assert!(
            ranges.iter().all(|r| !r.contains(&ip)),
            "{reserved} in {ranges:?}"
        );
    }
    assert!(
        ranges.iter().all(|r| cidr.contains(r)),
        "{ranges:?} inside {cidr}"
    );
    let docs = std::fs::read_to_string(root.join("docs/kubernetes.md")).unwrap();
    for r in &ranges {
        assert!(
            docs.contains(&format!("vipRanges: [\"{r}\"]")),
            "docs/kubernetes.md names {r}"
        );
    }
}

/// The rendered manifests, one YAML document each.
fn documents(manifest: &str) -> Vec<serde_json::Value> {
    manifest
        .split("\n---")
        .filter_map(|d| serde_saphyr::from_str::<serde_json::Value>(d).ok())
        .filter(|v| v.is_object())
        .collect()
}

fn of_kind<'a>(docs: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The federation reads TrafficPolicies everywhere and writes only their
/// status; the chart ships their CRD.
#[test]
fn the_federation_reads_traffic_policies_and_writes_only_their_status() {
    let Some(manifest) = render_with(&["--include-crds"]) else {
        return;
    };
    let docs = documents(&manifest);
    let crd = of_kind(&docs, "CustomResourceDefinition")
        .into_iter()
        .find(|c| c["metadata"]["name"] == "trafficpolicies.causeway.io");
    assert!(crd.is_some_and(|c| c["spec"]["scope"] == "Namespaced"));
    let role = of_kind(&docs, "ClusterRole")
        .into_iter()
        .find(|r| {
            r["metadata"]["name"]
                .as_str()
                .unwrap()
                .ends_with("-federation")
        })
        .unwrap();
    let mut granted: Vec<(String, String)> = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        if rule["apiGroups"] != serde_json::json!(["causeway.io"]) {
            continue;
        }
        for res in rule["resources"].as_array().unwrap() {
            for verb in rule["verbs"].as_array().unwrap() {
                granted.push((res.as_str().unwrap().into(), verb.as_str().unwrap().into()));
            }
        }
    }
    granted.sort();
    let want: Vec<(String, String)> = [
        ("trafficpolicies", "get"),
        ("trafficpolicies", "list"),
        ("trafficpolicies", "watch"),
        ("trafficpolicies/status", "patch"),
        ("trafficpolicies/status", "update"),
    ]
    .iter()
    .map(|(r, v)| ((*r).into(), (*v).into()))
    .collect();
    assert_eq!(granted, want);
}

/// Finding 9 (docs/security.md): what the chart grants and exposes.
#[test]
fn the_chart_grants_and_exposes_only_what_each_component_needs() {
    let Some(manifest) = render_with(&["--set", "federation.importNamespaces={shop}"]) else {
        return;
    };
    let docs = documents(&manifest);
    assert_eq!(of_kind(&docs, "Deployment").len(), 3, "{manifest}");
    assert_eq!(of_kind(&docs, "Role").len(), 2);
    // No write access to pods; writes to Services and EndpointSlices only in
    // the listed import namespace.
    for role in of_kind(&docs, "Role")
        .into_iter()
        .chain(of_kind(&docs, "ClusterRole"))
    {
        for rule in role["rules"].as_array().unwrap() {
            let res = rule["resources"].to_string();
            let verbs = rule["verbs"].to_string();
            assert!(
                !(res.contains("\"pods\"")
                    && (verbs.contains("patch") || verbs.contains("update"))),
                "pods are writable: {role}"
            );
            let writes = verbs.contains("create") || verbs.contains("delete");
            if writes && (res.contains("services") || res.contains("endpointslices")) {
                assert_eq!(role["kind"], "Role", "cluster-wide writes: {role}");
                assert_eq!(role["metadata"]["namespace"], "shop");
            }
        }
    }
    // Each Deployment mounts its own key only, 0400, and probes the metrics port.
    for d in of_kind(&docs, "Deployment") {
        let component = d["metadata"]["labels"]["app.kubernetes.io/component"]
            .as_str()
            .unwrap();
        let pod = &d["spec"]["template"]["spec"];
        let items = pod["volumes"][0]["projected"]["sources"][1]["secret"]["items"]
            .as_array()
            .unwrap();
        let keys: Vec<&serde_json::Value> = items
            .iter()
            .filter(|i| i["key"].as_str().unwrap().ends_with("-key.pem"))
            .collect();
        assert_eq!(keys.len(), 1, "{component}: {items:?}");
        assert_eq!(keys[0]["key"], format!("{component}-key.pem"));
        assert_eq!(keys[0]["mode"], 256, "{component}'s key is not 0400");
        let probe = &pod["containers"][0]["readinessProbe"]["httpGet"]["port"];
        assert_eq!(probe, "metrics", "{component}");
    }
    // The full admin API stays on loopback.
    let config = config_of(&render().unwrap());
    assert!(config.contains("listen: 127.0.0.1:15000"), "{config}");
    assert!(config.contains("metrics_listen: 0.0.0.0:"), "{config}");
    // Only this release's gateway and DNS pods may reach the catalog feed.
    let policies = of_kind(&docs, "NetworkPolicy");
    assert_eq!(policies.len(), 3);
    let fed = policies
        .iter()
        .find(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap()
                .ends_with("-federation")
        })
        .unwrap();
    let feed = fed["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ports"][0]["port"] == 15011)
        .unwrap();
    let from: Vec<&str> = feed["from"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(from, ["gateway", "dns"]);
}

/// Peers dial the advertised gateway port on TCP when UDP is blocked: the
/// Service carries the fallback on the QUIC port (and nodePort), to the pod's
/// TCP port, and the config listens there.
#[test]
fn the_gateway_service_carries_the_tcp_fallback_on_the_quic_port() {
    let Some(manifest) = render_with(&["--show-only", "templates/gateway.yaml"]) else {
        return;
    };
    let docs = documents(&manifest);
    let service = of_kind(&docs, "Service")[0];
    let ports = service["spec"]["ports"].as_array().unwrap();
    let by = |proto: &str| ports.iter().find(|p| p["protocol"] == proto).unwrap();
    let (quic, tcp) = (by("UDP"), by("TCP"));
    assert_eq!(tcp["port"], quic["port"], "{service}");
    assert_eq!(tcp["nodePort"], quic["nodePort"], "{service}");
    assert_eq!(tcp["targetPort"], "fallback");
    let deploy = of_kind(&docs, "Deployment")[0];
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    let fallback = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "fallback")
        .unwrap();
    assert_eq!(fallback["protocol"], "TCP");
    let config = config_of(&render().unwrap());
    let port = fallback["containerPort"].as_u64().unwrap();
    assert!(
        config.contains(&format!("listen: \"0.0.0.0:{port}\"")),
        "{config}"
    );
}

/// Linking in Kubernetes mode: the config names the links Secret, the gateway
/// and federation pods mount it read-only (optional: it appears with the first
/// token) where the config's state_dir puts the links, and only the federation
/// may change it, by name (`create` cannot be limited to a name).
#[test]
fn the_links_secret_is_mounted_where_the_config_reads_it_and_only_the_federation_writes_it() {
    let Some(manifest) = render_with(&[]) else {
        return;
    };
    let config = config_of(&manifest);
    assert!(
        config.contains("links_secret: t-causeway-links"),
        "{config}"
    );
    assert!(
        config.contains("state_dir: /var/lib/causeway\n"),
        "{config}"
    );
    let docs = documents(&manifest);
    for d in of_kind(&docs, "Deployment") {
        let component = d["metadata"]["labels"]["app.kubernetes.io/component"]
            .as_str()
            .unwrap();
        let pod = &d["spec"]["template"]["spec"];
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "links");
        let mount = pod["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "links");
        if component == "dns" {
            assert!(volume.is_none() && mount.is_none(), "dns has no peers");
            continue;
        }
        let (volume, mount) = (volume.unwrap(), mount.unwrap());
        assert_eq!(volume["secret"]["secretName"], "t-causeway-links");
        assert_eq!(volume["secret"]["optional"], true, "{component}");
        assert_eq!(mount["mountPath"], "/var/lib/causeway/links");
        assert_eq!(mount["readOnly"], true, "{component}");
    }
    let mut grants = Vec::new();
    for role in of_kind(&docs, "Role")
        .into_iter()
        .chain(of_kind(&docs, "ClusterRole"))
    {
        for rule in role["rules"].as_array().unwrap() {
            if rule["resources"].to_string().contains("\"secrets\"") {
                let name = role["metadata"]["name"].as_str().unwrap();
                grants.push((role["kind"].clone(), name.to_owned(), rule.clone()));
            }
        }
    }
    let names: Vec<(&str, &serde_json::Value)> = grants
        .iter()
        .map(|(kind, name, rule)| {
            assert_eq!(kind, "Role", "cluster-wide access to Secrets: {rule}");
            (name.as_str(), rule)
        })
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    for (name, rule) in names {
        assert_eq!(name, "t-causeway-federation");
        match rule["resourceNames"].as_array() {
            Some(n) => {
                assert_eq!(n, &[serde_json::json!("t-causeway-links")]);
                assert_eq!(rule["verbs"], serde_json::json!(["get", "update", "patch"]));
            }
            None => assert_eq!(rule["verbs"], serde_json::json!(["create"]), "{rule}"),
        }
    }
}
