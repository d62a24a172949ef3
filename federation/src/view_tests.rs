use std::time::{Duration, Instant};

use causeway_catalog::{ClusterId, ClusterInfo, Freshness, LeaseConfig};

use super::*;
use crate::exporter::{CatchUp, Exporter};
use crate::proto::{self, update::Kind};

fn id(s: &str) -> ClusterId {
    ClusterId::new(s).unwrap()
}

fn info(name: &str) -> ClusterInfo {
    ClusterInfo {
        name: id(name),
        region: "r".into(),
        zone: "z".into(),
        trust_domain: format!("{name}.test"),
        gateways: vec![],
    }
}

fn export(key: &str) -> causeway_catalog::Export {
    causeway_catalog::Export {
        key: key.parse().unwrap(),
        ports: vec![causeway_catalog::Port::tcp("http", 80)],
        endpoints: vec![],
        export_to: Default::default(),
        created_at: Default::default(),
        serve_stale: false,
        headless: false,
        props: Default::default(),
    }
}

fn upd(kind: Kind) -> proto::Update {
    proto::Update { kind: Some(kind) }
}

/// Feeds `view` what the exporter would send a subscriber at its resume point.
fn sync(view: &mut PeerView, x: &Exporter, now: Instant) -> Vec<Applied> {
    let (e, v) = view.resume_point();
    let mut out = Vec::new();
    let msgs: Vec<Kind> = match x.catch_up(&id("me"), e, v) {
        CatchUp::Snapshot(s) => vec![Kind::Snapshot(s)],
        CatchUp::Deltas(ds) => std::iter::once(Kind::Resumed(x.resumed(v)))
            .chain(ds.into_iter().map(Kind::Delta))
            .collect(),
    };
    view.begin_session();
    for m in msgs {
        out.push(view.apply(upd(m), now).unwrap());
    }
    out
}

fn keys(view: &PeerView) -> Vec<String> {
    view.exports().iter().map(|e| e.key.to_string()).collect()
}

#[test]
fn snapshot_then_resume_with_deltas() {
    let now = Instant::now();
    let mut x = Exporter::new(info("b"), 5, 0, 16);
    x.set([export("ns/a")]);
    let mut view = PeerView::new(id("b"));
    assert_eq!(sync(&mut view, &x, now), [Applied::Snapshot]);
    assert_eq!(keys(&view), ["ns/a"]);
    x.set([export("ns/a"), export("ns/b")]);
    let applied = sync(&mut view, &x, now);
    assert_eq!(
        applied,
        [Applied::Resumed, Applied::Delta { changed: true }]
    );
    assert_eq!(keys(&view), ["ns/a", "ns/b"]);
    assert_eq!(view.resume_point(), (5, 2));
    // A restarted exporter (new epoch) is met with a snapshot.
    let mut y = Exporter::new(info("b"), 6, 0, 16);
    y.set([export("ns/c")]);
    assert_eq!(sync(&mut view, &y, now), [Applied::Snapshot]);
    assert_eq!(keys(&view), ["ns/c"]);
}

#[test]
fn out_of_order_and_garbage_leave_the_view_untouched() {
    let now = Instant::now();
    let mut x = Exporter::new(info("b"), 5, 0, 16);
    x.set([export("ns/a")]);
    let mut view = PeerView::new(id("b"));
    // Nothing may come before a Snapshot or Resumed.
    let hb = upd(Kind::Heartbeat(proto::Heartbeat {
        epoch: 5,
        version: 1,
    }));
    assert!(view.apply(hb.clone(), now).is_err());
    sync(&mut view, &x, now);
    let skip = proto::Delta {
        epoch: 5,
        from_version: 3,
        to_version: 4,
        upserts: vec![],
        removals: vec![],
    };
    let err = view.apply(upd(Kind::Delta(skip)), now).unwrap_err();
    assert!(err.to_string().contains("resyncing"), "{err}");
    let mut bad = crate::wire::export_to_proto(&export("ns/z"));
    bad.ports[0].number = 0;
    let garbage = proto::Delta {
        epoch: 5,
        from_version: 1,
        to_version: 2,
        upserts: vec![crate::wire::export_to_proto(&export("ns/ok")), bad],
        removals: vec!["ns/a".into()],
    };
    assert!(view.apply(upd(Kind::Delta(garbage)), now).is_err());
    assert_eq!(keys(&view), ["ns/a"]);
    assert_eq!(view.resume_point(), (5, 1));
    assert_eq!(view.apply(hb, now), Ok(Applied::Heartbeat));
}

#[test]
fn a_peer_cannot_speak_for_another_cluster() {
    let x = Exporter::new(info("c"), 5, 0, 16);
    let mut view = PeerView::new(id("b"));
    let snap = upd(Kind::Snapshot(x.snapshot_for(&id("me"))));
    assert!(matches!(
        view.apply(snap, Instant::now()),
        Err(ViewError::WrongCluster { .. })
    ));
    assert!(view.info().is_none());
}

#[test]
fn restored_view_is_stale_then_expires_unless_confirmed() {
    let lease = LeaseConfig::new(Duration::from_secs(2), Duration::from_secs(5)).unwrap();
    let t0 = Instant::now() + Duration::from_secs(10);
    let saved = SavedView {
        info: info("b"),
        epoch: 5,
        version: 1,
        exports: vec![export("ns/a")],
    };
    let mut view = PeerView::restore(id("b"), saved.clone(), &lease, t0);
    assert_eq!(view.save(), Some(saved));
    assert_eq!(view.freshness(&lease, t0), Some(Freshness::Stale));
    let later = t0 + Duration::from_secs(3);
    assert_eq!(view.freshness(&lease, later), Some(Freshness::Expired));
    // The peer confirms it (same epoch and version): fresh again, no snapshot needed.
    let mut x = Exporter::new(info("b"), 5, 0, 16);
    x.set([export("ns/a")]);
    assert_eq!(sync(&mut view, &x, t0), [Applied::Resumed]);
    assert_eq!(view.freshness(&lease, t0), Some(Freshness::Fresh));
}
