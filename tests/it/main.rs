//! The integration tests: one binary (one SeaweedFS for the whole run, see `common::seaweedfs`),
//! one module per area.
//!
//! Run: `cargo test --test it` (needs `weed` on PATH: `scripts/install-test-deps.sh`).

mod admin;
mod budget;
mod cli;
mod clients;
mod cluster;
mod common;
mod duplex;
mod events;
mod faults;
mod folders;
mod haproxy;
mod hostile;
mod http_auth;
mod interop;
mod keepalive;
mod passive;
mod protocol;
mod proxy;
mod quota;
mod rules;
mod security;
mod storage;
mod telemetry;
mod tlsauth;
