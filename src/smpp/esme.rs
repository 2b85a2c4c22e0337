//! What stopgate does as an ESME (the SMPP upstream), in pure functions:
//! a message's text as `submit_sm` parts in the right `data_coding`, a
//! `submit_sm_resp` status classified, a `deliver_sm` read as a delivery
//! receipt or a reply, and the forms an SMSC's message id may take.

use rusmpp_core::CommandStatus;

use super::receipt::{ReceiptText, Stat};
use super::udh::{self, Unit};
use crate::domain::segments::Encoding;
use crate::domain::MessageStatus;

/// `data_coding` 0: the SMSC's default alphabet (GSM 03.38), unpacked.
pub const DC_GSM: u8 = 0;
/// `data_coding` 8: UCS-2 (UTF-16BE).
pub const DC_UCS2: u8 = 8;
/// `esm_class` bit: the short message starts with a user data header.
pub const ESM_UDHI: u8 = 0x40;

/// One `submit_sm`'s worth of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub esm_class: u8,
    pub data_coding: u8,
    pub short_message: Vec<u8>,
}

/// Splits a message into `submit_sm` parts: GSM 03.38 (unpacked septets,
/// as SMPP carries them) when every character has a septet and the
/// pipeline chose GSM-7, else UCS-2. Up to 160 septets (70 UCS-2
/// characters) go in one part; longer texts in parts of 153 septets (67
/// characters) after an 8-bit concatenation UDH, never cutting an escape
/// or a surrogate pair. `None` when the text needs more than 255 parts.
pub fn parts(body: &str, encoding: Encoding, reference: u8) -> Option<Vec<Part>> {
    let gsm = match encoding {
        Encoding::Gsm7 => super::gsm::encode(body),
        Encoding::Ucs2 => None,
    };
    let (data_coding, payload, single, per_part, unit) = match gsm {
        Some(septets) => (DC_GSM, septets, 160, 153, Unit::Gsm),
        None => {
            let octets: Vec<u8> = body.encode_utf16().flat_map(u16::to_be_bytes).collect();
            (DC_UCS2, octets, 140, 134, Unit::Ucs2)
        }
    };
    if payload.len() <= single {
        return Some(vec![Part {
            esm_class: 0,
            data_coding,
            short_message: payload,
        }]);
    }
    let chunks = udh::split(&payload, per_part, u16::from(reference), false, unit)?;
    Some(
        chunks
            .into_iter()
            .map(|short_message| Part {
                esm_class: ESM_UDHI,
                data_coding,
                short_message,
            })
            .collect(),
    )
}

/// What a `submit_sm_resp` (or a `generic_nack` in its place) means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Taken; the SMSC's message id.
    Accepted(String),
    /// Slow down: `ESME_RTHROTTLED`, `ESME_RMSGQFUL`.
    Throttled,
    /// The SMSC failed on its side or is not ready for us: try later.
    Temporary(CommandStatus),
    /// This message is refused (bad address, bad coding, barred, ...).
    Rejected(CommandStatus),
}

pub fn classify(status: CommandStatus, message_id: &str) -> Submitted {
    use CommandStatus::*;
    match status {
        EsmeRok if !message_id.is_empty() => Submitted::Accepted(message_id.to_string()),
        // Taken, but with nothing a delivery report could be matched on.
        EsmeRok => Submitted::Accepted(String::new()),
        EsmeRthrottled | EsmeRmsgqful => Submitted::Throttled,
        EsmeRsyserr | EsmeRxTAppn | EsmeRinvbndsts | EsmeRbindfail | EsmeRdeliveryfailure => {
            Submitted::Temporary(status)
        }
        other => Submitted::Rejected(other),
    }
}

/// Whether `esm_class` marks a delivery receipt (SMSC delivery receipt, or
/// an intermediate notification), not a message from a handset.
pub fn is_receipt(esm_class: u8) -> bool {
    matches!(esm_class & 0x3C, 0x04 | 0x20)
}

/// A delivery receipt from the SMSC, in our terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dlr {
    /// The SMSC's message id, as the receipt names it.
    pub id: String,
    /// `None`: not final yet (enroute, accepted, unknown): nothing to record.
    pub status: Option<MessageStatus>,
    /// The `err:` code, three digits, when not zero.
    pub error: Option<String>,
}

