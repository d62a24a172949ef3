//! Failover between regions over real processes: alpha's clients reach bravo
//! (same region); when bravo's process dies, new connections go to charlie
//! (another region) within 2 s.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use causeway::dev::HELLO_PORT;
use support::clients::http_body;
use support::{Mesh, wait_for};

const LINK: Duration = Duration::from_secs(30);

/// The cluster that answers a new connection, or None when it fails.
pub async fn who(addr: SocketAddr) -> Option<String> {
    let body = http_body(addr, Duration::from_millis(1500)).await.ok()?;
    body.strip_prefix("hello from ")
        .map(|s| s.trim().to_owned())
}

#[tokio::test]
async fn failover_to_another_region_within_two_seconds() {
    let mut mesh = Mesh::plan(3, 23400, Ipv4Addr::new(127, 84, 0, 0), |_| {}).await;
    // Alpha does not serve demo/hello itself: its clients go to bravo, then charlie.
    mesh.plan.clusters[0]
        .exports
        .retain(|e| e.key.name() == "hello-alpha");
    mesh.start_all();
    mesh.wait_linked(LINK).await;
    let vip = mesh.wait_vip(0, "hello").await;
    let addr = SocketAddr::from((vip, HELLO_PORT));
    wait_for("bravo to answer through alpha", LINK, || async {
        (who(addr).await? == "bravo").then_some(())
    })
    .await;
    for _ in 0..5 {
        assert_eq!(
            who(addr).await.as_deref(),
            Some("bravo"),
            "same region first"
        );
    }

    mesh.kill(1);
    let killed = Instant::now();
    let (mut failed, mut tries) = (0, 0);
    let gap = loop {
        tries += 1;
        match who(addr).await.as_deref() {
            Some("charlie") => break killed.elapsed(),
            Some(_) | None => failed += 1,
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "no failover within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("failover gap: {gap:?} ({tries} connections tried, {failed} did not reach charlie)");
    assert!(gap < Duration::from_secs(2), "failover took {gap:?}");
    for _ in 0..5 {
        assert_eq!(who(addr).await.as_deref(), Some("charlie"));
    }
}
