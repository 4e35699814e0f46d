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
//!
//! [[user.folder]]                  # optional, repeatable: logical folders (see `folders.rs`)
//! path = "/inbox"
//! bucket = "acme-in"               # optional: instead of s3.bucket
//! prefix = "in/acme/"
//! permissions = ["list", "write"]
//! ```
//! A user with folders sees only them, under a virtual `/`; `home` and the user's own
//! `permissions` are then not used (`home` may be left out; given, it is ignored with a warning).
//! Passwords are stored only as argon2 PHC strings (`ftps-s3 hash-password` makes one). A login
//! for an unknown user still verifies against a fixed hash, so the reply and its timing are the
//! same as for a wrong password.
//!
//! A user may also (or instead) be bound to a client certificate (`certificate_cn`, with
//! `tls.client_auth`): with only `password_hash` the password logs in; with only
//! `certificate_cn` a verified client certificate with that subject CN logs in at USER (`232`,
//! RFC 2228: "user logged in, authorized by security data exchange"); with both, the
//! certificate must match and the password too. A missing or wrong certificate is not an oracle:
//! the client gets the `331` → `530` of a wrong password, after the same work, and the failure
//! counts towards throttling; only the audit line says why.
//!
//! The store can be replaced while the server runs ([`Authenticator::replace_users`], the
//! reloader): new logins see the new users, logged-in sessions keep the `User` they logged in as.

mod folders;
mod http;
mod limits;
mod password;
mod permissions;
mod throttle;

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use ipnet::IpNet;

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString},
    Argon2,
};
use serde::Deserialize;

use crate::net::{ClientAddr, ListenerKind};
pub use folders::Folder;
pub use http::HttpIdentity;
pub use limits::UserLimits;
pub use permissions::{Permission, Permissions};
pub use throttle::{Lockout, LoginThrottle};