/// The status a receipt's `stat` moves a record to. Every failure is
/// `undelivered` (the SMSC's "rejected" is not stopgate's: that means never
/// forwarded).
pub fn status_of(stat: Stat) -> Option<MessageStatus> {
    match stat {
        Stat::Delivered => Some(MessageStatus::Delivered),
        Stat::Expired | Stat::Deleted | Stat::Undeliverable | Stat::Rejected => {
            Some(MessageStatus::Undelivered)
        }
        Stat::Enroute | Stat::Accepted | Stat::Unknown => None,
    }
}

/// The `message_state` TLV's value as a `stat`.
pub fn stat_of_state(state: u8) -> Option<Stat> {
    Stat::ALL.into_iter().find(|s| s.message_state() == state)
}

/// Reads a receipt from its text and TLVs (`receipted_message_id`,
/// `message_state`, which win over the text when present, as SMPP 3.4
/// §5.3.2.12 says), or `None` if neither names a message.
pub fn read_receipt(text: &[u8], receipted_id: Option<&str>, state: Option<u8>) -> Option<Dlr> {
    let parsed = std::str::from_utf8(text)
        .ok()
        .and_then(|t| ReceiptText::parse(t).ok());
    let id = receipted_id
        .filter(|i| !i.is_empty())
        .map(str::to_string)
        .or_else(|| parsed.as_ref().map(|p| p.id.clone()))?;
    let stat = state
        .and_then(stat_of_state)
        .or_else(|| parsed.as_ref().map(|p| p.stat))?;
    let status = status_of(stat);
    let error = parsed
        .as_ref()
        .filter(|p| p.err != 0 && status != Some(MessageStatus::Delivered))
        .map(|p| format!("{:03}", p.err));
    Some(Dlr { id, status, error })
}

