//! Linking by token over real `causeway run` processes: issue, redeem, bytes
//! through the tunnel, the refusals (reused, expired, forged, tampered, a
//! third cluster's pin, guessing), unlink on both sides, and a CA rotation
//! whose old CA stops being trusted when the overlap ends, all without a restart.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::Ipv4Addr;

use causeway::link::token::{Token, now_unix, random_hex};
use causeway::link::wire;
use support::link::*;
use support::wait_for;

#[tokio::test]
async fn a_token_links_both_ways_once_and_unlink_removes_both_sides() {
    let mut mesh = unlinked(2, 22000, Ipv4Addr::new(127, 101, 0, 0)).await;
    let token = issue(&mesh, 1, "1h");
    assert!(token.len() < 500, "{} chars", token.len());
    let (ok, out, err) = redeem(&mesh, 0, &token);
    assert!(ok, "redeem failed: {err}\n{}", mesh.logs());
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["linked"], "bravo");

    wait_peers(&mesh, 0, &["bravo"]).await;
    wait_peers(&mesh, 1, &["alpha"]).await;
    // Both ways: each imports the other's own service.
    mesh.wait_linked(LINK).await;
    echo_through_alpha(&mesh, 256 * 1024).await;

    // The link survives a restart: alpha loads it from its state_dir.
    mesh.kill(0);
    mesh.start(0);
    wait_peers(&mesh, 0, &["bravo"]).await;
    mesh.wait_linked(LINK).await;
    echo_through_alpha(&mesh, 64 * 1024).await;

    // doctor checks the linked peer like a configured one.
    let alpha = config(&mesh, 0);
    let out = cli(&["doctor", "--json", "--config", &alpha, "--peer", "bravo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("bravo"), "{text}");

    let (ok, _, err) = redeem(&mesh, 0, &token);
    assert!(!ok);
    assert!(err.contains("token already redeemed"), "{err}");
    // A link refused for another reason (alpha is already a peer) leaves the
    // token unused: it links them again after the unlink below.
    let spare = issue(&mesh, 1, "10m");
    let (ok, _, err) = redeem(&mesh, 0, &spare);
    assert!(!ok && err.contains("is already a peer of bravo"), "{err}");

    let out = cli(&["unlink", "bravo", "--config", &config(&mesh, 0), "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "unlink: {err}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["peer_told"], true);
    wait_peers(&mesh, 0, &[]).await;
    wait_peers(&mesh, 1, &[]).await;
    wait_for("alpha to drop demo/echo", LINK, || async {
        mesh.vip(0, "echo").await.is_none().then_some(())
    })
    .await;

    // The spare token links them again, still without a restart (read from
    // stdin this time, out of `ps`).
    let mut child = std::process::Command::new(support::BIN)
        .args(["token", "redeem", "-", "--config", &alpha])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), spare.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_peers(&mesh, 1, &["alpha"]).await;
    echo_through_alpha(&mesh, 64 * 1024).await;
}

#[tokio::test]
async fn expired_forged_tampered_and_foreign_tokens_are_refused() {
    let mut mesh = unlinked(3, 22200, Ipv4Addr::new(127, 102, 0, 0)).await;
    let refused = |token: &str, want: &str| {
        let (ok, _, err) = redeem(&mesh, 0, token);
        assert!(!ok, "redeemed a bad token");
        assert!(err.contains(want), "expected {want:?} in: {err}");
    };

    // Issuing checks what it is told.
    let bravo = config(&mesh, 1);
    let out = cli(&["token", "issue", "--config", &bravo, "--cluster", "alpha"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is cluster bravo's config"),
        "{err}"
    );
    let out = cli(&["token", "issue", "--config", &bravo, "--expires", "30d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("at most 7d"), "{err}");

    // Expired, seen by the redeemer.
    let short = issue(&mesh, 1, "1s");
    let t = Token::decode(&short).unwrap();
    wait_for("the token to expire", LINK, || async {
        (now_unix() >= t.expires).then_some(())
    })
    .await;
    refused(&short, "token expired");
    // Expired, seen by the issuer (the redeemer told otherwise).
    let lying = Token {
        expires: now_unix() + 3600,
        ..t
    }
    .encode();
    refused(&lying, "bravo refused: token expired");

    // Forged: a wrong secret and an unknown id get the same answer.
    let good = Token::decode(&issue(&mesh, 1, "1h")).unwrap();
    let forged = Token {
        secret: random_hex(16).unwrap(),
        ..good.clone()
    };
    refused(
        &forged.encode(),
        "token refused: unknown token or wrong secret",
    );
    let unknown = Token {
        id: random_hex(8).unwrap(),
        ..good.clone()
    };
    refused(
        &unknown.encode(),
        "token refused: unknown token or wrong secret",
    );

    // Tampered: one character of the text changed, or the pin changed.
    let mut bytes = good.encode().into_bytes();
    let at = causeway::link::token::PREFIX.len();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    refused(&String::from_utf8(bytes).unwrap(), "the token is damaged");
    let mut pin = good.pin.clone().into_bytes();
    pin[0] = if pin[0] == b'0' { b'1' } else { b'0' };
    let repinned = Token {
        pin: String::from_utf8(pin).unwrap(),
        ..good.clone()
    };
    refused(
        &repinned.encode(),
        "is not the cluster that issued this token",
    );

    // charlie's token pointed at bravo: bravo's CA is not the pinned one, so
    // the secret is never sent.
    let foreign = Token::decode(&issue(&mesh, 2, "1h")).unwrap();
    let aimed = Token {
        link: good.link.clone(),
        ..foreign
    };
    refused(&aimed.encode(), "is not the cluster that issued this token");

    for i in 0..3 {
        wait_peers(&mesh, i, &[]).await;
    }
    // The forged attempts did not burn the genuine token.
    let (ok, _, err) = redeem(&mesh, 0, &good.encode());
    assert!(ok, "{err}");
    wait_peers(&mesh, 1, &["alpha"]).await;

    // Guessing is bounded: within a minute bravo stops answering redemptions,
    // even a genuine one.
    let flooded = (0..=causeway::link::server::REDEEMS_PER_MINUTE).any(|_| {
        let guess = Token {
            secret: random_hex(16).unwrap(),
            ..good.clone()
        };
        let (ok, _, err) = redeem(&mesh, 2, &guess.encode());
        assert!(!ok);
        err.contains("too many link attempts")
    });
    assert!(
        flooded,
        "{} redemptions in a row were all answered",
        causeway::link::server::REDEEMS_PER_MINUTE + 1
    );
    let (ok, _, err) = redeem(&mesh, 2, &issue(&mesh, 1, "1h"));
    assert!(!ok && err.contains("too many link attempts"), "{err}");
    // The limit is per source address: another one is still answered.
    let card = causeway::link::local_card(
        &causeway::config::Config::load(std::path::Path::new(&config(&mesh, 2))).unwrap(),
    )
    .unwrap();
    let guess = wire::Request::Redeem {
        id: good.id.clone(),
        secret: random_hex(16).unwrap(),
        card,
    };
    let answer = unauthenticated(link_addr(&mesh, 1), Some([127, 0, 0, 77].into()), &guess).await;
    assert!(
        matches!(&answer, wire::Response::Refused { reason } if reason.contains("unknown token or wrong secret")),
        "{answer:?}"
    );

    // Unlink without a linked peer's certificate is refused.
    let answer = unauthenticated(link_addr(&mesh, 1), None, &wire::Request::Unlink).await;
    assert!(
        matches!(&answer, wire::Response::Refused { reason } if reason.contains("needs a linked peer's federation certificate")),
        "{answer:?}"
    );
    wait_peers(&mesh, 1, &["alpha"]).await;

    // A peer that cannot be told is removed here only, and only with --force.
    mesh.kill(1);
    let alpha = config(&mesh, 0);
    let out = cli(&["unlink", "bravo", "--config", &alpha]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--force"), "{err}");
    let out = cli(&["unlink", "bravo", "--config", &alpha, "--force", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["peer_told"], false);
    wait_peers(&mesh, 0, &[]).await;
}

#[tokio::test]
async fn a_rotated_ca_is_trusted_at_once_and_the_old_one_only_until_the_overlap_ends() {
    let mut mesh = unlinked(2, 22400, Ipv4Addr::new(127, 103, 0, 0)).await;
    let (ok, _, err) = redeem(&mesh, 0, &issue(&mesh, 1, "1h"));
    assert!(ok, "{err}");
    mesh.wait_linked(LINK).await;
    echo_through_alpha(&mesh, 64 * 1024).await;

    let b = mesh.c(1).dir.clone();
    let old = b.join("old");
    std::fs::create_dir_all(&old).unwrap();
    for f in ["federation.pem", "federation-key.pem"] {
        std::fs::copy(b.join(f), old.join(f)).unwrap();
    }
    let next = b.join("next-ca");
    let next_s = next.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    run(&[
        "ca",
        "init",
        "--cluster",
        "bravo",
        "--trust-domain",
        "bravo.dev.causeway",
        "--out",
        next_s,
    ]);
    let bundle = next.join("ca.pem");
    // alpha is down when bravo rotates: it hears of the rotation over the
    // federation channel once it is back, nothing pushed to it is lost.
    mesh.kill(0);
    let out = run(&[
        "ca",
        "rotate",
        "--config",
        &config(&mesh, 1),
        "--bundle",
        bundle.to_str().unwrap(),
        "--overlap",
        "30s",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["linked_peers"], serde_json::json!(["alpha"]), "{json}");
    mesh.start(0);
    let took = mesh.c(0).state_dir().join("links/bravo-ca-next.pem");
    let want = std::fs::read_to_string(&bundle).unwrap();
    wait_for("alpha to take bravo's rotation", LINK, || async {
        (std::fs::read_to_string(&took).ok()? == want).then_some(())
    })
    .await;
    for w in ["gateway", "federation"] {
        let dir = b.to_str().unwrap();
        run(&[
            "ca",
            "issue",
            "--ca",
            next_s,
            "--workload",
            w,
            "--out",
            dir,
            "--force",
        ]);
    }

    // During the overlap alpha accepts bravo's certificates from both CAs.
    let link = link_addr(&mesh, 0);
    wait_for("alpha to accept bravo's new certificate", LINK, || async {
        alpha_accepts(&mesh, &b, link).await.ok()
    })
    .await;
    alpha_accepts(&mesh, &old, link).await.unwrap();
    echo_through_alpha(&mesh, 64 * 1024).await;

    // After it, the old CA's certificate is refused; the new one still works.
    wait_for(
        "alpha to refuse bravo's old-CA certificate",
        LINK,
        || async { alpha_accepts(&mesh, &old, link).await.err() },
    )
    .await;
    alpha_accepts(&mesh, &b, link).await.unwrap();
    echo_through_alpha(&mesh, 64 * 1024).await;
    wait_peers(&mesh, 0, &["bravo"]).await;
}
