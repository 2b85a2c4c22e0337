//! PDUs on the wire: our framing around rusmpp-core's body codec.
//!
//! We frame ourselves instead of using the crate's tokio codec so that
//! (1) `command_length` is checked against our bound before a single byte
//! of the body is buffered, (2) a body that does not decode still has a
//! known header, so the peer gets a `generic_nack` with its sequence number,
//! and (3) a decode error never leaves the stream half-consumed.

use bytes::{Buf, BufMut, BytesMut};
use rusmpp_core::command::owned::Command;
use rusmpp_core::decode::owned::DecodeWithLength;
use rusmpp_core::encode::owned::Encode;
use rusmpp_core::encode::Length;
use rusmpp_core::pdus::owned::Pdu;
use rusmpp_core::tlvs::owned::{Tlv, TlvValue};
use rusmpp_core::{CommandId, CommandStatus};

pub const HEADER_LEN: usize = 16;

/// The largest `command_length` we accept: a `submit_sm` with a full
/// `message_payload` (64 KiB) and its fields. Anything longer is corrupt
/// or hostile and closes the session.
pub const MAX_COMMAND_LENGTH: usize = 64 * 1024 + 512;

/// The fixed part of every PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub command_length: u32,
    pub command_id: u32,
    pub command_status: u32,
    pub sequence_number: u32,
}

impl Header {
    pub fn read(b: &[u8; HEADER_LEN]) -> Header {
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Header {
            command_length: word(0),
            command_id: word(4),
            command_status: word(8),
            sequence_number: word(12),
        }
    }

    /// Whether this is a response (the high bit of `command_id`).
    pub fn is_response(&self) -> bool {
        self.command_id & 0x8000_0000 != 0
    }
}

/// Why bytes are not a PDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length field is below the header or above [`MAX_COMMAND_LENGTH`]:
    /// the stream cannot be trusted past this point. The sequence number,
    /// if the rest of the header had arrived, for the `generic_nack`.
    #[error("command_length {length} is out of bounds")]
    Length { length: u32, sequence: Option<u32> },
    /// Framed, but the body does not decode as its command.
    #[error("the {command:#010x} body does not decode")]
    Body { header: Header, command: u32 },
}

/// The next whole PDU at the front of `buf`, removed from it; `Ok(None)` if
/// more bytes are needed. The length is checked from the first four bytes,
/// before the caller reserves room for the rest.
pub fn take_frame(buf: &mut BytesMut) -> Result<Option<(Header, BytesMut)>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if (len as usize) < HEADER_LEN || len as usize > MAX_COMMAND_LENGTH {
        let sequence = (buf.len() >= HEADER_LEN)
            .then(|| u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]));
        return Err(FrameError::Length {
            length: len,
            sequence,
        });
    }
    if buf.len() < len as usize {
        return Ok(None);
    }
    let mut frame = buf.split_to(len as usize);
    let head: [u8; HEADER_LEN] = frame[..HEADER_LEN].try_into().expect("16 bytes");
    frame.advance(HEADER_LEN);
    Ok(Some((Header::read(&head), frame)))
}

