//! Twilio-shaped HTTP: the Twilio-compatible Messages endpoint on the API
//! listener (`front`), and the pure pieces of the `/inbound/twilio` webhook:
//! request-signature validation (`signature`) and TwiML answers (`twiml`).
//! Only this module knows the Twilio-front wire format.

pub mod front;
pub mod inbound;
pub mod lookup;
pub mod signature;
pub mod twiml;

pub use front::{create_message, message_sid, MESSAGES_PATH};
