//! Allocation, claims, restore and stability of ClusterSetIPs.

use super::*;
use proptest::prelude::*;

fn key(s: &str) -> VipKey {
    s.parse().unwrap()
}

#[test]
fn claims_from_the_cluster_win_and_foreign_addresses_are_never_handed_out() {
    let mut a = alloc(&["10.96.0.128/30"]); // .129 and .130
    let (x, y) = (key("ns/x"), key("ns/y"));
    assert!(a.sync([&x]).is_empty());
    let mine = a.get(&x)[0];
    let other: IpAddr = if mine.to_string() == "10.96.0.129" {
        "10.96.0.130".parse().unwrap()
    } else {
        "10.96.0.129".parse().unwrap()
    };
    // The derived Service of x (say, written by the previous leader) has `other`.
    let claims = VipClaims {
        held: [(x.clone(), vec![other])].into(),
        foreign: BTreeSet::new(),
    };
    a.claim(&claims);
    assert!(a.sync([&x]).is_empty());
    assert_eq!(a.get(&x), [other], "the cluster's address is kept");
    // Another Service took `mine`: y cannot have it, and there is nothing else.
    a.claim(&VipClaims {
        held: claims.held.clone(),
        foreign: [mine].into(),
    });
    let errs = a.sync([&x, &y]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(a.get(&y).is_empty());
    // x is unexported but its Service is still there: its address stays taken.
    a.claim(&VipClaims {
        held: claims.held.clone(),
        foreign: BTreeSet::new(),
    });
    assert!(a.sync([&y]).is_empty());
    assert_eq!(a.get(&y), [mine]);
}

fn alloc(ranges: &[&str]) -> VipAllocator {
    VipAllocator::new(ranges.iter().map(|r| r.parse().unwrap()).collect()).unwrap()
}

#[test]
fn dual_stack_gets_one_of_each() {
    let mut a = alloc(&["127.77.1.0/24", "fd00:77::/120"]);
    assert!(a.sync([&key("ns/web")]).is_empty());
    let ips = a.get(&key("ns/web"));
    assert_eq!(ips.len(), 2);
    assert!(ips[0].is_ipv4() && ips[1].is_ipv6());
    assert!("127.77.1.0/24".parse::<IpNet>().unwrap().contains(&ips[0]));
    assert_ne!(ips[0], "127.77.1.0".parse::<IpAddr>().unwrap());
}

#[test]
fn every_key_past_a_full_range_gets_its_own_error() {
    let mut a = alloc(&["127.77.1.0/24"]); // 254 usable hosts
    let keys: Vec<VipKey> = (0..1000).map(|i| key(&format!("ns/s{i}"))).collect();
    let errs = a.sync(&keys);
    assert_eq!(errs.len(), 1000 - 254);
    let unallocated: BTreeSet<String> = keys
        .iter()
        .filter(|k| a.get(k).is_empty())
        .map(ToString::to_string)
        .collect();
    let named: BTreeSet<String> = errs
        .iter()
        .map(|e| match e {
            VipError::Exhausted { key, .. } => key.to_string(),
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(named, unallocated);
}

#[test]
fn full_range_is_a_clear_error() {
    let mut a = alloc(&["127.77.1.0/30"]); // two usable hosts
    let keys = [key("ns/a"), key("ns/b"), key("ns/c")];
    let errs = a.sync(&keys);
    assert_eq!(errs.len(), 1);
    let msg = errs[0].to_string();
    assert!(
        msg.contains("127.77.1.0/30") && msg.contains("IPv4"),
        "{msg}"
    );
    let all: BTreeSet<_> = keys.iter().flat_map(|k| a.get(k)).collect();
    assert_eq!(all.len(), 2);
    // Releasing one frees its address for the waiting key.
    assert!(a.sync([&keys[0], &keys[2]]).is_empty() || a.get(&keys[2]).is_empty());
}

#[test]
fn overlapping_ranges_are_refused() {
    let r = VipAllocator::new(vec![
        "10.0.0.0/8".parse().unwrap(),
        "10.1.0.0/16".parse().unwrap(),
    ]);
    assert!(matches!(r, Err(VipError::Overlap(..))));
}

#[test]
fn restore_keeps_addresses_and_drops_bad_ones() {
    let mut a = alloc(&["127.77.1.0/24"]);
    let mut state = BTreeMap::new();
    state.insert(key("ns/a"), vec!["127.77.1.9".parse().unwrap()]);
    state.insert(key("ns/b"), vec!["127.77.1.9".parse().unwrap()]); // duplicate
    state.insert(key("ns/c"), vec!["10.9.9.9".parse().unwrap()]); // outside
    a.restore(VipState(state));
    assert!(
        a.sync([&key("ns/a"), &key("ns/b"), &key("ns/c")])
            .is_empty()
    );
    assert_eq!(
        a.get(&key("ns/a")),
        ["127.77.1.9".parse::<IpAddr>().unwrap()]
    );
    assert_ne!(a.get(&key("ns/b")), a.get(&key("ns/a")));
    assert!(a.get(&key("ns/c"))[0].to_string().starts_with("127.77.1."));
}

#[test]
fn hash_choice_is_stable_without_state() {
    let mut a = alloc(&["127.77.1.0/24"]);
    let mut b = alloc(&["127.77.1.0/24"]);
    a.sync([&key("ns/x")]);
    b.sync([&key("ns/y"), &key("ns/x")]);
    // Both start from the hash slot; ns/y only moves ns/x if they collide.
    let (ax, bx) = (a.get(&key("ns/x")), b.get(&key("ns/x")));
    assert!(ax == bx || b.get(&key("ns/y")) == ax);
}

proptest! {
    #[test]
    fn never_duplicates_and_is_stable(
        rounds in prop::collection::vec(prop::collection::btree_set(0u8..40, 0..40), 1..8),
    ) {
        let mut a = alloc(&["127.77.1.0/27", "fd00::/122"]);
        let mut prev: BTreeMap<VipKey, Vec<IpAddr>> = BTreeMap::new();
        for round in rounds {
            let keys: Vec<VipKey> = round.iter().map(|i| key(&format!("ns/s{i}"))).collect();
            a.sync(&keys);
            let mut seen = BTreeSet::new();
            for k in &keys {
                for ip in a.get(k) {
                    prop_assert!(seen.insert(*ip), "duplicate {}", ip);
                }
                // Stable: an address held before is still held.
                for ip in prev.get(k).into_iter().flatten() {
                    prop_assert!(a.get(k).contains(ip));
                }
            }
            // Restoring the state into a fresh allocator gives the same answer.
            let mut b = alloc(&["127.77.1.0/27", "fd00::/122"]);
            b.restore(a.state());
            b.sync(&keys);
            prop_assert_eq!(b.state(), a.state());
            prev = a.state().0;
        }
    }
}
