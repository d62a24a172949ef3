use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn heard(received: u64, answered: u64) -> Heard {
    Heard { received, answered }
}

#[test]
fn silence_past_the_limit_is_suspect_until_a_datagram_arrives() {
    let t0 = Instant::now();
    let mut l = Liveness::new(ms(900), ms(500), t0);
    assert!(!l.observe(heard(5, 0), ms(1), t0 + ms(100)));
    assert!(
        !l.observe(heard(5, 0), ms(1), t0 + ms(1000)),
        "900 ms after the last datagram"
    );
    assert!(l.observe(heard(5, 0), ms(1), t0 + ms(1001)));
    assert!(!l.observe(heard(6, 0), ms(1), t0 + ms(1500)), "heard again");
    // On a 300 ms RTT link a keep-alive round trip takes longer than 900 ms.
    let mut l = Liveness::new(ms(900), ms(500), t0);
    assert!(!l.observe(heard(1, 0), ms(300), t0));
    assert!(!l.observe(heard(1, 0), ms(300), t0 + ms(1400)));
    assert!(l.observe(heard(1, 0), ms(300), t0 + ms(1401)));
}

#[test]
fn an_unanswered_probe_is_suspect_even_while_the_peer_still_speaks() {
    let t0 = Instant::now();
    let mut l = Liveness::new(ms(900), ms(500), t0);
    assert!(l.wants_probe(t0), "a probe at once");
    l.probed(t0);
    assert!(!l.wants_probe(t0 + ms(50)), "one per keep-alive interval");
    assert!(!l.observe(heard(1, 1), ms(1), t0 + ms(100)), "answered");
    assert!(!l.wants_probe(t0 + ms(500)));
    assert!(l.wants_probe(t0 + ms(600)), "a keep-alive interval later");
    // Our direction is cut: the peer's keep-alives keep arriving, no answer does.
    l.probed(t0 + ms(600));
    for t in (700..=1500).step_by(100) {
        assert!(!l.observe(heard(t, 1), ms(1), t0 + ms(t)), "{t}");
        if l.wants_probe(t0 + ms(t)) {
            assert_eq!(t, 1100, "sent again a keep-alive interval later");
            l.probed(t0 + ms(t));
        }
    }
    assert!(l.observe(heard(1600, 1), ms(1), t0 + ms(1501)));
    assert!(l.wants_replacement(t0 + ms(2400)));
    assert!(
        !l.observe(heard(1700, 2), ms(1), t0 + ms(2500)),
        "answered again"
    );
}

#[test]
fn a_peer_that_never_answers_probes_is_judged_by_silence_alone() {
    // An older gateway ignores probes: nothing changes for it.
    let t0 = Instant::now();
    let mut l = Liveness::new(ms(900), ms(500), t0);
    for t in (0..5000).step_by(100) {
        if l.wants_probe(t0 + ms(t)) {
            l.probed(t0 + ms(t));
        }
        assert!(!l.observe(heard(t + 1, 0), ms(1), t0 + ms(t)), "{t}");
    }
}

#[test]
fn replacements_are_dialled_at_doubling_silences() {
    let t0 = Instant::now();
    let mut l = Liveness::new(ms(900), ms(500), t0);
    let due: Vec<u64> = (0..100)
        .map(|i| i * 100)
        .filter(|&at| l.wants_replacement(t0 + ms(at)))
        .collect();
    assert_eq!(due, [1800, 3600, 7200]);
    l.observe(heard(1, 0), ms(1), t0 + ms(9000));
    assert!(
        !l.wants_replacement(t0 + ms(9100)),
        "heard again: the count starts over"
    );
    assert!(l.wants_replacement(t0 + ms(10800)));
}
