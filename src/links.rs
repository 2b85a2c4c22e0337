//! Opt-out link codes: minting (CSPRNG, 8 base62 characters) and parsing.
//!
//! A code is unique per (tenant, recipient, campaign) and inserted only if
//! absent (see [`crate::store::Store::link_for`]), so a retry of the same
//! campaign reuses it and two recipients never share one.

use rand::Rng;

use crate::domain::{Campaign, PhoneNumber, Tenant};
use crate::store::{self, Store};

pub const CODE_LEN: usize = 8;
/// 62^8: the number of distinct codes.
const CODE_SPACE: u64 = 218_340_105_584_896;

/// A fresh random code from the thread-local CSPRNG (ChaCha, OS-seeded).
pub fn new_code() -> String {
    let n = rand::rng().random_range(0..CODE_SPACE);
    let mut s = base62::encode(n);
    // base62 drops leading zeros; pad so every code has the same length.
    while s.len() < CODE_LEN {
        s.insert(0, '0');
    }
    s
}

/// Whether `s` has the shape of a code; anything else is a 404 without a lookup.
pub fn is_code(s: &str) -> bool {
    s.len() == CODE_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The link for a recipient: the existing one for this campaign or a new one.
/// Returns the URL and whether it was minted now (and so must be made
/// durable before the message is forwarded).
pub fn link_for(
    store: &dyn Store,
    base_url: &str,
    tenant: &Tenant,
    number: &PhoneNumber,
    campaign: Option<&Campaign>,
) -> store::Result<(String, bool)> {
    let (code, minted) = store.link_for(
        &tenant.id,
        number.as_str(),
        campaign.map(Campaign::as_str),
        &mut new_code,
    )?;
    Ok((format!("{}/{code}", base_url.trim_end_matches('/')), minted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_eight_base62_characters_and_distinct() {
        let codes: HashSet<String> = (0..10_000).map(|_| new_code()).collect();
        assert_eq!(codes.len(), 10_000);
        assert!(codes.iter().all(|c| is_code(c)));
    }

    #[test]
    fn code_shape() {
        assert!(is_code("aB3dE5gH"));
        assert!(!is_code("aB3dE5g"));
        assert!(!is_code("aB3dE5g!"));
        assert!(!is_code("healthz"));
    }

    #[test]
    fn code_space_is_62_to_the_8th() {
        assert_eq!(CODE_SPACE, 62u64.pow(8));
        assert_eq!(base62::encode(CODE_SPACE - 1).len(), CODE_LEN);
    }
}
