use super::*;
use crate::spec::HashKey;

fn parse(yaml: &str) -> Result<Policies, String> {
    let specs: Vec<PolicySpec> = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
    Policies::from_config(&specs).map_err(|e| e.to_string())
}

fn key(s: &str) -> ServiceKey {
    s.parse().unwrap()
}

#[test]
fn a_full_policy_parses() {
    let p = parse(
        r#"
- service: shop/cart
  port: 8080
  split: { east: 90, west: 10 }
  hash: client_ip
  fault: { delay: 50ms, abort_percent: 25, sources: [east] }
  mirror: { cluster: north }
  connect_timeout: 2s
  attempts: 2
  failover: [west, east]
  limits:
    each_source: { connections_per_second: 200, burst: 10, max_connections: 50 }
    sources: { west: { bytes_per_second: 12500000 } }
"#,
    )
    .unwrap();
    let sp = p.find(&key("shop/cart"), 8080).unwrap();
    assert_eq!(sp.spec.hash, Some(HashKey::ClientIp));
    let f = sp.spec.fault.as_ref().unwrap();
    assert_eq!((f.delay_percent, f.abort_percent), (100.0, 25.0));
    assert_eq!(sp.spec.mirror.as_ref().unwrap().buffer_bytes, 1 << 20);
    let l = sp.spec.limits.as_ref().unwrap();
    let west = l.for_source(&"west".parse().unwrap());
    assert_eq!(west.connections_per_second, Some(200.0));
    assert_eq!(west.bytes_per_second, Some(12_500_000));
    assert_eq!(
        l.for_source(&"east".parse().unwrap()).bytes_per_second,
        None
    );
    assert!(p.find(&key("shop/cart"), 9090).is_none());
}

#[test]
fn a_ports_own_policy_wins_over_the_services() {
    let p = parse(
        "- { service: shop/cart, attempts: 1 }\n- { service: shop/cart, port: 80, attempts: 2 }",
    )
    .unwrap();
    assert_eq!(
        p.find(&key("shop/cart"), 80).unwrap().spec.attempts,
        Some(2)
    );
    assert_eq!(
        p.find(&key("shop/cart"), 81).unwrap().spec.attempts,
        Some(1)
    );
}

#[test]
fn bad_policies_are_refused_naming_the_place_and_value() {
    for (yaml, wants) in [
        (
            "- { service: cart }",
            "policies[0]: service \"cart\" is not namespace/name",
        ),
        (
            "- { service: a/b }\n- { service: a/b }",
            "policies[1]: a second policy for a/b",
        ),
        (
            "- { service: a/b, split: { east: 0 } }",
            "every weight is 0",
        ),
        (
            "- { service: a/b, fault: { abort_percent: 101 } }",
            "fault.abort_percent: 101",
        ),
        (
            "- { service: a/b, fault: { delay: 10m } }",
            "fault.delay: 600s is out of range",
        ),
        (
            "- { service: a/b, attempts: 0 }",
            "attempts: 0 is out of range; valid: 1 to 10",
        ),
        (
            "- { service: a/b, failover: [x, x] }",
            "failover: cluster x is listed twice",
        ),
        ("- { service: a/b, port: 0 }", "port: 0"),
        (
            "- { service: a/b, connect_timeout: 0s }",
            "connect_timeout: 0s",
        ),
        (
            "- { service: a/b, mirror: { cluster: w, buffer_bytes: 10 } }",
            "mirror.buffer_bytes: 10",
        ),
        (
            "- { service: a/b, limits: { sources: { w: { connections_per_second: 0 } } } }",
            "limits.sources.w.connections_per_second: 0",
        ),
        (
            "- { service: a/b, limits: { each_source: { burst: 0 } } }",
            "limits.each_source.burst: 0",
        ),
        (
            "- { service: a/b, limits: { each_source: { bytes_per_second: 10 } } }",
            "at least 1024",
        ),
    ] {
        let e = parse(yaml).unwrap_err();
        assert!(e.contains(wants), "{yaml}: {e}");
    }
}

#[test]
fn unknown_keys_and_bad_names_are_named() {
    let e = parse("- { service: a/b, splitt: { east: 1 } }").unwrap_err();
    assert!(e.contains("splitt"), "{e}");
    let e = parse("- { service: a/b, split: { East_1: 1 } }").unwrap_err();
    assert!(e.contains("East_1"), "{e}");
    let e = parse("- { service: a/b, hash: cookie }").unwrap_err();
    assert!(e.contains("cookie"), "{e}");
}
