//! The `Storage` contract (src/vfs/mod.rs), checked against every backend: S3 on a real
//! SeaweedFS, the local directory backend on a temporary directory, and the in-memory backend
//! that in-process tests use.
//!
//! Each contract test is an `async fn(&Backend)`; [`contract!`] turns it into three tests,
//! `storage::<name>::s3`, `storage::<name>::local` and `storage::<name>::memory`, so a failure
//! names the behaviour and the backend. Tests that only make sense for one backend (S3 keys a filesystem cannot hold, the
//! local uploads directory) are plain tests below the contract.
//!
//! Cleanup is checked from outside the backend: through the S3 API (`ListMultipartUploads`) or
//! by looking in the local uploads directory.

use std::{
    io,
    path::PathBuf,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use aws_sdk_s3::{primitives::ByteStream, Client};
use ftps_s3::{
    config::ChecksumMode,
    vfs::{
        local::LocalStorage,
        memory::MemoryStorage,
        s3::{client_from_sdk_config, S3Options, S3Storage},
        Entry, EntryKind, ObjectKey, RecordedDigests, Storage, StorageError, Upload, UploadError,
        UploadMode, UploadSpec,
    },
};
use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::common::{seaweedfs, sha256_hex};

const MIB: usize = 1024 * 1024;
/// The smallest part size S3 accepts, so multipart paths run with small files.
const PART_SIZE: usize = 5 * MIB;

/// A store under test, and a way to look at it from outside.
struct Backend {
    storage: Arc<dyn Storage>,
    kind: Kind,
}

enum Kind {
    S3 {
        client: Client,
        bucket: String,
        /// What the storage was built with, to build another on the same bucket (a restart).
        config: ftps_s3::config::S3,
        options: S3Options,
    },
    Local {
        _root: tempfile::TempDir,
        temp_dir: PathBuf,
    },
    Memory(MemoryStorage),
}

impl Backend {
    /// S3Storage on a fresh bucket, its client built by the crate's own builder from an `[s3]`
    /// config, 5 MiB parts, 2 in flight.
    async fn s3() -> Backend {
        Backend::s3_with(ChecksumMode::WhenSupported).await
    }

    async fn s3_with(checksums: ChecksumMode) -> Backend {
        Backend::s3_tuned(checksums, |_| {}).await
    }

    /// S3Storage with options from the `[s3]` config (5 MiB parts, 24 h resume window), then
    /// `tune`d.
    async fn s3_tuned(checksums: ChecksumMode, tune: impl FnOnce(&mut S3Options)) -> Backend {
        let server = seaweedfs::s3().await;
        let bucket = server.new_bucket().await;
        let mut config = server.s3_config(&bucket);
        config.checksums = checksums;
        let mut options = S3Options::from_config(&config);
        assert_eq!(options.part_size, PART_SIZE);
        tune(&mut options);
        let client = client_from_sdk_config(&server.sdk_config(), &config);
        let storage = S3Storage::new(client, bucket.clone(), options.clone());
        assert_eq!(storage.bucket(), bucket);
        Backend {
            storage: Arc::new(storage),
            kind: Kind::S3 {
                client: server.client(),
                bucket,
                config,
                options,
            },
        }
    }

    /// Another S3Storage on the same bucket, sharing nothing with the first but the store: what
    /// a restarted server or another replica sees.
    async fn s3_restarted(&self) -> Arc<dyn Storage> {
        let Kind::S3 {
            bucket,
            config,
            options,
            ..
        } = &self.kind
        else {
            panic!("not an S3 backend");
        };
        let server = seaweedfs::s3().await;
        let client = client_from_sdk_config(&server.sdk_config(), config);
        Arc::new(S3Storage::new(client, bucket.clone(), options.clone()))
    }

    fn local() -> Backend {
        let root = tempfile::tempdir().expect("temporary directory");
        let storage = LocalStorage::new(root.path().join("files")).expect("local storage");
        assert_eq!(storage.root(), root.path().join("files"));
        let temp_dir = storage.temp_dir().to_path_buf();
        Backend {
            storage: Arc::new(storage),
            kind: Kind::Local {
                _root: root,
                temp_dir,
            },
        }
    }

    fn memory() -> Backend {
        let storage = MemoryStorage::new();
        Backend {
            storage: Arc::new(storage.clone()),
            kind: Kind::Memory(storage),
        }
    }

    fn s3_parts(&self) -> Option<(&Client, &str)> {
        match &self.kind {
            Kind::S3 { client, bucket, .. } => Some((client, bucket)),
            Kind::Local { .. } | Kind::Memory(_) => None,
        }
    }

    /// Stores `data` at `key` through the contract: begin, copy, commit.
    async fn put(&self, key: &str, data: &[u8]) {
        self.upload(key, UploadMode::Replace, data).await;
    }

    /// An upload of `data` in `mode`, committed.
    async fn upload(&self, key: &str, mode: UploadMode, data: &[u8]) {
        let mut upload = self
            .storage
            .begin_upload(&k(key), spec(mode))
            .await
            .unwrap_or_else(|e| panic!("begin_upload {key} {mode:?}: {e}"));
        let mut body = TestBody::new(data.to_vec(), Then::End);
        let copied = upload.copy_from(&mut body).await.expect("copy_from");
        assert_eq!(copied, data.len() as u64);
        let committed = upload.commit().await.expect("commit");
        assert_eq!(
            committed,
            data.len() as u64,
            "commit counts the bytes received"
        );
    }

    /// An upload of `data` in `mode` whose data connection is cut after the last byte.
    async fn cut_off(&self, key: &str, mode: UploadMode, data: &[u8]) -> Box<dyn Upload> {
        let mut upload = self
            .storage
            .begin_upload(&k(key), spec(mode))
            .await
            .unwrap_or_else(|e| panic!("begin_upload {key} {mode:?}: {e}"));
        let mut body = TestBody::new(data.to_vec(), Then::Fail);
        match upload.copy_from(&mut body).await {
            Err(UploadError::Body(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
            other => panic!("expected a body error, got {other:?}"),
        }
        upload
    }

    /// Everything from `offset` on.
    async fn read(&self, key: &str, offset: u64) -> Result<Vec<u8>, StorageError> {
        let mut stream = self.storage.read(&k(key), offset).await?;
        let mut data = Vec::new();
        stream
            .read_to_end(&mut data)
            .await
            .expect("reading the stream");
        Ok(data)
    }

    /// The listing of `dir`, sorted (by name, files before directories of the same name), and
    /// the number of pages it came in.
    async fn list(&self, dir: &str) -> (Vec<Entry>, usize) {
        let pages: Vec<Vec<Entry>> = self
            .storage
            .list(&k(dir))
            .try_collect()
            .await
            .expect("listing");
        let count = pages.len();
        let mut entries: Vec<Entry> = pages.into_iter().flatten().collect();
        entries.sort_by(|a, b| {
            (&a.name, a.kind == EntryKind::Dir).cmp(&(&b.name, b.kind == EntryKind::Dir))
        });
        (entries, count)
    }

    /// `(name, kind, size)` of each listed entry.
    async fn names(&self, dir: &str) -> Vec<(String, EntryKind, u64)> {
        let (entries, _) = self.list(dir).await;
        entries
            .into_iter()
            .map(|e| (e.name, e.kind, e.size))
            .collect()
    }

    /// Everything under `dir`, recursively: `(path relative to dir, kind, size)`, sorted.
    async fn tree(&self, dir: &str) -> Vec<(String, EntryKind, u64)> {
        let mut found = Vec::new();
        let mut pending = vec![String::new()];
        while let Some(rel) = pending.pop() {
            let key = if rel.is_empty() {
                dir.to_string()
            } else {
                format!("{dir}/{rel}")
            };
            for (name, kind, size) in self.names(&key).await {
                let path = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if kind == EntryKind::Dir {
                    pending.push(path.clone());
                }
                found.push((path, kind, size));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    /// Uploads in progress, seen from outside: open multipart uploads in the bucket, or files in
    /// the local uploads directory, or the memory backend's count of uploads not ended.
    async fn pending_uploads(&self) -> usize {
        match &self.kind {
            Kind::S3 { client, bucket, .. } => client
                .list_multipart_uploads()
                .bucket(bucket)
                .send()
                .await
                .expect("ListMultipartUploads")
                .uploads()
                .len(),
            Kind::Local { temp_dir, .. } => std::fs::read_dir(temp_dir)
                .expect("uploads directory")
                .count(),
            Kind::Memory(storage) => storage.open_uploads(),
        }
    }

    /// Waits (up to 10 s) for the count of pending uploads to satisfy `ok`: cleanup after a
    /// dropped upload runs in a spawned task.
    async fn wait_for_pending(&self, what: &str, ok: impl Fn(usize) -> bool) {
        let started = Instant::now();
        loop {
            let pending = self.pending_uploads().await;
            if ok(pending) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{what}: still {pending} pending uploads after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn k(key: &str) -> ObjectKey {
    ObjectKey::from_trusted(key)
}

/// The uploader every test upload names.
const UPLOADER: &str = "alice";
const CLIENT_ADDR: [u8; 4] = [192, 0, 2, 7];

fn spec(mode: UploadMode) -> UploadSpec {
    UploadSpec {
        mode,
        uploader: UPLOADER.to_string(),
        client_addr: CLIENT_ADDR.into(),
    }
}

/// Deterministic bytes that differ from part to part, so a misplaced part shows.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// What a [`TestBody`] does after its bytes.
#[derive(Clone, Copy)]
enum Then {
    End,
    /// A data connection cut off: `ConnectionReset`.
    Fail,
    /// A client that stops sending but stays connected.
    Hang,
}

/// An upload body: `data` in reads of at most `chunk` bytes (odd sizes, as a network gives
/// them), then [`Then`].
struct TestBody {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
    then: Then,
}

impl TestBody {
    fn new(data: Vec<u8>, then: Then) -> Self {
        TestBody {
            data,
            pos: 0,
            chunk: 65_537,
            then,
        }
    }
}

impl AsyncRead for TestBody {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos == self.data.len() {
            return match self.then {
                Then::End => Poll::Ready(Ok(())),
                Then::Fail => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "test: connection reset",
                ))),
                // Never woken: the task holding it is cancelled by the test.
                Then::Hang => Poll::Pending,
            };
        }
        let n = self
            .chunk
            .min(buf.remaining())
            .min(self.data.len() - self.pos);
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// Each name becomes `mod name { async fn s3(); async fn local(); async fn memory(); }` running
/// `name(&backend)`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn s3() {
                super::$name(&super::Backend::s3().await).await;
            }

            #[tokio::test]
            async fn local() {
                super::$name(&super::Backend::local()).await;
            }

            #[tokio::test]
            async fn memory() {
                super::$name(&super::Backend::memory()).await;
            }
        }
    )*};
}

contract!(
    stat_tells_files_dirs_and_missing,
    list_shows_one_level_and_hides_the_dir_marker,
    listing_a_large_directory_comes_in_pages,
    read_starts_at_any_offset_up_to_the_size,
    small_upload_reads_back_byte_equal,
    multipart_upload_reads_back_byte_equal,
    cut_off_upload_leaves_no_object_and_keeps_the_old_one,
    dropped_upload_leaves_nothing_behind,
    rename_round_trips_names_with_odd_characters,
    rename_refuses_directories_and_replaces_files,
    delete_removes_files_not_directories,
    mkdir_and_rmdir_follow_directory_rules,
    append_adds_to_absent_and_small_files,
    append_to_a_large_file_keeps_it_whole_until_commit,
    resume_without_a_kept_upload_continues_the_file,
    suspended_upload_leaves_no_object,
    rename_dir_moves_a_tree_and_refuses_above_the_limit,
    set_modified_is_reported_and_survives_rename,
    usage_counts_files_at_any_depth_under_the_prefix_only,
);

/// `usage` (quotas): every file under a directory at any depth, directory markers and
/// neighbours sharing the name's prefix not counted; a kept upload is not a file.
async fn usage_counts_files_at_any_depth_under_the_prefix_only(b: &Backend) {
    b.storage.make_dir(&k("u")).await.expect("make_dir");
    b.storage.make_dir(&k("u/empty")).await.expect("make_dir");
    b.put("u/a.txt", b"a").await;
    b.put("u/sub/b.txt", b"bb").await;
    b.put("u/sub/deep/c.txt", b"ccc").await;
    b.put("ux", b"a sibling with the same prefix").await;
    b.put("other/d.txt", b"dddd").await;
    let usage = b.storage.usage(&k("u")).await.expect("usage");
    assert_eq!((usage.bytes, usage.files), (6, 3));
    let all = b.storage.usage(&k("")).await.expect("usage of the root");
    assert_eq!((all.bytes, all.files), (6 + 30 + 4, 5));
    let none = b.storage.usage(&k("missing")).await.expect("missing dir");
    assert_eq!((none.bytes, none.files), (0, 0));
}

/// MFMT: a file's time as the client set it, reported by `stat` (MDTM, MLST), kept by a rename
/// and the content left alone; an append is a new write and takes the time of the write.
async fn set_modified_is_reported_and_survives_rename(b: &Backend) {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(1_577_934_245); // 2020-01-02 03:04:05
    b.put("m/a.txt", b"hello").await;
    b.storage
        .set_modified(&k("m/a.txt"), t)
        .await
        .expect("set_modified");
    let e = b.storage.stat(&k("m/a.txt")).await.expect("stat");
    assert_eq!((e.size, e.modified), (5, Some(t)));
    b.storage
        .rename_file(&k("m/a.txt"), &k("m/b.txt"))
        .await
        .expect("rename");
    let e = b.storage.stat(&k("m/b.txt")).await.expect("stat");
    assert_eq!(e.modified, Some(t), "the time survives a rename");
    assert_eq!(b.read("m/b.txt", 0).await.expect("read"), b"hello");
    b.upload("m/b.txt", UploadMode::Append, b" world").await;
    let e = b.storage.stat(&k("m/b.txt")).await.expect("stat");
    assert!(e.modified.is_some_and(|m| m > t), "{e:?}");
    let e = b
        .storage
        .set_modified(&k("m/missing"), t)
        .await
        .expect_err("missing");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");
    let e = b
        .storage
        .set_modified(&k("m"), t)
        .await
        .expect_err("a directory");
    assert!(matches!(e, StorageError::IsADirectory(_)), "{e:?}");
}

async fn stat_tells_files_dirs_and_missing(b: &Backend) {
    b.put("docs/a.txt", b"hello").await;
    b.storage.make_dir(&k("empty")).await.expect("make_dir");

    let file = b.storage.stat(&k("docs/a.txt")).await.expect("stat file");
    assert_eq!(
        (file.name.as_str(), file.kind, file.size),
        ("a.txt", EntryKind::File, 5)
    );
    assert!(file.modified.is_some(), "a file has a modification time");

    let dir = b.storage.stat(&k("docs")).await.expect("stat implicit dir");
    assert_eq!(
        (dir.name.as_str(), dir.kind, dir.size),
        ("docs", EntryKind::Dir, 0)
    );
    let dir = b.storage.stat(&k("empty")).await.expect("stat empty dir");
    assert_eq!((dir.name.as_str(), dir.kind), ("empty", EntryKind::Dir));
    let root = b.storage.stat(&k("")).await.expect("stat root");
    assert_eq!(root.kind, EntryKind::Dir);

    for missing in ["missing", "docs/a", "docs/a.txt/x", "doc"] {
        let e = b.storage.stat(&k(missing)).await.expect_err(missing);
        assert!(matches!(e, StorageError::NotFound(_)), "{missing}: {e:?}");
    }
}

async fn list_shows_one_level_and_hides_the_dir_marker(b: &Backend) {
    b.storage.make_dir(&k("d")).await.expect("make_dir d");
    b.put("d/f1", b"abc").await;
    b.put("d/sub/f2", b"deep").await;
    b.storage
        .make_dir(&k("d/empty"))
        .await
        .expect("make_dir d/empty");
    b.put("other", b"x").await;

    assert_eq!(
        b.names("d").await,
        vec![
            ("empty".to_string(), EntryKind::Dir, 0),
            ("f1".to_string(), EntryKind::File, 3),
            ("sub".to_string(), EntryKind::Dir, 0),
        ]
    );
    assert_eq!(
        b.names("").await,
        vec![
            ("d".to_string(), EntryKind::Dir, 0),
            ("other".to_string(), EntryKind::File, 1),
        ]
    );
    assert_eq!(b.names("d/empty").await, vec![]);
    assert_eq!(
        b.names("missing").await,
        vec![],
        "a missing directory lists as empty"
    );
    let (files, _) = b.list("d/sub").await;
    assert!(
        files[0].modified.is_some(),
        "files carry their modification time"
    );
}

async fn listing_a_large_directory_comes_in_pages(b: &Backend) {
    const FILES: usize = 1100;
    futures::stream::iter(0..FILES)
        .for_each_concurrent(32, |i| async move {
            b.put(&format!("big/f{i:05}"), b"x").await;
        })
        .await;
    for dir in ["big/sub1", "big/sub2"] {
        b.storage.make_dir(&k(dir)).await.expect("make_dir");
    }

    let (entries, pages) = b.list("big").await;
    assert!(pages >= 2, "{FILES} files came in {pages} page(s)");
    assert_eq!(entries.len(), FILES + 2);
    let files = entries.iter().filter(|e| e.kind == EntryKind::File).count();
    assert_eq!(files, FILES);
    let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    names.dedup();
    assert_eq!(names.len(), FILES + 2, "no entry is listed twice");
}

async fn read_starts_at_any_offset_up_to_the_size(b: &Backend) {
    b.put("f", b"0123456789").await;
    assert_eq!(b.read("f", 0).await.expect("offset 0"), b"0123456789");
    assert_eq!(b.read("f", 4).await.expect("offset 4"), b"456789");
    assert_eq!(b.read("f", 9).await.expect("offset 9"), b"9");
    assert_eq!(b.read("f", 10).await.expect("offset == size"), b"");
    let e = b.read("f", 11).await.expect_err("offset > size");
    assert!(matches!(e, StorageError::InvalidRange(_)), "{e:?}");

    b.put("empty", b"").await;
    assert_eq!(b.read("empty", 0).await.expect("empty file"), b"");
    let e = b.read("empty", 1).await.expect_err("past an empty file");
    assert!(matches!(e, StorageError::InvalidRange(_)), "{e:?}");

    let e = b.read("missing", 0).await.expect_err("missing");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");
    let e = b.read("missing", 5).await.expect_err("missing, offset");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");
    b.storage.make_dir(&k("dir")).await.expect("make_dir");
    let e = b.read("dir", 0).await.expect_err("a directory");
    assert!(matches!(e, StorageError::IsADirectory(_)), "{e:?}");
}

async fn small_upload_reads_back_byte_equal(b: &Backend) {
    let data = pattern(100_000, 1);
    b.put("small.bin", &data).await;
    assert_eq!(b.read("small.bin", 0).await.expect("read"), data);
    let entry = b.storage.stat(&k("small.bin")).await.expect("stat");
    assert_eq!(entry.size, data.len() as u64);

    b.put("zero.bin", b"").await;
    assert_eq!(b.storage.stat(&k("zero.bin")).await.expect("stat").size, 0);
    b.put("small.bin", b"replaced").await;
    assert_eq!(b.read("small.bin", 0).await.expect("read"), b"replaced");
    assert_eq!(b.pending_uploads().await, 0);
}

async fn multipart_upload_reads_back_byte_equal(b: &Backend) {
    upload_in_parts(b).await;
}

/// 12 MiB + a bit in odd-sized reads: parts of 5, 5 and 2 MiB, read back whole and from inside
/// the second part.
async fn upload_in_parts(b: &Backend) {
    let data = pattern(12 * MIB + 123, 2);
    let mut upload = b
        .storage
        .begin_upload(&k("dir/big.bin"), spec(UploadMode::Replace))
        .await
        .expect("begin");
    // Two calls: copy_from continues where the last one stopped.
    let mut first = TestBody::new(data[..7 * MIB + 5].to_vec(), Then::End);
    let mut second = TestBody::new(data[7 * MIB + 5..].to_vec(), Then::End);
    assert_eq!(
        upload.copy_from(&mut first).await.expect("copy 1"),
        (7 * MIB + 5) as u64
    );
    assert_eq!(
        upload.copy_from(&mut second).await.expect("copy 2"),
        data.len() as u64
    );
    assert!(
        matches!(
            b.storage.stat(&k("dir/big.bin")).await,
            Err(StorageError::NotFound(_))
        ),
        "nothing is visible before commit"
    );
    assert_eq!(upload.commit().await.expect("commit"), data.len() as u64);

    assert_eq!(
        b.read("dir/big.bin", 0).await.expect("read").len(),
        data.len()
    );
    assert!(
        b.read("dir/big.bin", 0).await.expect("read") == data,
        "content differs"
    );
    let offset = 6 * MIB + 17;
    assert!(
        b.read("dir/big.bin", offset as u64)
            .await
            .expect("read at offset")
            == data[offset..],
        "content from an offset differs"
    );
    if let Some((client, bucket)) = b.s3_parts() {
        let head = client
            .head_object()
            .bucket(bucket)
            .key("dir/big.bin")
            .send()
            .await
            .expect("HeadObject");
        let etag = head.e_tag().unwrap_or_default();
        assert!(
            etag.trim_matches('"').ends_with("-3"),
            "3 parts expected, ETag {etag}"
        );
    }
    assert_eq!(b.pending_uploads().await, 0);
}

async fn cut_off_upload_leaves_no_object_and_keeps_the_old_one(b: &Backend) {
    b.put("kept.bin", b"old content").await;
    b.storage.make_dir(&k("up")).await.expect("make_dir");

    // Cut off after two full parts are sent (a multipart upload is open) and aborted.
    let mut upload = b
        .storage
        .begin_upload(&k("kept.bin"), spec(UploadMode::Replace))
        .await
        .expect("begin");
    let mut body = TestBody::new(pattern(11 * MIB, 3), Then::Fail);
    match upload.copy_from(&mut body).await {
        Err(UploadError::Body(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
        other => panic!("expected a body error, got {other:?}"),
    }
    upload.abort().await;
    assert_eq!(b.read("kept.bin", 0).await.expect("read"), b"old content");

    // Cut off inside the first part, then (wrongly) committed: still nothing stored.
    let mut upload = b
        .storage
        .begin_upload(&k("up/fresh.bin"), spec(UploadMode::Replace))
        .await
        .expect("begin");
    let mut body = TestBody::new(pattern(MIB, 4), Then::Fail);
    assert!(matches!(
        upload.copy_from(&mut body).await,
        Err(UploadError::Body(_))
    ));
    assert!(
        upload.commit().await.is_err(),
        "commit after a failed copy must fail"
    );
    let e = b
        .storage
        .stat(&k("up/fresh.bin"))
        .await
        .expect_err("no object");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");

    // Cut off after parts were sent, then committed: same.
    let mut upload = b
        .storage
        .begin_upload(&k("up/parts.bin"), spec(UploadMode::Replace))
        .await
        .expect("begin");
    let mut body = TestBody::new(pattern(6 * MIB, 5), Then::Fail);
    assert!(matches!(
        upload.copy_from(&mut body).await,
        Err(UploadError::Body(_))
    ));
    assert!(
        upload.commit().await.is_err(),
        "commit after a failed copy must fail"
    );
    let e = b
        .storage
        .stat(&k("up/parts.bin"))
        .await
        .expect_err("no object");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");

    assert_eq!(b.names("up").await, vec![]);
    b.wait_for_pending("after cut-off uploads", |n| n == 0)
        .await;
}

async fn dropped_upload_leaves_nothing_behind(b: &Backend) {
    b.put("kept.bin", b"old content").await;
    // A client that sends 6 MiB (one full part is uploaded) and then stalls, until its task is
    // cancelled (e.g. the session is shut down).
    let storage = b.storage.clone();
    let task = tokio::spawn(async move {
        let mut upload = storage
            .begin_upload(&k("kept.bin"), spec(UploadMode::Replace))
            .await
            .expect("begin");
        let mut body = TestBody::new(pattern(6 * MIB, 6), Then::Hang);
        let _ = upload.copy_from(&mut body).await;
        unreachable!("the body never ends");
    });
    b.wait_for_pending("while the upload runs", |n| n == 1)
        .await;
    task.abort();
    assert!(task.await.expect_err("cancelled").is_cancelled());
    b.wait_for_pending("after the upload was dropped", |n| n == 0)
        .await;
    assert_eq!(b.read("kept.bin", 0).await.expect("read"), b"old content");

    // Dropped between calls, without commit or abort.
    let mut upload = b
        .storage
        .begin_upload(&k("never.bin"), spec(UploadMode::Replace))
        .await
        .expect("begin");
    let mut body = TestBody::new(pattern(5 * MIB + 1, 7), Then::End);
    upload.copy_from(&mut body).await.expect("copy");
    drop(upload);
    b.wait_for_pending("after a dropped upload", |n| n == 0)
        .await;
    let e = b
        .storage
        .stat(&k("never.bin"))
        .await
        .expect_err("no object");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");
}

async fn rename_round_trips_names_with_odd_characters(b: &Backend) {
    let names = [
        "with space.txt",
        "plus+sign",
        "per%cent%20",
        "ünïcødé ✓ 文件.txt",
        "a&b=c?d#e;f,g'h\"i",
        "tilde~dash-under_dot.",
    ];
    for (i, name) in names.iter().enumerate() {
        let data = pattern(1000 + i, 10 + i as u64);
        let (from, to) = (
            format!("src dir/{name}"),
            format!("dst+dir/{name} (renamed)"),
        );
        b.put(&from, &data).await;
        b.storage
            .rename_file(&k(&from), &k(&to))
            .await
            .unwrap_or_else(|e| panic!("rename {from:?}: {e}"));
        assert_eq!(b.read(&to, 0).await.expect("read renamed"), data, "{name}");
        let e = b.storage.stat(&k(&from)).await.expect_err("source gone");
        assert!(matches!(e, StorageError::NotFound(_)), "{name}: {e:?}");
        let (listed, _) = b.list("dst+dir").await;
        assert!(
            listed.iter().any(|e| e.name == format!("{name} (renamed)")),
            "{name} listed as {listed:?}"
        );
    }
}

async fn rename_refuses_directories_and_replaces_files(b: &Backend) {
    b.put("a", b"from a").await;
    b.put("b", b"old b").await;
    b.storage
        .rename_file(&k("a"), &k("b"))
        .await
        .expect("rename onto a file");
    assert_eq!(b.read("b", 0).await.expect("read"), b"from a");

    b.storage
        .rename_file(&k("b"), &k("b"))
        .await
        .expect("rename onto itself");
    assert_eq!(
        b.read("b", 0).await.expect("read"),
        b"from a",
        "renaming onto itself keeps it"
    );

    let e = b
        .storage
        .rename_file(&k("missing"), &k("c"))
        .await
        .expect_err("missing");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");

    b.storage.make_dir(&k("d")).await.expect("make_dir");
    let e = b
        .storage
        .rename_file(&k("d"), &k("e"))
        .await
        .expect_err("a directory");
    assert!(matches!(e, StorageError::Unsupported(_)), "{e:?}");
    let e = b
        .storage
        .rename_file(&k("b"), &k("d"))
        .await
        .expect_err("onto a directory");
    assert!(matches!(e, StorageError::IsADirectory(_)), "{e:?}");
    assert_eq!(b.read("b", 0).await.expect("read"), b"from a");
}

async fn delete_removes_files_not_directories(b: &Backend) {
    b.put("dir/f", b"x").await;
    b.storage.delete_file(&k("dir/f")).await.expect("delete");
    let e = b.storage.stat(&k("dir/f")).await.expect_err("deleted");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");
    let e = b.storage.delete_file(&k("dir/f")).await.expect_err("twice");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");

    b.storage.make_dir(&k("d")).await.expect("make_dir");
    let e = b
        .storage
        .delete_file(&k("d"))
        .await
        .expect_err("a directory");
    assert!(matches!(e, StorageError::IsADirectory(_)), "{e:?}");
    assert_eq!(
        b.storage.stat(&k("d")).await.expect("still there").kind,
        EntryKind::Dir
    );
}

async fn mkdir_and_rmdir_follow_directory_rules(b: &Backend) {
    b.storage.make_dir(&k("x")).await.expect("make_dir");
    assert_eq!(
        b.storage.stat(&k("x")).await.expect("stat").kind,
        EntryKind::Dir
    );
    let e = b.storage.make_dir(&k("x")).await.expect_err("twice");
    assert!(matches!(e, StorageError::AlreadyExists(_)), "{e:?}");
    b.put("file", b"f").await;
    let e = b
        .storage
        .make_dir(&k("file"))
        .await
        .expect_err("over a file");
    assert!(matches!(e, StorageError::AlreadyExists(_)), "{e:?}");
    let e = b.storage.make_dir(&k("")).await.expect_err("the root");
    assert!(matches!(e, StorageError::AlreadyExists(_)), "{e:?}");
    b.storage
        .make_dir(&k("no/parents/needed"))
        .await
        .expect("make_dir deep");
    assert_eq!(
        b.storage
            .stat(&k("no/parents/needed"))
            .await
            .expect("stat")
            .kind,
        EntryKind::Dir
    );

    b.storage.remove_dir(&k("x")).await.expect("remove_dir");
    let e = b.storage.stat(&k("x")).await.expect_err("removed");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");
    let e = b.storage.remove_dir(&k("x")).await.expect_err("twice");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");

    b.storage.make_dir(&k("full")).await.expect("make_dir");
    b.put("full/f", b"x").await;
    let e = b
        .storage
        .remove_dir(&k("full"))
        .await
        .expect_err("not empty");
    assert!(matches!(e, StorageError::NotEmpty(_)), "{e:?}");
    let e = b
        .storage
        .remove_dir(&k("no/parents"))
        .await
        .expect_err("has a subdirectory");
    assert!(matches!(e, StorageError::NotEmpty(_)), "{e:?}");
    let e = b.storage.remove_dir(&k("file")).await.expect_err("a file");
    assert!(matches!(e, StorageError::NotADirectory(_)), "{e:?}");
    let e = b.storage.remove_dir(&k("")).await.expect_err("the root");
    assert!(matches!(e, StorageError::Unsupported(_)), "{e:?}");

    b.storage.delete_file(&k("full/f")).await.expect("delete");
    b.storage.remove_dir(&k("full")).await.expect("now empty");
    assert_eq!(b.names("").await.len(), 2, "left: file, no/");
}

/// `begin_upload` that must fail.
async fn begin_err(storage: &dyn Storage, key: &str, mode: UploadMode) -> StorageError {
    match storage.begin_upload(&k(key), spec(mode)).await {
        Ok(_) => panic!("begin_upload {key} {mode:?} succeeded"),
        Err(e) => e,
    }
}

async fn append_adds_to_absent_and_small_files(b: &Backend) {
    b.upload("new.txt", UploadMode::Append, b"first").await;
    assert_eq!(b.read("new.txt", 0).await.expect("read"), b"first");
    b.upload("new.txt", UploadMode::Append, b" second").await;
    assert_eq!(b.read("new.txt", 0).await.expect("read"), b"first second");

    // More new bytes than a part: the old ones start the first part.
    let old = pattern(MIB + 3, 20);
    let new = pattern(7 * MIB + 11, 21);
    b.put("grow.bin", &old).await;
    b.upload("grow.bin", UploadMode::Append, &new).await;
    assert!(
        b.read("grow.bin", 0).await.expect("read") == [old, new].concat(),
        "content differs"
    );

    b.put("empty", b"").await;
    b.upload("empty", UploadMode::Append, b"x").await;
    assert_eq!(b.read("empty", 0).await.expect("read"), b"x");
    b.wait_for_pending("after appends", |n| n == 0).await;
}

async fn append_to_a_large_file_keeps_it_whole_until_commit(b: &Backend) {
    let old = pattern(12 * MIB, 22);
    let new = pattern(6 * MIB, 23);
    b.put("big.bin", &old).await;
    let mut upload = b
        .storage
        .begin_upload(&k("big.bin"), spec(UploadMode::Append))
        .await
        .expect("begin");
    let mut body = TestBody::new(new.clone(), Then::End);
    assert_eq!(
        upload.copy_from(&mut body).await.expect("copy"),
        new.len() as u64
    );
    assert!(
        b.read("big.bin", 0).await.expect("read") == old,
        "the old file is intact while the append is open"
    );
    if let Some((client, bucket)) = b.s3_parts() {
        // Only 6 MiB were sent, in 5 MiB parts: a 12 MiB part 1 is the server-side copy.
        let started = Instant::now();
        loop {
            let uploads = client
                .list_multipart_uploads()
                .bucket(bucket)
                .send()
                .await
                .expect("ListMultipartUploads");
            let upload = &uploads.uploads()[0];
            let parts = client
                .list_parts()
                .bucket(bucket)
                .key("big.bin")
                .upload_id(upload.upload_id().expect("id"))
                .send()
                .await
                .expect("ListParts");
            let first = parts.parts().first().map(|p| (p.part_number(), p.size()));
            if first == Some((Some(1), Some((12 * MIB) as i64))) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no copied part 1: {:?}",
                parts.parts()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(upload.commit().await.expect("commit"), new.len() as u64);
    assert!(
        b.read("big.bin", 0).await.expect("read") == [old, new].concat(),
        "content differs"
    );
    if let Some((client, bucket)) = b.s3_parts() {
        let head = client
            .head_object()
            .bucket(bucket)
            .key("big.bin")
            .send()
            .await
            .expect("HeadObject");
        let etag = head.e_tag().unwrap_or_default();
        assert!(
            etag.trim_matches('"').ends_with("-3"),
            "12 MiB copied + 5 + 1 MiB sent: 3 parts, ETag {etag}"
        );
    }
    b.wait_for_pending("after the append", |n| n == 0).await;
}

async fn resume_without_a_kept_upload_continues_the_file(b: &Backend) {
    b.put("r.txt", b"abc").await;
    let pending = b.storage.pending_upload_size(&k("r.txt")).await;
    assert_eq!(pending.expect("pending_upload_size"), None);
    b.upload("r.txt", UploadMode::Resume { offset: 3 }, b"def")
        .await;
    assert_eq!(b.read("r.txt", 0).await.expect("read"), b"abcdef");

    match begin_err(&*b.storage, "r.txt", UploadMode::Resume { offset: 2 }).await {
        StorageError::ResumeMismatch {
            held: 6,
            requested: 2,
            ..
        } => {}
        e => panic!("expected a mismatch holding 6 bytes, got {e:?}"),
    }
    match begin_err(&*b.storage, "absent", UploadMode::Resume { offset: 5 }).await {
        StorageError::ResumeMismatch {
            held: 0,
            requested: 5,
            ..
        } => {}
        e => panic!("expected a mismatch holding nothing, got {e:?}"),
    }
    b.upload("r.txt", UploadMode::Resume { offset: 0 }, b"new")
        .await;
    assert_eq!(b.read("r.txt", 0).await.expect("read"), b"new");
    b.wait_for_pending("after resumes", |n| n == 0).await;
}

async fn suspended_upload_leaves_no_object(b: &Backend) {
    b.put("s.bin", b"old").await;
    b.cut_off("s.bin", UploadMode::Replace, &pattern(11 * MIB, 24))
        .await
        .suspend()
        .await;
    assert_eq!(b.read("s.bin", 0).await.expect("read"), b"old");
    // Cut inside the first part: nothing was stored, nothing is kept.
    b.cut_off("t.bin", UploadMode::Replace, &pattern(MIB, 25))
        .await
        .suspend()
        .await;
    let e = b.storage.stat(&k("t.bin")).await.expect_err("no object");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");
    let kept = match b.kind {
        Kind::S3 { .. } => 1,
        Kind::Local { .. } | Kind::Memory(_) => 0,
    };
    assert_eq!(b.pending_uploads().await, kept);
}

async fn rename_dir_moves_a_tree_and_refuses_above_the_limit(b: &Backend) {
    b.storage.make_dir(&k("src")).await.expect("make_dir");
    b.storage.make_dir(&k("src/empty")).await.expect("make_dir");
    b.put("src/a.txt", b"a").await;
    b.put("src/sub/b.txt", b"bb").await;
    b.put("src/sub/deep/c+d %.txt", b"ccc").await;
    b.put("srcx", b"a sibling with the same prefix").await;
    let tree = b.tree("src").await;
    assert_eq!(tree.len(), 6, "{tree:?}");

    // 5 keys in S3 (2 markers, 3 files), 7 entries on disk: either is above 4.
    match b.storage.rename_dir(&k("src"), &k("dst"), 4).await {
        Err(StorageError::TooManyObjects { limit: 4, .. }) => {}
        other => panic!("expected TooManyObjects, got {other:?}"),
    }
    assert_eq!(
        b.tree("src").await,
        tree,
        "a refused rename changes nothing"
    );
    let e = b.storage.stat(&k("dst")).await.expect_err("no dst");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");

    b.storage
        .rename_dir(&k("src"), &k("dst"), 7)
        .await
        .expect("rename_dir");
    assert_eq!(b.tree("dst").await, tree);
    let e = b.storage.stat(&k("src")).await.expect_err("src gone");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");
    assert_eq!(
        b.read("dst/sub/deep/c+d %.txt", 0).await.expect("read"),
        b"ccc"
    );
    assert_eq!(
        b.read("srcx", 0).await.expect("untouched").len(),
        30,
        "a sibling sharing the prefix stays"
    );

    type Expected = fn(&StorageError) -> bool;
    let refusals: [(&str, &str, Expected); 5] = [
        ("dst", "dst/inner", |e| {
            matches!(e, StorageError::Unsupported(_))
        }),
        ("srcx", "y", |e| matches!(e, StorageError::NotADirectory(_))),
        ("missing", "y", |e| matches!(e, StorageError::NotFound(_))),
        ("dst", "srcx", |e| {
            matches!(e, StorageError::AlreadyExists(_))
        }),
        ("", "y", |e| matches!(e, StorageError::Unsupported(_))),
    ];
    for (from, to, expected) in refusals {
        match b.storage.rename_dir(&k(from), &k(to), 100).await {
            Err(e) if expected(&e) => {}
            other => panic!("rename_dir {from:?} → {to:?}: {other:?}"),
        }
    }
    assert_eq!(b.tree("dst").await, tree);
}

// S3 only: what a bucket can hold and a filesystem cannot.

/// Puts an object directly, bypassing the backend.
async fn put_raw(client: &Client, bucket: &str, key: &str, data: &'static [u8]) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(data))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutObject {key}: {e:?}"));
}

#[tokio::test]
async fn s3_file_wins_over_keys_under_the_same_name() {
    let b = Backend::s3().await;
    let (client, bucket) = b.s3_parts().expect("s3");
    put_raw(client, bucket, "a", b"file a").await;
    put_raw(client, bucket, "a/b", b"under a").await;

    let entry = b.storage.stat(&k("a")).await.expect("stat");
    assert_eq!(
        (entry.kind, entry.size),
        (EntryKind::File, 6),
        "the file wins"
    );
    assert_eq!(b.read("a", 0).await.expect("read"), b"file a");
    assert_eq!(
        b.names("").await,
        vec![
            ("a".to_string(), EntryKind::File, 6),
            ("a".to_string(), EntryKind::Dir, 0),
        ],
        "the listing shows what the bucket holds"
    );
    assert_eq!(
        b.names("a").await,
        vec![("b".to_string(), EntryKind::File, 7)]
    );
    assert_eq!(b.read("a/b", 0).await.expect("read"), b"under a");
}

#[tokio::test]
async fn s3_marker_alone_makes_a_directory_and_is_never_listed() {
    let b = Backend::s3().await;
    let (client, bucket) = b.s3_parts().expect("s3");
    put_raw(client, bucket, "m/", b"").await;
    assert_eq!(
        b.storage.stat(&k("m")).await.expect("stat").kind,
        EntryKind::Dir
    );
    assert_eq!(b.names("m").await, vec![]);
    assert_eq!(
        b.names("").await,
        vec![("m".to_string(), EntryKind::Dir, 0)]
    );

    b.storage.make_dir(&k("n")).await.expect("make_dir");
    let marker = client
        .head_object()
        .bucket(bucket)
        .key("n/")
        .send()
        .await
        .expect("make_dir writes the marker n/");
    assert_eq!(marker.content_length(), Some(0));
    b.storage.remove_dir(&k("n")).await.expect("remove_dir");
    let listed = client
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("ListObjectsV2");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec!["m/"], "remove_dir deletes the marker");
}

/// Stores that want checksums only where required (e.g. Garage): multipart still works, with no
/// part checksums declared.
#[tokio::test]
async fn s3_multipart_upload_works_with_checksums_when_required() {
    upload_in_parts(&Backend::s3_with(ChecksumMode::WhenRequired).await).await;
}

#[tokio::test]
async fn s3_missing_bucket_is_a_backend_error_with_the_s3_code() {
    let server = seaweedfs::s3().await;
    let config = server.s3_config("no-such-bucket-here");
    let client = client_from_sdk_config(&server.sdk_config(), &config);
    let storage = S3Storage::new(
        client,
        "no-such-bucket-here".to_string(),
        S3Options::from_config(&config),
    );
    match storage.stat(&k("f")).await {
        Err(StorageError::Backend { code, .. }) => {
            assert!(!code.is_empty(), "the error carries a code")
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    match storage.list(&k("")).next().await {
        Some(Err(StorageError::Backend { op, code, .. })) => {
            assert_eq!((op, code.as_str()), ("ListObjectsV2", "NoSuchBucket"))
        }
        other => panic!("expected NoSuchBucket, got {other:?}"),
    }
}

/// Resume, S3 only (the local backend keeps nothing): an upload cut twice and resumed twice,
/// each time by a storage built anew (a restarted server, or another replica), ends byte for
/// byte equal to the source.
#[tokio::test]
async fn s3_suspended_upload_resumes_byte_for_byte_after_a_restart() {
    let b = Backend::s3().await;
    let key = "dir/resume.bin";
    let data = pattern(17 * MIB + 5, 30);

    // Cut after 13 MiB: parts 1 and 2 (10 MiB) are stored, 3 MiB in memory are lost.
    b.cut_off(key, UploadMode::Replace, &data[..13 * MIB])
        .await
        .suspend()
        .await;
    let held = (10 * MIB) as u64;
    let restarted = b.s3_restarted().await;
    let pending = restarted.pending_upload_size(&k(key)).await;
    assert_eq!(pending.expect("pending_upload_size"), Some(held));
    let e = restarted.stat(&k(key)).await.expect_err("nothing visible");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");
    for wrong in [13 * MIB as u64, 5 * MIB as u64, 1] {
        match begin_err(&*restarted, key, UploadMode::Resume { offset: wrong }).await {
            StorageError::ResumeMismatch {
                held: h, requested, ..
            } => assert_eq!((h, requested), (held, wrong)),
            e => panic!("REST {wrong}: expected a mismatch, got {e:?}"),
        }
    }

    // REST 10 MiB + STOR, cut again after 6 MiB more: part 3 is added.
    let mut upload = restarted
        .begin_upload(&k(key), spec(UploadMode::Resume { offset: held }))
        .await
        .expect("resume");
    let mut body = TestBody::new(data[10 * MIB..16 * MIB].to_vec(), Then::Fail);
    assert!(matches!(
        upload.copy_from(&mut body).await,
        Err(UploadError::Body(_))
    ));
    upload.suspend().await;
    let held = (15 * MIB) as u64;
    let restarted = b.s3_restarted().await;
    let pending = restarted.pending_upload_size(&k(key)).await;
    assert_eq!(pending.expect("pending_upload_size"), Some(held));

    // REST 15 MiB + STOR of the rest: completes.
    let mut upload = restarted
        .begin_upload(&k(key), spec(UploadMode::Resume { offset: held }))
        .await
        .expect("resume");
    let mut body = TestBody::new(data[15 * MIB..].to_vec(), Then::End);
    let rest = (data.len() - 15 * MIB) as u64;
    assert_eq!(upload.copy_from(&mut body).await.expect("copy"), rest);
    assert_eq!(upload.commit().await.expect("commit"), rest);

    assert!(
        b.read(key, 0).await.expect("read") == data,
        "content differs"
    );
    let (client, bucket) = b.s3_parts().expect("s3");
    let head = client
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("HeadObject");
    let etag = head.e_tag().unwrap_or_default();
    assert!(
        etag.trim_matches('"').ends_with("-4"),
        "4 parts, ETag {etag}"
    );
    assert_eq!(b.pending_uploads().await, 0);
    let pending = b.storage.pending_upload_size(&k(key)).await;
    assert_eq!(pending.expect("pending_upload_size"), None);
    // The earlier bytes never passed through the last upload: no SHA-256; S3's CRC32 is whole.
    let digests = b.storage.recorded_digests(&k(key)).await.expect("digests");
    assert_eq!(
        digests,
        RecordedDigests {
            sha256: None,
            crc32: Some(crc32fast::hash(&data)),
        }
    );
}

/// A dropped upload's abort runs in the background (`Drop` cannot wait), on the tracker the
/// storage was given: once that tracker is stopped and waited for — what the server does at
/// shutdown — the multipart upload is gone, with no polling.
#[tokio::test]
async fn s3_a_dropped_uploads_abort_is_done_when_its_background_is_stopped() {
    let background = ftps_s3::background::Background::new();
    let b = Backend::s3_tuned(ChecksumMode::WhenSupported, |o| {
        o.background = background.clone()
    })
    .await;
    let mut upload = b
        .storage
        .begin_upload(&k("dropped.bin"), spec(UploadMode::Replace))
        .await
        .expect("begin");
    let mut body = TestBody::new(pattern(5 * MIB + 1, 8), Then::End);
    upload.copy_from(&mut body).await.expect("copy");
    assert_eq!(b.pending_uploads().await, 1, "one part stored");
    drop(upload);
    assert!(
        background.stop(Duration::from_secs(10)).await,
        "the abort ended within 10 s"
    );
    assert_eq!(
        b.pending_uploads().await,
        0,
        "stopped: the dropped upload's abort has been sent"
    );
}

#[tokio::test]
async fn s3_resume_window_zero_aborts_on_suspend() {
    let b = Backend::s3_tuned(ChecksumMode::WhenSupported, |o| {
        o.resume_window = Duration::ZERO
    })
    .await;
    b.cut_off("z.bin", UploadMode::Replace, &pattern(11 * MIB, 31))
        .await
        .suspend()
        .await;
    assert_eq!(b.pending_uploads().await, 0, "suspend aborted the upload");
    let pending = b.storage.pending_upload_size(&k("z.bin")).await;
    assert_eq!(pending.expect("pending_upload_size"), None);
    match begin_err(
        &*b.storage,
        "z.bin",
        UploadMode::Resume {
            offset: 10 * MIB as u64,
        },
    )
    .await
    {
        StorageError::ResumeMismatch { held: 0, .. } => {}
        e => panic!("expected a mismatch holding nothing, got {e:?}"),
    }
}

/// A STOR that replaces a file and is cut off leaves the old file visible; a resuming client
/// must be told the size of the new one (on a disk the old one would be gone), until a newer
/// upload completes.
#[tokio::test]
async fn s3_kept_upload_counts_only_when_newer_than_the_object() {
    let b = Backend::s3().await;
    b.put("v.bin", b"version 1").await;
    b.cut_off("v.bin", UploadMode::Replace, &pattern(11 * MIB, 32))
        .await
        .suspend()
        .await;
    let held = (10 * MIB) as u64;
    let pending = b.storage.pending_upload_size(&k("v.bin")).await;
    assert_eq!(pending.expect("pending_upload_size"), Some(held));
    assert_eq!(b.read("v.bin", 0).await.expect("read"), b"version 1");
    match begin_err(&*b.storage, "v.bin", UploadMode::Resume { offset: 9 }).await {
        StorageError::ResumeMismatch { held: h, .. } => assert_eq!(h, held),
        e => panic!("expected a mismatch, got {e:?}"),
    }

    // Timestamps have whole seconds: let the next upload be clearly newer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    b.put("v.bin", b"version 3").await;
    let pending = b.storage.pending_upload_size(&k("v.bin")).await;
    assert_eq!(pending.expect("pending_upload_size"), None);
    b.upload("v.bin", UploadMode::Resume { offset: 9 }, b" and more")
        .await;
    assert_eq!(
        b.read("v.bin", 0).await.expect("read"),
        b"version 3 and more"
    );
    // The STOR from byte 0 ("version 3") replaced the file: the upload it superseded is
    // aborted (in the background) rather than left for the resume window.
    let mut open = usize::MAX;
    for _ in 0..50 {
        open = b.pending_uploads().await;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0, "the superseded upload was left open");
}

/// Clients that resume with APPE (after SIZE) continue the kept upload, as with REST + STOR.
#[tokio::test]
async fn s3_append_continues_a_kept_upload() {
    let b = Backend::s3().await;
    let data = pattern(13 * MIB, 34);
    b.put("a.bin", b"an older version").await;
    b.cut_off("a.bin", UploadMode::Replace, &data[..12 * MIB])
        .await
        .suspend()
        .await;
    b.upload("a.bin", UploadMode::Append, &data[10 * MIB..])
        .await;
    assert!(
        b.read("a.bin", 0).await.expect("read") == data,
        "content differs"
    );
    assert_eq!(b.pending_uploads().await, 0);
}

#[tokio::test]
async fn s3_expired_kept_uploads_are_aborted_when_seen() {
    let b = Backend::s3_tuned(ChecksumMode::WhenSupported, |o| {
        o.resume_window = Duration::from_secs(1)
    })
    .await;
    b.cut_off("old.bin", UploadMode::Replace, &pattern(6 * MIB, 33))
        .await
        .suspend()
        .await;
    assert_eq!(b.pending_uploads().await, 1, "kept");
    // Store timestamps are in whole seconds: wait well past the window.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let pending = b.storage.pending_upload_size(&k("old.bin")).await;
    assert_eq!(pending.expect("pending_upload_size"), None);
    b.wait_for_pending("the expired upload is aborted", |n| n == 0)
        .await;
}

fn whole(data: &[u8]) -> RecordedDigests {
    RecordedDigests {
        sha256: Some(sha256_hex(data)),
        crc32: Some(crc32fast::hash(data)),
    }
}

#[tokio::test]
async fn s3_uploads_record_uploader_address_and_digests() {
    let b = Backend::s3().await;
    let (client, bucket) = b.s3_parts().expect("s3");
    let small = pattern(1000, 40);
    let big = pattern(12 * MIB + 1, 41);
    b.put("small.bin", &small).await;
    b.put("big.bin", &big).await;
    for (key, data) in [("small.bin", &small), ("big.bin", &big)] {
        let head = client
            .head_object()
            .bucket(bucket)
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .expect("HeadObject");
        let meta = head.metadata().expect("metadata");
        assert_eq!(meta.get("uploader").map(String::as_str), Some(UPLOADER));
        assert_eq!(
            meta.get("client-addr").map(String::as_str),
            Some("192.0.2.7")
        );
        let crc = aws_smithy_types::base64::encode(crc32fast::hash(data).to_be_bytes());
        assert_eq!(
            head.checksum_crc32(),
            Some(crc.as_str()),
            "{key}: S3 holds the CRC32 of the whole object"
        );
        let digests = b.storage.recorded_digests(&k(key)).await.expect("digests");
        assert_eq!(digests, whole(data), "{key}");
    }
    // One PutObject: the SHA-256 is metadata. Multipart: a tag, set after completion.
    let head = client
        .head_object()
        .bucket(bucket)
        .key("small.bin")
        .send()
        .await
        .expect("HeadObject");
    let meta = head.metadata().expect("metadata");
    assert_eq!(meta.get("sha256"), Some(&sha256_hex(&small)));
    let tags = client
        .get_object_tagging()
        .bucket(bucket)
        .key("big.bin")
        .send()
        .await
        .expect("GetObjectTagging");
    assert!(
        tags.tag_set()
            .iter()
            .any(|t| t.key() == "sha256" && t.value() == sha256_hex(&big)),
        "{:?}",
        tags.tag_set()
    );

    // A rename keeps them.
    b.storage
        .rename_file(&k("big.bin"), &k("moved/big.bin"))
        .await
        .expect("rename");
    let digests = b.storage.recorded_digests(&k("moved/big.bin")).await;
    assert_eq!(digests.expect("digests"), whole(&big));

    // Appended by copy: the old bytes never pass through, so no SHA-256; S3's CRC32 is whole.
    let extra = pattern(1000, 42);
    b.upload("moved/big.bin", UploadMode::Append, &extra).await;
    let digests = b.storage.recorded_digests(&k("moved/big.bin")).await;
    let appended = [big.clone(), extra.clone()].concat();
    assert_eq!(
        digests.expect("digests"),
        RecordedDigests {
            sha256: None,
            crc32: Some(crc32fast::hash(&appended)),
        }
    );
    // Appended by rewriting (small): both.
    b.upload("small.bin", UploadMode::Append, &extra).await;
    let digests = b.storage.recorded_digests(&k("small.bin")).await;
    assert_eq!(
        digests.expect("digests"),
        whole(&[small.clone(), extra].concat())
    );

    // Names outside printable ASCII are percent-encoded.
    let mut upload = b
        .storage
        .begin_upload(
            &k("zoe.txt"),
            UploadSpec {
                uploader: "zoë 100%".to_string(),
                ..spec(UploadMode::Replace)
            },
        )
        .await
        .expect("begin");
    upload.copy_from(&mut &b"z"[..]).await.expect("copy");
    upload.commit().await.expect("commit");
    let head = head_object(client, bucket, "zoe.txt").await;
    let uploader = head.metadata().and_then(|m| m.get("uploader")).cloned();
    assert_eq!(uploader.as_deref(), Some("zo%C3%AB 100%25"));

    // Objects stored by other means have nothing recorded; directories and absent keys fail.
    put_raw(client, bucket, "raw.bin", b"raw").await;
    let digests = b.storage.recorded_digests(&k("raw.bin")).await;
    assert_eq!(digests.expect("digests").sha256, None);
    let e = b
        .storage
        .recorded_digests(&k("moved"))
        .await
        .expect_err("dir");
    assert!(matches!(e, StorageError::IsADirectory(_)), "{e:?}");
    let e = b
        .storage
        .recorded_digests(&k("nope"))
        .await
        .expect_err("absent");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");
}

/// Objects above `CopyObject`'s limit (5 GiB; lowered here to 5 MiB) are renamed with
/// `UploadPartCopy` in pieces (at most 10 MiB here), keeping metadata and digests; appends and
/// directory renames copy them the same way.
#[tokio::test]
async fn s3_large_objects_are_copied_in_parts() {
    let b = Backend::s3_tuned(ChecksumMode::WhenSupported, |o| {
        o.max_copy_object_size = 5 * MIB as u64;
        o.copy_part_size = 10 * MIB as u64 + 2;
    })
    .await;
    let (client, bucket) = b.s3_parts().expect("s3");
    let etag_parts = |key: &'static str| async move {
        let head = head_object(client, bucket, key).await;
        let uploader = head.metadata().and_then(|m| m.get("uploader")).cloned();
        assert_eq!(uploader.as_deref(), Some(UPLOADER), "{key}: metadata kept");
        let etag = head
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string();
        etag.rsplit_once('-').map(|(_, n)| n.to_string())
    };
    let data = pattern(21 * MIB + 7, 50);
    b.put("a/big.bin", &data).await;
    b.storage
        .rename_file(&k("a/big.bin"), &k("b/big.bin"))
        .await
        .expect("rename");
    assert!(b.read("b/big.bin", 0).await.expect("read") == data);
    assert_eq!(etag_parts("b/big.bin").await.as_deref(), Some("3"));
    let digests = b.storage.recorded_digests(&k("b/big.bin")).await;
    assert_eq!(digests.expect("digests"), whole(&data), "tags copied");
    let e = b.storage.stat(&k("a/big.bin")).await.expect_err("gone");
    assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");

    let extra = pattern(MIB, 51);
    b.upload("b/big.bin", UploadMode::Append, &extra).await;
    let appended = [data, extra].concat();
    assert!(b.read("b/big.bin", 0).await.expect("read") == appended);
    assert_eq!(etag_parts("b/big.bin").await.as_deref(), Some("4"));

    b.storage
        .rename_dir(&k("b"), &k("c"), 10)
        .await
        .expect("rename_dir");
    assert!(b.read("c/big.bin", 0).await.expect("read") == appended);
    assert_eq!(b.pending_uploads().await, 0);
}

/// Stores that want checksums only where required: resume and append work without them.
#[tokio::test]
async fn s3_resume_and_append_work_with_checksums_when_required() {
    let b = Backend::s3_with(ChecksumMode::WhenRequired).await;
    let data = pattern(12 * MIB, 60);
    b.cut_off("w.bin", UploadMode::Replace, &data[..11 * MIB])
        .await
        .suspend()
        .await;
    let pending = b.storage.pending_upload_size(&k("w.bin")).await;
    assert_eq!(pending.expect("pending"), Some((10 * MIB) as u64));
    b.upload(
        "w.bin",
        UploadMode::Resume {
            offset: (10 * MIB) as u64,
        },
        &data[10 * MIB..],
    )
    .await;
    let extra = pattern(MIB, 61);
    b.upload("w.bin", UploadMode::Append, &extra).await;
    assert!(b.read("w.bin", 0).await.expect("read") == [data, extra].concat());
    assert_eq!(b.pending_uploads().await, 0);
}

// Local only: the uploads directory.

#[tokio::test]
async fn local_uploads_dir_is_hidden_and_names_like_it_are_ordinary() {
    let b = Backend::local();
    let mut upload = b
        .storage
        .begin_upload(&k("f"), spec(UploadMode::Replace))
        .await
        .expect("begin");
    upload.copy_from(&mut &b"partial"[..]).await.expect("copy");
    assert_eq!(b.pending_uploads().await, 1);
    assert_eq!(
        b.names("").await,
        vec![],
        "an upload in progress is not listed"
    );
    upload.commit().await.expect("commit");
    assert_eq!(b.pending_uploads().await, 0);

    // A user may name a directory like the uploads directory; it is just a directory.
    b.storage
        .make_dir(&k(".ftps-s3-tmp"))
        .await
        .expect("make_dir");
    b.put(".ftps-s3-tmp/x", b"x").await;
    assert_eq!(
        b.names("").await,
        vec![
            (".ftps-s3-tmp".to_string(), EntryKind::Dir, 0),
            ("f".to_string(), EntryKind::File, 7),
        ]
    );
    let e = b
        .storage
        .stat(&k(ftps_s3::vfs::local::TEMP_DIR_NAME))
        .await
        .expect_err("unreachable by key");
    assert!(matches!(e, StorageError::Io { .. }), "{e:?}");
}

/// MFMT on an object above `CopyObject`'s limit (5 GiB; lowered here to 5 MiB): the object is
/// copied onto itself in parts with the time added, content, metadata and digest tags kept.
#[tokio::test]
async fn s3_set_modified_above_the_copy_limit_copies_in_parts() {
    let b = Backend::s3_tuned(ChecksumMode::WhenSupported, |o| {
        o.max_copy_object_size = 5 * MIB as u64;
        o.copy_part_size = 10 * MIB as u64 + 2;
    })
    .await;
    let data = pattern(12 * MIB + 3, 60);
    b.put("big.bin", &data).await;
    let t = std::time::UNIX_EPOCH + Duration::from_secs(1_577_934_245);
    b.storage
        .set_modified(&k("big.bin"), t)
        .await
        .expect("set_modified");
    let e = b.storage.stat(&k("big.bin")).await.expect("stat");
    assert_eq!((e.size, e.modified), (data.len() as u64, Some(t)));
    assert!(b.read("big.bin", 0).await.expect("read") == data);
    let digests = b.storage.recorded_digests(&k("big.bin")).await;
    assert_eq!(digests.expect("digests"), whole(&data), "digests kept");
    let (client, bucket) = b.s3_parts().expect("s3");
    let head = head_object(client, bucket, "big.bin").await;
    let uploader = head.metadata().and_then(|m| m.get("uploader")).cloned();
    assert_eq!(uploader.as_deref(), Some(UPLOADER), "metadata kept");
    assert!(
        head.e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .ends_with("-2"),
        "copied in parts: {:?}",
        head.e_tag()
    );
}

/// HeadObject of `key`, which must exist.
async fn head_object(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    client
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("HeadObject")
}
