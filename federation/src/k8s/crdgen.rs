//! The chart's CRDs, generated from the types in [`super::crd`] (each MCS
//! kind served as v1beta1 (storage) and v1alpha1 with one schema, as upstream
//! mcs-api v0.5.0 does) and [`super::traffic_crd`] (TrafficPolicy, v1alpha1). `federation/tests/crds.rs` fails when
//! `charts/causeway/crds/` differs from this (and rewrites it with
//! `CAUSEWAY_WRITE_CRDS=1`).

use kube::CustomResourceExt;
use serde_json::Value;

use super::crd::{OLD_VERSION, ServiceExport, ServiceImport};
use super::traffic_crd::TrafficPolicy;

const MCS_HEADER: &str = "\
# Generated from federation/src/k8s/crd.rs (the MCS API, sigs.k8s.io/mcs-api
# v0.5.0, multicluster.x-k8s.io); do not edit. Regenerate with
# CAUSEWAY_WRITE_CRDS=1 cargo test -p causeway-federation --test crds
";

const POLICY_HEADER: &str = "\
# Generated from federation/src/k8s/traffic_crd.rs (its spec is
# causeway_policy::PolicySpec, policy/src/spec.rs); do not edit. Regenerate with
# CAUSEWAY_WRITE_CRDS=1 cargo test -p causeway-federation --test crds
";

/// `(file name, YAML)` of each CRD the chart ships.
pub fn chart_crds() -> Vec<(String, String)> {
    let mcs = [ServiceExport::crd(), ServiceImport::crd()]
        .into_iter()
        .map(|crd| (MCS_HEADER, crd, true));
    let ours = [(POLICY_HEADER, TrafficPolicy::crd(), false)];
    mcs.chain(ours)
        .map(|(header, crd, old_version)| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let mut v = serde_json::to_value(&crd).unwrap_or_default();
            shape(&mut v, old_version);
            let yaml = serde_saphyr::to_string(&v).unwrap_or_default();
            (format!("{name}.yaml"), format!("{header}{yaml}"))
        })
        .collect()
}

/// Strips what schemars adds but upstream's schema has not (`nullable`,
/// `default`) and, for the MCS kinds (`old_version`), adds v1alpha1.
fn shape(crd: &mut Value, old_version: bool) {
    if let Some(versions) = crd["spec"]["versions"].as_array_mut() {
        for v in versions.iter_mut() {
            let root = &mut v["schema"]["openAPIV3Schema"];
            clean(root);
            // As every CRD: the type fields, checked by the API server itself.
            for (name, ty) in [
                ("apiVersion", "string"),
                ("kind", "string"),
                ("metadata", "object"),
            ] {
                root["properties"][name] = serde_json::json!({ "type": ty });
            }
        }
        if old_version && let Some(mut old) = versions.first().cloned() {
            old["name"] = OLD_VERSION.into();
            old["storage"] = false.into();
            versions.insert(0, old);
        }
    }
}

fn clean(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    for key in ["nullable", "default", "title"] {
        obj.remove(key);
    }
    // schemars writes bounds as floats (`0.0`); upstream writes integers.
    for bound in ["minimum", "maximum"] {
        if let Some(n) = obj.get(bound).and_then(Value::as_f64) {
            obj.insert(bound.into(), (n as i64).into());
        }
    }
    if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
        props.values_mut().for_each(clean);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = obj.get_mut(key) {
            clean(sub);
        }
    }
}
