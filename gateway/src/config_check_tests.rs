use super::*;

fn parse(yaml: &str) -> Result<Config, String> {
    serde_saphyr::from_str::<Config>(yaml).map_err(|e| e.to_string())
}

#[test]
fn defaults_are_valid_and_match_empty_yaml() {
    let c = Config {
        listen: "127.0.0.1:15443".parse().unwrap(),
        ..Config::default()
    };
    c.validate().unwrap();
    let parsed = parse("listen: 127.0.0.1:15443\n").unwrap();
    assert_eq!(parsed, c);
    assert_eq!(c.connections.idle_timeout, Duration::from_secs(20));
    assert_eq!(c.connections.liveness, Duration::from_millis(750));
    assert_eq!(c.transport.congestion, crate::config::Congestion::Bbr);
}

#[test]
fn parses_every_section() {
    let yaml = "listen: 127.0.0.1:1\ntimeouts: {connect: 500ms, status: 2s}\n\
        limits: {max_streams_per_peer: 10}\nconnections: {keep_alive: 100ms, liveness: 300ms, idle_timeout: 10s, per_peer: 3}\n\
        workers: 2\n\
        locality: {prefer_local: false, failover: {\"ns/web\": [b, c]}}\n\
        ejection: {base_time: 1s}\ntransport: {splice_buffer: 16384}\ndrain_deadline: 3s\n";
    let c = parse(yaml).unwrap();
    c.validate().unwrap();
    assert_eq!(c.timeouts.connect, Duration::from_millis(500));
    assert_eq!(c.locality.failover.values().next().unwrap().len(), 2);
    assert_eq!((c.worker_count(), c.connections_per_peer()), (2, 3));
}

#[test]
fn connections_per_peer_default_to_one_per_worker_at_most_four() {
    let mut c = parse("listen: 127.0.0.1:1\nworkers: 2\n").unwrap();
    assert_eq!(c.connections_per_peer(), 2);
    c.workers = Some(16);
    assert_eq!(c.connections_per_peer(), 4);
    c.workers = Some(0);
    let msg = c.validate().unwrap_err().to_string();
    assert!(msg.contains("gateway.workers is 0; use 1 to 1024"), "{msg}");
}

#[test]
fn a_liveness_timer_that_could_not_fire_is_refused() {
    let mut c = parse("listen: 127.0.0.1:1\n").unwrap();
    c.connections.idle_timeout = c.connections.liveness;
    let msg = c.validate().unwrap_err().to_string();
    assert!(
        msg.contains("connections.idle_timeout")
            && msg.contains("longer than connections.liveness"),
        "{msg}"
    );
    let mut c = parse("listen: 127.0.0.1:1\n").unwrap();
    c.connections.idle_timeout = Duration::from_secs(1 << 40);
    assert!(c.validate().unwrap_err().to_string().contains("at most 1h"));
}

#[test]
fn unknown_keys_are_refused() {
    assert!(parse("listen: 127.0.0.1:1\ntimeouts: {conect: 1s}\n").is_err());
}

#[test]
fn errors_name_key_value_and_fix() {
    let mut c = parse("listen: 127.0.0.1:1\n").unwrap();
    c.connections.keep_alive = Duration::from_secs(2);
    let msg = c.validate().unwrap_err().to_string();
    assert!(msg.contains("connections.keep_alive") && msg.contains("2s") && msg.contains("below"));
    let mut c = parse("listen: 127.0.0.1:1\n").unwrap();
    c.limits.max_attempts = 0;
    let msg = c.validate().unwrap_err().to_string();
    assert!(
        msg.contains("limits.max_attempts is 0; use 1 to 100"),
        "{msg}"
    );
    let mut c = parse("listen: 127.0.0.1:1\n").unwrap();
    c.timeouts.status = c.timeouts.connect;
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("timeouts.status")
    );
}

#[test]
fn a_connection_window_of_few_stream_windows_is_refused() {
    let yaml = "listen: 127.0.0.1:1\ntransport: {stream_receive_window: 4194304, receive_window: 16777216}\n";
    let msg = parse(yaml).unwrap().validate().unwrap_err().to_string();
    assert!(
        msg.contains("transport.receive_window is 16777216")
            && msg.contains("8 x transport.stream_receive_window"),
        "{msg}"
    );
    let yaml = "listen: 127.0.0.1:1\ntransport: {stream_receive_window: 2097152, receive_window: 16777216}\n";
    parse(yaml).unwrap().validate().unwrap();
}

#[test]
fn congestion_controllers_parse_and_unknown_ones_are_named() {
    let c = parse("listen: 127.0.0.1:1\ntransport: {congestion: bbr}\n").unwrap();
    assert_eq!(c.transport.congestion, crate::config::Congestion::Bbr);
    assert_eq!(
        parse("listen: 127.0.0.1:1\ntransport: {congestion: cubic}\n")
            .unwrap()
            .transport
            .congestion,
        crate::config::Congestion::Cubic
    );
    let msg = parse("listen: 127.0.0.1:1\ntransport: {congestion: vegas}\n").unwrap_err();
    assert!(msg.contains("vegas") && msg.contains("bbr"), "{msg}");
}

#[test]
fn duplicate_failover_entry_is_refused() {
    let c = parse("listen: 127.0.0.1:1\nlocality: {failover: {\"ns/web\": [b, b]}}\n").unwrap();
    let msg = c.validate().unwrap_err().to_string();
    assert!(msg.contains("ns/web") && msg.contains("twice"), "{msg}");
}
