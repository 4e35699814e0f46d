//! Checking argon2 password hashes with bounded CPU and memory.
//!
//! One check of an argon2id hash fills `m` KiB of memory (19 MiB with the default, OWASP
//! parameters) and keeps a core busy for tens of milliseconds. Run naively, one check per
//! blocking thread, a burst of logins runs hundreds at once: 1,000 concurrent logins took the
//! server to 11.2 GiB RSS. So checks run at most one per core, and the server never holds more
//! than `cores × m` KiB for passwords, however many clients log in. Each check's memory is its
//! own mapping, returned when the check ends (see `crate::memory`). Logins beyond that wait
//! their turn, which is also the right answer to a password-guessing flood (it already meets
//! the per-address and per-user throttle).

use std::sync::{Arc, LazyLock};

use argon2::{
    password_hash::{Output, PasswordHash},
    Algorithm, Argon2, Params, Version,
};
use tokio::sync::Semaphore;

/// The process-wide checker: one set of slots for every listener and user.
static CHECKER: LazyLock<Checker> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Checker {
        slots: Arc::new(Semaphore::new(cores)),
    }
});

struct Checker {
    /// One permit per concurrent check.
    slots: Arc<Semaphore>,
}

/// Whether `password` matches the PHC string `hash` (argon2 only). A malformed hash never
/// matches. The comparison of the outputs is constant-time (`Output`'s equality).
pub async fn verify(password: String, hash: String) -> bool {
    let Ok(permit) = CHECKER.slots.clone().acquire_owned().await else {
        return false;
    };
    // The permit moves into the blocking task: it is held until the check is over, even if
    // the session that asked is dropped meanwhile.
    tokio::task::spawn_blocking(move || {
        let ok = CHECKER.check(password.as_bytes(), &hash);
        drop(permit);
        ok
    })
    .await
    .unwrap_or(false)
}

impl Checker {
    fn check(&self, password: &[u8], hash: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
            return false;
        };
        let version = match parsed.version {
            Some(v) => match Version::try_from(v) {
                Ok(v) => v,
                Err(_) => return false,
            },
            None => Version::default(),
        };
        let Ok(stated) = Params::try_from(&parsed) else {
            return false;
        };
        let Ok(params) = Params::new(
            stated.m_cost(),
            stated.t_cost(),
            stated.p_cost(),
            Some(expected.len()),
        ) else {
            return false;
        };
        let mut salt_buf = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
            return false;
        };
        let mut out = vec![0u8; expected.len()];
        let computed =
            Argon2::new(algorithm, version, params).hash_password_into(password, salt, &mut out);
        computed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn matches_only_the_right_password() {
        let hash = super::super::hash_password("s3cret").expect("hash");
        assert!(verify("s3cret".into(), hash.clone()).await);
        assert!(!verify("s3cret ".into(), hash.clone()).await);
        assert!(!verify(String::new(), hash.clone()).await);
        assert!(!verify("s3cret".into(), "not a hash".into()).await);
        assert!(
            !verify(
                "s3cret".into(),
                "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ".into()
            )
            .await
        );
        // Many at once (more than the slots): all answered.
        let checks: Vec<_> = (0..8)
            .map(|i| {
                let pw = if i % 2 == 0 { "s3cret" } else { "wrong" };
                tokio::spawn(verify(pw.into(), hash.clone()))
            })
            .collect();
        for (i, c) in checks.into_iter().enumerate() {
            assert_eq!(c.await.expect("join"), i % 2 == 0);
        }
    }

    #[test]
    fn hashes_from_other_argon2_variants_and_parameters_are_checked() {
        // argon2i, small m/t, different output length: the parameters come from the string.
        let params = Params::new(64, 3, 1, Some(24)).expect("params");
        let a = Argon2::new(Algorithm::Argon2i, Version::V0x13, params);
        let salt = argon2::password_hash::SaltString::from_b64("c2FsdHNhbHRzYWx0").expect("salt");
        let hash = argon2::PasswordHasher::hash_password(&a, b"pw", &salt)
            .expect("hash")
            .to_string();
        assert!(CHECKER.check(b"pw", &hash));
        assert!(!CHECKER.check(b"pW", &hash));
    }
}
