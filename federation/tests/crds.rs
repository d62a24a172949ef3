//! The chart's CRDs are generated from the Rust types (`chart_crds`): this
//! fails when `charts/causeway/crds/` differs, and with `CAUSEWAY_WRITE_CRDS=1`
//! rewrites the files. The generated schema is checked against upstream
//! mcs-api v0.5.0's field list (names, types, enums, required, limits).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde_json::Value;

fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/causeway/crds")
}

#[test]
fn the_chart_crds_are_what_the_types_generate() {
    let write = std::env::var_os("CAUSEWAY_WRITE_CRDS").is_some();
    for (name, text) in causeway_federation::chart_crds() {
        let path = crd_dir().join(&name);
        if write {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == text,
            "{} differs from what federation/src/k8s/crd.rs generates; run CAUSEWAY_WRITE_CRDS=1 cargo test -p causeway-federation --test crds",
            path.display()
        );
    }
}

fn generated(kind: &str) -> Value {
    let (_, text) = causeway_federation::chart_crds()
        .into_iter()
        .find(|(n, _)| n.starts_with(kind))
        .unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

/// `path` (dot-separated property names) inside a version's schema.
fn at<'a>(schema: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(schema, |s, p| match p {
        "[]" => &s["items"],
        _ => &s["properties"][p],
    })
}

/// Upstream v0.5.0 (config/crd): path, type, and what else it says.
const IMPORT_FIELDS: &[(&str, &str)] = &[
    ("spec", "object"),
    ("spec.ports", "array"),
    ("spec.ports.[]", "object"),
    ("spec.ports.[].name", "string"),
    ("spec.ports.[].protocol", "string"),
    ("spec.ports.[].appProtocol", "string"),
    ("spec.ports.[].port", "integer"),
    ("spec.ips", "array"),
    ("spec.ips.[]", "string"),
    ("spec.type", "string"),
    ("spec.sessionAffinity", "string"),
    ("spec.sessionAffinityConfig", "object"),
    ("spec.sessionAffinityConfig.clientIP", "object"),
    (
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        "integer",
    ),
    ("spec.ipFamilies", "array"),
    ("spec.ipFamilies.[]", "string"),
    ("spec.internalTrafficPolicy", "string"),
    ("spec.trafficDistribution", "string"),
    ("status", "object"),
    ("status.clusters", "array"),
    ("status.clusters.[].cluster", "string"),
    ("status.conditions", "array"),
    ("status.conditions.[].lastTransitionTime", "string"),
    ("status.conditions.[].message", "string"),
    ("status.conditions.[].observedGeneration", "integer"),
    ("status.conditions.[].reason", "string"),
    ("status.conditions.[].status", "string"),
    ("status.conditions.[].type", "string"),
];

const EXPORT_FIELDS: &[(&str, &str)] = &[
    ("spec", "object"),
    ("spec.exportedLabels", "object"),
    ("spec.exportedAnnotations", "object"),
    ("status", "object"),
    ("status.conditions", "array"),
    ("status.conditions.[].type", "string"),
    ("status.conditions.[].status", "string"),
    ("status.conditions.[].reason", "string"),
];

fn properties(s: &Value) -> Vec<String> {
    let mut v: Vec<String> = s["properties"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn the_schema_has_upstreams_fields_types_enums_and_required() {
    for (kind, fields) in [
        ("serviceimports", IMPORT_FIELDS),
        ("serviceexports", EXPORT_FIELDS),
    ] {
        let crd = generated(kind);
        let versions = crd["spec"]["versions"].as_array().unwrap();
        let names: Vec<(&str, bool, bool)> = versions
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap(),
                    v["served"].as_bool().unwrap(),
                    v["storage"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(names, [("v1alpha1", true, false), ("v1beta1", true, true)]);
        assert_eq!(versions[0]["schema"], versions[1]["schema"]);
        let schema = &versions[1]["schema"]["openAPIV3Schema"];
        for (path, ty) in fields {
            assert_eq!(at(schema, path)["type"], *ty, "{kind} {path}");
        }
        assert!(
            schema["required"].is_null(),
            "{kind}: spec is optional upstream"
        );
    }
    let schema = &generated("serviceimports")["spec"]["versions"][1]["schema"]["openAPIV3Schema"];
    let spec = at(schema, "spec");
    assert_eq!(spec["required"], serde_json::json!(["ports", "type"]));
    assert_eq!(
        properties(spec),
        [
            "internalTrafficPolicy",
            "ipFamilies",
            "ips",
            "ports",
            "sessionAffinity",
            "sessionAffinityConfig",
            "trafficDistribution",
            "type"
        ]
    );
    assert_eq!(
        at(schema, "spec.type")["enum"],
        serde_json::json!(["ClusterSetIP", "Headless"])
    );
    assert_eq!(at(schema, "spec.ips")["maxItems"], 2);
    assert_eq!(at(schema, "spec.ipFamilies")["maxItems"], 2);
    assert_eq!(
        at(schema, "spec.ports.[]")["required"],
        serde_json::json!(["port"])
    );
    assert_eq!(at(schema, "spec.ports.[].port")["format"], "int32");
    assert_eq!(at(schema, "spec.ports")["x-kubernetes-list-type"], "atomic");
    assert_eq!(
        at(schema, "status.clusters")["x-kubernetes-list-map-keys"],
        serde_json::json!(["cluster"])
    );
    let cond = at(schema, "status.conditions.[]");
    assert_eq!(
        cond["required"],
        serde_json::json!(["lastTransitionTime", "message", "reason", "status", "type"])
    );
    assert_eq!(
        at(schema, "status.conditions.[].status")["enum"],
        serde_json::json!(["True", "False", "Unknown"])
    );
    assert_eq!(at(schema, "status.conditions.[].reason")["maxLength"], 1024);
    assert_eq!(
        at(schema, "status.conditions.[].lastTransitionTime")["format"],
        "date-time"
    );
    assert_eq!(
        at(schema, "status.conditions")["x-kubernetes-list-type"],
        "map"
    );
}
