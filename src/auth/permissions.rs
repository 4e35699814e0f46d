//! Per-user permissions, checked by the session before each command that needs one.

use serde::Deserialize;

/// One thing a user may do. A drop box is typically `["list", "write"]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// LIST, NLST, MLSD, MLST, SIZE, MDTM, CWD into directories.
    List,
    /// RETR.
    Read,
    /// STOR, APPE, STOU of new files.
    Write,
    /// Changing an existing file: STOR or APPE onto it, RNTO onto it. Needs `write` too for
    /// uploads, `rename` for RNTO. A drop box has `write` without it.
    Overwrite,
    /// DELE, RMD.
    Delete,
    /// RNFR/RNTO.
    Rename,
    /// MKD.
    Mkdir,
}

/// A set of [`Permission`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Permissions(u8);

impl Permissions {
    pub const ALL: Permissions = Permissions(0b111_1111);

    pub fn from_list(list: &[Permission]) -> Self {
        Permissions(list.iter().fold(0, |acc, p| acc | Self::bit(*p)))
    }

    pub fn allows(&self, p: Permission) -> bool {
        self.0 & Self::bit(p) != 0
    }

    fn bit(p: Permission) -> u8 {
        match p {
            Permission::List => 1,
            Permission::Read => 2,
            Permission::Write => 4,
            Permission::Delete => 8,
            Permission::Rename => 16,
            Permission::Mkdir => 32,
            Permission::Overwrite => 64,
        }
    }
}
