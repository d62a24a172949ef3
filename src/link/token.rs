//! The link token: one line a cluster's operator hands to the operator of
//! the cluster that will link to it. It names the issuer and where to reach
//! it, pins the issuer's CA bundle by its SHA-256, and carries a one-time
//! secret (128 random bits) whose hash only the issuer keeps.
//!
//! Encoding: `cwt1.` followed by base64url (no padding) of a small JSON object.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Version 1 of the encoding; another version is refused by name.
pub const PREFIX: &str = "cwt1.";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// The issuing cluster's name.
    #[serde(rename = "c")]
    pub cluster: String,
    #[serde(rename = "t")]
    pub trust_domain: String,
    /// host:port of the issuer's federation listener.
    #[serde(rename = "f")]
    pub federation: String,
    /// host:port of the issuer's link endpoint.
    #[serde(rename = "l")]
    pub link: String,
    /// SHA-256 (hex) of the issuer's CA bundle file.
    #[serde(rename = "p")]
    pub pin: String,
    /// Names the token at the issuer (16 hex digits, not secret).
    #[serde(rename = "i")]
    pub id: String,
    /// 128 random bits (32 hex digits).
    #[serde(rename = "s")]
    pub secret: String,
    /// Unix seconds after which the issuer refuses it.
    #[serde(rename = "e")]
    pub expires: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    #[error(
        "this is not a causeway link token (one starts with {PREFIX}); copy the whole line `causeway token issue` printed"
    )]
    NotAToken,
    #[error("the token is damaged ({0}); copy the whole line again, or ask for a new token")]
    Damaged(String),
}

impl Token {
    pub fn encode(&self) -> String {
        // Serialising plain strings and a number cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    pub fn decode(text: &str) -> Result<Self, TokenError> {
        let body = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(TokenError::NotAToken)?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| TokenError::Damaged(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| TokenError::Damaged(e.to_string()))
    }

    pub fn expired(&self, now_unix: u64) -> bool {
        now_unix >= self.expires
    }
}

/// SHA-256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

/// `n` random bytes from the system's generator, as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut buf)?;
    Ok(hex(&buf))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token {
            cluster: "east".into(),
            trust_domain: "east.demo.causeway".into(),
            federation: "east.example.com:15010".into(),
            link: "east.example.com:15012".into(),
            pin: sha256_hex(b"ca"),
            id: random_hex(8).unwrap(),
            secret: random_hex(16).unwrap(),
            expires: 1_000,
        }
    }

    #[test]
    fn a_token_round_trips_and_fits_a_command_line() {
        let t = token();
        let text = t.encode();
        assert!(text.len() < 400, "{} chars", text.len());
        assert!(
            text.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        );
        assert_eq!(Token::decode(&text).unwrap(), t);
        assert_eq!(t.secret.len(), 32, "128 bits");
    }

    #[test]
    fn damaged_or_foreign_text_is_refused_by_name() {
        assert_eq!(Token::decode("hello"), Err(TokenError::NotAToken));
        let text = token().encode();
        let cut = &text[..text.len() - 7];
        assert!(matches!(Token::decode(cut), Err(TokenError::Damaged(_))));
    }

    #[test]
    fn expiry_is_inclusive() {
        let t = token();
        assert!(!t.expired(999));
        assert!(t.expired(1_000));
    }

    #[test]
    fn secrets_differ() {
        assert_ne!(random_hex(16).unwrap(), random_hex(16).unwrap());
    }
}
