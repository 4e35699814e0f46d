//! Listings: delimiter pages streamed to the session (fetched one ahead), and every key under
//! a prefix for directory renames.

use std::{sync::Arc, time::SystemTime};

use aws_sdk_s3::{operation::list_objects_v2::ListObjectsV2Output, Client};
use futures::{stream, StreamExt};
use tracing::Instrument;

use super::error::s3_error;
use super::mtime;
use super::{dir_entry, size_of, system_time, S3Storage};
use crate::vfs::{Entry, EntryKind, ListPages, ObjectKey, StorageError};

/// What one listing stream needs, shared by its page fetches.
pub(super) struct Lister {
    pub(super) client: Client,
    pub(super) bucket: Arc<str>,
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
            .client
            .list_objects_v2()
            .bucket(&*self.bucket)
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
                let request = self.client.head_object().bucket(&*self.bucket).key(key);
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
            (!name.is_empty()).then(|| dir_entry(name))
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

impl S3Storage {
    /// Pages of a listing, fetched one ahead: while the session writes page N to the client,
    /// the request for page N + 1 (its continuation token came with page N) is already out, so
    /// a long listing costs about the sum of the ListObjectsV2 round trips, not that plus the
    /// writing. At most two pages wait; when the reader goes away the fetching stops.
    pub(super) fn list_dir(&self, dir: &ObjectKey) -> ListPages {
        let lister = Lister {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            prefix: dir.dir_prefix(),
            times: self.listing_times,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(
            async move {
                let mut token = None;
                loop {
                    let (page, next) = match lister.page(token).await {
                        Ok((entries, next)) => (Ok(entries), next),
                        Err(e) => (Err(e), None),
                    };
                    if tx.send(page).await.is_err() {
                        return;
                    }
                    match next {
                        Some(t) => token = Some(t),
                        None => return,
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

    /// Every key under `prefix` with its size, refusing (before listing further) once there are
    /// more than `limit`.
    pub(super) async fn keys_under(
        &self,
        dir: &ObjectKey,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StorageError> {
        let prefix = dir.dir_prefix();
        let mut keys = Vec::new();
        let mut token = None::<String>;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&*self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| s3_error("ListObjectsV2", dir.as_str(), e))?;
            for o in out.contents() {
                if let Some(k) = o.key() {
                    keys.push((k.to_string(), size_of(o.size())));
                }
            }
            if keys.len() > limit {
                return Err(StorageError::TooManyObjects {
                    key: dir.to_string(),
                    limit,
                });
            }
            match (out.is_truncated(), out.next_continuation_token()) {
                (Some(true), Some(next)) => token = Some(next.to_string()),
                _ => return Ok(keys),
            }
        }
    }
}
