//! The bytes of a message record in sled: a compact binary form rather than
//! JSON. A record is written once per recipient on the send path and read
//! and rewritten by every delivery report, so its encoding is on the hot
//! path; JSON spent a field name and an escape scan on every field.
//!
//! Layout (version 1): the byte `1`, then the fields of [`MessageRecord`]
//! in declaration order. A string is a LEB128 length and UTF-8; an optional
//! field is a byte 0 (absent) or 1 followed by the value; the enums are one
//! byte each (codes below, never reused); times are i64 big-endian; the
//! rare `callback` is kept as JSON inside. The string newtypes go back
//! through their own `Deserialize`, so a record is as valid read from here
//! as from JSON. A value whose first byte is `{` is a JSON record written
//! before this form existed, and is read as JSON.

use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::de::IntoDeserializer;
use serde::Deserialize;

use crate::domain::segments::Encoding;
use crate::domain::{Category, MessageId, MessageStatus};
use crate::store::{MessageRecord, Result, StatusChange, StoreError};

const VERSION: u8 = 1;

fn category_code(c: Category) -> u8 {
    match c {
        Category::Marketing => 0,
        Category::Transactional => 1,
        Category::Otp => 2,
    }
}

fn category_of(b: u8) -> Option<Category> {
    Some(match b {
        0 => Category::Marketing,
        1 => Category::Transactional,
        2 => Category::Otp,
        _ => return None,
    })
}

fn encoding_code(e: Encoding) -> u8 {
    match e {
        Encoding::Gsm7 => 0,
        Encoding::Ucs2 => 1,
    }
}

fn encoding_of(b: u8) -> Option<Encoding> {
    Some(match b {
        0 => Encoding::Gsm7,
        1 => Encoding::Ucs2,
        _ => return None,
    })
}

fn status_code(s: MessageStatus) -> u8 {
    match s {
        MessageStatus::Scheduled => 0,
        MessageStatus::Sent => 1,
        MessageStatus::Delivered => 2,
        MessageStatus::Undelivered => 3,
        MessageStatus::Failed => 4,
        MessageStatus::Blocked => 5,
        MessageStatus::Rejected => 6,
        MessageStatus::Canceled => 7,
    }
}

fn status_of(b: u8) -> Option<MessageStatus> {
    Some(match b {
        0 => MessageStatus::Scheduled,
        1 => MessageStatus::Sent,
        2 => MessageStatus::Delivered,
        3 => MessageStatus::Undelivered,
        4 => MessageStatus::Failed,
        5 => MessageStatus::Blocked,
        6 => MessageStatus::Rejected,
        7 => MessageStatus::Canceled,
        _ => return None,
    })
}

struct Writer(Vec<u8>);

impl Writer {
    fn len(&mut self, mut n: usize) {
        loop {
            let low = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.0.push(low);
                return;
            }
            self.0.push(low | 0x80);
        }
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
        }
    }

    fn time(&mut self, t: i64) {
        self.0.extend_from_slice(&t.to_be_bytes());
    }
}

pub(super) fn encode(r: &MessageRecord) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(
        96 + r.body.as_ref().map_or(0, String::len),
    ));
    w.0.push(VERSION);
    w.0.extend_from_slice(&r.id.to_bytes());
    w.str(r.tenant.as_str());
    w.str(&r.to);
    w.opt_str(r.country.as_ref().map(|c| c.as_str()));
    w.0.push(category_code(r.category));
    w.opt_str(r.campaign.as_ref().map(|c| c.as_str()));
    w.str(&r.sender);
    w.0.push(encoding_code(r.encoding));
    w.len(r.segments);
    w.opt_str(r.provider.as_deref());
    w.opt_str(r.provider_id.as_deref());
    w.opt_str(r.body.as_deref());
    let callback = r
        .callback
        .as_ref()
        .map(|c| serde_json::to_string(c).expect("a callback serializes"));
    w.opt_str(callback.as_deref());
    match r.deliver_after {
        None => w.0.push(0),
        Some(t) => {
            w.0.push(1);
            w.time(t);
        }
    }
    w.len(r.history.len());
    for c in &r.history {
        w.0.push(status_code(c.status));
        w.time(c.at);
        w.opt_str(c.error.as_deref());
    }
    w.0
}

/// Reads what [`encode`] wrote, never trusting a length: every read is
/// bounds-checked and a bad byte is `Corrupt`, not a panic.
struct Reader<'a>(&'a [u8]);

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("message record: {what}"))
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    fn len(&mut self) -> Result<usize> {
        let mut n: usize = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= usize::from(b & 0x7f)
                .checked_shl(shift)
                .ok_or_else(|| corrupt("length"))?;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(corrupt("length"))
    }

    fn str(&mut self) -> Result<&'a str> {
        let n = self.len()?;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| corrupt("not UTF-8"))
    }

    fn present(&mut self) -> Result<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(corrupt("option flag")),
        }
    }

    fn opt_str(&mut self) -> Result<Option<&'a str>> {
        Ok(if self.present()? {
            Some(self.str()?)
        } else {
            None
        })
    }

    fn time(&mut self) -> Result<i64> {
        let b: [u8; 8] = self.bytes(8)?.try_into().expect("eight bytes");
        Ok(i64::from_be_bytes(b))
    }
}

/// A string newtype through its own `Deserialize` (its `parse` checks).
fn newtype<'de, T: Deserialize<'de>>(s: &'de str, what: &str) -> Result<T> {
    let d: StrDeserializer<'de, ValueError> = s.into_deserializer();
    T::deserialize(d).map_err(|e| corrupt(&format!("{what}: {e}")))
}

