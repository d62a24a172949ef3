use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::new(Some(dir.path())).unwrap();
    (dir, s)
}

const ID: &str = "0123456789abcdef";

#[test]
fn a_token_redeems_once() {
    let (_d, s) = store();
    s.issue(ID, "secret", 100).unwrap();
    assert_eq!(s.redeem(ID, "secret", 50), Ok(()));
    assert_eq!(s.redeem(ID, "secret", 51), Err(Refusal::Redeemed));
}

#[test]
fn an_expired_token_is_refused_and_stays_unredeemed() {
    let (_d, s) = store();
    s.issue(ID, "secret", 100).unwrap();
    assert_eq!(s.redeem(ID, "secret", 100), Err(Refusal::Expired));
    assert_eq!(s.redeem(ID, "secret", 99), Ok(()));
}

#[test]
fn unknown_ids_and_wrong_secrets_read_the_same() {
    let (_d, s) = store();
    s.issue(ID, "secret", 100).unwrap();
    assert_eq!(s.redeem(ID, "guess", 50), Err(Refusal::Refused));
    assert_eq!(
        s.redeem("fedcba9876543210", "secret", 50),
        Err(Refusal::Refused)
    );
    // A wrong secret says nothing about a redeemed or expired token either.
    s.redeem(ID, "secret", 50).unwrap();
    assert_eq!(s.redeem(ID, "guess", 50), Err(Refusal::Refused));
    assert_eq!(s.redeem(ID, "guess", 500), Err(Refusal::Refused));
}

#[test]
fn ids_that_are_not_sixteen_hex_digits_never_reach_the_file_system() {
    let (d, s) = store();
    std::fs::write(d.path().join("evil.json"), b"{}").unwrap();
    for id in ["../../evil", "../links", "0123456789ABCDEF", ""] {
        assert_eq!(s.redeem(id, "x", 0), Err(Refusal::Refused), "{id}");
    }
}

#[test]
fn the_file_keeps_only_the_secret_hash() {
    let (_d, s) = store();
    s.issue(ID, "very-secret-value", 100).unwrap();
    let text = std::fs::read_to_string(s.dir().join("tokens").join(format!("{ID}.json"))).unwrap();
    assert!(!text.contains("very-secret-value"), "{text}");
}

#[test]
fn records_of_long_expired_tokens_are_pruned() {
    let (_d, s) = store();
    let other = "fedcba9876543210";
    s.issue(ID, "a", 100).unwrap();
    s.issue(other, "b", 300).unwrap();
    s.prune(200);
    assert_eq!(s.redeem(ID, "a", 0), Err(Refusal::Refused));
    assert_eq!(s.redeem(other, "b", 0), Ok(()));
}

fn peer(name: &str) -> LinkedPeer {
    LinkedPeer {
        name: name.parse().unwrap(),
        trust_domain: format!("{name}.test").parse().unwrap(),
        federation: "127.0.0.1:1".into(),
        link: "127.0.0.1:2".into(),
        rotation_until: None,
    }
}

#[test]
fn links_add_rotate_finish_remove() {
    let (_d, s) = store();
    let east: ClusterId = "east".parse().unwrap();
    s.add(peer("east"), b"OLD\n").unwrap();
    assert_eq!(s.links().unwrap().peers, vec![peer("east")]);
    s.rotate(&east, b"NEW\n", 10).unwrap();
    assert_eq!(std::fs::read(s.ca_path(&east)).unwrap(), b"OLD\nNEW\n");
    assert!(s.finish_rotations(9).unwrap().is_empty());
    assert_eq!(s.finish_rotations(10).unwrap(), vec![east.clone()]);
    assert_eq!(std::fs::read(s.ca_path(&east)).unwrap(), b"NEW\n");
    assert_eq!(s.links().unwrap().peers[0].rotation_until, None);
    assert!(s.remove(&east).unwrap());
    assert!(!s.ca_path(&east).exists());
    assert!(s.links().unwrap().peers.is_empty());
    assert!(!s.remove(&east).unwrap());
}

#[test]
fn a_checked_token_stays_redeemable_until_consumed() {
    let (_d, s) = store();
    s.issue(ID, "secret", 100).unwrap();
    assert_eq!(s.check(ID, "secret", 50), Ok(()));
    assert_eq!(s.check(ID, "secret", 50), Ok(()));
    s.consume(ID).unwrap();
    assert_eq!(s.check(ID, "secret", 50), Err(Refusal::Redeemed));
}

#[test]
fn concurrent_writers_in_separate_stores_lose_no_update() {
    let (d, _) = store();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let s = Store::new(Some(d.path())).unwrap();
            std::thread::spawn(move || {
                for i in 0..15 {
                    let name: ClusterId = format!("p{t}x{i}").parse().unwrap();
                    let peer = LinkedPeer {
                        trust_domain: format!("{name}.example").parse().unwrap(),
                        name,
                        federation: "h:1".into(),
                        link: "h:2".into(),
                        rotation_until: None,
                    };
                    s.add(peer, b"ca").unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = Store::new(Some(d.path())).unwrap();
    assert_eq!(s.links().unwrap().peers.len(), 8 * 15);
}
