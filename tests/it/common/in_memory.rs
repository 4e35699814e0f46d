//! A real ftps-s3 server on the in-memory storage backend: the same server, TLS, users and
//! explicit listener as [`super::server::TestServer`], without SeaweedFS. For session rules, where what
//! matters is the reply sequence, not the store.

use std::{net::SocketAddr, sync::Arc};

use ftps_s3::{
    auth::UserStore,
    server::{RunningServer, Server},
    tls::TlsAcceptors,
    vfs::{memory::MemoryStorage, Stores},
};

use super::server::base_config;

pub struct InMemoryServer {
    pub explicit: SocketAddr,
    /// The store every user's home lives in (`partners/<user>/`).
    pub storage: MemoryStorage,
    _dir: tempfile::TempDir,
    running: Option<RunningServer>,
}

impl InMemoryServer {
    pub async fn start() -> InMemoryServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = base_config(dir.path(), "");
        // What the server is given below replaces it; `local` needs no bucket.
        config.storage.backend = ftps_s3::config::Backend::Local;
        config.validate().expect("valid test config");
        let tls = TlsAcceptors::load(&config.tls).expect("tls");
        let users = UserStore::load(&config.auth.users_file).expect("users");
        let storage = MemoryStorage::new();
        let stores = Stores::single(Arc::new(storage.clone()));
        let server = Server::bind_with(config, tls, users, stores)
            .await
            .expect("server binds");
        let running = server.spawn();
        InMemoryServer {
            explicit: running.explicit_addr.expect("explicit listener"),
            storage,
            _dir: dir,
            running: Some(running),
        }
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}
