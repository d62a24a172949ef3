//! An in-memory Kubernetes API server on loopback, just enough for the real
//! `kube::Client` and kube-runtime watchers: LIST, WATCH (from a
//! resourceVersion, newline-delimited JSON events), GET, POST, PUT (409 on a
//! stale resourceVersion), JSON merge PATCH (with a `status` subresource for
//! the MCS kinds) and DELETE. A first path segment other than `api`/`apis`
//! names the client, so tests can see who wrote what.
//!
//! Strict where it matters for MCS and TrafficPolicy: custom resources are
//! served only in the versions the chart's CRDs declare and are pruned and
//! validated against their schemas (`schema`), or refused for an unknown
//! field with `fieldValidation=Strict` (as `kubectl apply` asks); they get a
//! `metadata.generation` that counts spec changes; Services are defaulted and validated as the API
//! server does (`services`). Objects seeded with [`FakeKube::put`] pass the
//! same checks.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast;

mod schema;
pub mod secrets;
mod select;
pub mod services;

/// (resource plural, namespace, name)
type Key = (String, String, String);

#[derive(Clone, Debug)]
struct Event {
    rv: u64,
    plural: String,
    kind: &'static str,
    obj: Value,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<Event>,
    /// (client, method, plural, name) of every write.
    writes: Vec<(String, String, String, String)>,
    /// Namespaces that do not exist: creating objects there is a 404.
    missing_namespaces: Vec<String>,
    /// Custom resources served, by plural: the chart's CRDs and any installed.
    crds: BTreeMap<String, schema::Crd>,
    /// Clients whose writes are forbidden (as RBAC would: 403).
    forbidden: Vec<String>,
}

pub struct FakeKube {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<Event>,
    writing: Arc<Mutex<()>>,
}

struct Shared {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<Event>,
    /// Held through each write's read-modify-store, so no write is lost.
    writing: Arc<Mutex<()>>,
}

/// apiVersion and kind of the plurals served.
fn type_of(plural: &str) -> (&'static str, &'static str) {
    match plural {
        "services" => ("v1", "Service"),
        "pods" => ("v1", "Pod"),
        "secrets" => ("v1", "Secret"),
        "endpointslices" => ("discovery.k8s.io/v1", "EndpointSlice"),
        "leases" => ("coordination.k8s.io/v1", "Lease"),
        "serviceexports" => ("multicluster.x-k8s.io/v1beta1", "ServiceExport"),
        "serviceimports" => ("multicluster.x-k8s.io/v1beta1", "ServiceImport"),
        "clusterproperties" => ("about.k8s.io/v1beta1", "ClusterProperty"),
        "trafficpolicies" => ("causeway.io/v1alpha1", "TrafficPolicy"),
        _ => ("v1", "Unknown"),
    }
}

fn has_status_subresource(plural: &str) -> bool {
    matches!(
        plural,
        "serviceexports" | "serviceimports" | "trafficpolicies"
    )
}