/// One user, as loaded from the users file.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    /// `None`: a certificate-only user.
    password_hash: Option<String>,
    /// The subject CN a verified client certificate must carry to log in as this user.
    pub certificate_cn: Option<String>,
    /// Key prefix, as written in the users file.
    pub home: String,
    /// The user's own bucket, if not the default one.
    pub bucket: Option<String>,
    pub permissions: Permissions,
    /// Client addresses the user may log in from; empty means any.
    pub allowed_ips: Vec<IpNet>,
    /// Quotas and bandwidth limits (`quota_bytes`, `quota_files`, `max_upload_kib_s`,
    /// `max_download_kib_s`); all `None`: none.
    pub limits: UserLimits,
    /// Logical folders; empty: the user sees their home at `/`.
    pub folders: Vec<Folder>,
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
    password_hash: Option<String>,
    certificate_cn: Option<String>,
    /// Optional only for a user with folders.
    home: Option<String>,
    bucket: Option<String>,
    /// Optional only for a user with folders.
    permissions: Option<Vec<Permission>>,
    #[serde(default)]
    allowed_ips: Vec<IpNet>,
    quota_bytes: Option<u64>,
    quota_files: Option<u64>,
    max_upload_kib_s: Option<u64>,
    max_download_kib_s: Option<u64>,
    #[serde(default)]
    folder: Vec<folders::FolderEntry>,
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
    /// The file it was loaded from and its contents; `None` when built in code (nothing to
    /// reload).
    source: Option<(PathBuf, String)>,
    /// Settings that load but do nothing (`check-config` prints them, the server logs them).
    warnings: Vec<String>,
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
        Self::parse_file(path, text)
    }

    /// Parses `text`, read from `path` (the reloader reads the file itself, and parses exactly
    /// the text it compared).
    pub fn parse_file(path: &Path, text: String) -> Result<Self, UsersError> {
        let mut store = Self::parse(&text).map_err(|message| UsersError::Invalid {
            path: path.display().to_string(),
            message,
        })?;
        store.source = Some((path.to_path_buf(), text));
        Ok(store)
    }

    /// The file and the text it was loaded from, where the reloader starts.
    pub fn source(&self) -> Option<&(PathBuf, String)> {
        self.source.as_ref()
    }

    /// Settings that load but are ignored, one sentence each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Every user, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.users.values().map(|u| u.as_ref())
    }

    /// Users bound to a client certificate (`certificate_cn`), who cannot log in while
    /// `tls.client_auth = "none"`.
    pub fn certificate_users(&self) -> impl Iterator<Item = &str> {
        self.users
            .values()
            .filter(|u| u.certificate_cn.is_some())
            .map(|u| u.name.as_str())
    }

    /// Parses users-file text; the error says which user and field is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: UsersFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut users = HashMap::new();
        let mut warnings = Vec::new();
        for (i, e) in file.user.into_iter().enumerate() {
            let at = format!("user[{i}] ({:?})", e.name);
            if e.name.is_empty() || e.name.chars().any(|c| c.is_control() || c == ' ') {
                return Err(format!("{at}: name must be non-empty, without spaces"));
            }
            match (&e.password_hash, &e.certificate_cn) {
                (None, None) => {
                    return Err(format!(
                        "{at}: needs password_hash, certificate_cn, or both"
                    ))
                }
                (_, Some(cn)) if cn.is_empty() || cn.chars().any(char::is_control) => {
                    return Err(format!("{at}: certificate_cn must be a non-empty name"));
                }
                _ => {}
            }
            if let Some(hash) = &e.password_hash {
                // Plaintext, bcrypt ($2b$) and crypt ($6$) hashes are the usual mistakes; the
                // parser's own words ("salt invalid") would not say what to do.
                const MAKE_ONE: &str = "make one with `ftps-s3 hash-password`";
                if !hash.starts_with("$argon2") {
                    return Err(format!(
                        "{at}: password_hash is not an argon2 PHC hash (\"$argon2id$v=19$…\"): {MAKE_ONE}"
                    ));
                }
                PasswordHash::new(hash).map_err(|err| {
                    format!(
                        "{at}: password_hash is not a valid argon2 PHC hash ({err}): {MAKE_ONE}"
                    )
                })?;
            }
            let (up, down) = (e.max_upload_kib_s, e.max_download_kib_s);
            let limits = UserLimits::checked(e.quota_bytes, e.quota_files, up, down)
                .map_err(|e| format!("{at}: {e}"))?;
            let place = Place::check(e.home, e.permissions, e.folder)
                .map_err(|why| format!("{at}: {why}"))?;
            warnings.extend(place.ignored.iter().map(|w| format!("{at}: {w}")));
            let user = User {
                name: e.name.clone(),
                password_hash: e.password_hash,
                certificate_cn: e.certificate_cn,
                home: place.home,
                bucket: e.bucket.filter(|b| !b.is_empty()),
                permissions: place.permissions,
                allowed_ips: e.allowed_ips,
                limits,
                folders: place.folders,
            };
            if users.insert(e.name, Arc::new(user)).is_some() {
                return Err(format!("{at}: duplicate user name"));
            }
        }
        Ok(UserStore {
            users: Arc::new(users),
            source: None,
            warnings,
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
            source: None,
            warnings: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<Arc<User>> {
        self.users.get(name).cloned()
    }

    /// Checks a name and password (the certificate is not looked at). CPU- and memory-heavy
    /// (argon2): see [`password`] for how it is bounded. A certificate-only user has no password that could match.
    pub async fn verify(&self, name: &str, password: &str) -> Option<Arc<User>> {
        let user = self.get(name);
        let ok = password_matches(user.as_deref(), password).await;
        user.filter(|_| ok)
    }
}

/// A home must be a plain key prefix (users file and external identity alike).
fn check_home(home: &str) -> Result<(), String> {
    if home.split('/').any(|s| s == ".." || s == ".") || home.contains(['\\', '\0']) {
        return Err("home must be a plain key prefix (no . or ..)".into());
    }
    Ok(())
}

/// Where a user's paths lead, checked: their home and permissions, or their folders. Shared by
/// the users file and the identity endpoint's answers.
struct Place {
    home: String,
    permissions: Permissions,
    folders: Vec<Folder>,
    /// Fields given but not used (a user with folders has no home), and folders that overlap
    /// in storage: for warnings.
    ignored: Vec<String>,
}

impl Place {
    fn check(
        home: Option<String>,
        permissions: Option<Vec<Permission>>,
        folders: Vec<folders::FolderEntry>,
    ) -> Result<Place, String> {
        if folders.is_empty() {
            let home = home.ok_or("home is missing (or give folders)")?;
            check_home(&home)?;
            let permissions = permissions.ok_or("permissions is missing (or give folders)")?;
            return Ok(Place {
                home,
                permissions: Permissions::from_list(&permissions),
                folders: Vec::new(),
                ignored: Vec::new(),
            });
        }
        let mut ignored: Vec<&str> = Vec::new();
        if home.is_some() {
            ignored.push("home is ignored: the user has folders");
        }
        if permissions.is_some() {
            ignored.push("permissions is ignored: the user has folders (each has its own)");
        }
        let folders = folders::check(folders)?;
        Ok(Place {
            home: String::new(),
            permissions: Permissions::default(),
            ignored: ignored
                .into_iter()
                .map(str::to_string)
                .chain(folders::overlaps(&folders))
                .collect(),
            folders,
        })
    }
}

/// Whether `password` is `user`'s. Always one argon2 verification, against a fixed hash when
/// there is no user or no password: every answer costs the same.
async fn password_matches(user: Option<&User>, password: &str) -> bool {
    let hash = user.and_then(|u| u.password_hash.clone());
    let has_hash = hash.is_some();
    let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_string());
    let ok = password::verify(password.to_string(), hash).await;
    ok && has_hash
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
            password_hash: Some(hash_password(password)?),
            certificate_cn: None,
            home: home.to_string(),
            bucket: None,
            permissions,
            allowed_ips: Vec::new(),
            limits: UserLimits::default(),
            folders: Vec::new(),
        })
    }

    /// The same user, seeing `folders` instead of their home (tests).
    pub fn with_folders(mut self, folders: Vec<Folder>) -> Self {
        self.folders = folders;
        self
    }

    /// Logs in by certificate alone (no password to give).
    pub fn is_certificate_only(&self) -> bool {
        self.password_hash.is_none() && self.certificate_cn.is_some()
    }

    fn address_allowed(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.allowed_ips.is_empty() || self.allowed_ips.iter().any(|n| n.contains(&client))
    }

    /// The certificate rule: nothing to check without `certificate_cn`, else the session's
    /// verified client certificate must carry exactly that CN.
    fn certificate_matches(&self, presented_cn: Option<&str>) -> Result<(), LoginFailure> {
        match (&self.certificate_cn, presented_cn) {
            (None, _) => Ok(()),
            (Some(_), None) => Err(LoginFailure::NoCertificate),
            (Some(want), Some(cn)) if want == cn => Ok(()),
            (Some(_), Some(_)) => Err(LoginFailure::CertificateMismatch),
        }
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
    /// The user needs a client certificate (`certificate_cn`) and the session has none.
    NoCertificate,
    /// The session's client certificate carries another CN than the user's `certificate_cn`.
    CertificateMismatch,
    /// The identity endpoint (`auth.http_url`) gave no usable answer: refused (fail closed).
    IdentityUnavailable,
}

