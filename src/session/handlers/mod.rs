//! Command handlers, grouped by family. Each is a short method on `Session` that checks its
//! arguments, does the work and returns an `Outcome`; access rules common to many commands are in
//! `Session::gate`/`require`/`resolve`, transfers in `session::transfer`.

mod auth;
mod files;
mod info;
mod navigation;
mod params;

pub(in crate::session) use files::storage_reply;
