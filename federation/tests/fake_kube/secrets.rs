//! Secret admission as the real API server does it: `stringData` folded
//! into `data`, keys that are valid file names (`[-._a-zA-Z0-9]+`, at most
//! 253, not `.`, `..` or starting with `..`), values in `data` that are
//! base64 (the real server refuses those while decoding, with a 400), and at
//! most 1 MiB of data in all.

use base64::Engine;
use serde_json::{Map, Value, json};

/// The API server's limit on a Secret's data.
pub const MAX_BYTES: usize = 1024 * 1024;

/// Why a Secret is refused: (HTTP code, message).
pub type Refusal = (u16, String);

fn key_error(key: &str) -> Option<&'static str> {
    let chars = key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if key.is_empty() || key.len() > 253 {
        Some("must be no more than 253 characters and not empty")
    } else if !chars {
        Some("a valid config key must consist of alphanumeric characters, '-', '_' or '.'")
    } else if key == "." || key == ".." || key.starts_with("..") {
        Some("must not be '.' or '..' and must not start with '..'")
    } else {
        None
    }
}

/// Checks and completes a Secret (on create and on update alike).
pub fn admit(mut secret: Value) -> Result<Value, Refusal> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut data: Map<String, Value> = match secret.get("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => return Err((400, format!("data: expected an object, got {other}"))),
    };
    let mut size = 0;
    for (key, value) in &data {
        let Some(bytes) = value.as_str().and_then(|v| b64.decode(v).ok()) else {
            return Err((400, format!("data[{key}]: illegal base64 data")));
        };
        size += bytes.len();
    }
    if let Some(Value::Object(plain)) = secret.get("stringData") {
        for (key, value) in plain {
            let text = value.as_str().unwrap_or_default();
            data.insert(key.clone(), json!(b64.encode(text)));
        }
        size = data
            .values()
            .filter_map(|v| b64.decode(v.as_str()?).ok())
            .map(|b| b.len())
            .sum();
    }
    for key in data.keys() {
        if let Some(why) = key_error(key) {
            return Err((422, format!("data[{key}]: Invalid value: {key:?}: {why}")));
        }
    }
    if size > MAX_BYTES {
        return Err((
            422,
            format!("data: Too long: may not be more than {MAX_BYTES} bytes"),
        ));
    }
    let obj = secret
        .as_object_mut()
        .ok_or((400, "not an object".to_owned()))?;
    obj.remove("stringData");
    obj.insert("data".into(), Value::Object(data));
    obj.entry("type").or_insert(json!("Opaque"));
    Ok(secret)
}