impl LoginFailure {
    /// The `result` label of `ftps_logins_total`: `failed` for credentials that did not match,
    /// `refused` when the server would not even consider them.
    pub fn metric_result(self) -> &'static str {
        match self {
            LoginFailure::Throttled | LoginFailure::AddressNotAllowed => "refused",
            LoginFailure::BadCredentials
            | LoginFailure::NoCertificate
            | LoginFailure::CertificateMismatch
            | LoginFailure::IdentityUnavailable => "failed",
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            LoginFailure::BadCredentials => "bad_credentials",
            LoginFailure::Throttled => "throttled",
            LoginFailure::AddressNotAllowed => "address_not_allowed",
            LoginFailure::NoCertificate => "no_client_certificate",
            LoginFailure::CertificateMismatch => "client_certificate_mismatch",
            LoginFailure::IdentityUnavailable => "identity_endpoint_error",
        }
    }
}

/// Every rule of logging in, in order: throttle, password (users file, else the identity
/// endpoint), client certificate, address allow list.
pub struct Authenticator {
    users: RwLock<UserStore>,
    throttle: LoginThrottle,
    /// `auth.http_url`: asked about users the file does not know.
    http: Option<HttpIdentity>,
}

impl Authenticator {
    pub fn new(users: UserStore, max_failures: u32, ban: Duration, lockout: Lockout) -> Self {
        Authenticator {
            users: RwLock::new(users),
            throttle: LoginThrottle::new(max_failures, ban, lockout),
            http: None,
        }
    }

