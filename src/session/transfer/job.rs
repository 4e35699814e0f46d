//! What a prepared transfer is: its kind (which command, typed), the object, and the work to run
//! once the data connection is open.

use crate::auth::Permissions;
use crate::listing::MlstFacts;
use crate::quota::DataLimits;
use crate::vfs::{Entry, ListPages, ObjectKey, ReadStream, Upload, VirtualPath};

/// The three upload commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreKind {
    /// STOR (with REST n: a resume).
    Store,
    /// APPE.
    Append,
    /// STOU: a name the server picks.
    Unique,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListFormat {
    List,
    Nlst,
    Mlsd,
}

/// Which transfer command a job runs: chooses its audit event and its metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TransferKind {
    /// RETR.
    Download,
    Upload(StoreKind),
    Listing(ListFormat),
}

impl TransferKind {
    /// The command's name, as metrics label it and the 150 reply says it.
    pub(crate) fn verb(self) -> &'static str {
        match self {
            TransferKind::Download => "RETR",
            TransferKind::Upload(StoreKind::Store) => "STOR",
            TransferKind::Upload(StoreKind::Append) => "APPE",
            TransferKind::Upload(StoreKind::Unique) => "STOU",
            TransferKind::Listing(ListFormat::List) => "LIST",
            TransferKind::Listing(ListFormat::Nlst) => "NLST",
            TransferKind::Listing(ListFormat::Mlsd) => "MLSD",
        }
    }
}

/// A prepared transfer, ready to run once the data connection is open.
pub(crate) struct TransferJob {
    pub(super) kind: TransferKind,
    pub(super) key: ObjectKey,
    /// The 150 reply's text when it must say more than the default (STOU's file name).
    pub(super) opening: Option<String>,
    pub(super) path: VirtualPath,
    pub(super) work: Work,
    /// TYPE A: convert line endings (RETR: LF → CRLF, STOR: CRLF → LF).
    pub(super) ascii: bool,
    /// The user's quota share (uploads) and rate in this direction.
    pub(super) limits: DataLimits,
}

pub(super) enum Work {
    Download(ReadStream),
    Upload(Box<dyn Upload>),
    /// A directory's pages, or a single entry when the path named a file.
    Listing {
        source: ListingSource,
        format: ListFormat,
        perms: Permissions,
        facts: MlstFacts,
        /// NLST only: written before each name (`dir/` for `NLST dir`), see `listing::nlst_line`.
        nlst_prefix: String,
    },
}

pub(super) enum ListingSource {
    Pages(ListPages),
    Single(Entry),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_are_the_commands() {
        let all = [
            (TransferKind::Download, "RETR"),
            (TransferKind::Upload(StoreKind::Store), "STOR"),
            (TransferKind::Upload(StoreKind::Append), "APPE"),
            (TransferKind::Upload(StoreKind::Unique), "STOU"),
            (TransferKind::Listing(ListFormat::List), "LIST"),
            (TransferKind::Listing(ListFormat::Nlst), "NLST"),
            (TransferKind::Listing(ListFormat::Mlsd), "MLSD"),
        ];
        for (kind, verb) in all {
            assert_eq!(kind.verb(), verb);
        }
    }
}
