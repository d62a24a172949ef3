//! `/ui/events`: a server-sent event stream pushing the topology view every
//! [`EVERY`]. Bounded: at most [`MAX_VIEWERS`] streams at once, each ends
//! after [`MAX_AGE`] (the browser reconnects) or at shutdown, and a comment
//! keeps idle proxies from closing it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use futures::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Interval};
use tokio_util::sync::CancellationToken;

use super::topology;
use crate::status::ClusterStatus;

/// Push interval: a dead cluster shows within a second, well inside 2 s.
pub const EVERY: Duration = Duration::from_millis(500);
pub const MAX_VIEWERS: usize = 8;
pub const MAX_AGE: Duration = Duration::from_secs(600);
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Where snapshots come from: this process, or every cluster of a clusterset.
pub type Source = Arc<dyn Fn() -> BoxFuture<'static, Vec<ClusterStatus>> + Send + Sync>;

#[derive(Clone)]
pub struct Events {
    source: Source,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
}

struct Stream {
    source: Source,
    tick: Interval,
    until: Instant,
    shutdown: CancellationToken,
    _slot: OwnedSemaphorePermit,
}

impl Events {
    pub fn new(source: Source, shutdown: CancellationToken) -> Self {
        Self {
            source,
            slots: Arc::new(Semaphore::new(MAX_VIEWERS)),
            shutdown,
        }
    }

    pub fn route(self) -> MethodRouter<()> {
        get(move || {
            let events = self.clone();
            async move { events.open() }
        })
    }

    fn open(&self) -> Response {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            let msg = format!("too many /ui viewers (at most {MAX_VIEWERS}); close another tab\n");
            return (StatusCode::SERVICE_UNAVAILABLE, msg).into_response();
        };
        let state = Stream {
            source: self.source.clone(),
            tick: tokio::time::interval(EVERY),
            until: Instant::now() + MAX_AGE,
            shutdown: self.shutdown.clone(),
            _slot: slot,
        };
        let stream = futures::stream::unfold(state, next);
        Sse::new(stream)
            .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
            .into_response()
    }
}

async fn next(mut s: Stream) -> Option<(Result<Event, Infallible>, Stream)> {
    tokio::select! {
        _ = s.tick.tick() => {}
        () = s.shutdown.cancelled() => return None,
        () = tokio::time::sleep_until(s.until) => return None,
    }
    let view = topology::view((s.source)().await);
    let event = match Event::default().json_data(&view) {
        Ok(e) => e,
        Err(e) => Event::default().event("error").data(e.to_string()),
    };
    Some((Ok(event), s))
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
