//! What a `submit_sm` or `data_sm` asks for, in our terms: addresses to a
//! recipient and a sender, user data to text, the concatenation it belongs
//! to, the category. Pure; every refusal is the `command_status` to answer.
//!
//! Addresses (docs/smpp.md has the table):
//! - destination TON 1 (international): digits, with or without `+`, are
//!   `+digits`; TON 0 (unknown): `+...` and `00...` are taken as written,
//!   bare digits as international; NPI 0 or 1. National and other TONs are
//!   refused (`ESME_RINVDSTTON`): a national number has no country we could
//!   know.
//! - source: TON 5 alphanumeric, TON 1 `+digits`, anything else as written;
//!   it must be a valid sender (11 characters, or up to 15 digits).

use rusmpp_core::pdus::owned::{DataSm, DeliverSm, SubmitSm};
use rusmpp_core::CommandStatus;

use super::pdu::MessageTlvs;
use super::udh::{self, Concat, Unit};
use crate::domain::{Category, Sender};

/// An SMPP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    pub ton: u8,
    pub npi: u8,
    pub addr: String,
}

impl Address {
    /// How stopgate writes a sender back into a PDU (a receipt's
    /// destination): alphanumeric as TON 5, `+digits` as international.
    pub fn for_sender(sender: &str) -> Address {
        let digits = sender.strip_prefix('+');
        match digits {
            Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => Address {
                ton: 1,
                npi: 1,
                addr: d.to_string(),
            },
            _ if !sender.is_empty() && sender.bytes().all(|b| b.is_ascii_digit()) => Address {
                ton: 0,
                npi: 1,
                addr: sender.to_string(),
            },
            _ => Address {
                ton: 5,
                npi: 0,
                addr: sender.to_string(),
            },
        }
    }
}

/// The fields of a message request that matter here.
#[derive(Debug, Clone)]
pub struct Message {
    pub service_type: String,
    pub source: Address,
    pub dest: Address,
    pub esm_class: u8,
    pub registered_delivery: u8,
    pub data_coding: u8,
    pub short_message: Vec<u8>,
    pub tlvs: MessageTlvs,
}

/// A [`Message`] from any PDU that carries one: rusmpp's `SubmitSm`,
/// `DeliverSm` and `DataSm` have the same fields by name but no common trait.
macro_rules! message_from {
    ($s:expr, $short_message:expr) => {
        Message {
            service_type: $s.service_type.value().as_str().to_string(),
            source: Address {
                ton: $s.source_addr_ton.into(),
                npi: $s.source_addr_npi.into(),
                addr: $s.source_addr.as_str().to_string(),
            },
            dest: Address {
                ton: $s.dest_addr_ton.into(),
                npi: $s.dest_addr_npi.into(),
                addr: $s.destination_addr.as_str().to_string(),
            },
            esm_class: $s.esm_class.into(),
            registered_delivery: $s.registered_delivery.into(),
            data_coding: $s.data_coding.into(),
            short_message: $short_message,
            tlvs: MessageTlvs::read($s.tlvs()),
        }
    };
}

impl Message {
    pub fn from_submit(s: &SubmitSm) -> Message {
        message_from!(s, s.short_message().as_ref().to_vec())
    }

    /// A `deliver_sm` from an SMSC (the upstream): a reply or a receipt.
    pub fn from_deliver(s: &DeliverSm) -> Message {
        message_from!(s, s.short_message().as_ref().to_vec())
    }

    /// A `data_sm`: its text is only ever in `message_payload`.
    pub fn from_data_sm(s: &DataSm) -> Message {
        message_from!(s, Vec::new())
    }

    /// Whether the ESME asked for an SMSC delivery receipt (bits 0-1 of
    /// `registered_delivery`: 1 on success or failure, 2 on failure only).
    pub fn receipt_wanted(&self) -> ReceiptWanted {
        match self.registered_delivery & 0x03 {
            1 => ReceiptWanted::Always,
            2 => ReceiptWanted::OnFailure,
            _ => ReceiptWanted::No,
        }
    }

    /// The user data (`short_message`, or `message_payload` when that is
    /// used) split into its concatenation info and payload.
    pub fn parts(&self) -> Result<(Option<Concat>, Vec<u8>), CommandStatus> {
        let data = match (&self.tlvs.message_payload, self.short_message.is_empty()) {
            (Some(p), true) => p.as_slice(),
            (None, _) => self.short_message.as_slice(),
            // SMPP 3.4 §5.3.2.32: both at once is an error.
            (Some(_), false) => return Err(CommandStatus::EsmeRinvmsglen),
        };
        if self.esm_class & 0x40 != 0 {
            let (concat, payload) =
                udh::parse(data).map_err(|_| CommandStatus::EsmeRinvesmclass)?;
            return Ok((concat, payload.to_vec()));
        }
        let t = &self.tlvs;
        match (
            t.sar_msg_ref_num,
            t.sar_total_segments,
            t.sar_segment_seqnum,
        ) {
            (Some(r), Some(total), Some(seq)) => {
                let c =
                    udh::checked(r, true, total, seq).map_err(|_| CommandStatus::EsmeRinvtlvval)?;
                Ok((Some(c), data.to_vec()))
            }
            (None, None, None) => Ok((None, data.to_vec())),
            _ => Err(CommandStatus::EsmeRmissingtlv),
        }
    }

