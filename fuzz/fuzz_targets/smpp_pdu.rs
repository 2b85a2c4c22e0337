//! The SMPP decoder on arbitrary bytes, as a session reads them: framing
//! never accepts a length above the bound, a decoded PDU encodes back to
//! bytes that decode to the same PDU, and nothing a peer sends makes the
//! session state machine, the message reader (addresses, concatenation,
//! data codings) or the receipt parser panic.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rusmpp_core::pdus::owned::Pdu;
use stopgate::smpp::message::{decode_text, Message};
use stopgate::smpp::pdu::{decode, encoded, take_frame, MAX_COMMAND_LENGTH};
use stopgate::smpp::receipt::ReceiptText;
use stopgate::smpp::session::{BindMode, Role, Session, Timers};
use stopgate::smpp::udh;

fn timers() -> Timers {
    Timers {
        response: Duration::from_secs(5),
        enquire_link: Duration::from_secs(30),
        inactivity: Duration::from_secs(90),
        bind: Duration::from_secs(10),
    }
}

fn read_message(m: &Message) {
    let _ = m.recipient();
    let _ = m.sender();
    if let Ok((_, payload)) = m.parts() {
        let _ = decode_text(m.data_coding, &payload);
    }
    let _ = udh::parse(&m.short_message);
    if let Ok(text) = std::str::from_utf8(&m.short_message) {
        let _ = ReceiptText::parse(text);
    }
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut buf = BytesMut::from(data);
    let mut front = Session::new(Role::Smsc, timers(), 4, t0);
    let mut upstream = Session::new(Role::Esme, timers(), 4, t0);
    upstream.bound(BindMode::Transceiver);
    let mut n = 0u64;
    while let Ok(Some((header, body))) = take_frame(&mut buf) {
        n += 1;
        assert!(header.command_length as usize <= MAX_COMMAND_LENGTH);
        let Ok(command) = decode(header, body) else { continue };
        let again = encoded(&command);
        let mut again = BytesMut::from(&again[..]);
        let (h2, b2) = take_frame(&mut again)
            .expect("our own encoding frames")
            .expect("whole");
        assert_eq!(decode(h2, b2).expect("our own encoding decodes"), command);

        let now = t0 + Duration::from_secs(n);
        for s in [&mut front, &mut upstream] {
            s.heard(now);
            if header.is_response() {
                let _ = s.on_response(command.sequence_number(), command.id());
            } else if s.check_request(command.id()).is_ok() {
                if let Some(mode) = BindMode::of_request(command.id()) {
                    s.bound(mode);
                }
            }
            let _ = s.begin_request(command.id(), now);
            let _ = s.poll(now);
            let _ = s.next_deadline();
        }
        match command.pdu() {
            Some(Pdu::SubmitSm(s)) => read_message(&Message::from_submit(s)),
            Some(Pdu::DataSm(d)) => read_message(&Message::from_data_sm(d)),
            Some(Pdu::DeliverSm(d)) => {
                if let Ok(text) = std::str::from_utf8(d.short_message()) {
                    let _ = ReceiptText::parse(text);
                }
            }
            _ => {}
        }
    }
});