/// How many more bytes the frame at the front of `buf` needs (0 if whole or
/// if its length is not known yet), for a bounded `reserve`.
pub fn missing(buf: &[u8]) -> usize {
    if buf.len() < 4 {
        return 4 - buf.len();
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    len.min(MAX_COMMAND_LENGTH).saturating_sub(buf.len())
}

/// Decodes one framed PDU with rusmpp-core. The body must be consumed
/// exactly: trailing bytes are as malformed as missing ones.
pub fn decode(header: Header, mut body: BytesMut) -> Result<Command, FrameError> {
    let malformed = FrameError::Body {
        header,
        command: header.command_id,
    };
    // rusmpp decodes the whole command after the length field.
    let mut whole = BytesMut::with_capacity(HEADER_LEN - 4 + body.len());
    whole.put_u32(header.command_id);
    whole.put_u32(header.command_status);
    whole.put_u32(header.sequence_number);
    let body_len = body.len();
    whole.unsplit(body.split());
    match Command::decode(&mut whole, HEADER_LEN - 4 + body_len) {
        Ok((command, size)) if size == HEADER_LEN - 4 + body_len && whole.is_empty() => {
            // A known command whose body rusmpp could not read is a body error too.
            if command.pdu().is_none() && body_len > 0 {
                return Err(malformed);
            }
            Ok(command)
        }
        _ => Err(malformed),
    }
}

/// The bytes of one PDU.
pub fn encode(command: &Command, out: &mut BytesMut) {
    let len = 4 + command.length();
    out.reserve(len);
    out.put_u32(len as u32);
    command.encode(out);
}

pub fn encoded(command: &Command) -> BytesMut {
    let mut out = BytesMut::new();
    encode(command, &mut out);
    out
}

/// A response or request with this status and sequence number.
pub fn command(status: CommandStatus, sequence: u32, pdu: impl Into<Pdu>) -> Command {
    Command::new(status, sequence, pdu)
}

/// `generic_nack` for a request we cannot act on.
pub fn generic_nack(status: CommandStatus, sequence: u32) -> Command {
    Command::new(status, sequence, Pdu::GenericNack)
}

/// A response with a header and no body: what SMPP 3.4 (§4.1.4, §4.4.2)
/// sends with a non-zero `command_status`.
pub fn bare_response(id: CommandId, status: CommandStatus, sequence: u32) -> Command {
    Command::new(
        status,
        sequence,
        Pdu::Other {
            command_id: id,
            body: rusmpp_core::types::owned::AnyOctetString::empty(),
        },
    )
}

/// The response command id of a request id (`0x80000000 | id`).
pub fn response_id(request: u32) -> u32 {
    request | 0x8000_0000
}

/// A short name for metrics and logs (never a field's content).
pub fn command_name(id: CommandId) -> &'static str {
    match id {
        CommandId::BindTransmitter => "bind_transmitter",
        CommandId::BindTransmitterResp => "bind_transmitter_resp",
        CommandId::BindReceiver => "bind_receiver",
        CommandId::BindReceiverResp => "bind_receiver_resp",
        CommandId::BindTransceiver => "bind_transceiver",
        CommandId::BindTransceiverResp => "bind_transceiver_resp",
        CommandId::Outbind => "outbind",
        CommandId::SubmitSm => "submit_sm",
        CommandId::SubmitSmResp => "submit_sm_resp",
        CommandId::DeliverSm => "deliver_sm",
        CommandId::DeliverSmResp => "deliver_sm_resp",
        CommandId::DataSm => "data_sm",
        CommandId::DataSmResp => "data_sm_resp",
        CommandId::Unbind => "unbind",
        CommandId::UnbindResp => "unbind_resp",
        CommandId::EnquireLink => "enquire_link",
        CommandId::EnquireLinkResp => "enquire_link_resp",
        CommandId::GenericNack => "generic_nack",
        CommandId::QuerySm => "query_sm",
        CommandId::QuerySmResp => "query_sm_resp",
        CommandId::CancelSm => "cancel_sm",
        CommandId::CancelSmResp => "cancel_sm_resp",
        CommandId::ReplaceSm => "replace_sm",
        CommandId::ReplaceSmResp => "replace_sm_resp",
        CommandId::SubmitMulti => "submit_multi",
        CommandId::SubmitMultiResp => "submit_multi_resp",
        CommandId::AlertNotification => "alert_notification",
        _ => "other",
    }
}

/// A status's name for metrics: `ok`, or its hex code.
pub fn status_label(status: CommandStatus) -> String {
    let code = u32::from(status);
    if code == 0 {
        "ok".into()
    } else {
        format!("{code:#010x}")
    }
}

/// The concatenation and payload TLVs of a `submit_sm`/`data_sm`, and the
/// receipt TLVs of a `deliver_sm`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MessageTlvs {
    pub sar_msg_ref_num: Option<u16>,
    pub sar_total_segments: Option<u8>,
    pub sar_segment_seqnum: Option<u8>,
    pub message_payload: Option<Vec<u8>>,
    pub receipted_message_id: Option<String>,
    pub message_state: Option<u8>,
}

