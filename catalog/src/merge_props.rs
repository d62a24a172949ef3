//! Property: the merge does not depend on the order of views or of exports.

use proptest::prelude::*;

use super::*;

fn arb_export() -> impl Strategy<Value = Export> {
    let port = (
        prop::sample::select(vec!["a", "b", "c"]),
        1u16..4,
        any::<bool>(),
    )
        .prop_map(|(n, num, udp)| Port {
            name: Some(n.into()),
            number: num,
            protocol: if udp {
                crate::Protocol::Udp
            } else {
                crate::Protocol::Tcp
            },
            app_protocol: None,
        });
    (
        prop::sample::select(vec!["ns/x", "ns/y", "other/x"]),
        prop::collection::vec(port, 1..4),
        0u64..4,
        any::<bool>(),
    )
        .prop_map(|(k, ports, t, stale)| {
            let mut e = export(k, ports, t);
            e.serve_stale = stale;
            e
        })
}

fn arb_views() -> impl Strategy<Value = Vec<(ClusterInfo, Freshness, Vec<Export>)>> {
    let fresh = prop::sample::select(vec![Freshness::Fresh, Freshness::Stale, Freshness::Expired]);
    prop::collection::vec((fresh, prop::collection::vec(arb_export(), 0..4)), 1..5).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (f, e))| {
                // A cluster exports each service at most once.
                let unique: BTreeMap<_, _> = e.into_iter().map(|x| (x.key.clone(), x)).collect();
                (
                    info(&format!("c{i}"), "r"),
                    f,
                    unique.into_values().collect(),
                )
            })
            .collect()
    })
}

fn as_views(vs: &[(ClusterInfo, Freshness, Vec<Export>)]) -> Vec<PeerView<'_>> {
    vs.iter().map(|(i, f, e)| view(i, *f, e)).collect()
}

proptest! {
    #[test]
    fn merge_is_independent_of_input_order(
        views in arb_views(),
        seed in any::<u64>(),
    ) {
        let local = id("c0");
        let expected = merge(&local, &as_views(&views));
        let mut shuffled = views.clone();
        // A deterministic shuffle of views and of each view's exports.
        let n = shuffled.len();
        shuffled.rotate_left((seed as usize) % n);
        if seed & 1 == 1 { shuffled.reverse(); }
        for (_, _, e) in &mut shuffled {
            e.reverse();
            let m = e.len().max(1);
            e.rotate_left((seed as usize >> 8) % m);
        }
        prop_assert_eq!(merge(&local, &as_views(&shuffled)), expected);
    }
}
