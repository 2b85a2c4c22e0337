//! Black-box tests: the real gateway on port 0, a mock provider on loopback,
//! everything over HTTP. One binary, so it links once.

mod browser;
mod cli;
mod cluster;
mod cluster_faults;
mod consent;
mod crash;
mod dlr;
mod durability;
mod errors;
mod helpers;
mod inbound;
mod languages;
mod links;
mod messages;
mod mocks;
mod operations;
#[path = "../support/pg.rs"]
mod pg;
mod providers;
mod replay;
mod runtime;
mod schedule;
mod send;
mod smpp_front;
mod smpp_upstream;
mod smsc;
mod store_faults;
mod suppressions;
mod timeouts;
mod twilio_front;
mod upstream_batch;
mod webhooks;
