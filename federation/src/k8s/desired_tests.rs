use super::*;
use causeway_catalog::gateway_ports;
use causeway_catalog::{ClusterId, Freshness, Port, ServiceKey, ServingCluster};

fn import() -> Import {
    Import {
        key: "demo/web".parse::<ServiceKey>().unwrap(),
        ports: vec![Port::tcp("http", 80), Port::tcp("grpc", 9000)],
        clusters: vec![ServingCluster {
            cluster: ClusterId::new("west").unwrap(),
            region: "r".into(),
            zone: "z".into(),
            ready_endpoints: 2,
            freshness: Freshness::Fresh,
        }],
        vips: vec!["10.96.100.7".parse().unwrap()],
        serve_stale: false,
        conditions: vec![],
    }
}

fn catalog() -> CatalogSnapshot {
    let mut c = CatalogSnapshot::default();
    c.imports.insert(import().key, import());
    c
}

#[test]
fn the_import_service_and_slice_agree_on_gateway_ports() {
    let c = catalog();
    let gw = gateway_ports(&c, 20000, 100);
    let si = &service_imports(&c, &gw)[0];
    assert_eq!(si.spec.type_, "ClusterSetIP");
    assert_eq!(si.spec.ips, ["10.96.100.7"]);
    assert_eq!(si.status.as_ref().unwrap().clusters[0].cluster, "west");
    assert_eq!(
        si.metadata.labels.as_ref().unwrap()[MANAGED_BY],
        MANAGED_BY_VALUE
    );
    let recorded = &si.metadata.annotations.as_ref().unwrap()[GATEWAY_PORTS];
    let svc = derived_service(&import(), &gw, si);
    assert_eq!(svc.metadata.name.as_deref(), Some("web-clusterset"));
    let spec = svc.spec.as_ref().unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.100.7"));
    assert_eq!(
        spec.selector, None,
        "selector-less: the EndpointSlice points at the gateways"
    );
    let ports = spec.ports.as_ref().unwrap();
    assert_eq!(ports.len(), 2);
    for p in ports {
        let Some(IntOrString::Int(target)) = p.target_port else {
            panic!("{p:?}")
        };
        assert!(
            recorded.contains(&format!("{}/tcp={target}", p.port)),
            "{recorded}"
        );
    }
    let owner = &svc.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("ServiceImport", "web")
    );
    let gws = ["10.244.0.9".parse().unwrap()];
    let slice = derived_slice(&import(), &gw, &gws, &svc);
    assert_eq!(slice.endpoints[0].addresses, ["10.244.0.9"]);
    assert_eq!(
        slice.metadata.labels.as_ref().unwrap()[SERVICE_NAME_LABEL],
        "web-clusterset"
    );
    let slice_ports: Vec<_> = slice
        .ports
        .unwrap()
        .iter()
        .map(|p| (p.name.clone(), p.port))
        .collect();
    let svc_ports: Vec<_> = ports
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                match p.target_port {
                    Some(IntOrString::Int(t)) => Some(t),
                    _ => None,
                },
            )
        })
        .collect();
    assert_eq!(slice_ports, svc_ports);
}

#[test]
fn long_names_stay_valid_labels() {
    let long = "a".repeat(60);
    let n = derived_name(&long);
    assert!(n.len() <= 63, "{n}");
    assert_ne!(derived_name(&long), derived_name(&"b".repeat(60)));
}
