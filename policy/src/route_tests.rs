use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use causeway_catalog::ClusterId;
use proptest::prelude::*;

use super::*;
use crate::spec::{HashKey, PolicySpec};

fn id(s: &str) -> ClusterId {
    ClusterId::new(s).unwrap()
}

fn ids(names: &[&str]) -> Vec<ClusterId> {
    names.iter().map(|n| id(n)).collect()
}

fn weights(pairs: &[(&str, u32)]) -> BTreeMap<ClusterId, u32> {
    pairs.iter().map(|(c, w)| (id(c), *w)).collect()
}

fn client(i: u32) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + i), 40000))
}

#[test]
fn split_follows_weights_over_even_rolls() {
    let w = weights(&[("east", 90), ("west", 10)]);
    let healthy = ids(&["east", "west"]);
    let n = 10_000;
    let west = (0..n)
        .filter(|i| split_pick(&w, &healthy, f64::from(*i) / f64::from(n)) == Some(id("west")))
        .count();
    assert_eq!(west, 1000);
}

#[test]
fn an_unhealthy_clusters_share_goes_to_the_others() {
    let w = weights(&[("east", 90), ("west", 10)]);
    for roll in [0.0, 0.5, 0.95, 0.999] {
        assert_eq!(split_pick(&w, &ids(&["west"]), roll), Some(id("west")));
    }
    assert_eq!(split_pick(&w, &ids(&["north"]), 0.3), None);
    assert_eq!(split_pick(&w, &[], 0.3), None);
}

#[test]
fn zero_weight_and_unlisted_clusters_get_nothing() {
    let w = weights(&[("east", 1), ("west", 0)]);
    let healthy = ids(&["east", "west", "north"]);
    for i in 0..100 {
        assert_eq!(
            split_pick(&w, &healthy, f64::from(i) / 100.0),
            Some(id("east"))
        );
    }
}

#[test]
fn hash_is_stable_and_one_departure_moves_only_its_clients() {
    let four = ids(&["a", "b", "c", "d"]);
    let three = ids(&["a", "b", "c"]);
    let (mut moved, mut on_d) = (0, 0);
    for i in 0..1000 {
        let k = client_key(HashKey::ClientIp, client(i));
        let before = hash_pick(k, &four, None).unwrap();
        assert_eq!(hash_pick(k, &four, None).as_ref(), Some(&before));
        let after = hash_pick(k, &three, None).unwrap();
        on_d += usize::from(before == id("d"));
        if after != before {
            assert_eq!(before, id("d"), "only d's clients move");
            moved += 1;
        }
    }
    assert_eq!(moved, on_d);
    assert!(
        (180..=320).contains(&moved),
        "about a quarter move: {moved}"
    );
}

#[test]
fn hash_respects_weights() {
    let w = weights(&[("east", 3), ("west", 1)]);
    let healthy = ids(&["east", "west"]);
    let east = (0..4000)
        .filter(|i| {
            let k = client_key(HashKey::ClientIp, client(*i));
            hash_pick(k, &healthy, Some(&w)) == Some(id("east"))
        })
        .count();
    assert!((2850..=3150).contains(&east), "{east} of 4000");
}

#[test]
fn client_ip_ignores_the_port_and_client_address_does_not() {
    let a = SocketAddr::from((Ipv4Addr::new(10, 1, 2, 3), 1000));
    let b = SocketAddr::from((Ipv4Addr::new(10, 1, 2, 3), 2000));
    assert_eq!(
        client_key(HashKey::ClientIp, a),
        client_key(HashKey::ClientIp, b)
    );
    assert_ne!(
        client_key(HashKey::ClientAddress, a),
        client_key(HashKey::ClientAddress, b)
    );
}

#[test]
fn route_uses_hash_when_set_else_split_else_nothing() {
    let healthy = ids(&["east", "west"]);
    let mut spec = PolicySpec::default();
    assert_eq!(route(&spec, &healthy, 7, 0.5), None);
    spec.split = weights(&[("west", 1)]);
    assert_eq!(
        route(&spec, &healthy, 7, 0.5),
        Some((id("west"), Rule::Split))
    );
    spec.hash = Some(HashKey::ClientIp);
    assert_eq!(
        route(&spec, &healthy, 7, 0.5),
        Some((id("west"), Rule::Hash))
    );
}

proptest! {
    #[test]
    fn split_picks_only_healthy_weighted_clusters(
        ws in proptest::collection::vec(0u32..5, 1..6),
        up in proptest::collection::vec(any::<bool>(), 6),
        roll in 0.0f64..1.0,
    ) {
        let names: Vec<String> = (0..ws.len()).map(|i| format!("c{i}")).collect();
        let w: BTreeMap<ClusterId, u32> =
            names.iter().zip(&ws).map(|(n, w)| (id(n), *w)).collect();
        let healthy: Vec<ClusterId> =
            names.iter().zip(&up).filter(|(_, u)| **u).map(|(n, _)| id(n)).collect();
        let any = w.iter().any(|(c, w)| *w > 0 && healthy.contains(c));
        match split_pick(&w, &healthy, roll) {
            Some(c) => prop_assert!(healthy.contains(&c) && w[&c] > 0),
            None => prop_assert!(!any),
        }
    }

    #[test]
    fn hash_removal_moves_only_the_removed_clusters_keys(key in any::<u64>(), gone in 0usize..5) {
        let all = ids(&["a", "b", "c", "d", "e"]);
        let before = hash_pick(key, &all, None).unwrap();
        let rest: Vec<ClusterId> =
            all.iter().enumerate().filter(|(i, _)| *i != gone).map(|(_, c)| c.clone()).collect();
        let after = hash_pick(key, &rest, None).unwrap();
        prop_assert!(after == before || before == all[gone]);
    }
}
