//! Listings: delimiter pages streamed to the session (fetched one ahead), and every key under
//! a prefix for directory renames. With `s3.list_kept_uploads`, names whose interrupted upload
//! is kept for resume are shown with the bytes the upload holds ([`KeptInDir`]).

use std::{collections::HashMap, time::SystemTime};

use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use futures::{stream, StreamExt};
use tracing::Instrument;

use super::bucket::Bucket;
use super::error::s3_error;
use super::mtime;
use super::{size_of, system_time, unix_secs, S3Storage};
use crate::vfs::{Entry, EntryKind, ListPages, ObjectKey, StorageError, Usage};

/// What one listing stream needs, shared by its page fetches.
pub(super) struct Lister {
    pub(super) bucket: Bucket,
    /// `dir/`, or `""` for the root.
    pub(super) prefix: String,
    /// Read each file's MFMT time with HeadObject (`s3.listing_times`).
    pub(super) times: bool,
}

impl Lister {
    /// One `ListObjectsV2` page: its entries, and the token of the next page if there is one.
    pub(super) async fn page(
        &self,
        token: Option<String>,
    ) -> Result<(Vec<Entry>, Option<String>), StorageError> {
        let out = self
            .bucket
            .list_objects_v2()
            .prefix(&self.prefix)
            .delimiter("/")
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| s3_error("ListObjectsV2", self.prefix.trim_end_matches('/'), e))?;
        let next = match out.is_truncated() {
            Some(true) => out.next_continuation_token().map(str::to_string),
            _ => None,
        };
        let mut entries = self.entries(&out);
        if self.times {
            self.read_times(&mut entries).await;
        }
        Ok((entries, next))
    }

    /// Replaces each file's `LastModified` by the time a client set (MFMT), read with
    /// HeadObject a few at a time. A file that cannot be read (deleted meanwhile, a refusal)
    /// keeps `LastModified`: a listing does not fail for one time.
    async fn read_times(&self, entries: &mut [Entry]) {
        let files: Vec<(usize, String)> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == EntryKind::File)
            .map(|(i, e)| (i, format!("{}{}", self.prefix, e.name)))
            .collect();
        let times: Vec<(usize, SystemTime)> = stream::iter(files)
            .map(|(i, key)| {
                let request = self.bucket.head_object().key(key);
                async move {
                    let head = request.send().await.ok()?;
                    Some((i, mtime::modified(head.metadata(), None)?))
                }
            })
            .buffer_unordered(mtime::LISTING_HEADS)
            .filter_map(|t| async move { t })
            .collect()
            .await;
        for (i, t) in times {
            entries[i].modified = Some(t);
        }
    }

    pub(super) fn entries(&self, out: &ListObjectsV2Output) -> Vec<Entry> {
        let dirs = out.common_prefixes().iter().filter_map(|p| {
            let name = p.prefix()?.strip_prefix(&self.prefix)?;
            let name = name.strip_suffix('/').unwrap_or(name);
            (!name.is_empty()).then(|| Entry::dir(name))
        });
        let files = out.contents().iter().filter_map(|o| {
            // The directory's own marker has key == prefix and so an empty name: skipped here.
            let name = o.key()?.strip_prefix(&self.prefix)?;
            (!name.is_empty()).then(|| Entry {
                name: name.to_string(),
                kind: EntryKind::File,
                size: size_of(o.size()),
                modified: o.last_modified().and_then(system_time),
            })
        });
        dirs.chain(files).collect()
    }
}

/// Kept uploads examined per listing (each costs a `ListMultipartUploads` and a `ListParts`).
const MAX_LISTED_KEPT: usize = 32;

/// The kept uploads of names directly in one directory, by name: bytes held and last activity.
#[derive(Default)]
pub(super) struct KeptInDir {
    by_name: HashMap<String, (u64, SystemTime, SystemTime)>,
}

impl KeptInDir {
    /// Files of a page that have a kept upload newer than the object are shown with the kept
    /// size (the file as it would be on a disk); the names seen are done with.
    fn apply(&mut self, entries: &mut [Entry]) {
        for e in entries.iter_mut().filter(|e| e.kind == EntryKind::File) {
            let Some((held, initiated, active)) = self.by_name.remove(&e.name) else {
                continue;
            };
            let newer = e
                .modified
                .is_none_or(|m| unix_secs(initiated) >= unix_secs(m));
            if newer {
                e.size = held;
                e.modified = Some(active);
            }
        }
    }

    /// Entries for the kept uploads no page had an object for.
    fn rest(&mut self) -> Vec<Entry> {
        let mut rest: Vec<Entry> = self
            .by_name
            .drain()
            .map(|(name, (held, _, active))| Entry {
                name,
                kind: EntryKind::File,
                size: held,
                modified: Some(active),
            })
            .collect();
        rest.sort_by(|a, b| a.name.cmp(&b.name));
        rest
    }
}

