//! The native webhooks' signature (`/v1/inbound`, `/v1/dlr`). Pure.
//!
//! `X-Stopgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`
//! under `inbound.secret`. The time makes a captured request useless after
//! the tolerance (300 s by default); within it, the caller refuses a
//! signature it has seen before. Several `v1=` entries may be given (a
//! sender rotating secrets); one that matches is enough.
//!
//! The old untimed form `sha256=<hex HMAC of the body>` is accepted only
//! when the operator enables it (`inbound.legacy_signature`) while senders
//! migrate: it can be replayed for as long as the replay records are kept.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "x-stopgate-signature";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the webhook is disabled: inbound.secret is not set")]
    NoSecret,
    #[error("missing X-Stopgate-Signature header")]
    Missing,
    #[error("X-Stopgate-Signature must be t=<unix seconds>,v1=<64 hex digits>")]
    Malformed,
    #[error("X-Stopgate-Signature is the untimed sha256= form, which inbound.legacy_signature does not allow")]
    LegacyRefused,
    #[error("X-Stopgate-Signature timestamp is {0} s away from now (tolerance exceeded)")]
    Stale(i64),
    #[error("X-Stopgate-Signature does not match the body")]
    Mismatch,
}

/// What the checks accept.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Largest accepted distance between the signature's time and now, in seconds.
    pub tolerance_secs: i64,
    /// Whether the untimed `sha256=` form is accepted.
    pub legacy: bool,
}

/// A signature that checked out: the MAC that matched, which identifies this
/// exact request (for replay protection), and its time (none for legacy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub mac: [u8; 32],
    pub timestamp: Option<i64>,
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length")
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out).ok()?;
    Some(out)
}

/// Checks `header` (the header's value, if present) against `body` at `now`
/// (unix seconds). MACs are compared in constant time (`Mac::verify_slice`).
pub fn verify(
    secret: &[u8],
    body: &[u8],
    header: Option<&[u8]>,
    now: i64,
    policy: Policy,
) -> Result<Verified, SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let header = header.ok_or(SignatureError::Missing)?;
    let header = std::str::from_utf8(header)
        .map_err(|_| SignatureError::Malformed)?
        .trim();
    if let Some(hex_sig) = header.strip_prefix("sha256=") {
        let sig = hex32(hex_sig).ok_or(SignatureError::Malformed)?;
        if !policy.legacy {
            return Err(SignatureError::LegacyRefused);
        }
        let mut m = mac(secret);
        m.update(body);
        m.verify_slice(&sig).map_err(|_| SignatureError::Mismatch)?;
        return Ok(Verified {
            mac: sig,
            timestamp: None,
        });
    }
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) if timestamp.is_none() => {
                timestamp = Some(t.parse::<i64>().map_err(|_| SignatureError::Malformed)?);
            }
            Some(("v1", sig)) => candidates.push(hex32(sig).ok_or(SignatureError::Malformed)?),
            // Other schemes (a later v2) are ignored, as senders may send both.
            Some((k, _)) if k != "t" => {}
            _ => return Err(SignatureError::Malformed),
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let skew = now.saturating_sub(t);
    if skew.saturating_abs() > policy.tolerance_secs {
        return Err(SignatureError::Stale(skew));
    }
    let mut base = mac(secret);
    base.update(t.to_string().as_bytes());
    base.update(b".");
    base.update(body);
    for sig in candidates {
        if base.clone().verify_slice(&sig).is_ok() {
            return Ok(Verified {
                mac: sig,
                timestamp: Some(t),
            });
        }
    }
    Err(SignatureError::Mismatch)
}

/// The header value for `body` signed at `t`: what a sender computes, and
/// what stopgate's own outgoing webhooks carry.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    format!("t={t},v1={}", hex::encode(m.finalize().into_bytes()))
}

