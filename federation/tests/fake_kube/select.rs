//! LIST and WATCH for the fake API server: namespace and label selection,
//! and watch streams replayed from a resourceVersion, then live.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Event, Shared, Target, reply, type_of};

/// `k=v`, `k!=v`, `k` and `!k` terms, comma-separated.
fn matches_labels(obj: &Value, selector: Option<&String>) -> bool {
    let labels = &obj["metadata"]["labels"];
    let Some(sel) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    sel.split(',').all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels[k].as_str() != Some(v)
        } else if let Some((k, v)) = term.split_once('=') {
            labels[k].as_str() == Some(v.trim_start_matches('='))
        } else if let Some(k) = term.strip_prefix('!') {
            labels[k].is_null()
        } else {
            !labels[term].is_null()
        }
    })
}

fn selected(t: &Target, q: &BTreeMap<String, String>, plural: &str, obj: &Value) -> bool {
    let ns_ok =
        t.ns.as_deref()
            .is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns));
    plural == t.plural && ns_ok && matches_labels(obj, q.get("labelSelector"))
}

pub(super) fn list(s: &Shared, t: &Target, q: &BTreeMap<String, String>) -> Response {
    let inner = s.inner.lock().unwrap_or_else(|e| e.into_inner());
    let items: Vec<&Value> = inner
        .objects
        .iter()
        .filter(|(k, o)| selected(t, q, &k.0, o))
        .map(|(_, o)| o)
        .collect();
    let (api_version, kind) = type_of(&t.plural);
    let body = json!({"apiVersion": api_version, "kind": format!("{kind}List"), "metadata": {"resourceVersion": inner.rv.to_string()}, "items": items});
    reply(StatusCode::OK, &body)
}

fn line(ev: &Event) -> Bytes {
    let mut text = json!({"type": ev.kind, "object": ev.obj}).to_string();
    text.push('\n');
    Bytes::from(text)
}

pub(super) fn watch(s: &Shared, t: &Target, q: &BTreeMap<String, String>) -> Response {
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (backlog, rx) = {
        let inner = s.inner.lock().unwrap_or_else(|e| e.into_inner());
        let rx = s.events.subscribe();
        let backlog: Vec<Bytes> = inner
            .history
            .iter()
            .filter(|e| e.rv > from && selected(t, q, &e.plural, &e.obj))
            .map(line)
            .collect();
        (backlog, rx)
    };
    let (t2, q2) = (
        Target {
            client: t.client.clone(),
            version: t.version.clone(),
            plural: t.plural.clone(),
            ns: t.ns.clone(),
            name: None,
            status: false,
        },
        q.clone(),
    );
    let live = futures::stream::unfold((rx, t2, q2, from), |(mut rx, t, q, last)| async move {
        loop {
            match rx.recv().await {
                Ok(ev) if ev.rv > last && selected(&t, &q, &ev.plural, &ev.obj) => {
                    let rv = ev.rv;
                    return Some((Ok::<_, std::io::Error>(line(&ev)), (rx, t, q, rv)));
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    });
    let head = futures::stream::iter(backlog.into_iter().map(Ok::<_, std::io::Error>));
    let body = Body::from_stream(futures::StreamExt::chain(head, live));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}