impl S3Storage {
    /// The kept uploads directly under `prefix` (`dir/`, or `""`), at most
    /// [`MAX_LISTED_KEPT`] names. A failure only leaves them out of the listing (logged).
    async fn kept_in_dir(&self, prefix: &str) -> KeptInDir {
        let out = match self
            .bucket
            .list_multipart_uploads()
            .prefix(prefix)
            .delimiter("/")
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let e = s3_error("ListMultipartUploads", prefix, e);
                tracing::warn!(prefix, error = %e, "listing without kept uploads");
                return KeptInDir::default();
            }
        };
        let mut keys: Vec<&str> = out
            .uploads()
            .iter()
            .filter_map(|u| u.key())
            .filter(|k| {
                k.strip_prefix(prefix)
                    .is_some_and(|n| !n.is_empty() && !n.contains('/'))
            })
            .collect();
        keys.dedup();
        let mut kept = KeptInDir::default();
        for key in keys.into_iter().take(MAX_LISTED_KEPT) {
            let object_key = ObjectKey::from_trusted(key);
            match self.kept_upload(&object_key).await {
                Ok(Some(k)) => {
                    let active = k
                        .parts
                        .iter()
                        .filter_map(|p| p.modified)
                        .max()
                        .unwrap_or(k.initiated);
                    let name = key[prefix.len()..].to_string();
                    kept.by_name.insert(name, (k.held, k.initiated, active));
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(key, error = %e, "listing without a kept upload"),
            }
        }
        kept
    }

    /// Pages of a listing, fetched one ahead: while the session writes page N to the client,
    /// the request for page N + 1 (its continuation token came with page N) is already out, so
    /// a long listing costs about the sum of the ListObjectsV2 round trips, not that plus the
    /// writing. At most two pages wait; when the reader goes away the fetching stops.
    pub(super) fn list_dir(&self, dir: &ObjectKey) -> ListPages {
        let lister = Lister {
            bucket: self.bucket.clone(),
            prefix: dir.dir_prefix(),
            times: self.listing_times,
        };
        let kept_of = self.list_kept_uploads.then(|| self.clone());
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        self.bucket.background().spawn(
            async move {
                let mut kept = match kept_of {
                    Some(storage) => storage.kept_in_dir(&lister.prefix).await,
                    None => KeptInDir::default(),
                };
                let mut token = None;
                loop {
                    let (page, next) = match lister.page(token).await {
                        Ok((mut entries, next)) => {
                            kept.apply(&mut entries);
                            (Ok(entries), next)
                        }
                        Err(e) => (Err(e), None),
                    };
                    let failed = page.is_err();
                    if tx.send(page).await.is_err() {
                        return;
                    }
                    match next {
                        Some(t) => token = Some(t),
                        None => {
                            // Kept uploads of names no object has: listed last.
                            let rest = kept.rest();
                            if !failed && !rest.is_empty() {
                                let _ = tx.send(Ok(rest)).await;
                            }
                            return;
                        }
                    }
                }
            }
            .in_current_span(),
        );
        stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|page| (page, rx))
        })
        .boxed()
    }

    /// Bytes and objects under `dir` at any depth (quotas), directory markers (`…/`) not
    /// counted.
    pub(super) async fn usage_under(&self, dir: &ObjectKey) -> Result<Usage, StorageError> {
        let mut total = Usage::default();
        self.each_key_under(dir, |key, size| {
            if !key.ends_with('/') {
                total.bytes += size;
                total.files += 1;
            }
            Ok(())
        })
        .await?;
        Ok(total)
    }

    /// Every key under `prefix` with its size, refusing (before listing further) once there are
    /// more than `limit`.
    pub(super) async fn keys_under(
        &self,
        dir: &ObjectKey,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StorageError> {
        let mut keys = Vec::new();
        self.each_key_under(dir, |key, size| {
            keys.push((key.to_string(), size));
            match keys.len() > limit {
                true => Err(StorageError::TooManyObjects {
                    key: dir.to_string(),
                    limit,
                }),
                false => Ok(()),
            }
        })
        .await?;
        Ok(keys)
    }

    /// Calls `each` with every key under `dir`'s prefix and its size, a `ListObjectsV2` page
    /// (1000 keys) at a time; an error from `each` stops the listing.
    async fn each_key_under(
        &self,
        dir: &ObjectKey,
        mut each: impl FnMut(&str, u64) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let prefix = dir.dir_prefix();
        let mut token = None::<String>;
        loop {
            let out = self
                .bucket
                .list_objects_v2()
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| s3_error("ListObjectsV2", dir.as_str(), e))?;
            for o in out.contents() {
                if let Some(k) = o.key() {
                    each(k, size_of(o.size()))?;
                }
            }
            match (out.is_truncated(), out.next_continuation_token()) {
                (Some(true), Some(next)) => token = Some(next.to_string()),
                _ => return Ok(()),
            }
        }
    }
}
