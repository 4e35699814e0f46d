//! Fixtures shared by every integration test module.
//!
//! - [`seaweedfs`]: the real S3 server (SeaweedFS `weed mini`), started once per test binary;
//!   each test takes its own bucket from it.
//! - [`server`]: a real ftps-s3 server per test, on that SeaweedFS.
//! - [`clients`]: curl, lftp and Python ftplib as child processes; [`raw`]: a line-level client.
//! - [`pki`]: a throwaway CA issuing client certificates; [`logs`]: the server's log lines.
//! - [`faultproxy`]: an HTTP fault injector between a server and SeaweedFS; [`http`]: a GET for
//!   the admin listener.

pub mod clients;
pub mod faultproxy;
pub mod http;
pub mod logs;
pub mod pki;
pub mod raw;
pub mod seaweedfs;
pub mod server;
