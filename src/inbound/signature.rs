//! The native webhook's signature: `X-Stopgate-Signature: sha256=<hex>`,
//! HMAC-SHA256 of the raw request body under `inbound.secret`. Pure.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "x-stopgate-signature";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the inbound webhook is disabled: inbound.secret is not set")]
    NoSecret,
    #[error("missing X-Stopgate-Signature header")]
    Missing,
    #[error("X-Stopgate-Signature must be sha256=<64 hex digits>")]
    Malformed,
    #[error("X-Stopgate-Signature does not match the body")]
    Mismatch,
}

/// Checks `header` (the header's value, if present) against `body`.
/// The comparison is constant-time (`Mac::verify_slice`).
pub fn verify(secret: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_sig = std::str::from_utf8(header)
        .ok()
        .map(str::trim)
        .and_then(|h| h.strip_prefix("sha256="))
        .ok_or(SignatureError::Malformed)?;
    let sig = hex::decode(hex_sig).map_err(|_| SignatureError::Malformed)?;
    if sig.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.verify_slice(&sig).map_err(|_| SignatureError::Mismatch)
}

/// The header value for `body`: what a sender computes.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_openssl() {
        // printf '%s' '{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            sign(b"whsec_test", br#"{"a":1}"#),
            "sha256=51426af50a41dd7ff2cd3f116594734766d4018d15d6fb07169aee5d2959adf5"
        );
    }

    #[test]
    fn verdicts() {
        let body = br#"{"from":"+33612345678","to":"36111","text":"STOP"}"#;
        let good = sign(b"k", body);
        assert_eq!(verify(b"k", body, Some(good.as_bytes())), Ok(()));
        let upper = format!("sha256={}", good[7..].to_uppercase());
        assert_eq!(verify(b"k", body, Some(upper.as_bytes())), Ok(()));
        assert_eq!(
            verify(b"", body, Some(good.as_bytes())),
            Err(SignatureError::NoSecret)
        );
        assert_eq!(verify(b"k", body, None), Err(SignatureError::Missing));
        assert_eq!(
            verify(b"k2", body, Some(good.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"k", b"{}", Some(good.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        for bad in [
            "",
            "sha256=",
            "sha1=abcd",
            &good[7..],
            "sha256=zz",
            &good[..20],
        ] {
            assert_eq!(
                verify(b"k", body, Some(bad.as_bytes())),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            verify(b"k", body, Some(&[0xff, 0xfe])),
            Err(SignatureError::Malformed)
        );
    }

    proptest! {
        #[test]
        fn only_the_right_body_verifies(a in any::<Vec<u8>>(), b in any::<Vec<u8>>()) {
            let sig = sign(b"secret", &a);
            prop_assert_eq!(verify(b"secret", &b, Some(sig.as_bytes())).is_ok(), a == b);
        }
    }
}
