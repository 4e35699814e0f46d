//! Users: who may log in, with which password, where their home is and what they may do.
//!
//! The users file (`auth.users_file`, typically a mounted secret) is TOML:
//! ```toml
//! [[user]]
//! name = "acme"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."
//! home = "partners/acme/"          # key prefix
//! bucket = "acme-inbox"            # optional: instead of s3.bucket
//! permissions = ["list", "read", "write", "delete", "rename", "mkdir"]
//! ```
//! Passwords are stored only as argon2 PHC strings (`ftps-s3 hash-password` makes one). A login
//! for an unknown user still verifies against a fixed hash, so the reply and its timing are the
//! same as for a wrong password.

mod permissions;
mod throttle;

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use ipnet::IpNet;

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use serde::Deserialize;

use crate::proxy::ClientAddr;
pub use permissions::{Permission, Permissions};
pub use throttle::LoginThrottle;

/// One user, as loaded from the users file.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    password_hash: String,
    /// Key prefix, as written in the users file.
    pub home: String,
    /// The user's own bucket, if not the default one.
    pub bucket: Option<String>,
    pub permissions: Permissions,
    /// Client addresses the user may log in from; empty means any.
    pub allowed_ips: Vec<IpNet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    password_hash: String,
    home: String,
    bucket: Option<String>,
    permissions: Vec<Permission>,
    #[serde(default)]
    allowed_ips: Vec<IpNet>,
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("auth.users_file: cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("auth.users_file: {path}: {message}")]
    Invalid { path: String, message: String },
}

/// All users, by name. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct UserStore {
    users: Arc<HashMap<String, Arc<User>>>,
}

/// Verified against when the user does not exist, so unknown users cost the same as known ones.
/// The hash of a random password nobody knows, with the default parameters.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$VQXYP2HvEOwAJq2FXgxb2Cs6y4O+1uFSz1c1UNVKd3Y";

impl UserStore {
    /// Reads and checks the users file: TOML shape, unique names, parsable hashes, safe homes.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| UsersError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses users-file text; the error says which user and field is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: UsersFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut users = HashMap::new();
        for (i, e) in file.user.into_iter().enumerate() {
            let at = format!("user[{i}] ({:?})", e.name);
            if e.name.is_empty() || e.name.chars().any(|c| c.is_control() || c == ' ') {
                return Err(format!("{at}: name must be non-empty, without spaces"));
            }
            PasswordHash::new(&e.password_hash)
                .map_err(|err| format!("{at}: password_hash is not a PHC string: {err}"))?;
            if !e.password_hash.starts_with("$argon2") {
                return Err(format!("{at}: password_hash must be an argon2 hash"));
            }
            if e.home.split('/').any(|s| s == ".." || s == ".") || e.home.contains(['\\', '\0']) {
                return Err(format!(
                    "{at}: home must be a plain key prefix (no . or ..)"
                ));
            }
            let user = User {
                name: e.name.clone(),
                password_hash: e.password_hash,
                home: e.home,
                bucket: e.bucket.filter(|b| !b.is_empty()),
                permissions: Permissions::from_list(&e.permissions),
                allowed_ips: e.allowed_ips,
            };
            if users.insert(e.name, Arc::new(user)).is_some() {
                return Err(format!("{at}: duplicate user name"));
            }
        }
        Ok(UserStore {
            users: Arc::new(users),
        })
    }

    /// A store holding just these users (for the development default and tests).
    pub fn from_users(list: Vec<User>) -> Self {
        let users = list
            .into_iter()
            .map(|u| (u.name.clone(), Arc::new(u)))
            .collect();
        UserStore {
            users: Arc::new(users),
        }
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks a login. CPU-heavy (argon2): runs on the blocking pool.
    pub async fn verify(&self, name: &str, password: &str) -> Option<Arc<User>> {
        let user = self.users.get(name).cloned();
        let hash = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| DUMMY_HASH.to_string());
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        user.filter(|_| ok)
    }
}

impl User {
    /// A user built in code (development default, tests).
    pub fn new(
        name: &str,
        password: &str,
        home: &str,
        permissions: Permissions,
    ) -> Result<Self, String> {
        Ok(User {
            name: name.to_string(),
            password_hash: hash_password(password)?,
            home: home.to_string(),
            bucket: None,
            permissions,
            allowed_ips: Vec::new(),
        })
    }
}

/// Why a login failed. The client sees the same `530` for each; the log says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Unknown user or wrong password (indistinguishable on purpose).
    BadCredentials,
    /// Too many recent failures from this address or for this user.
    Throttled,
    /// The user may not log in from this address (`allowed_ips`).
    AddressNotAllowed,
}