    /// Users the file does not know are asked of `http` (at PASS).
    pub fn with_http(mut self, http: Option<HttpIdentity>) -> Self {
        self.http = http;
        self
    }

    /// The users logins are checked against now.
    pub fn users(&self) -> UserStore {
        self.users.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// New logins use `users` from now on (the throttle's counts are kept).
    pub fn replace_users(&self, users: UserStore) {
        *self.users.write().unwrap_or_else(|p| p.into_inner()) = users;
    }

    /// At USER: a certificate-only user whose session presented a verified client certificate
    /// with their CN is logged in without a password. `None` in every other case, success or
    /// not: the session asks for a password (`331`) and [`Authenticator::login`] at PASS gives
    /// the verdict, so a missing certificate looks like a wrong password and is counted once.
    pub fn login_by_certificate(
        &self,
        client: IpAddr,
        name: &str,
        presented_cn: Option<&str>,
    ) -> Option<Arc<User>> {
        let user = self.users().get(name)?;
        let ok = user.is_certificate_only()
            && !self.throttle.is_banned(client, name)
            && user.certificate_matches(presented_cn).is_ok()
            && user.address_allowed(client);
        if !ok {
            return None;
        }
        self.throttle.succeeded(client.to_canonical(), name);
        Some(user)
    }

    /// At PASS: `password` and the session's client certificate CN (`presented_cn`, if any)
    /// against the user's `password_hash` and `certificate_cn`. A certificate-only user's
    /// password is not looked at (argon2 still runs, so the timing is that of any user).
    pub async fn login(
        &self,
        client: ClientAddr,
        listener: ListenerKind,
        name: &str,
        password: &str,
        presented_cn: Option<&str>,
    ) -> Result<Arc<User>, LoginFailure> {
        let addr = client;
        let client = client.ip();
        // Counted as a failure before the check, so a burst cannot queue more checks than
        // the budget allows (see `throttle`).
        let Some(reservation) = self.throttle.reserve(client, name).await else {
            return Err(LoginFailure::Throttled);
        };
        let file_user = self.users().get(name);
        let (user, password_ok) = match (&file_user, &self.http) {
            // File first; only a user it does not know is asked of the endpoint, which then
            // decides on password and certificate alike (its record has no hash to check).
            (None, Some(http)) => {
                match http
                    .check(addr, listener, name, password, presented_cn)
                    .await
                {
                    http::Verdict::Allowed(u) => (Some(u), true),
                    http::Verdict::Refused => (None, false),
                    http::Verdict::Error(why) => {
                        tracing::warn!(user = name, client = %addr, error = %why, "identity endpoint (auth.http_url) failed: login refused");
                        return Err(LoginFailure::IdentityUnavailable);
                    }
                }
            }
            _ => {
                let ok = password_matches(file_user.as_deref(), password).await;
                (file_user, ok)
            }
        };
        let verdict = match &user {
            None => Err(LoginFailure::BadCredentials),
            Some(u) if u.password_hash.is_some() && !password_ok => {
                Err(LoginFailure::BadCredentials)
            }
            Some(u) => u.certificate_matches(presented_cn).and_then(|()| {
                if u.address_allowed(client) {
                    Ok(())
                } else {
                    Err(LoginFailure::AddressNotAllowed)
                }
            }),
        };
        match (verdict, user) {
            (Ok(()), Some(user)) => {
                reservation.succeeded();
                Ok(user)
            }
            // Dropping the reservation keeps the failure counted.
            (Err(why), _) => Err(why),
            (Ok(()), None) => Err(LoginFailure::BadCredentials),
        }
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
            Lockout::UserAndAddress,
        );
        let at = |s: &str| ClientAddr::direct(s.parse().expect("addr"));
        let inside = at("10.1.2.3:1000");
        let mapped = at("[::ffff:10.1.2.3]:1000");
        let v6 = at("[2001:db8::7]:1000");
        let outside = at("192.0.2.1:1000");
        assert!(auth
            .login(inside, ListenerKind::Explicit, "a", "pw", None)
            .await
            .is_ok());
        assert!(auth
            .login(mapped, ListenerKind::Explicit, "a", "pw", None)
            .await
            .is_ok());
        assert!(auth
            .login(v6, ListenerKind::Explicit, "a", "pw", None)
            .await
            .is_ok());
        assert_eq!(
            auth.login(outside, ListenerKind::Explicit, "a", "pw", None)
                .await
                .err(),
            Some(LoginFailure::AddressNotAllowed)
        );
        assert_eq!(
            auth.login(inside, ListenerKind::Explicit, "a", "bad", None)
                .await
                .err(),
            Some(LoginFailure::BadCredentials)
        );
        assert_eq!(
            auth.login(inside, ListenerKind::Explicit, "a", "bad", None)
                .await
                .err(),
            Some(LoginFailure::BadCredentials)
        );
        // Three failures for "a" (the refused address counts too): banned, even with the right
        // password.
        assert_eq!(
            auth.login(inside, ListenerKind::Explicit, "a", "pw", None)
                .await
                .err(),
            Some(LoginFailure::Throttled)
        );
    }

