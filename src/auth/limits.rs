//! [`UserLimits`]: a user's quotas and bandwidth limits as the users file or the identity
//! endpoint gives them. What they mean and how they are enforced is `crate::quota`'s.

/// `quota_bytes`, `quota_files`, `max_upload_kib_s`, `max_download_kib_s`; `None`: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserLimits {
    pub quota_bytes: Option<u64>,
    pub quota_files: Option<u64>,
    pub max_upload_kib_s: Option<u64>,
    pub max_download_kib_s: Option<u64>,
}

impl UserLimits {
    /// The four fields of a users-file entry or identity answer, checked.
    pub fn checked(
        quota_bytes: Option<u64>,
        quota_files: Option<u64>,
        max_upload_kib_s: Option<u64>,
        max_download_kib_s: Option<u64>,
    ) -> Result<Self, String> {
        let limits = UserLimits {
            quota_bytes,
            quota_files,
            max_upload_kib_s,
            max_download_kib_s,
        };
        limits.check().map(|()| limits)
    }

    /// The rates must be at least 1 KiB/s (leave them out for no limit).
    pub fn check(&self) -> Result<(), String> {
        for (key, v) in [
            ("max_upload_kib_s", self.max_upload_kib_s),
            ("max_download_kib_s", self.max_download_kib_s),
        ] {
            if v == Some(0) {
                return Err(format!(
                    "{key} must be at least 1 (leave it out for no limit)"
                ));
            }
        }
        Ok(())
    }

    /// No limit of any kind.
    pub fn is_unlimited(&self) -> bool {
        *self == UserLimits::default()
    }
}
