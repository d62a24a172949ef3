//! The fake API server's CRD handling, from the chart's own CRD files: only
//! the versions they declare are served, and custom resources are pruned and
//! validated against their structural schema (type, enum, required,
//! maxItems, minLength/maxLength, pattern, minimum/maximum, map values), as
//! the API server does.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

/// A CRD the fake serves: its group, served versions and (one) schema.
#[derive(Clone, Debug)]
pub struct Crd {
    pub group: String,
    pub versions: Vec<String>,
    pub storage: String,
    pub schema: Value,
    pub namespaced: bool,
}

/// The chart's CRDs by plural.
pub fn chart_crds() -> BTreeMap<String, Crd> {
    // Included by federation's tests and by the root package's.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let up = if root.join("charts").exists() {
        root
    } else {
        root.join("..")
    };
    let dir = up.join("charts/causeway/crds");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let crd: Value = serde_saphyr::from_str(&text).unwrap();
        let (plural, c) = from_value(&crd);
        out.insert(plural, c);
    }
    out
}

pub fn from_value(crd: &Value) -> (String, Crd) {
    let spec = &crd["spec"];
    let versions = spec["versions"].as_array().unwrap();
    let served = versions
        .iter()
        .filter(|v| v["served"] == true)
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    let storage = versions.iter().find(|v| v["storage"] == true).unwrap();
    let c = Crd {
        group: spec["group"].as_str().unwrap().to_owned(),
        versions: served,
        storage: storage["name"].as_str().unwrap().to_owned(),
        schema: storage["schema"]["openAPIV3Schema"].clone(),
        namespaced: spec["scope"] == "Namespaced",
    };
    (spec["names"]["plural"].as_str().unwrap().to_owned(), c)
}

/// Drops fields the schema does not know (metadata is left to the server).
pub fn prune(obj: &mut Value, schema: &Value) {
    match obj {
        Value::Object(map) => {
            if let Some(props) = schema["properties"].as_object() {
                map.retain(|k, _| props.contains_key(k));
                for (k, v) in map.iter_mut() {
                    if k != "metadata" {
                        prune(v, &props[k]);
                    }
                }
            } else if schema["additionalProperties"].is_object() {
                let values = &schema["additionalProperties"];
                map.values_mut().for_each(|v| prune(v, values));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| prune(i, &schema["items"])),
        _ => {}
    }
}

/// The path of the first field `prune` would drop, if any.
pub fn unknown(obj: &Value, schema: &Value, path: &str) -> Option<String> {
    match obj {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            let values = &schema["additionalProperties"];
            map.iter()
                .filter(|(k, _)| *k != "metadata")
                .find_map(|(k, v)| match props {
                    Some(p) => match p.get(k) {
                        Some(sub) => unknown(v, sub, &format!("{path}.{k}")),
                        None => Some(format!("{path}.{k}")),
                    },
                    None if values.is_object() => unknown(v, values, &format!("{path}.{k}")),
                    None => None,
                })
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| unknown(v, &schema["items"], &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// The first violation of `schema` by `obj`, named by its path.
pub fn validate(obj: &Value, schema: &Value, path: &str) -> Result<(), String> {
    let bad = |what: String| Err(format!("{path}: {what}"));
    let ty = schema["type"].as_str().unwrap_or("");
    let ok_type = match ty {
        "object" => obj.is_object(),
        "array" => obj.is_array(),
        "string" => obj.is_string(),
        "integer" => obj.is_i64() || obj.is_u64(),
        "number" => obj.is_number(),
        "boolean" => obj.is_boolean(),
        _ => true,
    };
    if !ok_type {
        return bad(format!("Invalid value: {obj}: must be of type {ty}"));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(obj)
    {
        return bad(format!(
            "Unsupported value: {obj}: supported values: {allowed:?}"
        ));
    }
    if let Some(s) = obj.as_str() {
        string(s, schema).or_else(&bad)?;
    }
    if let Some(n) = obj.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|m| n < m) {
            return bad(format!(
                "Invalid value: {obj}: must be at least {}",
                schema["minimum"]
            ));
        }
        if schema["maximum"].as_f64().is_some_and(|m| n > m) {
            return bad(format!(
                "Invalid value: {obj}: must be at most {}",
                schema["maximum"]
            ));
        }
    }
    if let Some(items) = obj.as_array() {
        if schema["maxItems"]
            .as_u64()
            .is_some_and(|m| items.len() as u64 > m)
        {
            return bad(format!(
                "Too many: {}: must have at most {} items",
                items.len(),
                schema["maxItems"]
            ));
        }
        for (i, item) in items.iter().enumerate() {
            validate(item, &schema["items"], &format!("{path}[{i}]"))?;
        }
    }
    if let Some(map) = obj.as_object() {
        for req in schema["required"].as_array().into_iter().flatten() {
            let req = req.as_str().unwrap_or("");
            if !map.contains_key(req) {
                return Err(format!("{path}.{req}: Required value"));
            }
        }
        let props = schema["properties"].as_object();
        let values = schema["additionalProperties"].is_object();
        for (k, v) in map.iter().filter(|(k, _)| *k != "metadata") {
            if let Some(sub) = props.and_then(|p| p.get(k)) {
                validate(v, sub, &format!("{path}.{k}"))?;
            } else if values {
                validate(v, &schema["additionalProperties"], &format!("{path}.{k}"))?;
            }
        }
    }
    Ok(())
}

fn string(s: &str, schema: &Value) -> Result<(), String> {
    let len = s.chars().count() as u64;
    if schema["maxLength"].as_u64().is_some_and(|m| len > m) {
        return Err(format!(
            "Too long: may not be longer than {}",
            schema["maxLength"]
        ));
    }
    if schema["minLength"].as_u64().is_some_and(|m| len < m) {
        return Err(format!(
            "Invalid value: {s:?}: should be at least {} chars long",
            schema["minLength"]
        ));
    }
    if let Some(p) = schema["pattern"].as_str()
        && !regex::Regex::new(p).unwrap().is_match(s)
    {
        return Err(format!("Invalid value: {s:?}: should match '{p}'"));
    }
    Ok(())
}