    #[tokio::test]
    async fn certificate_rules() {
        let h = hash_password("pw").expect("hash");
        let text = format!(
            "[[user]]\nname = \"cert\"\ncertificate_cn = \"cert.example\"\nhome = \"\"\npermissions = []\n\n\
             [[user]]\nname = \"both\"\ncertificate_cn = \"both.example\"\npassword_hash = \"{h}\"\nhome = \"\"\npermissions = []\n\n\
             [[user]]\nname = \"pw\"\npassword_hash = \"{h}\"\nhome = \"\"\npermissions = []\n"
        );
        let auth = Authenticator::new(
            UserStore::parse(&text).expect("parse"),
            100,
            Duration::from_secs(60),
            Lockout::UserAndAddress,
        );
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        // USER: only a certificate-only user with the right certificate logs in at once.
        assert!(auth
            .login_by_certificate(ip, "cert", Some("cert.example"))
            .is_some());
        assert!(auth
            .login_by_certificate(ip, "cert", Some("other"))
            .is_none());
        assert!(auth.login_by_certificate(ip, "cert", None).is_none());
        assert!(auth
            .login_by_certificate(ip, "both", Some("both.example"))
            .is_none());
        assert!(auth.login_by_certificate(ip, "pw", Some("pw")).is_none());
        assert!(auth.login_by_certificate(ip, "nobody", Some("x")).is_none());
        // PASS: the reasons are told apart (for the audit line only).
        let login = |name: &'static str, pw: &'static str, cn: Option<&'static str>| {
            let auth = &auth;
            async move {
                auth.login(
                    ClientAddr::direct((ip, 1000).into()),
                    ListenerKind::Explicit,
                    name,
                    pw,
                    cn,
                )
                .await
                .map(|u| u.name.clone())
            }
        };
        assert_eq!(
            login("cert", "", None).await,
            Err(LoginFailure::NoCertificate)
        );
        assert_eq!(
            login("cert", "", Some("x")).await,
            Err(LoginFailure::CertificateMismatch)
        );
        assert_eq!(
            login("both", "pw", Some("both.example")).await,
            Ok("both".into())
        );
        assert_eq!(
            login("both", "bad", Some("both.example")).await,
            Err(LoginFailure::BadCredentials)
        );
        assert_eq!(
            login("both", "pw", None).await,
            Err(LoginFailure::NoCertificate)
        );
        assert_eq!(
            login("both", "pw", Some("cert.example")).await,
            Err(LoginFailure::CertificateMismatch)
        );
        // A password-only user ignores any certificate.
        assert_eq!(login("pw", "pw", Some("x")).await, Ok("pw".into()));
        // A certificate-only user cannot be logged into with a password.
        assert!(auth.users().verify("cert", "").await.is_none());
    }

    #[test]
    fn a_user_needs_a_password_or_a_certificate() {
        let e = UserStore::parse("[[user]]\nname = \"a\"\nhome = \"\"\npermissions = []\n")
            .expect_err("fail");
        assert!(e.contains("password_hash, certificate_cn, or both"), "{e}");
        let e = UserStore::parse(
            "[[user]]\nname = \"a\"\ncertificate_cn = \"\"\nhome = \"\"\npermissions = []\n",
        )
        .expect_err("fail");
        assert!(e.contains("certificate_cn"), "{e}");
    }

    #[test]
    fn hashes_that_are_not_argon2_name_the_fix() {
        for hash in [
            "s3cret",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "$6$rounds=5000$saltsalt$Jx6xkXLPbLd0n4JqS1PZx8vX5nJ1",
            "$argon2id$v=19$m=19456,t=2,p=1$a!b$c",
        ] {
            let text = format!(
                "[[user]]\nname = \"a\"\npassword_hash = '{hash}'\nhome = \"\"\npermissions = []\n"
            );
            let e = UserStore::parse(&text).expect_err("must be refused");
            assert!(
                e.contains("not")
                    && e.contains("argon2 PHC hash")
                    && e.contains("ftps-s3 hash-password"),
                "{hash}: {e}"
            );
        }
    }

    #[test]
    fn limits_are_read_and_checked() {
        let store = UserStore::parse(include_str!("../../examples/users.toml")).expect("example");
        let limits = store.get("dropbox").expect("dropbox").limits;
        assert_eq!(limits.quota_bytes, Some(10 << 30));
        assert_eq!(limits.quota_files, Some(10_000));
        assert_eq!(limits.max_upload_kib_s, Some(10_240));
        assert_eq!(limits.max_download_kib_s, Some(10_240));
        assert_eq!(
            store.get("acme").expect("acme").limits,
            UserLimits::default()
        );
        let h = hash_password("p").expect("hash");
        let e = UserStore::parse(&format!(
            "[[user]]\nname = \"a\"\npassword_hash = \"{h}\"\nhome = \"\"\npermissions = []\nmax_download_kib_s = 0\n"
        ))
        .expect_err("0 KiB/s");
        assert!(e.contains("max_download_kib_s must be at least 1"), "{e}");
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

    #[test]
    fn users_with_folders() {
        let h = hash_password("p").expect("hash");
        let text = format!(
            "[[user]]\nname = \"acme\"\npassword_hash = \"{h}\"\n\
             [[user.folder]]\npath = \"/inbox\"\nbucket = \"a\"\nprefix = \"in/acme/\"\npermissions = [\"list\", \"write\"]\n\
             [[user.folder]]\npath = \"/outbox\"\nprefix = \"out/acme\"\npermissions = [\"list\", \"read\"]\n\n\
             [[user]]\nname = \"old\"\npassword_hash = \"{h}\"\nhome = \"x/\"\npermissions = [\"list\"]\n\
             [[user.folder]]\npath = \"/in\"\npermissions = []\n"
        );
        let store = UserStore::parse(&text).expect("parse");
        let acme = store.get("acme").expect("acme");
        assert_eq!(acme.folders.len(), 2);
        assert_eq!(acme.folders[0].bucket.as_deref(), Some("a"));
        assert_eq!(acme.folders[0].prefix, "in/acme");
        assert_eq!(acme.folders[1].bucket, None);
        assert!(acme.folders[1].permissions.allows(Permission::Read));
        assert!(!acme.folders[1].permissions.allows(Permission::Write));
        // `home` (and the user's own permissions) beside folders: loaded, with warnings.
        assert_eq!(store.warnings().len(), 2, "{:?}", store.warnings());
        assert!(store.warnings().iter().all(|w| w.contains("\"old\"")));
        assert!(store.warnings()[0].contains("home is ignored"));

        // Without folders, home and permissions are still required; bad folders are named.
        for (body, want) in [
            ("permissions = []\n", "home is missing"),
            ("home = \"\"\n", "permissions is missing"),
            (
                "[[user.folder]]\npath = \"/a\"\npermissions = []\n[[user.folder]]\npath = \"/a/b\"\npermissions = []\n",
                "folder[1] (\"/a/b\"): folders cannot be inside one another",
            ),
            (
                "[[user.folder]]\npath = \"a\"\npermissions = []\n",
                "folder[0] (\"a\"): path must be absolute",
            ),
            (
                "[[user.folder]]\npath = \"/a\"\npermissions = []\nprefix = \"x/../y\"\n",
                "prefix must be a plain key prefix",
            ),
            (
                "[[user.folder]]\npath = \"/a\"\npermissions = []\nhome = \"x\"\n",
                "unknown field `home`",
            ),
        ] {
            let text = format!("[[user]]\nname = \"u\"\npassword_hash = \"{h}\"\n{body}");
            let e = UserStore::parse(&text).expect_err(want);
            assert!(e.contains(want), "{want}: {e}");
            assert!(e.contains("user[0] (\"u\")") || e.contains("unknown field"), "{e}");
        }
    }
}
