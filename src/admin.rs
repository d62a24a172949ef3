//! The admin HTTP endpoint every causeway process serves: health, readiness,
//! Prometheus metrics and the effective config. Later subsystems add routes
//! (e.g. `/v1/catalog`) with [`Admin::route`]. Kept on its own task, off the
//! data plane's hot path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Components report readiness here; `/readyz` is 200 only when all are ready.
#[derive(Clone, Default)]
pub struct Readiness(Arc<Mutex<BTreeMap<String, bool>>>);

/// One component's readiness flag; starts not ready.
#[derive(Clone)]
pub struct ReadyHandle {
    set: Readiness,
    name: String,
}

impl Readiness {
    pub fn register(&self, name: &str) -> ReadyHandle {
        self.lock().insert(name.to_owned(), false);
        ReadyHandle {
            set: self.clone(),
            name: name.to_owned(),
        }
    }

    /// Names of the components not ready yet.
    pub fn pending(&self) -> Vec<String> {
        let map = self.lock();
        map.iter()
            .filter(|(_, r)| !**r)
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, bool>> {
        // A poisoned map still holds valid flags: a panic elsewhere must not hide readiness.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ReadyHandle {
    pub fn set(&self, ready: bool) {
        self.set.lock().insert(self.name.clone(), ready);
    }
}

#[derive(Clone)]
struct Shared {
    registry: Arc<Registry>,
    config: Arc<serde_json::Value>,
    ready: Readiness,
}

pub struct Admin {
    router: Router<Shared>,
    shared: Shared,
}

impl Admin {
    pub fn new(registry: Arc<Registry>, config: serde_json::Value, ready: Readiness) -> Self {
        let router = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .route("/v1/config", get(config_json));
        let shared = Shared {
            registry,
            config: Arc::new(config),
            ready,
        };
        Self { router, shared }
    }

    /// Only the read-only probes (`/healthz`, `/readyz`, `/metrics`): what
    /// `admin.metrics_listen` serves on the pod IP for kubelet and Prometheus,
    /// while the rest of admin stays on `admin.listen` (loopback).
    pub fn probes(registry: Arc<Registry>, ready: Readiness) -> Self {
        let router = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics));
        let shared = Shared {
            registry,
            config: Arc::new(serde_json::Value::Null),
            ready,
        };
        Self { router, shared }
    }

    /// Adds a route, e.g. `/v1/catalog` from the federation.
    pub fn route(mut self, path: &str, handler: MethodRouter<()>) -> Self {
        self.router = self.router.route_service(path, handler);
        self
    }

    /// Serves until `shutdown` fires. Unknown paths get 404.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let app = self
            .router
            .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
            .with_state(self.shared);
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }
}

/// Binds the admin listener; fails with the address in the error.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, std::io::Error> {
    bind_key("admin.listen", addr).await
}

/// Binds `key`'s listener; fails with the key and address in the error.
pub async fn bind_key(key: &str, addr: SocketAddr) -> Result<TcpListener, std::io::Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("{key} {addr}: cannot bind: {e}")))
}

async fn readyz(State(s): State<Shared>) -> Response {
    let pending = s.ready.pending();
    if pending.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let body = format!("not ready: {}\n", pending.join(", "));
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn metrics(State(s): State<Shared>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => {
            let ct = "application/openmetrics-text; version=1.0.0; charset=utf-8";
            ([(header::CONTENT_TYPE, ct)], body).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        )
            .into_response(),
    }
}

async fn config_json(State(s): State<Shared>) -> Response {
    axum::Json(s.config.as_ref().clone()).into_response()
}

#[cfg(test)]
#[path = "admin_tests.rs"]
mod tests;
