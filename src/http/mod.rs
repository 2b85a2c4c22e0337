//! HTTP: the two listeners' routers. Only this module knows our wire JSON.

pub mod api;
pub mod error;
pub mod extract;
pub mod public;
pub mod twilio;