impl LoginFailure {
    pub fn reason(self) -> &'static str {
        match self {
            LoginFailure::BadCredentials => "bad_credentials",
            LoginFailure::Throttled => "throttled",
            LoginFailure::AddressNotAllowed => "address_not_allowed",
        }
    }
}

/// Every rule of logging in, in order: throttle, password, address allow list.
pub struct Authenticator {
    users: UserStore,
    throttle: LoginThrottle,
}

impl Authenticator {
    pub fn new(users: UserStore, max_failures: u32, ban: Duration) -> Self {
        Authenticator {
            users,
            throttle: LoginThrottle::new(max_failures, ban),
        }
    }

    /// Checks a login by `client` (throttle, password, `allowed_ips`), and records its result.
    pub async fn login(
        &self,
        client: ClientAddr,
        name: &str,
        password: &str,
    ) -> Result<Arc<User>, LoginFailure> {
        let client = client.ip();
        if self.throttle.is_banned(client, name) {
            return Err(LoginFailure::Throttled);
        }
        let Some(user) = self.users.verify(name, password).await else {
            self.throttle.failed(client, name);
            return Err(LoginFailure::BadCredentials);
        };
        if !user.allowed_ips.is_empty() && !user.allowed_ips.iter().any(|n| n.contains(&client)) {
            self.throttle.failed(client, name);
            return Err(LoginFailure::AddressNotAllowed);
        }
        self.throttle.succeeded(client, name);
        Ok(user)
    }
}

/// An argon2id PHC string for `password` with the crate's default (OWASP) parameters.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Constant-time comparison is inside argon2's verifier.
fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let h = hash_password("s3cret").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        let text = format!(
            "[[user]]\nname = \"acme\"\npassword_hash = \"{h}\"\nhome = \"partners/acme/\"\npermissions = [\"list\", \"write\"]\n"
        );
        let store = UserStore::parse(&text).expect("parse");
        let u = store.verify("acme", "s3cret").await.expect("login");
        assert_eq!(u.home, "partners/acme/");
        assert!(u.permissions.allows(Permission::Write));
        assert!(!u.permissions.allows(Permission::Read));
        assert!(store.verify("acme", "wrong").await.is_none());
        assert!(store.verify("nobody", "s3cret").await.is_none());
    }

    #[tokio::test]
    async fn allowed_ips_and_throttling() {
        let h = hash_password("pw").expect("hash");
        let text = format!(
            "[[user]]\nname = \"a\"\npassword_hash = \"{h}\"\nhome = \"\"\npermissions = []\nallowed_ips = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n"
        );
        let auth = Authenticator::new(
            UserStore::parse(&text).expect("parse"),
            3,
            Duration::from_secs(60),
        );
        let at = |s: &str| ClientAddr::direct(s.parse().expect("addr"));
        let inside = at("10.1.2.3:1000");
        let mapped = at("[::ffff:10.1.2.3]:1000");
        let v6 = at("[2001:db8::7]:1000");
        let outside = at("192.0.2.1:1000");
        assert!(auth.login(inside, "a", "pw").await.is_ok());
        assert!(auth.login(mapped, "a", "pw").await.is_ok());
        assert!(auth.login(v6, "a", "pw").await.is_ok());
        assert_eq!(
            auth.login(outside, "a", "pw").await.err(),
            Some(LoginFailure::AddressNotAllowed)
        );
        assert_eq!(
            auth.login(inside, "a", "bad").await.err(),
            Some(LoginFailure::BadCredentials)
        );
        assert_eq!(
            auth.login(inside, "a", "bad").await.err(),
            Some(LoginFailure::BadCredentials)
        );
        // Three failures for "a" (the refused address counts too): banned, even with the right
        // password.
        assert_eq!(
            auth.login(inside, "a", "pw").await.err(),
            Some(LoginFailure::Throttled)
        );
    }

    #[test]
    fn dummy_hash_parses() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let e = UserStore::parse(
            "[[user]]\nname = \"a\"\npassword_hash = \"plain\"\nhome = \"\"\npermissions = []\n",
        )
        .expect_err("fail");
        assert!(e.contains("password_hash"), "{e}");
        let e = UserStore::parse(
            "[[user]]\nname = \"a\"\npassword_hash = \"x\"\nhome = \"\"\npermissions = [\"fly\"]\n",
        )
        .expect_err("fail");
        assert!(e.contains("fly"), "{e}");
        let h = hash_password("p").expect("hash");
        let e = UserStore::parse(&format!(
            "[[user]]\nname = \"a\"\npassword_hash = \"{h}\"\nhome = \"../x\"\npermissions = []\n"
        ))
        .expect_err("fail");
        assert!(e.contains("home"), "{e}");
    }
}
