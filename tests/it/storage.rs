//! The `Storage` contract (src/vfs/mod.rs), checked against both backends: S3 on a real
//! SeaweedFS and the local directory backend on a temporary directory.
//!
//! Each contract test is an `async fn(&Backend)`; [`contract!`] turns it into two tests,
//! `storage::<name>::s3` and `storage::<name>::local`, so a failure names the behaviour and the
//! backend. Tests that only make sense for one backend (S3 keys a filesystem cannot hold, the
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
        s3::{client_from_sdk_config, S3Storage},
        Entry, EntryKind, ObjectKey, Storage, StorageError, UploadError,
    },
};
use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::common::seaweedfs;

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
    },
    Local {
        _root: tempfile::TempDir,
        temp_dir: PathBuf,
    },
}

impl Backend {
    /// S3Storage on a fresh bucket, its client built by the crate's own builder from an `[s3]`
    /// config, 5 MiB parts, 2 in flight.
    async fn s3() -> Backend {
        Backend::s3_with(ChecksumMode::WhenSupported).await
    }

    async fn s3_with(checksums: ChecksumMode) -> Backend {
        let server = seaweedfs::s3().await;
        let bucket = server.new_bucket().await;
        let mut config = server.s3_config(&bucket);
        config.checksums = checksums;
        let client = client_from_sdk_config(&server.sdk_config(), &config);
        let storage = S3Storage::new(client, bucket.clone(), PART_SIZE, config.upload_concurrency);
        assert_eq!(storage.bucket(), bucket);
        Backend {
            storage: Arc::new(storage),
            kind: Kind::S3 {
                client: server.client(),
                bucket,
            },
        }
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

    fn s3_parts(&self) -> Option<(&Client, &str)> {
        match &self.kind {
            Kind::S3 { client, bucket } => Some((client, bucket)),
            Kind::Local { .. } => None,
        }
    }

    /// Stores `data` at `key` through the contract: begin, copy, commit.
    async fn put(&self, key: &str, data: &[u8]) {
        let mut upload = self
            .storage
            .begin_upload(&k(key))
            .await
            .expect("begin_upload");
        let mut body = data;
        let copied = upload.copy_from(&mut body).await.expect("copy_from");
        assert_eq!(copied, data.len() as u64);
        let committed = upload.commit().await.expect("commit");
        assert_eq!(committed, data.len() as u64);
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

    /// Uploads in progress, seen from outside: open multipart uploads in the bucket, or files in
    /// the local uploads directory.
    async fn pending_uploads(&self) -> usize {
        match &self.kind {
            Kind::S3 { client, bucket } => client
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

/// Each name becomes `mod name { async fn s3(); async fn local(); }` running `name(&backend)`.
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
);

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
        .begin_upload(&k("dir/big.bin"))
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
    let mut upload = b.storage.begin_upload(&k("kept.bin")).await.expect("begin");
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
        .begin_upload(&k("up/fresh.bin"))
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
        .begin_upload(&k("up/parts.bin"))
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
        let mut upload = storage.begin_upload(&k("kept.bin")).await.expect("begin");
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
        .begin_upload(&k("never.bin"))
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
    let storage = S3Storage::new(client, "no-such-bucket-here".to_string(), PART_SIZE, 1);
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

// Local only: the uploads directory.

#[tokio::test]
async fn local_uploads_dir_is_hidden_and_names_like_it_are_ordinary() {
    let b = Backend::local();
    let mut upload = b.storage.begin_upload(&k("f")).await.expect("begin");
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
