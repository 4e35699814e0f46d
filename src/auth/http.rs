//! External identity (`auth.http_url`): users the users file does not know are asked of an HTTP
//! endpoint. Contract (README "External identity"):
//!
//! - request: `POST` JSON `{"user", "password", "certificate_cn"?, "client_addr", "listener"}`,
//!   with `Authorization: Bearer <auth.http_secret_file>` when that is set;
//! - `200` with `{"allow": true, "home": …, "permissions": […], "bucket"?, "allowed_ips"?,
//!   "quota_bytes"?, "quota_files"?, "max_upload_kib_s"?, "max_download_kib_s"?,
//!   "folders"?: [{"path", "bucket"?, "prefix", "permissions"}]}`: logged in as that user (the
//!   fields of a `[[user]]` and its `[[user.folder]]`s; with folders, `home` may be left out);
//! - `200` with `{"allow": false}`, or `401`/`403`/`404`: refused;
//! - anything else (another status, a body that is not that JSON, unknown fields, a timeout, no
//!   connection): an error, refused too (fail closed), logged as such.
//!
//! Successes are cached for `auth.http_cache_secs` under a keyed hash of every request field
//! (the password never stored); refusals and errors are not cached, so each one reaches the
//! endpoint and counts against the login throttle, which bounds how many can.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hmac::{Hmac, KeyInit, Mac};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{folders::FolderEntry, Permission, Place, User, UserLimits};
use crate::config::{Auth as AuthConfig, ConfigError};
use crate::net::{ClientAddr, ListenerKind};

/// Cached successes kept at most; beyond it expired ones are swept, then the cache is cleared.
const CACHE_MAX: usize = 10_000;
/// Largest answer body read from the endpoint.
const MAX_BODY: usize = 64 * 1024;

/// A keyed hash of one request's fields.
type CacheKey = [u8; 32];

/// The endpoint and its cache.
pub struct HttpIdentity {
    client: reqwest::Client,
    url: String,
    bearer: Option<String>,
    timeout: Duration,
    cache_for: Duration,
    /// Key of the cache's hash, random per process: a dumped cache gives no offline guesses.
    cache_key: [u8; 32],
    cache: Mutex<HashMap<CacheKey, (Instant, Arc<User>)>>,
}

/// What the endpoint said.
#[derive(Debug)]
pub enum Verdict {
    Allowed(Arc<User>),
    Refused,
    /// No usable answer (logged); the login fails as if refused.
    Error(String),
}

#[derive(Serialize)]
struct Request<'a> {
    user: &'a str,
    password: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_cn: Option<&'a str>,
    client_addr: String,
    listener: &'static str,
}

/// The answer's body. Unknown fields are an error: a field this version does not enforce
/// (folders, say) must not be silently dropped.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    allow: bool,
    home: Option<String>,
    bucket: Option<String>,
    #[serde(default)]
    permissions: Vec<Permission>,
    #[serde(default)]
    allowed_ips: Vec<IpNet>,
    quota_bytes: Option<u64>,
    quota_files: Option<u64>,
    max_upload_kib_s: Option<u64>,
    max_download_kib_s: Option<u64>,
    #[serde(default)]
    folders: Vec<FolderEntry>,
}

impl HttpIdentity {
    /// From `[auth]`; `None` without `http_url`. The secret file is read here, so a missing one
    /// stops the start.
    pub fn from_config(config: &AuthConfig) -> Result<Option<Self>, ConfigError> {
        let Some(url) = config.http_url.clone().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let bearer = match &config.http_secret_file {
            Some(path) => {
                let secret = crate::outbound::read_secret_file("auth.http_secret_file", path)?;
                Some(String::from_utf8(secret).map_err(|_| ConfigError::Invalid {
                    key: "auth.http_secret_file",
                    reason: "must be text (it is sent in a header)".into(),
                })?)
            }
            None => None,
        };
        let timeout = Duration::from_millis(config.http_timeout_ms);
        // Redirects are not followed: a 3xx is an error.
        let client = crate::outbound::post_client("auth.http_url", timeout)?;
        Ok(Some(HttpIdentity {
            client,
            url,
            bearer,
            timeout,
            cache_for: Duration::from_secs(config.http_cache_secs),
            cache_key: rand::random(),
            cache: Mutex::default(),
        }))
    }

    /// Asks the endpoint (or the cache) about `user` logging in with `password`.
    pub async fn check(
        &self,
        client: ClientAddr,
        listener: ListenerKind,
        user: &str,
        password: &str,
        presented_cn: Option<&str>,
    ) -> Verdict {
        let ip = client.ip().to_canonical();
        let request = Request {
            user,
            password,
            certificate_cn: presented_cn,
            client_addr: ip.to_string(),
            listener: listener.name(),
        };
        let key = self.cache_key_of(&request, ip);
        if let Some(user) = self.cached(&key) {
            return Verdict::Allowed(user);
        }
        // reqwest's own timeout covers connect, send and answer; this one the body too.
        let verdict = match tokio::time::timeout(self.timeout, self.ask(&request)).await {
            Ok(v) => v,
            Err(_) => Verdict::Error(format!("no answer within {:?}", self.timeout)),
        };
        if let Verdict::Allowed(u) = &verdict {
            self.remember(key, u.clone());
        }
        verdict
    }