impl FakeKube {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            crds: schema::chart_crds(),
            ..Inner::default()
        }));
        let (events, _) = broadcast::channel(4096);
        let writing = Arc::new(Mutex::new(()));
        let shared = Arc::new(Shared {
            inner: inner.clone(),
            events: events.clone(),
            writing: writing.clone(),
        });
        let app = axum::Router::new().fallback(handle).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            addr,
            inner,
            events,
            writing,
        }
    }

    /// The URL a client named `who` uses.
    pub fn url(&self, who: &str) -> String {
        format!("http://{}/{who}", self.addr)
    }

    /// Creates or replaces an object directly (as another controller would).
    pub fn put(&self, plural: &str, obj: Value) {
        let shared = Shared {
            inner: self.inner.clone(),
            events: self.events.clone(),
            writing: self.writing.clone(),
        };
        let _writing = shared.writing.lock().unwrap();
        let (ns, name) = (
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            obj["metadata"]["name"].as_str().unwrap().to_owned(),
        );
        let key = (plural.to_owned(), ns, name);
        let old = self.inner.lock().unwrap().objects.get(&key).cloned();
        let obj = admit_secret(plural, &key.2, obj)
            .unwrap_or_else(|_| panic!("the fake API server refuses secret {}", key.2));
        let obj = match admit(&self.inner.lock().unwrap(), &key, obj, old.as_ref(), true) {
            Ok(o) => o,
            Err(e) => panic!(
                "the fake API server refuses {plural} {}/{}: {e}",
                key.1, key.2
            ),
        };
        shared.store(key, obj, if old.is_some() { "MODIFIED" } else { "ADDED" });
    }

    /// Installs the About API CRD (KEP-2149) with the cluster id property `id`.
    pub fn install_cluster_id(&self, id: &str) {
        let crd = json!({"spec": {"group": "about.k8s.io", "scope": "Cluster",
            "names": {"plural": "clusterproperties"},
            "versions": [
                {"name": "v1alpha1", "served": true, "storage": false},
                {"name": "v1beta1", "served": true, "storage": true, "schema": {"openAPIV3Schema":
                    {"type": "object", "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                     "spec": {"type": "object", "required": ["value"], "properties": {"value": {"type": "string", "minLength": 1}}}}}}}]}});
        let (plural, c) = schema::from_value(&crd);
        self.inner.lock().unwrap().crds.insert(plural, c);
        self.put(
            "clusterproperties",
            json!({"metadata": {"name": "cluster.clusterset.k8s.io"}, "spec": {"value": id}}),
        );
    }

    /// Uninstalls the CRD for `plural` (`false`) or installs the chart's again (`true`).
    pub fn set_crd_installed(&self, plural: &str, installed: bool) {
        let mut inner = self.inner.lock().unwrap();
        match schema::chart_crds().remove(plural) {
            Some(crd) if installed => inner.crds.insert(plural.to_owned(), crd),
            _ => inner.crds.remove(plural),
        };
    }

    /// Whether `plural` is served in `version` (CRDs: only declared versions).
    pub fn serves(&self, plural: &str, version: &str) -> bool {
        served(&self.inner.lock().unwrap(), plural, Some(version))
    }

    /// Makes namespace `ns` absent (`true`) or present again (`false`).
    pub fn set_namespace_missing(&self, ns: &str, missing: bool) {
        let mut inner = self.inner.lock().unwrap();
        inner.missing_namespaces.retain(|n| n != ns);
        if missing {
            inner.missing_namespaces.push(ns.to_owned());
        }
    }

    /// Refuses every write from client `who` with 403, as RBAC would.
    pub fn forbid(&self, who: &str) {
        self.inner.lock().unwrap().forbidden.push(who.to_owned());
    }

    pub fn delete(&self, plural: &str, ns: &str, name: &str) {
        let shared = Shared {
            inner: self.inner.clone(),
            events: self.events.clone(),
            writing: self.writing.clone(),
        };
        let _writing = shared.writing.lock().unwrap();
        shared.remove(&(plural.into(), ns.into(), name.into()));
    }

    pub fn get(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.inner
            .lock()
            .unwrap()
            .objects
            .get(&(plural.into(), ns.into(), name.into()))
            .cloned()
    }

    pub fn names(&self, plural: &str) -> Vec<String> {
        let inner = self.inner.lock().unwrap();
        inner
            .objects
            .keys()
            .filter(|k| k.0 == plural)
            .map(|k| format!("{}/{}", k.1, k.2))
            .collect()
    }

    /// Clients that wrote `plural` objects, in order, deduplicated.
    pub fn writers(&self, plural: &str) -> Vec<String> {
        let inner = self.inner.lock().unwrap();
        let mut who: Vec<String> = inner
            .writes
            .iter()
            .filter(|w| w.2 == plural)
            .map(|w| w.0.clone())
            .collect();
        who.dedup();
        who
    }
}

impl Shared {
    /// Stores `obj` at a new resourceVersion and tells the watchers.
    fn store(&self, key: Key, mut obj: Value, kind: &'static str) -> Value {
        let mut inner = self.inner.lock().unwrap();
        inner.rv += 1;
        let rv = inner.rv;
        let (api_version, k) = type_of(&key.0);
        obj["apiVersion"] = json!(api_version);
        obj["kind"] = json!(k);
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        if obj["metadata"]["uid"].is_null() {
            obj["metadata"]["uid"] = json!(format!("uid-{rv}"));
        }
        if obj["metadata"]["creationTimestamp"].is_null() {
            obj["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        inner.objects.insert(key.clone(), obj.clone());
        let ev = Event {
            rv,
            plural: key.0,
            kind,
            obj: obj.clone(),
        };
        inner.history.push(ev.clone());
        let _ = self.events.send(ev);
        obj
    }

    fn remove(&self, key: &Key) -> Option<Value> {
        let mut inner = self.inner.lock().unwrap();
        let obj = inner.objects.remove(key)?;
        inner.rv += 1;
        let ev = Event {
            rv: inner.rv,
            plural: key.0.clone(),
            kind: "DELETED",
            obj: obj.clone(),
        };
        inner.history.push(ev.clone());
        let _ = self.events.send(ev);
        Some(obj)
    }
}

/// A parsed request path.
struct Target {
    client: String,
    /// The API version in the path (`v1` for the core group).
    version: Option<String>,
    plural: String,
    ns: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse(path: &str) -> Option<Target> {
    let mut seg: Vec<&str> = path.trim_matches('/').split('/').collect();
    let client = if matches!(seg.first(), Some(&"api" | &"apis")) {
        "default".to_owned()
    } else {
        seg.remove(0).to_owned()
    };
    let version = match seg.first()? {
        &"api" => seg.get(1),
        _ => seg.get(2),
    }
    .map(|v| (*v).to_owned());
    let rest = match seg.first()? {
        &"api" => &seg[2..],
        _ => seg.get(3..)?,
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    Some(Target {
        client,
        version,
        plural: (*rest.first()?).to_owned(),
        ns,
        name: rest.get(1).map(|s| (*s).to_owned()),
        status: rest.get(2) == Some(&"status"),
    })
}

fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code});
    reply(StatusCode::from_u16(code).unwrap(), &body)
}

fn reply(code: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn handle(State(s): State<Arc<Shared>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let Some(t) = parse(uri.path()) else {
        return status(404, "NotFound", format!("no route {}", uri.path()));
    };
    let query: BTreeMap<String, String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_owned(),
                v.replace("%3D", "=")
                    .replace("%2C", ",")
                    .replace("%2F", "/"),
            )
        })
        .collect();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let strict = query.get("fieldValidation").map(String::as_str) == Some("Strict");
    if !served(&s.inner.lock().unwrap(), &t.plural, t.version.as_deref()) {
        let v = t.version.clone().unwrap_or_default();
        return status(
            404,
            "NotFound",
            format!(
                "the server could not find the requested resource ({} {v})",
                t.plural
            ),
        );
    }
    if method != Method::GET && s.inner.lock().unwrap().forbidden.contains(&t.client) {
        let (ns, name) = (
            t.ns.clone().unwrap_or_default(),
            t.name.clone().unwrap_or_default(),
        );
        let message = format!(
            "{} {name:?} is forbidden: User \"system:serviceaccount:{ns}:{}\" cannot {} resource {:?} in the namespace {ns:?}",
            t.plural,
            t.client,
            match method {
                Method::POST => "create",
                Method::PUT => "update",
                Method::PATCH => "patch",
                _ => "delete",
            },
            t.plural
        );
        return status(403, "Forbidden", message);
    }
    let _writing = (method != Method::GET).then(|| s.writing.lock().unwrap());
    if method != Method::GET {
        let name = t
            .name
            .clone()
            .or_else(|| body["metadata"]["name"].as_str().map(Into::into))
            .unwrap_or_default();
        s.inner.lock().unwrap().writes.push((
            t.client.clone(),
            method.to_string(),
            t.plural.clone(),
            name,
        ));
    }
    match (method, &t.name) {
        (Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            select::watch(&s, &t, &query)
        }
        (Method::GET, None) => select::list(&s, &t, &query),
        (Method::GET, Some(name)) => match s.inner.lock().unwrap().objects.get(&key(&t, name)) {
            Some(o) => reply(StatusCode::OK, o),
            None => status(404, "NotFound", format!("{} {name} not found", t.plural)),
        },
        (Method::POST, None) => create(&s, &t, body, strict),
        (Method::PUT, Some(name)) => update(&s, &t, name, |_| body.clone(), true, strict),
        (Method::PATCH, Some(name)) => update(&s, &t, name, |cur| merge(cur, &body), false, strict),
        (Method::DELETE, Some(name)) => match s.remove(&key(&t, name)) {
            Some(o) => reply(StatusCode::OK, &o),
            None => status(404, "NotFound", format!("{} {name} not found", t.plural)),
        },
        (m, _) => status(405, "MethodNotAllowed", format!("{m} not supported here")),
    }
}

const BUILT_IN: [&str; 6] = [
    "services",
    "pods",
    "secrets",
    "endpointslices",
    "leases",
    "namespaces",
];

fn served(inner: &Inner, plural: &str, version: Option<&str>) -> bool {
    match inner.crds.get(plural) {
        Some(crd) => version.is_some_and(|v| crd.versions.iter().any(|s| s == v)),
        None => BUILT_IN.contains(&plural),
    }
}

/// What the API server does to an object before storing it (`lenient`:
/// unknown fields of a custom resource are dropped, else refused).
fn admit(
    inner: &Inner,
    key: &Key,
    mut obj: Value,
    old: Option<&Value>,
    lenient: bool,
) -> Result<Value, String> {
    if key.0 == "services" {
        let taken = inner
            .objects
            .iter()
            .filter(|(k, _)| k.0 == "services" && **k != *key)
            .filter_map(|(_, o)| o["spec"]["clusterIP"].as_str()?.parse().ok())
            .collect();
        return services::admit(obj, old, &taken);
    }
    if let Some(crd) = inner.crds.get(&key.0) {
        if !lenient && let Some(path) = schema::unknown(&obj, &crd.schema, "") {
            return Err(format!(
                "strict decoding error: unknown field \"{}\"",
                path.trim_start_matches('.')
            ));
        }
        schema::prune(&mut obj, &crd.schema);
        schema::validate(&obj, &crd.schema, "")?;
        let generation = old.map_or(0, |o| {
            let same = o["spec"] == obj["spec"];
            o["metadata"]["generation"].as_i64().unwrap_or(1) - i64::from(same)
        });
        obj["metadata"]["generation"] = json!(generation + 1);
    }
    Ok(obj)
}

/// Secrets: checked as the real server does (`secrets`), with its codes.
fn admit_secret(plural: &str, name: &str, obj: Value) -> Result<Value, Box<Response>> {
    if plural != "secrets" {
        return Ok(obj);
    }
    secrets::admit(obj).map_err(|(code, message)| {
        let reason = if code == 400 { "BadRequest" } else { "Invalid" };
        let message = format!("Secret {name:?} is invalid: {message}");
        Box::new(status(code, reason, message))
    })
}

fn key(t: &Target, name: &str) -> Key {
    (
        t.plural.clone(),
        t.ns.clone().unwrap_or_default(),
        name.to_owned(),
    )
}

fn create(s: &Shared, t: &Target, mut body: Value, strict: bool) -> Response {
    let Some(name) = body["metadata"]["name"].as_str().map(str::to_owned) else {
        return status(422, "Invalid", "metadata.name is required".into());
    };
    let k = key(t, &name);
    if s.inner.lock().unwrap().missing_namespaces.contains(&k.1) {
        return status(404, "NotFound", format!("namespaces \"{}\" not found", k.1));
    }
    if s.inner.lock().unwrap().objects.contains_key(&k) {
        return status(
            409,
            "AlreadyExists",
            format!("{} {name} already exists", t.plural),
        );
    }
    if !k.1.is_empty() {
        body["metadata"]["namespace"] = json!(k.1);
    }
    if let Some(m) = body["metadata"].as_object_mut() {
        m.remove("uid");
        m.remove("resourceVersion");
    }
    if has_status_subresource(&t.plural)
        && let Some(o) = body.as_object_mut()
    {
        o.remove("status");
    }
    let body = match admit_secret(&t.plural, &name, body) {
        Ok(b) => b,
        Err(refused) => return *refused,
    };
    let body = match admit(&s.inner.lock().unwrap(), &k, body, None, !strict) {
        Ok(b) => b,
        Err(e) => {
            return status(
                422,
                "Invalid",
                format!("{} {name:?} is invalid: {e}", t.plural),
            );
        }
    };
    reply(StatusCode::CREATED, &s.store(k, body, "ADDED"))
}

/// PUT (`check_rv`: a stale resourceVersion is a 409) or PATCH of an object
/// or, for the MCS kinds, of its status only.
fn update(
    s: &Shared,
    t: &Target,
    name: &str,
    f: impl FnOnce(&Value) -> Value,
    check_rv: bool,
    strict: bool,
) -> Response {
    let k = key(t, name);
    let Some(cur) = s.inner.lock().unwrap().objects.get(&k).cloned() else {
        return status(404, "NotFound", format!("{} {name} not found", t.plural));
    };
    let mut next = f(&cur);
    let sent_rv = next["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_owned);
    if check_rv
        && sent_rv
            .is_some_and(|rv| Some(rv.as_str()) != cur["metadata"]["resourceVersion"].as_str())
    {
        return status(
            409,
            "Conflict",
            format!("the object has been modified; {} {name}", t.plural),
        );
    }
    if has_status_subresource(&t.plural) {
        let keep = if t.status { cur.clone() } else { next.clone() };
        let status = if t.status {
            next["status"].clone()
        } else {
            cur["status"].clone()
        };
        next = keep;
        next["status"] = status;
    }
    next["metadata"]["uid"] = cur["metadata"]["uid"].clone();
    next["metadata"]["creationTimestamp"] = cur["metadata"]["creationTimestamp"].clone();
    let next = match admit_secret(&t.plural, name, next) {
        Ok(n) => n,
        Err(refused) => return *refused,
    };
    let next = match admit(&s.inner.lock().unwrap(), &k, next, Some(&cur), !strict) {
        Ok(n) => n,
        Err(e) => {
            return status(
                422,
                "Invalid",
                format!("{} {name:?} is invalid: {e}", t.plural),
            );
        }
    };
    reply(StatusCode::OK, &s.store(k, next, "MODIFIED"))
}

/// RFC 7386 JSON merge patch.
fn merge(target: &Value, patch: &Value) -> Value {
    let Some(p) = patch.as_object() else {
        return patch.clone();
    };
    let mut out = target.as_object().cloned().unwrap_or_default();
    for (k, v) in p {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = merge(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}
