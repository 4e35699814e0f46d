//! Benchmark client: the same work as ftps-s3 does, straight against S3, as the ceiling a gateway
//! can reach (bench/run.sh).
//!
//! ```text
//! s3_direct put      --bucket B --key K --file F        multipart upload streamed from a file
//! s3_direct get      --bucket B --key K --file F        ranged GETs written at their offsets
//! s3_direct list     --bucket B --prefix P              ListObjectsV2 (delimiter "/") pagination
//! s3_direct populate --bucket B --prefix P --count N    N empty objects, many PUTs in flight
//! ```
//!
//! The client, part size and concurrency are ftps-s3's own (`build_client` and `S3Options` from
//! the `[s3]` defaults), so the only difference from the server's path is the FTP side. The
//! endpoint comes from `--endpoint` , credentials from the AWS chain
//! (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`). Each command prints one JSON object on stdout.

use std::{
    fs::File,
    os::unix::fs::FileExt,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use aws_sdk_s3::{
    primitives::ByteStream,
    types::{CompletedMultipartUpload, CompletedPart},
    Client,
};
use clap::{Parser, Subcommand};
use ftps_s3::{
    config::Config,
    vfs::s3::{build_client, S3Options},
};
use tokio::{sync::Semaphore, task::JoinSet};

#[derive(Parser)]
struct Args {
    /// S3 endpoint URL (path-style addressing is used).
    #[arg(long)]
    endpoint: String,
    #[arg(long)]
    bucket: String,
    /// Part size in MiB; default: ftps-s3's `s3.part_size_mib` default.
    #[arg(long)]
    part_size_mib: Option<u64>,
    /// Parts in flight; default: ftps-s3's `s3.upload_concurrency` default.
    #[arg(long)]
    concurrency: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Multipart upload of a file (parts read from the file as they are sent).
    Put {
        #[arg(long)]
        key: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Download with ranged GETs of one part size each, `concurrency` in flight, each written
    /// at its offset (`/dev/null` is fine).
    Get {
        #[arg(long)]
        key: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Lists a "directory" as the server does (delimiter "/"): time to the first page, total.
    List {
        #[arg(long)]
        prefix: String,
    },
    /// Creates `count` empty objects `prefix` + `f%07d`, `concurrency` PUTs in flight.
    Populate {
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 64)]
        put_concurrency: usize,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut cfg = Config::default().s3;
    cfg.bucket = args.bucket.clone();
    cfg.endpoint = Some(args.endpoint.clone());
    cfg.force_path_style = true;
    if let Some(p) = args.part_size_mib {
        cfg.part_size_mib = p;
    }
    if let Some(c) = args.concurrency {
        cfg.upload_concurrency = c;
    }
    let options = S3Options::from_config(&cfg);
    let client = build_client(&cfg).await;
    let bench = Bench {
        client,
        bucket: args.bucket,
        part_size: options.part_size as u64,
        concurrency: options.upload_concurrency.max(1),
    };
    let out = match args.cmd {
        Cmd::Put { key, file } => bench.put(&key, file).await?,
        Cmd::Get { key, file } => bench.get(&key, file).await?,
        Cmd::List { prefix } => bench.list(&prefix).await?,
        Cmd::Populate {
            prefix,
            count,
            put_concurrency,
        } => bench.populate(&prefix, count, put_concurrency).await?,
    };
    println!("{out}");
    Ok(())
}

struct Bench {
    client: Client,
    bucket: String,
    part_size: u64,
    concurrency: usize,
}

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

impl Bench {
    async fn put(&self, key: &str, path: PathBuf) -> Result<serde_json::Value> {
        let file = Arc::new(File::open(&path).with_context(|| format!("{}", path.display()))?);
        let size = file.metadata()?.len();
        let t0 = Instant::now();
        let upload_id = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await?
            .upload_id
            .context("CreateMultipartUpload returned no upload id")?;
        // Like the server: at most `concurrency` parts in flight, the next part is read only
        // when a slot frees, so memory stays at part size × (concurrency + 1).
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        let mut offset = 0u64;
        let mut number = 1i32;
        while offset < size || number == 1 {
            let permit = slots.clone().acquire_owned().await?;
            let len = self.part_size.min(size - offset);
            let mut buf = vec![0u8; len as usize];
            let f = file.clone();
            let at = offset;
            buf = tokio::task::spawn_blocking(move || f.read_exact_at(&mut buf, at).map(|_| buf))
                .await??;
            let req = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(buf));
            let n = number;
            tasks.spawn(async move {
                let out = req.send().await;
                drop(permit);
                out.map(|o| {
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(o.e_tag)
                        .build()
                })
            });
            offset += len;
            number += 1;
        }
        let mut parts = Vec::new();
        while let Some(done) = tasks.join_next().await {
            parts.push(done?.context("UploadPart")?);
        }
        parts.sort_by_key(|p| p.part_number);
        let count = parts.len();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await?;
        let d = t0.elapsed();
        Ok(serde_json::json!({
            "op": "put", "bytes": size, "parts": count, "seconds": d.as_secs_f64(),
            "mib_per_s": mib_per_s(size, d),
        }))
    }

    async fn get(&self, key: &str, path: PathBuf) -> Result<serde_json::Value> {
        let t0 = Instant::now();
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await?;
        let size = u64::try_from(head.content_length.unwrap_or(0))?;
        let file = Arc::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .with_context(|| format!("{}", path.display()))?,
        );
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        let mut offset = 0u64;
        while offset < size {
            let permit = slots.clone().acquire_owned().await?;
            let last = (offset + self.part_size).min(size) - 1;
            let req = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .range(format!("bytes={offset}-{last}"));
            let f = file.clone();
            let start = offset;
            tasks.spawn(async move {
                let mut body = req.send().await?.body;
                let mut at = start;
                while let Some(chunk) = body.try_next().await? {
                    f.write_all_at(&chunk, at)?;
                    at += chunk.len() as u64;
                }
                drop(permit);
                anyhow::Ok(at - start)
            });
            offset = last + 1;
        }
        let mut got = 0;
        while let Some(done) = tasks.join_next().await {
            got += done??;
        }
        if got != size {
            bail!("downloaded {got} bytes of {size}");
        }
        let d = t0.elapsed();
        Ok(serde_json::json!({
            "op": "get", "bytes": size, "seconds": d.as_secs_f64(), "mib_per_s": mib_per_s(size, d),
        }))
    }

    async fn list(&self, prefix: &str) -> Result<serde_json::Value> {
        let t0 = Instant::now();
        let mut first_page = None;
        let mut entries = 0usize;
        let mut pages = 0usize;
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .delimiter("/")
                .set_continuation_token(token)
                .send()
                .await?;
            pages += 1;
            first_page.get_or_insert_with(|| t0.elapsed());
            entries += out.contents().len() + out.common_prefixes().len();
            token = out.next_continuation_token;
            if token.is_none() {
                break;
            }
        }
        Ok(serde_json::json!({
            "op": "list", "entries": entries, "pages": pages,
            "first_page_seconds": first_page.unwrap_or_default().as_secs_f64(),
            "seconds": t0.elapsed().as_secs_f64(),
        }))
    }

    async fn populate(
        &self,
        prefix: &str,
        count: usize,
        inflight: usize,
    ) -> Result<serde_json::Value> {
        let t0 = Instant::now();
        let slots = Arc::new(Semaphore::new(inflight.max(1)));
        let mut tasks = JoinSet::new();
        for i in 0..count {
            let permit = slots.clone().acquire_owned().await?;
            let req = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(format!("{prefix}f{i:07}"))
                .body(ByteStream::from_static(b""));
            tasks.spawn(async move {
                let out = req.send().await;
                drop(permit);
                out
            });
            // Reap as we go so the set does not hold `count` finished results.
            while let Some(done) = tasks.try_join_next() {
                done?.context("PutObject")?;
            }
        }
        while let Some(done) = tasks.join_next().await {
            done?.context("PutObject")?;
        }
        let d = t0.elapsed();
        Ok(serde_json::json!({
            "op": "populate", "objects": count, "seconds": d.as_secs_f64(),
            "objects_per_s": count as f64 / d.as_secs_f64(),
        }))
    }
}