    async fn ask(&self, request: &Request<'_>) -> Verdict {
        let body = match serde_json::to_vec(request) {
            Ok(b) => b,
            Err(e) => return Verdict::Error(e.to_string()),
        };
        let mut post = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(secret) = &self.bearer {
            post = post.bearer_auth(secret);
        }
        let mut response = match post.send().await {
            Ok(r) => r,
            Err(e) => return Verdict::Error(crate::outbound::describe(&e)),
        };
        match response.status().as_u16() {
            200 => {}
            401 | 403 | 404 => return Verdict::Refused,
            s => return Verdict::Error(format!("HTTP {s}")),
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_BODY => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => return Verdict::Error(format!("answer over {MAX_BODY} bytes")),
                Ok(None) => break,
                Err(e) => return Verdict::Error(crate::outbound::describe(&e)),
            }
        }
        match parse_answer(request.user, &body) {
            Ok(Some(user)) => Verdict::Allowed(Arc::new(user)),
            Ok(None) => Verdict::Refused,
            Err(e) => Verdict::Error(e),
        }
    }

    /// HMAC-SHA256 of every request field under the per-process key.
    fn cache_key_of(&self, r: &Request<'_>, ip: IpAddr) -> CacheKey {
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.cache_key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        // Length-prefixed, so no two requests share a byte string.
        for field in [
            r.user,
            r.password,
            r.certificate_cn.unwrap_or("\0none"),
            &ip.to_string(),
            r.listener,
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    fn cached(&self, key: &CacheKey) -> Option<Arc<User>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.cache_for)
            .map(|(_, u)| u.clone())
    }

    fn remember(&self, key: CacheKey, user: Arc<User>) {
        if self.cache_for.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (at, _)| at.elapsed() < self.cache_for);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), user));
    }
}

/// `Ok(None)`: a refusal (`"allow": false`).
fn parse_answer(name: &str, body: &[u8]) -> Result<Option<User>, String> {
    let a: Answer = serde_json::from_slice(body).map_err(|e| format!("answer: {e}"))?;
    if !a.allow {
        return Ok(None);
    }
    let (up, down) = (a.max_upload_kib_s, a.max_download_kib_s);
    let limits = UserLimits::checked(a.quota_bytes, a.quota_files, up, down)
        .map_err(|e| format!("answer: {e}"))?;
    // `permissions` may be left out here (none), unlike in the users file.
    let permissions = Some(a.permissions).filter(|_| a.folders.is_empty());
    let place = Place::check(a.home, permissions, a.folders).map_err(|e| format!("answer: {e}"))?;
    Ok(Some(User {
        name: name.to_string(),
        password_hash: None,
        certificate_cn: None,
        home: place.home,
        bucket: a.bucket.filter(|b| !b.is_empty()),
        permissions: place.permissions,
        allowed_ips: a.allowed_ips,
        limits,
        folders: place.folders,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let u = parse_answer(
            "a",
            br#"{"allow": true, "home": "p/a/", "permissions": ["list", "write"], "allowed_ips": ["10.0.0.0/8"]}"#,
        )
        .expect("valid")
        .expect("allowed");
        assert_eq!(u.home, "p/a/");
        assert!(u.permissions.allows(Permission::Write));
        assert!(!u.permissions.allows(Permission::Read));
        assert_eq!(u.allowed_ips.len(), 1);
        assert_eq!(u.limits, UserLimits::default());
        let u = parse_answer(
            "a",
            br#"{"allow": true, "home": "p/a/", "quota_bytes": 3145728, "quota_files": 10, "max_upload_kib_s": 512, "max_download_kib_s": 1024}"#,
        )
        .expect("valid")
        .expect("allowed");
        assert_eq!(
            u.limits,
            UserLimits {
                quota_bytes: Some(3 << 20),
                quota_files: Some(10),
                max_upload_kib_s: Some(512),
                max_download_kib_s: Some(1024),
            }
        );
        let u = parse_answer(
            "a",
            br#"{"allow": true, "folders": [{"path": "/in", "bucket": "b", "prefix": "in/a/", "permissions": ["write"]}]}"#,
        )
        .expect("valid")
        .expect("allowed");
        assert_eq!(u.folders.len(), 1);
        assert_eq!(u.folders[0].prefix, "in/a");
        assert!(u.folders[0].permissions.allows(Permission::Write));
        assert!(parse_answer("a", br#"{"allow": false}"#)
            .expect("valid")
            .is_none());
        for bad in [
            &br#"{"allow": true}"#[..],
            br#"{"allow": true, "home": "../x", "permissions": []}"#,
            br#"{"allow": true, "home": "x", "permissions": [], "quota_kib": 5}"#,
            br#"{"allow": true, "home": "x", "permissions": [], "max_upload_kib_s": 0}"#,
            br#"{"home": "x"}"#,
            br#"{"allow": true, "folders": [{"path": "in", "prefix": "", "permissions": []}]}"#,
            br#"{"allow": true, "folders": [{"path": "/a", "prefix": "", "permissions": []}, {"path": "/a/b", "prefix": "", "permissions": []}]}"#,
            b"not json",
        ] {
            assert!(
                parse_answer("a", bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
