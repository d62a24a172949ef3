use super::*;
use crate::k8s::mcs_slices::mcs_slices;
use causeway_catalog::gateway_ports;
use causeway_catalog::{ClusterId, Freshness, Port, Protocol, ServiceKey, ServingCluster};

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
            ports: Vec::new(),
        }],
        vips: vec!["10.96.100.7".parse().unwrap()],
        serve_stale: false,
        conditions: vec![],
        endpoints: Vec::new(),
        headless: false,
        props: Default::default(),
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
    let spec = si.spec().unwrap();
    assert_eq!(spec.type_, ServiceImportType::ClusterSetIP);
    assert_eq!(spec.ips, ["10.96.100.7"]);
    assert_eq!(spec.ip_families, ["IPv4"]);
    assert_eq!(spec.session_affinity.as_deref(), Some("None"));
    assert_eq!(si.status.as_ref().unwrap().clusters[0].cluster, "west");
    assert_eq!(
        si.metadata.labels.as_ref().unwrap()[MANAGED_BY],
        MANAGED_BY_VALUE
    );
    let recorded = &si.metadata.annotations.as_ref().unwrap()[GATEWAY_PORTS];
    let svc = derived_services(&import(), &gw, si).remove(0);
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
    let slice = routing_slice(&svc, &gws);
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

fn headless_import() -> Import {
    let ep = |cluster: &str, host: &str, addr: &str, local: &str| HeadlessEndpoint {
        cluster: ClusterId::new(cluster).unwrap(),
        hostname: host.into(),
        addresses: vec![addr.parse().unwrap()],
        local: vec![local.parse().unwrap()],
    };
    let mut i = import();
    i.key = "demo/db".parse().unwrap();
    i.headless = true;
    i.vips = vec![];
    let mut east = i.clusters[0].clone();
    east.cluster = ClusterId::new("east").unwrap();
    i.clusters.insert(0, east);
    i.endpoints = vec![
        ep("east", "db-0", "10.1.0.1", "10.1.0.1"),
        ep("west", "db-0", "10.2.0.1", "10.96.100.40"),
        ep("west", "db-1", "10.2.0.2", "10.96.100.41"),
    ];
    i
}

#[test]
fn a_headless_import_gets_a_service_per_remote_endpoint_and_mcs_slices_per_cluster() {
    let i = headless_import();
    let mut c = CatalogSnapshot::default();
    c.imports.insert(i.key.clone(), i.clone());
    let gw = gateway_ports(&c, 20000, 100);
    let si = &service_imports(&c, &gw)[0];
    let spec = si.spec().unwrap();
    assert_eq!(spec.type_, ServiceImportType::Headless);
    assert!(spec.ips.is_empty(), "no ClusterSetIP for a headless import");
    assert_eq!(spec.ip_families, ["IPv4"]);
    let svcs = derived_services(&i, &gw, si);
    let names: Vec<&str> = svcs
        .iter()
        .filter_map(|s| s.metadata.name.as_deref())
        .collect();
    assert_eq!(
        names,
        ["db-west-db-0", "db-west-db-1"],
        "east's own endpoint is reached directly"
    );
    let s0 = svcs[0].spec.as_ref().unwrap();
    assert_eq!(s0.cluster_ip.as_deref(), Some("10.96.100.40"));
    let labels = svcs[0].metadata.labels.as_ref().unwrap();
    assert_eq!(labels[ENDPOINT_HOSTNAME], "db-0");
    assert_eq!(labels[LABEL_SOURCE_CLUSTER], "west");
    // The two endpoints' ports go to different gateway ports.
    let target = |s: &Service| {
        s.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
            .target_port
            .clone()
    };
    assert_ne!(target(&svcs[0]), target(&svcs[1]));
    let slices = mcs_slices(&i, &["10.244.0.9".parse().unwrap()], si);
    let got: Vec<(String, String, Vec<String>)> = slices
        .iter()
        .map(|s| {
            let l = s.metadata.labels.as_ref().unwrap();
            let hosts = s
                .endpoints
                .iter()
                .filter_map(|e| e.hostname.clone())
                .collect();
            (
                l[LABEL_SERVICE_NAME].clone(),
                l[LABEL_SOURCE_CLUSTER].clone(),
                hosts,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("db".into(), "east".into(), vec!["db-0".into()]),
            (
                "db".into(),
                "west".into(),
                vec!["db-0".into(), "db-1".into()]
            )
        ]
    );
    assert_eq!(slices[1].endpoints[1].addresses, ["10.96.100.41"]);
    for s in &slices {
        let l = s.metadata.labels.as_ref().unwrap();
        assert!(
            !l.contains_key(SERVICE_NAME_LABEL),
            "kube-proxy must not route by MCS slices"
        );
        assert_eq!(l["endpointslice.kubernetes.io/managed-by"], SLICE_MANAGER);
    }
}

#[test]
fn unnamed_ports_of_a_multi_port_import_get_names_the_api_server_accepts() {
    let mut i = import();
    i.ports = vec![
        Port {
            name: None,
            ..Port::tcp("x", 80)
        },
        Port::tcp("grpc", 9000),
        Port {
            name: None,
            protocol: Protocol::Sctp,
            ..Port::tcp("x", 142)
        },
    ];
    let mut c = CatalogSnapshot::default();
    c.imports.insert(i.key.clone(), i.clone());
    let gw = gateway_ports(&c, 20000, 100);
    let si = &service_imports(&c, &gw)[0];
    let svc = derived_services(&i, &gw, si).remove(0);
    let names: Vec<Option<String>> = svc
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(
        names,
        [
            Some("tcp-80".into()),
            Some("grpc".into()),
            Some("sctp-142".into())
        ]
    );
}
