use super::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn start(t: &mut Table<u32>, from: SocketAddr, now: Instant) -> u64 {
    match t.datagram(from, b"first", false, now) {
        Verdict::Start(seq) => seq,
        _ => panic!("a new client starts a flow"),
    }
}

#[test]
fn a_new_client_starts_one_flow_and_its_datagrams_wait_for_it() {
    let mut t = Table::default();
    let now = Instant::now();
    let seq = start(&mut t, addr(1), now);
    for i in 1..OPENING_QUEUE {
        assert!(matches!(
            t.datagram(addr(1), &[i as u8], false, now),
            Verdict::Queued
        ));
    }
    assert!(matches!(
        t.datagram(addr(1), b"x", false, now),
        Verdict::Drop("queue_full")
    ));
    let queued = t.opened(addr(1), seq, 7).unwrap_or_default();
    assert_eq!(queued.len(), OPENING_QUEUE);
    assert_eq!(&queued[0][..], b"first", "in arrival order");
    assert!(matches!(
        t.datagram(addr(1), b"y", false, now),
        Verdict::Send(7)
    ));
}

#[test]
fn past_the_cap_new_clients_are_dropped_but_open_flows_carry_on() {
    let mut t = Table::default();
    let now = Instant::now();
    let seq = start(&mut t, addr(1), now);
    assert!(t.opened(addr(1), seq, 1).is_ok());
    assert!(matches!(
        t.datagram(addr(2), b"x", true, now),
        Verdict::Drop("flow_cap")
    ));
    assert!(matches!(
        t.datagram(addr(1), b"x", true, now),
        Verdict::Send(1)
    ));
    assert_eq!(t.len(), 1);
}

#[test]
fn a_refused_client_is_held_off_until_its_time_then_tried_again() {
    let mut t = Table::default();
    let now = Instant::now();
    let seq = start(&mut t, addr(1), now);
    t.refused(addr(1), seq, now + Duration::from_secs(1));
    assert!(matches!(
        t.datagram(addr(1), b"x", false, now),
        Verdict::Drop("refused")
    ));
    let later = now + Duration::from_secs(1);
    assert!(matches!(t.datagram(addr(1), b"x", false, later), Verdict::Start(s) if s > seq));
}

#[test]
fn an_old_flows_events_do_not_touch_the_clients_new_flow() {
    let mut t = Table::default();
    let now = Instant::now();
    let old = start(&mut t, addr(1), now);
    assert!(t.opened(addr(1), old, 1).is_ok());
    assert_eq!(t.ended(addr(1), old), Some(1));
    let new = start(&mut t, addr(1), now);
    assert_eq!(t.ended(addr(1), old), None, "stale end");
    t.refused(addr(1), old, now + Duration::from_secs(9));
    assert_eq!(
        t.opened(addr(1), old, 5),
        Err(5),
        "stale open gives the sink back"
    );
    assert!(t.opened(addr(1), new, 2).is_ok());
    assert!(matches!(
        t.datagram(addr(1), b"x", false, now),
        Verdict::Send(2)
    ));
}

#[test]
fn idle_flows_and_expired_refusals_are_swept_opening_ones_stay() {
    let mut t: Table<u32> = Table::default();
    let now = Instant::now();
    let (a, b, c, d) = (addr(1), addr(2), addr(3), addr(4));
    let sa = start(&mut t, a, now);
    let sb = start(&mut t, b, now);
    let sc = start(&mut t, c, now);
    start(&mut t, d, now);
    assert!(t.opened(a, sa, 10).is_ok());
    assert!(t.opened(b, sb, 20).is_ok());
    t.refused(c, sc, now + Duration::from_secs(1));
    // Flow 10 has been idle for 40 s, flow 20 for 1 s.
    let idle_of = |s: &u32| Duration::from_secs(if *s == 10 { 40 } else { 1 });
    let gone = t.sweep(
        now + Duration::from_secs(2),
        Duration::from_secs(30),
        idle_of,
    );
    assert_eq!(gone, vec![10]);
    assert_eq!(t.len(), 2, "b open, d still opening");
    assert_eq!(t.drain(), vec![20]);
}
