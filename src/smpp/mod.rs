//! SMPP 3.4: the session layer shared by the front (applications bind to
//! stopgate) and the upstream (stopgate binds to an SMSC, in
//! `upstream::smpp`), and the front.
//!
//! - [`pdu`]: framing (bounded `command_length`) around rusmpp-core's codec.
//! - [`session`]: the pure state machine: bind state, sequence numbers,
//!   window, enquire_link and inactivity timers.
//! - [`link`]: its async driver: frame reader, writer task, requests
//!   matched to responses.
//! - [`gsm`], [`udh`], [`receipt`]: pure text work: GSM 03.38, concatenation,
//!   the delivery receipt text.
//! - [`message`]: a `submit_sm`/`data_sm` in stopgate's terms (pure).
//! - [`esme`]: the upstream's side (pure): `submit_sm` parts, answers
//!   classified, receipts read, message id forms.
//! - [`receipts`]: receipts from the outbox to a tenant's receiver binds.
//! - [`front`]: the listener.
//!
//! docs/smpp.md describes the behaviour; no log line holds an address or a
//! message (numbers only as `PhoneNumber`'s masked form).

pub mod esme;
pub mod front;
pub mod gsm;
pub mod link;
pub mod message;
pub mod pdu;
pub mod receipt;
pub mod receipts;
pub mod session;
pub mod udh;