    /// The recipient as `PhoneNumber::parse` takes it.
    pub fn recipient(&self) -> Result<String, CommandStatus> {
        destination(&self.dest)
    }

    pub fn sender(&self) -> Result<Sender, CommandStatus> {
        let a = &self.source;
        let raw = match a.ton {
            1 => format!("+{}", a.addr.trim_start_matches('+')),
            _ => a.addr.clone(),
        };
        Sender::parse(&raw).map_err(|_| CommandStatus::EsmeRinvsrcadr)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptWanted {
    No,
    Always,
    OnFailure,
}

fn destination(a: &Address) -> Result<String, CommandStatus> {
    if a.npi > 1 {
        return Err(CommandStatus::EsmeRinvdstnpi);
    }
    let addr = a.addr.trim();
    let digits = |s: &str| !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_digit());
    match a.ton {
        1 => {
            let d = addr.strip_prefix('+').unwrap_or(addr);
            digits(d)
                .then(|| format!("+{d}"))
                .ok_or(CommandStatus::EsmeRinvdstadr)
        }
        0 => if let Some(d) = addr.strip_prefix('+') {
            digits(d).then(|| addr.to_string())
        } else if let Some(d) = addr.strip_prefix("00") {
            digits(d).then(|| format!("+{d}"))
        } else {
            digits(addr).then(|| format!("+{addr}"))
        }
        .ok_or(CommandStatus::EsmeRinvdstadr),
        _ => Err(CommandStatus::EsmeRinvdstton),
    }
}

/// Text from user data in its `data_coding`: 0 GSM 03.38 (unpacked, one
/// septet per octet), 1 IA5/ASCII, 3 Latin-1, 8 UCS-2 (UTF-16BE, surrogate
/// pairs read as one character), and 0xF0-0xF3 (GSM with a message class).
/// Anything else, or bytes that are not text in it: `ESME_RINVDCS`.
pub fn decode_text(data_coding: u8, data: &[u8]) -> Result<String, CommandStatus> {
    let bad = CommandStatus::EsmeRinvdcs;
    match data_coding {
        0 | 0xF0..=0xF3 => super::gsm::decode(data).map_err(|_| bad),
        1 => {
            if data.is_ascii() {
                Ok(data.iter().map(|&b| char::from(b)).collect())
            } else {
                Err(bad)
            }
        }
        3 => Ok(data.iter().map(|&b| char::from(b)).collect()),
        8 => {
            if data.len() % 2 != 0 {
                return Err(bad);
            }
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).map_err(|_| bad)
        }
        _ => Err(bad),
    }
}

/// What cannot be cut inside a payload of this coding.
pub fn unit_of(data_coding: u8) -> Unit {
    match data_coding {
        8 => Unit::Ucs2,
        0 | 0xF0..=0xF3 => Unit::Gsm,
        _ => Unit::Octet,
    }
}