/// The old untimed form, for senders that have not migrated yet.
pub fn sign_legacy(secret: &[u8], body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_795_455_000;
    const STRICT: Policy = Policy {
        tolerance_secs: 300,
        legacy: false,
    };
    const LEGACY: Policy = Policy {
        tolerance_secs: 300,
        legacy: true,
    };

    #[test]
    fn matches_openssl() {
        // printf '%s' '1795455000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            sign(b"whsec_test", NOW, br#"{"a":1}"#),
            "t=1795455000,v1=5088063fbce2f5b76219e1ddd7fbd1234807dc7760dced06cc53c5f9c7433952"
        );
        // printf '%s' '{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            sign_legacy(b"whsec_test", br#"{"a":1}"#),
            "sha256=51426af50a41dd7ff2cd3f116594734766d4018d15d6fb07169aee5d2959adf5"
        );
    }

    #[test]
    fn verdicts() {
        let body = br#"{"from":"+33612345678","to":"36111","text":"STOP"}"#;
        let good = sign(b"k", NOW, body);
        let v = verify(b"k", body, Some(good.as_bytes()), NOW + 10, STRICT).unwrap();
        assert_eq!(v.timestamp, Some(NOW));
        let upper = good
            .to_uppercase()
            .replace("T=", "t=")
            .replace("V1=", "v1=");
        assert!(verify(b"k", body, Some(upper.as_bytes()), NOW, STRICT).is_ok());
        let spaced = good.replace(',', ", ");
        assert!(verify(b"k", body, Some(spaced.as_bytes()), NOW, STRICT).is_ok());
        let rotated = format!("{},v1={}", good, "0".repeat(64));
        assert!(verify(b"k", body, Some(rotated.as_bytes()), NOW, STRICT).is_ok());
        assert_eq!(
            verify(b"", body, Some(good.as_bytes()), NOW, STRICT),
            Err(SignatureError::NoSecret)
        );
        assert_eq!(
            verify(b"k", body, None, NOW, STRICT),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(b"k2", body, Some(good.as_bytes()), NOW, STRICT),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"k", b"{}", Some(good.as_bytes()), NOW, STRICT),
            Err(SignatureError::Mismatch)
        );
        // The time is signed too: another t with the same MAC fails.
        let moved = good.replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
        assert_eq!(
            verify(b"k", body, Some(moved.as_bytes()), NOW, STRICT),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"k", body, Some(good.as_bytes()), NOW + 301, STRICT),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            verify(b"k", body, Some(good.as_bytes()), NOW - 301, STRICT),
            Err(SignatureError::Stale(-301))
        );
        let mac = &good[good.len() - 64..];
        for bad in [
            "".to_string(),
            "t=".to_string(),
            format!("v1={mac}"),
            format!("t=abc,v1={mac}"),
            format!("t={NOW}"),
            format!("t={NOW},v1=zz"),
            format!("t={NOW},v1={}", &mac[..20]),
            "sha1=abcd".to_string(),
            mac.to_string(),
        ] {
            assert_eq!(
                verify(b"k", body, Some(bad.as_bytes()), NOW, STRICT),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            verify(b"k", body, Some(&[0xff, 0xfe]), NOW, STRICT),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn the_untimed_form_needs_the_migration_switch() {
        let body = b"{}";
        let old = sign_legacy(b"k", body);
        assert_eq!(
            verify(b"k", body, Some(old.as_bytes()), NOW, STRICT),
            Err(SignatureError::LegacyRefused)
        );
        let v = verify(b"k", body, Some(old.as_bytes()), NOW, LEGACY).unwrap();
        assert_eq!(v.timestamp, None);
        assert_eq!(
            verify(b"k2", body, Some(old.as_bytes()), NOW, LEGACY),
            Err(SignatureError::Mismatch)
        );
    }

    proptest! {
        #[test]
        fn only_the_right_body_and_time_verify(
            a in any::<Vec<u8>>(), b in any::<Vec<u8>>(), skew in -400i64..400,
        ) {
            let sig = sign(b"secret", NOW, &a);
            let ok = verify(b"secret", &b, Some(sig.as_bytes()), NOW + skew, STRICT).is_ok();
            prop_assert_eq!(ok, a == b && skew.abs() <= 300);
        }
    }
}
