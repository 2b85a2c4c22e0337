//! The delivery receipt text of SMPP 3.4 Appendix B, which every SMSC and
//! ESME reads: `id:IIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done
//! date:YYMMDDhhmm stat:DDDDDDD err:E text:...`. Pure.

use std::fmt;

/// The `stat:` word, and the `message_state` TLV value that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stat {
    Enroute,
    Delivered,
    Expired,
    Deleted,
    Undeliverable,
    Accepted,
    Unknown,
    Rejected,
}

impl Stat {
    pub const ALL: [Stat; 8] = [
        Stat::Enroute,
        Stat::Delivered,
        Stat::Expired,
        Stat::Deleted,
        Stat::Undeliverable,
        Stat::Accepted,
        Stat::Unknown,
        Stat::Rejected,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Stat::Enroute => "ENROUTE",
            Stat::Delivered => "DELIVRD",
            Stat::Expired => "EXPIRED",
            Stat::Deleted => "DELETED",
            Stat::Undeliverable => "UNDELIV",
            Stat::Accepted => "ACCEPTD",
            Stat::Unknown => "UNKNOWN",
            Stat::Rejected => "REJECTD",
        }
    }

    /// SMPP 3.4 §5.2.28 `message_state`.
    pub fn message_state(self) -> u8 {
        match self {
            Stat::Enroute => 1,
            Stat::Delivered => 2,
            Stat::Expired => 3,
            Stat::Deleted => 4,
            Stat::Undeliverable => 5,
            Stat::Accepted => 6,
            Stat::Unknown => 7,
            Stat::Rejected => 8,
        }
    }

    pub fn from_word(w: &str) -> Option<Stat> {
        Stat::ALL
            .into_iter()
            .find(|s| s.word().eq_ignore_ascii_case(w))
    }

    /// Final states: no other receipt follows.
    pub fn is_final(self) -> bool {
        !matches!(self, Stat::Enroute | Stat::Accepted | Stat::Unknown)
    }
}

/// A `YYMMDDhhmm` time, with seconds when the sender gave them (`YYMMDDhhmmss`,
/// which many SMSCs send).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    pub year: u8,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: Option<u8>,
}

impl Stamp {
    /// The UTC time of a Unix timestamp in milliseconds, to the second.
    pub fn from_millis(at: i64) -> Stamp {
        let t = time::OffsetDateTime::from_unix_timestamp(at.div_euclid(1000))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Stamp {
            year: (t.year().rem_euclid(100)) as u8,
            month: u8::from(t.month()),
            day: t.day(),
            hour: t.hour(),
            minute: t.minute(),
            second: Some(t.second()),
        }
    }

    fn parse(s: &str) -> Option<Stamp> {
        if !(s.len() == 10 || s.len() == 12) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n = |i: usize| s[i..i + 2].parse::<u8>().ok();
        let stamp = Stamp {
            year: n(0)?,
            month: n(2)?,
            day: n(4)?,
            hour: n(6)?,
            minute: n(8)?,
            second: if s.len() == 12 { Some(n(10)?) } else { None },
        };
        let valid = (1..=12).contains(&stamp.month)
            && (1..=31).contains(&stamp.day)
            && stamp.hour < 24
            && stamp.minute < 60
            && stamp.second.is_none_or(|s| s < 60);
        valid.then_some(stamp)
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute
        )?;
        if let Some(s) = self.second {
            write!(f, "{s:02}")?;
        }
        Ok(())
    }
}

/// One receipt's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptText {
    /// The message id the submit_sm_resp gave.
    pub id: String,
    pub submitted: u16,
    pub delivered: u16,
    pub submit_date: Stamp,
    pub done_date: Stamp,
    pub stat: Stat,
    /// Network or SMSC specific; three digits at least.
    pub err: u16,
    /// The first characters of the message (stopgate sends none: bodies may be OTPs).
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a delivery receipt: {0}")]
pub struct ReceiptError(&'static str);

impl fmt::Display for ReceiptText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "id:{} sub:{:03} dlvrd:{:03} submit date:{} done date:{} stat:{} err:{:03} text:{}",
            self.id,
            self.submitted,
            self.delivered,
            self.submit_date,
            self.done_date,
            self.stat.word(),
            self.err,
            self.text
        )
    }
}

