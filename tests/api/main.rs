//! Black-box tests: the real gateway on port 0, a mock provider on loopback,
//! everything over HTTP. One binary, so it links once.

mod cli;
mod errors;
mod helpers;
mod mocks;
mod providers;
mod send;
mod twilio_front;
