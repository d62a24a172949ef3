use std::time::Duration;

use super::*;

const ONE: &str = r#"# TYPE causeway_gateway_peer_rtt_seconds gauge
causeway_gateway_peer_rtt_seconds{cluster="bravo",address="127.0.0.1:1",slot="0"} 0.004
causeway_gateway_peer_rtt_seconds{cluster="bravo",address="127.0.0.1:1",slot="1"} 0.0025
causeway_gateway_peer_transport{cluster="bravo",transport="quic"} 0
causeway_gateway_peer_transport{cluster="bravo",transport="tcp"} 1
causeway_gateway_peer_bytes_total{cluster="bravo",address="127.0.0.1:1",slot="0",direction="sent"} 1000
causeway_gateway_peer_bytes_total{cluster="bravo",address="127.0.0.1:1",slot="1",direction="sent"} 500
causeway_gateway_peer_bytes_total{cluster="bravo",address="127.0.0.1:1",slot="0",direction="received"} 200
causeway_gateway_streams_total{cluster="bravo",direction="outbound",status="ok"} 3
causeway_gateway_streams_total{cluster="bravo",direction="outbound",status="refused"} 1
causeway_gateway_streams_total{cluster="bravo",direction="inbound",status="ok"} 2
causeway_gateway_service_bytes_total{service="demo/x",direction="outbound",flow="request"} 9
causeway_federation_peer_rtt{peer="bravo"} 7
"#;

#[test]
fn reads_per_peer_series() {
    let r = read(ONE);
    assert_eq!(r.rtt.get("bravo"), Some(&0.0025), "lowest over slots");
    assert_eq!(r.transport.get("bravo").map(String::as_str), Some("tcp"));
    let t = r.totals["bravo"];
    assert_eq!(
        t,
        Totals {
            sent_bytes: 1500.0,
            received_bytes: 200.0,
            outbound_streams: 4.0,
            inbound_streams: 2.0,
        }
    );
    assert_eq!(
        r.totals.len(),
        1,
        "series without a cluster label are ignored"
    );
}

#[test]
fn rates_are_differences_over_time() {
    let prev = read(ONE).totals;
    let now_text = ONE
        .replace("} 1000", "} 3000")
        .replace("status=\"ok\"} 3", "status=\"ok\"} 7");
    let now = read(&now_text).totals;
    let r = rates(&prev, &now, Duration::from_millis(500))["bravo"];
    assert_eq!(r.sent_bytes_per_s, 4000.0);
    assert_eq!(r.received_bytes_per_s, 0.0);
    assert_eq!(r.outbound_streams_per_s, 8.0);
    assert_eq!(r.inbound_streams_per_s, 0.0);
}

#[test]
fn restarted_counters_and_new_peers_count_from_zero() {
    let mut prev = BTreeMap::new();
    let big = Totals {
        sent_bytes: 1e9,
        ..Totals::default()
    };
    prev.insert("bravo".to_owned(), big);
    let mut now = BTreeMap::new();
    let small = Totals {
        sent_bytes: 100.0,
        inbound_streams: 2.0,
        ..Totals::default()
    };
    now.insert("bravo".to_owned(), small);
    now.insert("charlie".to_owned(), small);
    let r = rates(&prev, &now, Duration::from_secs(2));
    assert_eq!(r["bravo"].sent_bytes_per_s, 50.0);
    assert_eq!(r["charlie"].inbound_streams_per_s, 1.0);
    assert!(rates(&prev, &now, Duration::ZERO).is_empty());
}

#[test]
fn escaped_label_values() {
    let line = r#"x_gateway_peer_transport{transport="quic",cluster="a\"b"} 1"#;
    assert_eq!(
        read(line).transport.get("a\"b").map(String::as_str),
        Some("quic")
    );
}
