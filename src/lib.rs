//! stopgate: SMS gateway middleware that adds the opt-out each country
//! expects to marketing messages, handles STOP replies and opt-out links,
//! and never forwards marketing to someone who opted out.
//!
//! The map (see ARCHITECTURE.md for the invariants):
//!
//! - [`cli`]: the command line (`serve`, `check-config`, operator commands).
//! - [`config`]: TOML file + `STOPGATE_...` env -> checked [`config::Settings`].
//! - [`app`]: builds the state, runs both listeners, shuts down gracefully.
//! - [`clock`]: the clock port (the system's; a manual one for tests).
//! - [`domain`]: pure types; numbers, tenants, categories, audit events.
//! - [`rules`]: the country rules files: methods, footers, keywords, replies.
//! - [`outbound`]: the send pipeline, footers and segment counting.
//! - [`inbound`]: recipients' replies: keywords, attribution, actions.
//! - [`links`]: opt-out link codes.
//! - [`reports`]: delivery reports move message records on.
//! - [`schedule`]: held messages (send windows, `send_at`) released when due.
//! - [`outbox`]: webhooks and confirmation SMS, delivered at least once.
//! - [`suppressions`]: CSV import and export of suppression lists.
//! - [`consent`]: consent records: double opt-in requests, CSV import/export.
//! - [`csv_io`]: what both CSV imports and exports share (report, header, paging).
//! - [`progress`]: progress bars of long CLI work, on a terminal only.
//! - [`store`]: the `Store` trait, sled, PostgreSQL, group commit, `store copy`.
//! - [`upstream`]: the `Provider` trait and one adapter per provider.
//! - [`http`]: routers, extractors, the JSON error shape.
//! - [`smpp`]: the SMPP session layer and the SMPP front.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod consent;
pub mod csv_io;
pub mod domain;
pub mod http;
pub mod inbound;
pub mod links;
pub mod outbound;
pub mod outbox;
pub mod progress;
pub mod reports;
pub mod rules;
pub mod schedule;
pub mod smpp;
pub mod store;
pub mod suppressions;
pub mod telemetry;
pub mod upstream;
