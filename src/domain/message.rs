use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Our id for one message to one recipient; it is the `reference` the
/// upstream sees, so a provider's delivery report can be traced back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageId(String);

impl MessageId {
    pub fn generate() -> MessageId {
        let mut rng = rand::rng();
        let hi: u64 = rng.random();
        let lo: u64 = rng.random();
        MessageId(format!(
            "msg_{}",
            base62::encode(u128::from(hi) << 64 | u128::from(lo))
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A short code that receives STOP replies: digits only, 3 to 15 of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShortCode(String);

impl ShortCode {
    pub fn parse(s: &str) -> Result<ShortCode, String> {
        let s = s.trim();
        if (3..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(ShortCode(s.to_string()))
        } else {
            Err(format!("short code {s:?} must be 3 to 15 digits"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ShortCode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        ShortCode::parse(&s)
    }
}

impl From<ShortCode> for String {
    fn from(s: ShortCode) -> String {
        s.0
    }
}

impl fmt::Display for ShortCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The sender shown on the handset: an alphanumeric sender id (up to 11
/// characters), a short code or a phone number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Sender(String);

impl fmt::Debug for Sender {
    /// A numeric sender is a phone number: masked, so that a stray `{:?}` in
    /// a log line cannot print it (sender ids and short codes stay readable).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sender({})", super::phone::scrub_numbers(&self.0))
    }
}

impl Sender {
    pub fn parse(s: &str) -> Result<Sender, &'static str> {
        let s = s.trim();
        if s.is_empty() {
            return Err("must not be empty");
        }
        let numeric = s.strip_prefix('+').unwrap_or(s);
        if !numeric.is_empty() && numeric.bytes().all(|b| b.is_ascii_digit()) {
            if numeric.len() > 15 {
                return Err("a numeric sender has at most 15 digits");
            }
        } else if s.chars().count() > 11 {
            return Err("an alphanumeric sender has at most 11 characters");
        } else if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " -_.&".contains(c))
        {
            return Err("an alphanumeric sender may only hold letters, digits, spaces and - _ . &");
        }
        Ok(Sender(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An opt-out link code: 8 base62 characters from a CSPRNG, unique per
/// (tenant, recipient, campaign).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LinkCode(String);

impl LinkCode {
    pub const LEN: usize = 8;
    /// 62^8: the number of distinct codes.
    const SPACE: u64 = 218_340_105_584_896;

    /// A fresh random code from the thread-local CSPRNG (ChaCha, OS-seeded).
    pub fn generate() -> LinkCode {
        let n = rand::rng().random_range(0..Self::SPACE);
        let mut s = base62::encode(n);
        // base62 drops leading zeros; pad so every code has the same length.
        while s.len() < Self::LEN {
            s.insert(0, '0');
        }
        LinkCode(s)
    }

    /// `None` for anything that does not have a code's shape: such a path
    /// is a 404 without a look-up.
    pub fn parse(s: &str) -> Option<LinkCode> {
        (s.len() == Self::LEN && s.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| LinkCode(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LinkCode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        LinkCode::parse(&s).ok_or_else(|| "a link code is 8 base62 characters".into())
    }
}

impl From<LinkCode> for String {
    fn from(c: LinkCode) -> String {
        c.0
    }
}

impl fmt::Display for LinkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A campaign name chosen by the application; links are unique per campaign
/// and insights are grouped by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Campaign(String);

impl Campaign {
    pub fn parse(s: &str) -> Result<Campaign, &'static str> {
        if s.is_empty() || s.len() > 64 {
            return Err("must be 1 to 64 bytes");
        }
        if s.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        Ok(Campaign(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Campaign {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, &'static str> {
        Campaign::parse(&s)
    }
}

impl From<Campaign> for String {
    fn from(c: Campaign) -> String {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_unique_and_prefixed() {
        let a = MessageId::generate();
        let b = MessageId::generate();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("msg_"));
    }

    #[test]
    fn link_codes_are_eight_base62_characters_and_distinct() {
        let codes: std::collections::HashSet<LinkCode> =
            (0..10_000).map(|_| LinkCode::generate()).collect();
        assert_eq!(codes.len(), 10_000);
        assert!(codes.iter().all(|c| LinkCode::parse(c.as_str()).is_some()));
        assert_eq!(LinkCode::SPACE, 62u64.pow(8));
        assert_eq!(base62::encode(LinkCode::SPACE - 1).len(), LinkCode::LEN);
    }

    #[test]
    fn link_code_shape() {
        assert!(LinkCode::parse("aB3dE5gH").is_some());
        assert!(LinkCode::parse("aB3dE5g").is_none());
        assert!(LinkCode::parse("aB3dE5g!").is_none());
        assert!(LinkCode::parse("healthz").is_none());
    }

    #[test]
    fn numeric_senders_debug_masked() {
        for (s, shown) in [
            ("33698765499", "Sender(••• ••• ••• 99)"),
            ("+33698765499", "Sender(+••• ••• ••• 99)"),
            ("36111", "Sender(36111)"),
            ("ACME", "Sender(ACME)"),
        ] {
            assert_eq!(format!("{:?}", Sender::parse(s).unwrap()), shown);
        }
    }

    #[test]
    fn shortcodes_are_digits() {
        assert!(ShortCode::parse("36111").is_ok());
        assert!(ShortCode::parse("12").is_err());
        assert!(ShortCode::parse("36a11").is_err());
    }

    #[test]
    fn senders() {
        assert!(Sender::parse("ACME").is_ok());
        assert!(Sender::parse("+33612345678").is_ok());
        assert!(Sender::parse("ACME SHOP LTD").is_err());
        assert!(Sender::parse("").is_err());
        assert!(Sender::parse("AC<ME").is_err());
    }
}
