//! The live topology page: `/ui` (one static page embedded in the binary),
//! `/ui/events` (its data, pushed) and `/v1/status` (what `causeway status
//! --json` prints for this cluster). `dev up` serves the same page for the
//! whole clusterset ([`clusterset`]).

pub mod clusterset;
pub mod events;
pub mod local;
pub mod rates;
pub mod topology;

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::admin::Admin;
use events::{Events, Source};
use local::Local;

const PAGE: &str = include_str!("page.html");
/// Inline script and style only; data from this origin only; nothing else loads.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:";

/// Adds `/v1/status`, `/ui` and `/ui/events` for this cluster.
pub fn routes(admin: Admin, local: Local, shutdown: CancellationToken) -> Admin {
    let local = Arc::new(local);
    let l = local.clone();
    let source: Source = Arc::new(move || {
        let st = l.status();
        async move { vec![st] }.boxed()
    });
    admin
        .route(
            "/v1/status",
            get(move || {
                let st = local.status();
                async move { axum::Json(st) }
            }),
        )
        .route("/ui", get(|| async { page() }))
        .route("/ui/events", Events::new(source, shutdown).route())
}

pub fn page() -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    (headers, PAGE).into_response()
}
