//! Choosing clusters for a connection: a pure ordering of candidates.
//!
//! Tiers: with an explicit `failover` list, the listed clusters in order, then the
//! rest by locality; otherwise the local cluster (if `prefer_local`), then clusters
//! in the local region, then the others. Within a tier fresh clusters come before
//! stale ones, then fewest active streams, then random among ties. Ejected
//! clusters are left out unless every reachable candidate is ejected.

use causeway_catalog::ClusterId;
use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub cluster: ClusterId,
    pub region: String,
    /// Streams this gateway has open to the cluster now.
    pub active: usize,
    pub ejected: bool,
    /// Not heard from recently (catalog freshness): used only after fresh clusters.
    pub stale: bool,
}

pub struct Policy<'a> {
    pub local: &'a ClusterId,
    pub region: &'a str,
    pub prefer_local: bool,
    pub failover: Option<&'a [ClusterId]>,
}

impl Policy<'_> {
    fn locality_tier(&self, c: &Candidate) -> usize {
        if self.prefer_local && &c.cluster == self.local {
            0
        } else if c.region == self.region {
            1
        } else {
            2
        }
    }

    fn tier(&self, c: &Candidate) -> usize {
        match self.failover {
            None => self.locality_tier(c),
            Some(list) => match list.iter().position(|x| x == &c.cluster) {
                Some(i) => i,
                None => list.len() + self.locality_tier(c),
            },
        }
    }
}

/// Orders reachable candidates, best first; the caller tries them in turn.
pub fn order(mut cands: Vec<Candidate>, policy: &Policy<'_>, rng: &mut impl Rng) -> Vec<ClusterId> {
    if cands.iter().any(|c| !c.ejected) {
        cands.retain(|c| !c.ejected);
    }
    // Shuffle, then a stable sort: equal keys end up in random order.
    cands.shuffle(rng);
    cands.sort_by_key(|c| (policy.tier(c), c.stale, c.active));
    cands.into_iter().map(|c| c.cluster).collect()
}

/// A ready endpoint with the fewest open connections, random among ties.
pub fn pick_endpoint<T: Copy>(
    ready: &[T],
    load: impl Fn(&T) -> usize,
    rng: &mut impl Rng,
) -> Option<T> {
    let min = ready.iter().map(&load).min()?;
    let best: Vec<T> = ready.iter().copied().filter(|e| load(e) == min).collect();
    best.choose(rng).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn id(s: &str) -> ClusterId {
        ClusterId::new(s).unwrap()
    }

    fn cand(name: &str, region: &str, active: usize) -> Candidate {
        Candidate {
            cluster: id(name),
            region: region.into(),
            active,
            ejected: false,
            stale: false,
        }
    }

    fn names(v: Vec<ClusterId>) -> Vec<String> {
        v.into_iter().map(String::from).collect()
    }

    fn policy<'a>(local: &'a ClusterId, failover: Option<&'a [ClusterId]>) -> Policy<'a> {
        Policy {
            local,
            region: "eu",
            prefer_local: true,
            failover,
        }
    }

    #[test]
    fn local_then_region_then_rest() {
        let a = id("a");
        let mut rng = StdRng::seed_from_u64(1);
        let cands = vec![cand("c", "us", 0), cand("b", "eu", 9), cand("a", "eu", 50)];
        assert_eq!(
            names(order(cands, &policy(&a, None), &mut rng)),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn fewest_active_wins_within_a_tier_and_ties_are_random() {
        let a = id("a");
        let p = policy(&a, None);
        let cands = vec![cand("b", "eu", 5), cand("c", "eu", 2), cand("d", "eu", 2)];
        let mut firsts = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let mut rng = StdRng::seed_from_u64(seed);
            let got = names(order(cands.clone(), &p, &mut rng));
            assert_eq!(got[2], "b");
            firsts.insert(got[0].clone());
        }
        assert_eq!(firsts.len(), 2, "ties broken both ways: {firsts:?}");
    }

    #[test]
    fn ejected_left_out_unless_all_are() {
        let a = id("a");
        let mut rng = StdRng::seed_from_u64(1);
        let mut b = cand("b", "eu", 0);
        b.ejected = true;
        let cands = vec![b.clone(), cand("c", "us", 0)];
        assert_eq!(names(order(cands, &policy(&a, None), &mut rng)), ["c"]);
        let mut c = cand("c", "us", 0);
        c.ejected = true;
        assert_eq!(
            names(order(vec![b, c], &policy(&a, None), &mut rng)),
            ["b", "c"]
        );
    }

    #[test]
    fn stale_after_fresh_in_the_same_tier() {
        let a = id("a");
        let mut rng = StdRng::seed_from_u64(1);
        let mut b = cand("b", "eu", 0);
        b.stale = true;
        let cands = vec![b, cand("c", "eu", 7), cand("d", "us", 0)];
        assert_eq!(
            names(order(cands, &policy(&a, None), &mut rng)),
            ["c", "b", "d"]
        );
    }

    #[test]
    fn failover_list_overrides_locality() {
        let a = id("a");
        let list = [id("d"), id("b")];
        let mut rng = StdRng::seed_from_u64(1);
        let cands = vec![
            cand("a", "eu", 0),
            cand("b", "eu", 0),
            cand("c", "eu", 0),
            cand("d", "us", 9),
        ];
        let got = names(order(cands, &policy(&a, Some(&list)), &mut rng));
        assert_eq!(got, ["d", "b", "a", "c"]);
    }

    #[test]
    fn prefer_local_off_puts_local_with_its_region() {
        let a = id("a");
        let mut p = policy(&a, None);
        p.prefer_local = false;
        let mut rng = StdRng::seed_from_u64(1);
        let cands = vec![cand("a", "eu", 3), cand("b", "eu", 1)];
        assert_eq!(names(order(cands, &p, &mut rng)), ["b", "a"]);
    }

    #[test]
    fn endpoint_with_fewest_connections_random_among_ties() {
        let mut rng = StdRng::seed_from_u64(3);
        let load = |e: &u8| [4, 1, 1, 7][usize::from(*e)];
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            seen.insert(pick_endpoint(&[0u8, 1, 2, 3], load, &mut rng).unwrap());
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(pick_endpoint::<u8>(&[], load, &mut rng), None);
    }
}