impl ReceiptText {
    /// Reads a receipt. The keys are matched without regard to case and in
    /// the standard order; `text:` is optional (some SMSCs leave it out) and
    /// takes the rest of the line. `err` may be decimal or, as a few SMSCs
    /// send it, hex with letters.
    pub fn parse(s: &str) -> Result<ReceiptText, ReceiptError> {
        let mut rest = s.trim_start();
        let mut field = |key: &'static str, last: bool| take(&mut rest, key, last);
        let id = field("id:", false)?.to_string();
        let count = |v: &str, what| v.parse::<u16>().map_err(|_| ReceiptError(what));
        let submitted = count(field("sub:", false)?, "sub:")?;
        let delivered = count(field("dlvrd:", false)?, "dlvrd:")?;
        let submit_date =
            Stamp::parse(field("submit date:", false)?).ok_or(ReceiptError("submit date:"))?;
        let done_date =
            Stamp::parse(field("done date:", false)?).ok_or(ReceiptError("done date:"))?;
        let stat = Stat::from_word(field("stat:", false)?).ok_or(ReceiptError("stat:"))?;
        let err_raw = field("err:", false)?;
        let err = err_raw
            .parse::<u16>()
            .or_else(|_| u16::from_str_radix(err_raw, 16))
            .map_err(|_| ReceiptError("err:"))?;
        let text = match field("text:", true) {
            Ok(t) => t.to_string(),
            Err(_) if field("", false)?.is_empty() => String::new(),
            Err(e) => return Err(e),
        };
        if id.is_empty() {
            return Err(ReceiptError("id:"));
        }
        Ok(ReceiptText {
            id,
            submitted,
            delivered,
            submit_date,
            done_date,
            stat,
            err,
            text,
        })
    }
}

/// The value after `key` at the front of `rest` (to the next space, or to
/// the end if `last`), moving `rest` past it.
fn take<'a>(rest: &mut &'a str, key: &'static str, last: bool) -> Result<&'a str, ReceiptError> {
    let head = rest.get(..key.len()).ok_or(ReceiptError(key))?;
    if !head.eq_ignore_ascii_case(key) {
        return Err(ReceiptError(key));
    }
    let after = &rest[key.len()..];
    if last {
        *rest = "";
        return Ok(after);
    }
    let end = after.find(' ').unwrap_or(after.len());
    let value = &after[..end];
    *rest = after[end..].trim_start();
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stamp(s: &str) -> Stamp {
        Stamp::parse(s).unwrap()
    }

    #[test]
    fn the_standard_form() {
        let r = ReceiptText {
            id: "msg_4kQ".into(),
            submitted: 1,
            delivered: 1,
            submit_date: stamp("2611231730"),
            done_date: stamp("261123173105"),
            stat: Stat::Delivered,
            err: 0,
            text: String::new(),
        };
        let s = r.to_string();
        assert_eq!(
            s,
            "id:msg_4kQ sub:001 dlvrd:001 submit date:2611231730 done date:261123173105 stat:DELIVRD err:000 text:"
        );
        assert_eq!(ReceiptText::parse(&s).unwrap(), r);
    }

    #[test]
    fn what_smscs_send_is_read() {
        // From a real SMSC: an uppercase Text key and a 20-character snippet.
        let r = ReceiptText::parse(
            "id:9391281107527270409 sub:001 dlvrd:001 submit date:1807221736 done date:1807221736 stat:UNDELIV err:255 Text:?? ????? AED 50.24",
        )
        .unwrap();
        assert_eq!(r.stat, Stat::Undeliverable);
        assert_eq!(r.err, 255);
        assert_eq!(r.text, "?? ????? AED 50.24");
        let r = ReceiptText::parse(
            "id:1 sub:001 dlvrd:000 submit date:2601010000 done date:2601010001 stat:rejectd err:00B",
        )
        .unwrap();
        assert_eq!((r.stat, r.err, r.text.as_str()), (Stat::Rejected, 0x0B, ""));
        for bad in [
            "",
            "hello",
            "id: sub:001 dlvrd:001 submit date:2601010000 done date:2601010000 stat:DELIVRD err:000",
            "id:1 sub:001 dlvrd:001 submit date:2613010000 done date:2601010000 stat:DELIVRD err:000",
            "id:1 sub:001 dlvrd:001 submit date:2601010000 done date:2601010000 stat:GONE err:000",
        ] {
            assert!(ReceiptText::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stamps_come_from_unix_time() {
        assert_eq!(
            Stamp::from_millis(1_795_455_000_123).to_string(),
            "261123173000"
        );
    }

    fn any_stamp() -> impl Strategy<Value = Stamp> {
        (
            0u8..100,
            1u8..13,
            1u8..32,
            0u8..24,
            0u8..60,
            proptest::option::of(0u8..60),
        )
            .prop_map(|(year, month, day, hour, minute, second)| Stamp {
                year,
                month,
                day,
                hour,
                minute,
                second,
            })
    }

    proptest! {
        #[test]
        fn format_then_parse_is_the_same_receipt(
            id in "[A-Za-z0-9_-]{1,64}",
            submitted in 0u16..1000,
            delivered in 0u16..1000,
            submit_date in any_stamp(),
            done_date in any_stamp(),
            stat in proptest::sample::select(Stat::ALL.to_vec()),
            err in 0u16..1000,
            text in "\\PC{0,20}",
        ) {
            let r = ReceiptText { id, submitted, delivered, submit_date, done_date, stat, err, text };
            prop_assert_eq!(ReceiptText::parse(&r.to_string()).unwrap(), r);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = ReceiptText::parse(&s);
        }
    }
}