/// The forms a message id may take between `submit_sm_resp` and its
/// receipt: SMSCs commonly answer one in hex and write the other in
/// decimal (or the other way round), with or without leading zeros. The id
/// as given comes first.
pub fn id_forms(id: &str) -> Vec<String> {
    let mut out = vec![id.to_string()];
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    let trimmed = id.trim_start_matches('0');
    if !trimmed.is_empty() {
        push(trimmed.to_string());
    }
    if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = id.parse::<u64>() {
            push(format!("{n:x}"));
            push(format!("{n:X}"));
        }
    }
    if !id.is_empty() && id.len() <= 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        if let Ok(n) = u64::from_str_radix(id, 16) {
            push(n.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_texts_are_one_part_in_their_coding() {
        let p = parts("Hello €", Encoding::Gsm7, 1).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].esm_class, p[0].data_coding),
            (0, DC_GSM),
            "GSM, no UDH"
        );
        assert_eq!(p[0].short_message, b"Hello \x1b\x65");
        let p = parts("Привет", Encoding::Ucs2, 1).unwrap();
        assert_eq!((p.len(), p[0].data_coding), (1, DC_UCS2));
        assert_eq!(p[0].short_message[..2], [0x04, 0x1F]);
        // The pipeline's choice is followed even when GSM could carry it.
        assert_eq!(
            parts("abc", Encoding::Ucs2, 1).unwrap()[0].data_coding,
            DC_UCS2
        );
        // 160 septets fit one part, 161 do not.
        assert_eq!(parts(&"a".repeat(160), Encoding::Gsm7, 1).unwrap().len(), 1);
        assert_eq!(parts(&"a".repeat(70), Encoding::Ucs2, 1).unwrap().len(), 1);
    }

    #[test]
    fn long_texts_are_udh_parts_of_153_septets_or_67_characters() {
        let p = parts(&"a".repeat(161), Encoding::Gsm7, 7).unwrap();
        assert_eq!(p.len(), 2);
        assert!(p
            .iter()
            .all(|x| x.esm_class == ESM_UDHI && x.data_coding == DC_GSM));
        assert_eq!(p[0].short_message[..6], [5, 0, 3, 7, 2, 1]);
        assert_eq!(p[0].short_message.len(), 6 + 153);
        assert_eq!(p[1].short_message[..6], [5, 0, 3, 7, 2, 2]);
        assert_eq!(p[1].short_message.len(), 6 + 8);
        let p = parts(&"я".repeat(71), Encoding::Ucs2, 9).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].short_message.len(), 6 + 134);
        // An escape is never cut from its code: the part ends one septet early.
        let text = format!("{}€", "a".repeat(152));
        let p = parts(&format!("{text}{}", "b".repeat(20)), Encoding::Gsm7, 1).unwrap();
        assert_eq!(p[0].short_message.len(), 6 + 152);
        assert_eq!(&p[1].short_message[6..8], &[0x1B, 0x65]);
        assert!(parts(&"a".repeat(153 * 256), Encoding::Gsm7, 1).is_none());
    }

    #[test]
    fn submit_answers_are_classified() {
        use CommandStatus::*;
        assert_eq!(
            classify(EsmeRok, "1a2b"),
            Submitted::Accepted("1a2b".into())
        );
        assert_eq!(classify(EsmeRthrottled, ""), Submitted::Throttled);
        assert_eq!(classify(EsmeRmsgqful, ""), Submitted::Throttled);
        assert_eq!(classify(EsmeRsyserr, ""), Submitted::Temporary(EsmeRsyserr));
        assert_eq!(classify(EsmeRxTAppn, ""), Submitted::Temporary(EsmeRxTAppn));
        assert_eq!(
            classify(EsmeRinvdstadr, ""),
            Submitted::Rejected(EsmeRinvdstadr)
        );
        assert_eq!(classify(EsmeRxPAppn, ""), Submitted::Rejected(EsmeRxPAppn));
    }

    #[test]
    fn receipts_are_read_from_tlvs_or_text() {
        assert!(is_receipt(0x04));
        assert!(is_receipt(0x44 & 0x3C | 0x04));
        assert!(!is_receipt(0x00));
        assert!(!is_receipt(0x40), "a UDH is not a receipt");
        let text = b"id:6699 sub:001 dlvrd:001 submit date:2611231730 done date:2611231731 stat:DELIVRD err:000 text:hi";
        assert_eq!(
            read_receipt(text, None, None),
            Some(Dlr {
                id: "6699".into(),
                status: Some(MessageStatus::Delivered),
                error: None
            })
        );
        // The TLVs win.
        let d = read_receipt(text, Some("1A2B"), Some(5)).unwrap();
        assert_eq!(
            (d.id.as_str(), d.status),
            ("1A2B", Some(MessageStatus::Undelivered))
        );
        let text = b"id:42 sub:001 dlvrd:000 submit date:2611231730 done date:2611231731 stat:UNDELIV err:034 text:";
        let d = read_receipt(text, None, None).unwrap();
        assert_eq!(d.error.as_deref(), Some("034"));
        let text = b"id:42 sub:001 dlvrd:000 submit date:2611231730 done date:2611231731 stat:ENROUTE err:000 text:";
        assert_eq!(read_receipt(text, None, None).unwrap().status, None);
        assert_eq!(read_receipt(b"STOP", None, None), None);
        assert_eq!(read_receipt(b"", Some("77"), None), None, "no state at all");
        assert_eq!(
            read_receipt(b"", Some("77"), Some(2)).unwrap().status,
            Some(MessageStatus::Delivered)
        );
    }

    #[test]
    fn ids_are_matched_in_hex_and_decimal() {
        // Digits may be hex too: both readings are tried, the id as given first.
        assert_eq!(id_forms("26251"), ["26251", "668b", "668B", "156241"]);
        assert_eq!(id_forms("668B"), ["668B", "26251"]);
        assert_eq!(id_forms("000668b"), ["000668b", "668b", "26251"]);
        assert_eq!(id_forms("msg-7"), ["msg-7"]);
        assert!(
            id_forms("10").contains(&"16".to_string()),
            "decimal 10 read as hex"
        );
        assert!(id_forms("10").contains(&"a".to_string()));
    }

    proptest! {
        #[test]
        fn a_hex_id_and_its_decimal_find_each_other(n in 1u64..u64::MAX) {
            let hex = format!("{n:x}");
            let dec = n.to_string();
            prop_assert!(id_forms(&hex).contains(&dec));
            prop_assert!(id_forms(&dec).contains(&hex));
            let upper = format!("{n:X}");
            prop_assert!(id_forms(&dec).contains(&upper));
        }

        #[test]
        fn parts_rejoin_to_the_text(chars in proptest::collection::vec(
            proptest::sample::select(vec!['a', 'Z', ' ', '€', '[', 'é', '@', '\n']), 0..800)
        ) {
            let text: String = chars.into_iter().collect();
            let p = parts(&text, Encoding::Gsm7, 3).unwrap();
            let mut joined = Vec::new();
            for part in &p {
                let (c, payload) = if part.esm_class & ESM_UDHI != 0 {
                    udh::parse(&part.short_message).unwrap()
                } else {
                    (None, &part.short_message[..])
                };
                prop_assert_eq!(c.is_some(), p.len() > 1);
                let most = if p.len() > 1 { 153 } else { 160 };
                prop_assert!(payload.len() <= most);
                joined.extend_from_slice(payload);
            }
            prop_assert_eq!(super::super::gsm::decode(&joined).unwrap(), text);
        }
    }
}