/// The category `service_type` names, if any: `OTP`, `TXN` (or `TRANS`),
/// `MKT`, or the category's own name, in any case. Others (`CMT`, empty,
/// ...) say nothing about the category.
pub fn category_of_service_type(service_type: &str) -> Option<Category> {
    match service_type.trim().to_ascii_uppercase().as_str() {
        "OTP" => Some(Category::Otp),
        "TXN" | "TRANS" => Some(Category::Transactional),
        "MKT" => Some(Category::Marketing),
        other => Category::parse(&other.to_ascii_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ton: u8, npi: u8, a: &str) -> Address {
        Address {
            ton,
            npi,
            addr: a.into(),
        }
    }

    #[test]
    fn destinations_by_ton_and_npi() {
        assert_eq!(
            destination(&addr(1, 1, "33612345678")).unwrap(),
            "+33612345678"
        );
        assert_eq!(
            destination(&addr(1, 1, "+33612345678")).unwrap(),
            "+33612345678"
        );
        assert_eq!(
            destination(&addr(0, 1, "33612345678")).unwrap(),
            "+33612345678"
        );
        assert_eq!(
            destination(&addr(0, 0, "0033612345678")).unwrap(),
            "+33612345678"
        );
        assert_eq!(
            destination(&addr(0, 0, "+12125550123")).unwrap(),
            "+12125550123"
        );
        assert_eq!(
            destination(&addr(2, 1, "0612345678")),
            Err(CommandStatus::EsmeRinvdstton)
        );
        assert_eq!(
            destination(&addr(5, 0, "ACME")),
            Err(CommandStatus::EsmeRinvdstton)
        );
        assert_eq!(
            destination(&addr(1, 9, "33612345678")),
            Err(CommandStatus::EsmeRinvdstnpi)
        );
        assert_eq!(
            destination(&addr(1, 1, "")),
            Err(CommandStatus::EsmeRinvdstadr)
        );
        assert_eq!(
            destination(&addr(1, 1, "33 6 12")),
            Err(CommandStatus::EsmeRinvdstadr)
        );
        assert_eq!(
            destination(&addr(1, 1, "1234567890123456")),
            Err(CommandStatus::EsmeRinvdstadr)
        );
    }

    #[test]
    fn data_codings() {
        assert_eq!(decode_text(0, &[0x48, 0x69, 0x1B, 0x65]).unwrap(), "Hi€");
        assert_eq!(decode_text(3, &[0x45, 0xE9]).unwrap(), "Eé");
        assert_eq!(decode_text(1, b"ok").unwrap(), "ok");
        assert_eq!(
            decode_text(8, &[0x00, 0x41, 0xD8, 0x3D, 0xDE, 0x00]).unwrap(),
            "A😀"
        );
        assert_eq!(
            decode_text(8, &[0xD8, 0x3D]),
            Err(CommandStatus::EsmeRinvdcs),
            "a lone surrogate"
        );
        assert_eq!(decode_text(8, &[0x00]), Err(CommandStatus::EsmeRinvdcs));
        assert_eq!(decode_text(4, b"bin"), Err(CommandStatus::EsmeRinvdcs));
        assert_eq!(decode_text(0, &[0x80]), Err(CommandStatus::EsmeRinvdcs));
    }

    #[test]
    fn service_types_name_categories() {
        assert_eq!(category_of_service_type("OTP"), Some(Category::Otp));
        assert_eq!(
            category_of_service_type("txn"),
            Some(Category::Transactional)
        );
        assert_eq!(category_of_service_type("MKT"), Some(Category::Marketing));
        assert_eq!(category_of_service_type("otp "), Some(Category::Otp));
        assert_eq!(category_of_service_type("CMT"), None);
        assert_eq!(category_of_service_type(""), None);
    }

    fn message(esm_class: u8, short: &[u8], tlvs: MessageTlvs) -> Message {
        Message {
            service_type: String::new(),
            source: addr(5, 0, "ACME"),
            dest: addr(1, 1, "33612345678"),
            esm_class,
            registered_delivery: 1,
            data_coding: 0,
            short_message: short.to_vec(),
            tlvs,
        }
    }

    #[test]
    fn concatenation_from_udh_or_sar_tlvs() {
        let m = message(0x40, &[5, 0, 3, 9, 2, 1, b'a'], MessageTlvs::default());
        let (c, p) = m.parts().unwrap();
        assert_eq!((c.unwrap().total, c.unwrap().seq, p), (2, 1, b"a".to_vec()));
        let sar = MessageTlvs {
            sar_msg_ref_num: Some(300),
            sar_total_segments: Some(2),
            sar_segment_seqnum: Some(2),
            ..Default::default()
        };
        let (c, _) = message(0, b"b", sar.clone()).parts().unwrap();
        assert_eq!(c.unwrap().reference, 300);
        let partial = MessageTlvs {
            sar_segment_seqnum: None,
            ..sar
        };
        assert_eq!(
            message(0, b"b", partial).parts(),
            Err(CommandStatus::EsmeRmissingtlv)
        );
        let payload = MessageTlvs {
            message_payload: Some(b"long".to_vec()),
            ..Default::default()
        };
        assert_eq!(message(0, b"", payload.clone()).parts().unwrap().1, b"long");
        assert_eq!(
            message(0, b"x", payload).parts(),
            Err(CommandStatus::EsmeRinvmsglen)
        );
        assert_eq!(
            message(0x40, &[9, 0], MessageTlvs::default()).parts(),
            Err(CommandStatus::EsmeRinvesmclass)
        );
        assert_eq!(m.receipt_wanted(), ReceiptWanted::Always);
    }

    #[test]
    fn senders_by_ton() {
        let mut m = message(0, b"", MessageTlvs::default());
        assert_eq!(m.sender().unwrap().as_str(), "ACME");
        m.source = addr(1, 1, "33612345678");
        assert_eq!(m.sender().unwrap().as_str(), "+33612345678");
        m.source = addr(3, 0, "36111");
        assert_eq!(m.sender().unwrap().as_str(), "36111");
        m.source = addr(5, 0, "");
        assert_eq!(m.sender(), Err(CommandStatus::EsmeRinvsrcadr));
        assert_eq!(
            Address::for_sender("+33612345678"),
            addr(1, 1, "33612345678")
        );
        assert_eq!(Address::for_sender("ACME"), addr(5, 0, "ACME"));
    }
}
