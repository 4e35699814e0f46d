//! Renames: a file by copy then delete; a directory by listing, copying every key (a few at a
//! time) and deleting the originals, undoing the copies on failure.

use futures::{stream, StreamExt};

use super::S3Storage;
use crate::vfs::{check_dir_rename, Entry, EntryKind, ObjectKey, Storage, StorageError};

impl S3Storage {
    pub(super) async fn rename_object(
        &self,
        from: &ObjectKey,
        to: &ObjectKey,
    ) -> Result<(), StorageError> {
        let source = self.stat(from).await?;
        if source.kind == EntryKind::Dir {
            return Err(StorageError::Unsupported(
                "renaming directories needs rename_dir",
            ));
        }
        if from == to {
            // S3 refuses to copy an object onto itself, and the delete would then lose it.
            return Ok(());
        }
        match self.stat(to).await {
            Ok(Entry {
                kind: EntryKind::Dir,
                ..
            }) => return Err(StorageError::IsADirectory(to.to_string())),
            Ok(_) | Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        self.copy_object(from.as_str(), to.as_str(), source.size)
            .await?;
        self.delete_object(from.as_str()).await
    }

    pub(super) async fn rename_prefix(
        &self,
        from: &ObjectKey,
        to: &ObjectKey,
        max_objects: usize,
    ) -> Result<(), StorageError> {
        check_dir_rename(from, to)?;
        if self.stat(from).await?.kind == EntryKind::File {
            return Err(StorageError::NotADirectory(from.to_string()));
        }
        if from == to {
            return Ok(());
        }
        match self.stat(to).await {
            Ok(_) => return Err(StorageError::AlreadyExists(to.to_string())),
            Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let sources = self.keys_under(from, max_objects).await?;
        let (from_prefix, to_prefix) = (from.dir_prefix(), to.dir_prefix());
        let target = |key: &str| format!("{to_prefix}{}", &key[from_prefix.len()..]);

        // Copy everything; on a failure, remove what was copied and keep the source whole.
        let results: Vec<(String, Result<(), StorageError>)> = stream::iter(sources.clone())
            .map(|(key, size)| {
                let dest = target(&key);
                async move {
                    let result = self.copy_object(&key, &dest, size).await;
                    (dest, result)
                }
            })
            .buffer_unordered(self.upload_concurrency)
            .collect()
            .await;
        let copied: Vec<String> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(dest, _)| dest.clone())
            .collect();
        if let Some(failure) = results.into_iter().find_map(|(_, r)| r.err()) {
            if let Err(e) = self.delete_objects(&copied).await {
                tracing::warn!(from = %from, to = %to, error = %e,
                    "a failed directory rename left some copies behind");
            }
            return Err(failure);
        }
        // Files first, then markers from the deepest: if a delete fails, every directory that
        // still has content also still has its marker.
        let mut originals: Vec<String> = sources.into_iter().map(|(k, _)| k).collect();
        originals.sort_by_key(|k| (k.ends_with('/'), std::cmp::Reverse(k.len())));
        self.delete_objects(&originals).await?;
        tracing::info!(from = %from, to = %to, objects = originals.len(), "directory renamed");
        Ok(())
    }
}
