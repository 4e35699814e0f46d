//! ftps-s3: an FTPS server (RFC 4217 explicit, MS-FTPS implicit) whose files live in S3.
//!
//! Read top-down: [`server`] accepts connections and hands each to a [`session`], which reads
//! commands, keeps the protocol state and answers; transfers open a [`datachan`] and move bytes
//! between it and a user's [`vfs::Home`] in a [`vfs::Storage`] backend (S3, or a local directory
//! for development). [`auth`] checks users, [`tls`] builds the rustls configs, [`config`] loads
//! everything, [`listing`] formats directory listings. [`telemetry`] (logs, traces), [`audit`]
//! (one log line per user action) and [`metrics`] observe it; [`events`] posts signed upload
//! events to a webhook; [`admin`] serves health, readiness
//! and metrics over HTTP; [`reload`] puts a changed certificate or users file in use;
//! [`preflight`] checks S3 and the listeners before partners do (`check-config`, `serve` start).
//! See ARCHITECTURE.md for the map.

// The one exception is `memory::tune_allocator` (glibc's mallopt), allowed where it stands.
#![deny(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod background;
pub mod config;
pub mod datachan;
pub mod events;
pub mod keepalive;
pub mod limits;
pub mod listing;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod outbound;
pub mod preflight;
pub mod proxy;
pub mod quota;
pub mod reload;
pub mod server;
pub mod session;
pub mod telemetry;
pub mod tls;
pub mod vfs;
pub mod vpath;