pub(super) fn decode(bytes: &[u8]) -> Result<MessageRecord> {
    match bytes.first() {
        Some(b'{') => {
            return serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
        }
        Some(&VERSION) => {}
        _ => return Err(corrupt("unknown version")),
    }
    let mut r = Reader(&bytes[1..]);
    let id: [u8; 16] = r.bytes(16)?.try_into().expect("sixteen bytes");
    let record = MessageRecord {
        id: MessageId::from_bytes(id),
        tenant: newtype(r.str()?, "tenant")?,
        to: r.str()?.to_string(),
        country: r.opt_str()?.map(|c| newtype(c, "country")).transpose()?,
        category: category_of(r.byte()?).ok_or_else(|| corrupt("category"))?,
        campaign: r.opt_str()?.map(|c| newtype(c, "campaign")).transpose()?,
        sender: r.str()?.to_string(),
        encoding: encoding_of(r.byte()?).ok_or_else(|| corrupt("encoding"))?,
        segments: r.len()?,
        provider: r.opt_str()?.map(str::to_string),
        provider_id: r.opt_str()?.map(str::to_string),
        body: r.opt_str()?.map(str::to_string),
        callback: r
            .opt_str()?
            .map(|c| serde_json::from_str(c).map_err(|e| corrupt(&format!("callback: {e}"))))
            .transpose()?,
        deliver_after: if r.present()? { Some(r.time()?) } else { None },
        history: {
            let n = r.len()?;
            // Each change takes at least ten bytes: no allocation beyond what is there.
            if n > r.0.len() / 10 {
                return Err(corrupt("history length"));
            }
            let mut history = Vec::with_capacity(n);
            for _ in 0..n {
                history.push(StatusChange {
                    status: status_of(r.byte()?).ok_or_else(|| corrupt("status"))?,
                    at: r.time()?,
                    error: r.opt_str()?.map(str::to_string),
                });
            }
            history
        },
    };
    if !r.0.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    if record.history.is_empty() {
        return Err(corrupt("no status"));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Callback, PhoneNumber, SmppReceipts, TenantId};
    use proptest::prelude::*;

    fn full() -> MessageRecord {
        MessageRecord {
            id: MessageId::generate(),
            tenant: TenantId::parse("acme").unwrap(),
            to: "+33612345678".into(),
            country: Some(PhoneNumber::parse("+33612345678").unwrap().country()),
            category: Category::Marketing,
            campaign: Some(crate::domain::Campaign::parse("black-friday").unwrap()),
            sender: "ACME".into(),
            encoding: Encoding::Ucs2,
            segments: 300,
            provider: Some("smpp".into()),
            provider_id: Some("a1,b2".into()),
            body: Some("Soldes d'été ✓ STOP 36111".into()),
            callback: Some(Callback::Smpp(SmppReceipts {
                failures_only: true,
                unsent: false,
                ton: 1,
                npi: 1,
                addr: "33612345678".into(),
            })),
            deliver_after: Some(-5),
            history: vec![
                StatusChange {
                    status: MessageStatus::Scheduled,
                    at: 1_000,
                    error: None,
                },
                StatusChange {
                    status: MessageStatus::Undelivered,
                    at: i64::MAX,
                    error: Some("upstream_rejected".into()),
                },
            ],
        }
    }

    fn minimal() -> MessageRecord {
        MessageRecord {
            country: None,
            campaign: None,
            provider: None,
            provider_id: None,
            body: None,
            callback: None,
            deliver_after: None,
            category: Category::Otp,
            encoding: Encoding::Gsm7,
            segments: 1,
            history: vec![StatusChange {
                status: MessageStatus::Sent,
                at: 7,
                error: None,
            }],
            ..full()
        }
    }

    #[test]
    fn records_come_back_as_they_went_in() {
        for r in [full(), minimal()] {
            let bytes = encode(&r);
            assert_eq!(decode(&bytes).unwrap(), r);
            assert!(bytes.len() < serde_json::to_vec(&r).unwrap().len());
        }
    }

    #[test]
    fn every_enum_code_round_trips() {
        for c in Category::ALL {
            assert_eq!(category_of(category_code(c)), Some(c));
        }
        for e in [Encoding::Gsm7, Encoding::Ucs2] {
            assert_eq!(encoding_of(encoding_code(e)), Some(e));
        }
        for code in 0..=255u8 {
            if let Some(s) = status_of(code) {
                assert_eq!(status_code(s), code);
            }
        }
        assert!(status_of(8).is_none());
    }

    #[test]
    fn a_json_record_from_before_is_still_read() {
        let r = full();
        assert_eq!(decode(&serde_json::to_vec(&r).unwrap()).unwrap(), r);
    }

    #[test]
    fn a_bad_tenant_is_refused_as_json_would_refuse_it() {
        let mut bytes = encode(&minimal());
        // The tenant's first letter, just past the version, id and length.
        bytes[18] = b'A';
        assert!(matches!(decode(&bytes), Err(StoreError::Corrupt(_))));
    }

    proptest! {
        /// Any truncation or corruption is an error, never a panic or a
        /// huge allocation.
        #[test]
        fn damaged_bytes_never_panic(cut in 0usize..200, flip in 0usize..200, to in any::<u8>()) {
            let mut bytes = encode(&full());
            let i = flip % bytes.len();
            bytes[i] = to;
            let _ = decode(&bytes);
            bytes.truncate(cut.min(bytes.len()));
            let _ = decode(&bytes);
        }

        #[test]
        fn any_text_round_trips(to in "\\PC{0,40}", body in proptest::option::of("\\PC{0,300}"), segments in 0usize..100_000) {
            let r = MessageRecord { to, body, segments, ..full() };
            prop_assert_eq!(decode(&encode(&r)).unwrap(), r);
        }
    }
}
