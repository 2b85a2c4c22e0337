use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Our id for one message to one recipient; it is the `reference` the
/// upstream sees, so a provider's delivery report can be traced back.
///
/// 128 bits: the creation time in milliseconds (48 bits), then 80 random
/// bits, written `msg_` + 22 base62 digits (fixed width, so ids sort by
/// creation time as strings too). The Twilio front shows the same bits as a
/// Twilio SID, `SM` + 32 hex digits, so either form finds the message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageId(String);

impl MessageId {
    const PREFIX: &'static str = "msg_";
    const DIGITS: usize = 22;

    /// A new id. Ids made by this process are increasing even within one
    /// millisecond (the random part then counts up), so a tenant's listing
    /// is in the order its messages were made.
    pub fn generate() -> MessageId {
        static LAST: std::sync::Mutex<u128> = std::sync::Mutex::new(0);
        let fresh = Self::bits_at(super::now_millis());
        let mut last = LAST.lock().expect("not poisoned");
        let bits = if fresh >> 80 == *last >> 80 && fresh <= *last {
            *last + 1
        } else {
            fresh
        };
        *last = bits;
        Self::from_bits(bits)
    }

    /// An id created at `at` (tests, and messages scheduled for later keep
    /// their request's time).
    pub fn generate_at(at: super::UnixMillis) -> MessageId {
        Self::from_bits(Self::bits_at(at))
    }

    /// The time, then 79 random bits under a zero bit: counting up from
    /// them stays within the millisecond for 2^79 ids.
    fn bits_at(at: super::UnixMillis) -> u128 {
        let random: u128 = rand::rng().random::<u128>() & ((1u128 << 79) - 1);
        let time = (at.max(0) as u128 & ((1u128 << 48) - 1)) << 80;
        time | random
    }

    fn from_bits(bits: u128) -> MessageId {
        let mut s = base62::encode(bits);
        while s.len() < Self::DIGITS {
            s.insert(0, '0');
        }
        MessageId(format!("{}{s}", Self::PREFIX))
    }

    /// `msg_` and 22 base62 digits; anything else is not one of our ids.
    pub fn parse(s: &str) -> Option<MessageId> {
        let digits = s.strip_prefix(Self::PREFIX)?;
        if digits.len() != Self::DIGITS || !digits.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        base62::decode(digits).ok().map(Self::from_bits)
    }

    /// The Twilio SID of this message: `SM` + the 128 bits in hex.
    pub fn sid(&self) -> String {
        format!("SM{:032x}", self.bits())
    }

    /// The id a Twilio SID stands for.
    pub fn from_sid(sid: &str) -> Option<MessageId> {
        let hex = sid.strip_prefix("SM")?;
        if hex.len() != 32 {
            return None;
        }
        u128::from_str_radix(hex, 16).ok().map(Self::from_bits)
    }

    /// When the message was created (to the millisecond).
    pub fn created(&self) -> super::UnixMillis {
        (self.bits() >> 80) as super::UnixMillis
    }

    /// The 128 bits, big-endian: a store key that sorts by creation.
    pub fn to_bytes(&self) -> [u8; 16] {
        self.bits().to_be_bytes()
    }

    pub fn from_bytes(bytes: [u8; 16]) -> MessageId {
        Self::from_bits(u128::from_be_bytes(bytes))
    }

    fn bits(&self) -> u128 {
        base62::decode(&self.0[Self::PREFIX.len()..]).expect("built from bits")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MessageId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        MessageId::parse(&s).ok_or_else(|| "not a message id".into())
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> String {
        id.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a message stands. A message starts `scheduled` (held for later),
/// `sent` (the provider took it), or final at once (`failed`, `blocked`,
/// `rejected`); delivery reports then move a sent one on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Scheduled,
    Sent,
    Delivered,
    Undelivered,
    Failed,
    Blocked,
    Rejected,
    Canceled,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Scheduled => "scheduled",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Undelivered => "undelivered",
            MessageStatus::Failed => "failed",
            MessageStatus::Blocked => "blocked",
            MessageStatus::Rejected => "rejected",
            MessageStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<MessageStatus> {
        Some(match s {
            "scheduled" => MessageStatus::Scheduled,
            "sent" => MessageStatus::Sent,
            "delivered" => MessageStatus::Delivered,
            "undelivered" => MessageStatus::Undelivered,
            "failed" => MessageStatus::Failed,
            "blocked" => MessageStatus::Blocked,
            "rejected" => MessageStatus::Rejected,
            "canceled" => MessageStatus::Canceled,
            _ => return None,
        })
    }

    /// How final a status is. A report never moves a message to a less
    /// final status (a late "sent" never overwrites "delivered"); of two
    /// equally final ones the first stays. Messages never forwarded
    /// (blocked, rejected, canceled) are beyond any report.
    pub fn rank(self) -> u8 {
        match self {
            MessageStatus::Scheduled => 0,
            MessageStatus::Sent => 1,
            MessageStatus::Undelivered | MessageStatus::Failed => 2,
            MessageStatus::Delivered => 3,
            MessageStatus::Blocked | MessageStatus::Rejected | MessageStatus::Canceled => 4,
        }
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    fn message_ids_are_unique_prefixed_and_sorted_by_time() {
        let a = MessageId::generate_at(1_000);
        let b = MessageId::generate_at(1_001);
        assert_ne!(MessageId::generate(), MessageId::generate());
        assert!(a.as_str().starts_with("msg_") && a.as_str().len() == 26);
        assert!(a < b && a.as_str() < b.as_str());
        assert_eq!((a.created(), b.created()), (1_000, 1_001));
        assert_eq!(MessageId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(MessageId::from_bytes(a.to_bytes()), a);
        for bad in [
            "",
            "msg_",
            "msg_abc",
            "SM123",
            &a.as_str()[1..],
            &format!("{}!", &a.as_str()[..25]),
        ] {
            assert_eq!(MessageId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_twilio_sid_is_the_same_id() {
        let id = MessageId::generate();
        let sid = id.sid();
        assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");
        assert_eq!(MessageId::from_sid(&sid), Some(id));
        assert_eq!(MessageId::from_sid("SMxyz"), None);
        assert_eq!(MessageId::from_sid(&format!("MM{}", &sid[2..])), None);
    }

    #[test]
    fn reports_never_make_a_message_less_final() {
        use MessageStatus::*;
        assert!(Sent.rank() < Delivered.rank());
        assert!(Undelivered.rank() < Delivered.rank());
        assert!(Scheduled.rank() < Sent.rank());
        for s in [
            Scheduled,
            Sent,
            Delivered,
            Undelivered,
            Failed,
            Blocked,
            Rejected,
            Canceled,
        ] {
            assert_eq!(MessageStatus::parse(s.as_str()), Some(s));
        }
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
