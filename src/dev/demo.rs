//! The demo service every dev cluster exports: HTTP `GET /` answers
//! `hello from <cluster>`, and a second port echoes raw TCP.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// An echo connection lasts at most this long.
const ECHO_LIMIT: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    #[error(
        "demo {what} {addr}: cannot bind: {source} (is the port in use? pick another --base-port)"
    )]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The bound demo listeners of one cluster.
pub struct Demo {
    cluster: String,
    http: TcpListener,
    echo: TcpListener,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, DemoError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| DemoError::Bind { what, addr, source })
}

impl Demo {
    pub async fn bind(
        cluster: &str,
        http: SocketAddr,
        echo: SocketAddr,
    ) -> Result<Demo, DemoError> {
        Ok(Demo {
            cluster: cluster.to_owned(),
            http: bind("http", http).await?,
            echo: bind("echo", echo).await?,
        })
    }

    /// Serves both ports until `shutdown`.
    pub async fn serve(self, shutdown: CancellationToken) {
        let body = format!("hello from {}\n", self.cluster);
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move || {
                let body = body.clone();
                async move { body }
            }),
        );
        let stop = shutdown.clone();
        let http = axum::serve(self.http, app)
            .with_graceful_shutdown(async move { stop.cancelled().await });
        let echo = echo_loop(self.echo, shutdown);
        let (r, ()) = tokio::join!(http, echo);
        if let Err(e) = r {
            tracing::warn!(error = %e, "demo http server stopped");
        }
    }
}

async fn echo_loop(listener: TcpListener, shutdown: CancellationToken) {
    let tasks = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((s, _)) => {
                tasks.spawn(echo(s, shutdown.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "demo echo accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tasks.close();
    tasks.wait().await;
}

/// Copies bytes back until the client half-closes, then half-closes too.
async fn echo(mut s: TcpStream, shutdown: CancellationToken) {
    let (mut r, mut w) = s.split();
    let copy = async {
        tokio::io::copy(&mut r, &mut w).await?;
        w.shutdown().await
    };
    tokio::select! {
        _ = tokio::time::timeout(ECHO_LIMIT, copy) => {}
        () = shutdown.cancelled() => {}
    }
}
