use super::*;
use serde_json::json;

fn se(ann: serde_json::Value) -> ServiceExport {
    serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "demo",
        "creationTimestamp": "2026-01-02T03:04:05Z", "annotations": ann}}))
    .unwrap()
}

fn svc(spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "demo"}, "spec": spec}))
        .unwrap()
}

fn slice(port: serde_json::Value, eps: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(json!({"metadata": {"name": "web-x", "namespace": "demo"},
        "addressType": "IPv4", "ports": [port], "endpoints": eps}))
    .unwrap()
}

#[test]
fn ports_come_from_the_service_and_ready_addresses_from_slices() {
    let s = svc(json!({"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}));
    let a = slice(
        json!({"name": "http", "port": 8080}),
        json!([{"addresses": ["10.1.0.5"], "conditions": {"ready": true}},
               {"addresses": ["10.1.0.6"], "conditions": {"ready": false}},
               {"addresses": ["10.1.0.7"]}]),
    );
    let other = slice(
        json!({"name": "metrics", "port": 9090}),
        json!([{"addresses": ["10.1.0.9"]}]),
    );
    let e = build_export(&se(json!({})), Some(&s), &[&a, &other]).unwrap();
    assert_eq!(e.key.to_string(), "demo/web");
    assert_eq!(e.ports, vec![Port::tcp("http", 80)]);
    let addrs: Vec<String> = e.endpoints.iter().map(|e| e.addr.to_string()).collect();
    assert_eq!(addrs, ["10.1.0.5:8080", "10.1.0.7:8080"]);
    assert_eq!(e.export_to, ExportTo::All);
    assert_eq!(e.created_at, UnixMillis(1_767_323_045_000));
}

#[test]
fn unnamed_single_ports_match_and_udp_is_kept() {
    let s = svc(json!({"ports": [{"port": 53, "protocol": "UDP"}]}));
    let a = slice(
        json!({"port": 5353, "protocol": "UDP"}),
        json!([{"addresses": ["10.1.0.5"]}]),
    );
    let e = build_export(&se(json!({})), Some(&s), &[&a]).unwrap();
    assert_eq!(e.ports[0].protocol, Protocol::Udp);
    assert_eq!(e.endpoints[0].addr.to_string(), "10.1.0.5:5353");
}

#[test]
fn invalid_exports_say_why() {
    let ext = svc(json!({"type": "ExternalName", "externalName": "example.com"}));
    let err = build_export(&se(json!({})), Some(&ext), &[]).unwrap_err();
    assert_eq!(err.reason, "InvalidServiceType");
    assert!(err.message.contains("ExternalName"), "{}", err.message);
    let err = build_export(&se(json!({})), None, &[]).unwrap_err();
    assert_eq!(err.reason, "NoService", "upstream's reason");
    let bad = svc(json!({"ports": [{"port": 80, "protocol": "QUIC"}]}));
    let err = build_export(&se(json!({})), Some(&bad), &[]).unwrap_err();
    assert_eq!(err.reason, "InvalidPorts");
    let no_ports = svc(json!({"ports": []}));
    let err = build_export(&se(json!({})), Some(&no_ports), &[]).unwrap_err();
    assert_eq!(err.reason, "InvalidPorts");
}

#[test]
fn annotations_set_export_to_and_serve_stale() {
    let s = svc(json!({"ports": [{"port": 80}]}));
    let ann = json!({EXPORT_TO: "east, west", SERVE_STALE: "true"});
    let e = build_export(&se(ann), Some(&s), &[]).unwrap();
    assert!(e.serve_stale);
    assert!(e.export_to.allows(&ClusterId::new("east").unwrap()));
    assert!(!e.export_to.allows(&ClusterId::new("north").unwrap()));
    let err = build_export(&se(json!({EXPORT_TO: "Bad_Name"})), Some(&s), &[]).unwrap_err();
    assert_eq!(err.reason, "InvalidAnnotation");
}

#[test]
fn a_headless_service_exports_its_endpoints_with_hostnames() {
    let s = svc(json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}));
    let a = slice(
        json!({"name": "pg", "port": 5432}),
        json!([{"addresses": ["10.1.0.5"], "hostname": "db-0"},
               {"addresses": ["10.1.0.6"], "hostname": "db-1", "conditions": {"ready": false}},
               {"addresses": ["10.1.0.7"]}]),
    );
    let e = build_export(&se(json!({})), Some(&s), &[&a]).unwrap();
    assert!(e.headless);
    let eps: Vec<(String, Option<String>)> = e
        .endpoints
        .iter()
        .map(|e| (e.addr.to_string(), e.hostname.clone()))
        .collect();
    assert_eq!(
        eps,
        [
            ("10.1.0.5:5432".into(), Some("db-0".into())),
            ("10.1.0.7:5432".into(), None)
        ]
    );
}

#[test]
fn sctp_app_protocol_and_the_service_wide_properties_are_carried() {
    let s = svc(json!({
        "ports": [{"name": "tcp", "port": 42, "appProtocol": "kubernetes.io/h2c"},
                  {"name": "stcp", "port": 142, "protocol": "SCTP"}],
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10}},
        "internalTrafficPolicy": "Cluster",
        "trafficDistribution": "PreferClose",
        "ipFamilies": ["IPv4", "IPv6"]}));
    let e = build_export(&se(json!({})), Some(&s), &[]).unwrap();
    assert!(!e.headless);
    assert_eq!(
        e.ports[0].app_protocol.as_deref(),
        Some("kubernetes.io/h2c")
    );
    assert_eq!(e.ports[1].protocol, Protocol::Sctp);
    assert_eq!(
        e.props,
        ServiceProps {
            session_affinity: SessionAffinity::ClientIp {
                timeout_seconds: Some(10)
            },
            internal_traffic_policy: Some("Cluster".into()),
            traffic_distribution: Some("PreferClose".into()),
            ip_families: vec![IpFamily::IPv4, IpFamily::IPv6],
            ..ServiceProps::default()
        }
    );
}
