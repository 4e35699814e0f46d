//! A real ftps-s3 server per test: S3 storage in a bucket of its own on the shared SeaweedFS, a
//! fresh self-signed certificate and a users file on disk, both listeners on ephemeral ports.
//!
//! Users (all with password `<name>-password`):
//! - `acme`, home `partners/acme/`, every permission;
//! - `other`, home `partners/other/`, every permission (jail tests put files here);
//!
//! Interrupted uploads are kept for resume (`s3.resume_window_secs`, 24 h) as in production;
//! tests of the abort-everything behaviour set it to 0.
//! - `drop`, home `partners/drop/`, `list` + `write` only (a drop box).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use aws_sdk_s3::Client;
use ftps_s3::{
    auth::UserStore,
    config::{Backend, Config},
    server::{RunningServer, Server},
    tls::{ensure_self_signed, TlsAcceptors},
    vfs::{s3::client_from_sdk_config, Stores},
};

use super::seaweedfs;
use super::users::{self, UserToml};

pub const USER: &str = "acme";
pub const PASSWORD: &str = "acme-password";
pub const HOME: &str = "partners/acme/";

pub struct TestServer {
    pub explicit: SocketAddr,
    pub implicit: SocketAddr,
    /// The admin HTTP listener, when the test set `admin.listen`.
    pub admin: Option<SocketAddr>,
    pub bucket: String,
    /// The users file the server loaded (and reloads, with `auth.reload_interval_secs`).
    pub users_file: PathBuf,
    /// Certificate and users file; removed when the server is dropped.
    _dir: tempfile::TempDir,
    s3: Client,
    running: Option<RunningServer>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts with the test defaults, after `adjust` has changed the config.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_full("", adjust, |b| b).await
    }

    /// As [`TestServer::start_with`], with `extra_users` (`[[user]]` tables) added to the users
    /// file.
    pub async fn start_with_users(
        extra_users: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> TestServer {
        Self::start_full(extra_users, adjust, |b| b).await
    }

    /// As [`TestServer::start_with`], with `tune` applied to the server's S3 client settings
    /// after `client_from_sdk_config` (e.g. a shorter read timeout, so a stalled S3 request
    /// fails in seconds instead of the product's minute).
    pub async fn start_with_s3_client(
        adjust: impl FnOnce(&mut Config),
        tune: impl FnOnce(aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder,
    ) -> TestServer {
        Self::start_full("", adjust, tune).await
    }

    async fn start_full(
        extra_users: &str,
        adjust: impl FnOnce(&mut Config),
        tune: impl FnOnce(aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder,
    ) -> TestServer {
        let sw = seaweedfs::s3().await;
        let bucket = sw.new_bucket().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = base_config(dir.path(), extra_users);
        let users_file = config.auth.users_file.clone();
        config.storage.backend = Backend::S3;
        config.s3 = sw.s3_config(&bucket);
        adjust(&mut config);
        config.validate().expect("valid test config");

        let tls = TlsAcceptors::load(&config.tls).expect("tls");
        let users = UserStore::load(&config.auth.users_file).expect("users");
        let client = client_from_sdk_config(&sw.sdk_config(), &config.s3);
        let client = Client::from_conf(tune(client.config().to_builder()).build());
        let stores = Stores::s3_with_client(client, &config);
        let server = Server::bind_with(config, tls, users, stores)
            .await
            .expect("server binds");
        let running = server.spawn();
        TestServer {
            explicit: running.explicit_addr.expect("explicit listener"),
            implicit: running.implicit_addr.expect("implicit listener"),
            admin: running.admin_addr,
            bucket,
            users_file,
            _dir: dir,
            s3: sw.client(),
            running: Some(running),
        }
    }
}

/// The test config without storage: a fresh self-signed certificate and the users file (the
/// users above, then `extra_users`) written in `dir`, both listeners on ephemeral ports.
pub fn base_config(dir: &std::path::Path, extra_users: &str) -> Config {
    let (cert_file, key_file) = ensure_self_signed(dir).expect("certificate");
    let users_file = dir.join("users.toml");
    let mut users = String::new();
    for (name, perms) in [
        ("acme", users::ALL),
        ("other", users::ALL),
        ("drop", &["list", "write"][..]),
    ] {
        let user = UserToml::new(name)
            .password(&format!("{name}-password"))
            .permissions(perms);
        users.push_str(&user.render());
    }
    users.push_str(extra_users);
    std::fs::write(&users_file, users).expect("users file");

    let mut config = Config::default();
    config.listeners.explicit = Some("127.0.0.1:0".parse().expect("addr"));
    config.listeners.implicit = Some("127.0.0.1:0".parse().expect("addr"));
    config.tls.cert_file = cert_file;
    config.tls.key_file = key_file;
    config.auth.users_file = users_file;
    config.auth.failure_delay_ms = 50;
    config.passive.ports = "40000-44999".into();
    config.limits.data_connect_timeout_secs = 10;
    config.shutdown.grace_seconds = 5;
    config
}

impl TestServer {
    /// The S3 key of `path` in `acme`'s home.
    pub fn key(&self, path: &str) -> String {
        format!("{HOME}{}", path.trim_start_matches('/'))
    }

    /// The object's bytes, read straight from S3; `None` if there is no such object.
    pub async fn object(&self, key: &str) -> Option<Vec<u8>> {
        seaweedfs::get_object(&self.s3, &self.bucket, key).await
    }

    /// Puts an object straight into S3 (setting up a test).
    pub async fn put_object(&self, key: &str, body: &[u8]) {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.to_vec().into())
            .send()
            .await
            .expect("PutObject");
    }

    /// Every key in the bucket, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.expect("ListObjectsV2");
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
        keys.sort();
        keys
    }

    /// Multipart uploads still open in the bucket (must be 0 after any failed upload).
    pub async fn open_multipart_uploads(&self) -> usize {
        seaweedfs::open_uploads(&self.s3, &self.bucket, "")
            .await
            .len()
    }

    /// Multipart uploads still open for exactly `key`.
    pub async fn open_multipart_uploads_for(&self, key: &str) -> usize {
        self.upload_ids(key).await.len()
    }

    /// The ids of the multipart uploads open for exactly `key`.
    async fn upload_ids(&self, key: &str) -> Vec<String> {
        seaweedfs::open_uploads(&self.s3, &self.bucket, key)
            .await
            .into_iter()
            .filter(|(k, _)| k == key)
            .map(|(_, id)| id)
            .collect()
    }

    /// Sizes of the completed parts of the open multipart upload for `key` (ListParts).
    pub async fn kept_parts(&self, key: &str) -> Vec<i64> {
        let Some(id) = self.upload_ids(key).await.into_iter().next() else {
            return Vec::new();
        };
        let parts = self
            .s3
            .list_parts()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(id)
            .send()
            .await
            .expect("ListParts");
        parts.parts().iter().filter_map(|p| p.size()).collect()
    }

    /// The object's ETag (multipart ETags end in `-<number of parts>`).
    pub async fn etag(&self, key: &str) -> String {
        self.head(key)
            .await
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string()
    }

    /// The object's user metadata (`x-amz-meta-*`, without the prefix).
    pub async fn metadata(&self, key: &str) -> std::collections::HashMap<String, String> {
        self.head(key).await.metadata().cloned().unwrap_or_default()
    }

    async fn head(&self, key: &str) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
        self.s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .expect("HeadObject")
    }

    /// Polls `check` until it holds (cleanup after a cut connection is asynchronous).
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..100 {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for: {what}");
    }

    /// Starts the shutdown (as SIGTERM does) without waiting for it to end.
    pub fn begin_shutdown(&self) {
        if let Some(r) = &self.running {
            r.shutdown_token().cancel();
        }
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}