impl MessageTlvs {
    pub fn read(tlvs: &[Tlv]) -> MessageTlvs {
        let mut out = MessageTlvs::default();
        for tlv in tlvs {
            match tlv.value() {
                Some(TlvValue::SarMsgRefNum(v)) => out.sar_msg_ref_num = Some(*v),
                Some(TlvValue::SarTotalSegments(v)) => out.sar_total_segments = Some(*v),
                Some(TlvValue::SarSegmentSeqnum(v)) => out.sar_segment_seqnum = Some(*v),
                Some(TlvValue::MessagePayload(p)) => {
                    out.message_payload = Some(p.value.as_ref().to_vec())
                }
                Some(TlvValue::ReceiptedMessageId(id)) => {
                    out.receipted_message_id = Some(id.as_str().to_string())
                }
                Some(TlvValue::MessageState(state)) => out.message_state = Some(u8::from(*state)),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusmpp_core::pdus::owned::BindTransmitter;
    use rusmpp_core::types::owned::COctetString;

    fn bind_bytes() -> Vec<u8> {
        // The example of SMPP 5.0 §2.3.2 (interface 0x34 here), written by hand.
        let mut b = vec![0, 0, 0, 0x2F, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1];
        b.extend_from_slice(b"SMPP3TEST\0secret08\0SUBMIT1\0");
        b.extend_from_slice(&[0x34, 1, 1, 0]);
        b
    }

    #[test]
    fn a_hand_written_bind_decodes_and_encodes_back() {
        let mut buf = BytesMut::from(&bind_bytes()[..]);
        let (h, body) = take_frame(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        assert_eq!((h.command_length, h.sequence_number), (0x2F, 1));
        // The password has 8 characters, the most SMPP allows.
        let c = decode(h, body).unwrap();
        match c.pdu() {
            Some(Pdu::BindTransmitter(b)) => {
                assert_eq!(b.system_id.as_str(), "SMPP3TEST");
                assert_eq!(b.password.as_str(), "secret08");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(&encoded(&c)[..], &bind_bytes()[..]);
    }

    #[test]
    fn lengths_are_checked_before_anything_is_buffered() {
        let mut huge = BytesMut::from(&[0x7F, 0xFF, 0xFF, 0xFF][..]);
        assert_eq!(
            take_frame(&mut huge),
            Err(FrameError::Length {
                length: 0x7FFF_FFFF,
                sequence: None
            })
        );
        let mut short = BytesMut::from(&[0, 0, 0, 15, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 9][..]);
        assert_eq!(
            take_frame(&mut short),
            Err(FrameError::Length {
                length: 15,
                sequence: Some(9)
            })
        );
        let mut partial = BytesMut::from(&bind_bytes()[..20]);
        assert_eq!(take_frame(&mut partial), Ok(None));
        assert_eq!(missing(&partial), 0x2F - 20);
        assert_eq!(missing(&[0x7F, 0xFF, 0xFF, 0xFF]), MAX_COMMAND_LENGTH - 4);
    }

    #[test]
    fn malformed_bodies_keep_their_header() {
        // A bind whose system_id runs past the end (no NUL terminator).
        let mut b = vec![0, 0, 0, 20, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9];
        b.extend_from_slice(b"ABCD");
        let mut buf = BytesMut::from(&b[..]);
        let (h, body) = take_frame(&mut buf).unwrap().unwrap();
        match decode(h, body) {
            Err(FrameError::Body { header, .. }) => assert_eq!(header.sequence_number, 9),
            other => panic!("{other:?}"),
        }
        // An enquire_link with a body it should not have.
        let b = [0, 0, 0, 17, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 3, 0xAA];
        let mut buf = BytesMut::from(&b[..]);
        let (h, body) = take_frame(&mut buf).unwrap().unwrap();
        assert!(decode(h, body).is_err());
        // Trailing bytes after a complete bind body.
        let mut b = bind_bytes();
        b[3] += 2;
        b.extend_from_slice(&[0xFF, 0xFF]);
        let mut buf = BytesMut::from(&b[..]);
        let (h, body) = take_frame(&mut buf).unwrap().unwrap();
        assert!(decode(h, body).is_err(), "trailing garbage is not a TLV");
    }

    #[test]
    fn unknown_commands_decode_as_other() {
        let b = [0, 0, 0, 16, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 5];
        let mut buf = BytesMut::from(&b[..]);
        let (h, body) = take_frame(&mut buf).unwrap().unwrap();
        let c = decode(h, body);
        // Either form lets the caller answer generic_nack(ESME_RINVCMDID).
        if let Ok(c) = c {
            assert!(matches!(c.id(), CommandId::Other(0x1234)));
        }
        let c = command(
            CommandStatus::EsmeRok,
            7,
            BindTransmitter::builder()
                .system_id(COctetString::from_string("x".into()).unwrap())
                .build(),
        );
        assert_eq!(command_name(c.id()), "bind_transmitter");
    }
}
