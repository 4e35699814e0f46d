//! The data connection's side of a transfer: open it (peer check, TLS under PROT P), move the
//! bytes (download, upload, listing), close it. Runs as one future owning all it needs, so the
//! session keeps reading the control connection meanwhile; every step stops at the cancel token.

use std::{io, net::IpAddr, time::Duration, time::SystemTime};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::Permissions;
use crate::datachan::ascii::{FromCrlf, ToCrlf};
use crate::datachan::{self, DataPlan, DataSecurity, IdleTimeout, Metered};
use crate::listing::{self, MlstFacts};
use crate::net::DataStream;
use crate::quota::{self, rate::RateLimiter, DataLimits, Inbound};
use crate::vfs::{Entry, ReadStream, StorageError, Upload, UploadError};

use super::job::{ListFormat, ListingSource, Work};
use super::outcome::JobResult;
use crate::background::Background;

/// How long a finished data connection waits for the client to close it (see [`linger`]).
const LINGER: Duration = Duration::from_secs(2);

/// Copy buffer for downloads: large enough for full TLS records, small enough to not matter.
const COPY_BUF: usize = 256 * 1024;

/// What opening a data connection needs from the session.
pub(super) struct DataParams {
    pub(super) local_ip: IpAddr,
    pub(super) source_port: Option<u16>,
    pub(super) tls: Option<TlsAcceptor>,
    pub(super) require_resumption: bool,
    pub(super) keepalive_secs: u64,
    pub(super) connect_timeout: Duration,
    pub(super) idle_timeout: Duration,
    /// Where the linger after a transfer runs (shutdown waits for it).
    pub(super) background: Background,
}

/// Opens the data connection and runs the work; every step stops at `cancel`. Owns everything
/// it needs, so the session can keep reading the control connection meanwhile. Also returns
/// the bytes the data connection carried in the work's direction, however the job ended.
pub(super) async fn execute(
    mut plan: DataPlan,
    params: DataParams,
    work: Work,
    ascii: bool,
    limits: DataLimits,
    cancel: CancellationToken,
) -> (JobResult, u64) {
    let security = DataSecurity {
        tls: params.tls.as_ref(),
        require_resumption: params.require_resumption,
        keepalive_secs: params.keepalive_secs,
    };
    let opening = datachan::open(
        &mut plan,
        params.local_ip,
        params.source_port,
        security,
        params.connect_timeout,
    );
    let opened = tokio::select! {
        r = opening => Some(r),
        _ = cancel.cancelled() => None,
    };
    drop(plan);
    let data = match opened {
        Some(Ok(d)) => d,
        other => {
            if let Work::Upload(u) = work {
                u.abort().await;
            }
            let result = match other {
                Some(Err(e)) => JobResult::NoDataConnection(e),
                _ => JobResult::Aborted,
            };
            return (result, 0);
        }
    };
    let mut data = Metered::new(IdleTimeout::new(data, params.idle_timeout));
    let inbound = matches!(work, Work::Upload(_));
    let result = match work {
        Work::Download(reader) => {
            download(&mut data, reader, ascii, limits.rate.as_deref(), &cancel).await
        }
        Work::Upload(upload) => upload_to(&mut data, upload, ascii, limits, &cancel).await,
        Work::Listing {
            source,
            format,
            perms,
            facts,
            nlst_prefix,
        } => {
            let format = Format {
                format,
                perms,
                facts,
                nlst_prefix,
            };
            send_listing(&mut data, source, &format, &cancel).await
        }
    };
    let moved = match inbound {
        true => data.bytes_read(),
        false => data.bytes_written(),
    };
    if matches!(result, JobResult::Done { .. }) {
        // Our side is closed (close_notify + FIN). Some clients close theirs only after the
        // 226: wait for that in the background, not before the reply.
        params.background.spawn(linger(data).in_current_span());
    }
    (result, moved)
}

type DataConn = Metered<IdleTimeout<DataStream>>;

async fn download(
    data: &mut DataConn,
    mut reader: ReadStream,
    ascii: bool,
    rate: Option<&RateLimiter>,
    cancel: &CancellationToken,
) -> JobResult {
    let copy = async {
        let mut buf = vec![0u8; COPY_BUF];
        let mut to_crlf = ascii.then(|| (ToCrlf::default(), Vec::with_capacity(COPY_BUF * 2)));
        let mut total = 0u64;
        loop {
            // Paced: at most the bucket's burst at a time, so a slow rate trickles steadily.
            let max = rate.map_or(buf.len(), |r| r.chunk().min(buf.len()));
            let n = match reader.read(&mut buf[..max]).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    return Err(JobResult::Storage(StorageError::Io {
                        key: "(download body)".into(),
                        source: e,
                    }))
                }
            };
            let out = match &mut to_crlf {
                Some((conv, out)) => {
                    out.clear();
                    conv.convert(&buf[..n], out);
                    &out[..]
                }
                None => &buf[..n],
            };
            data.write_all(out).await.map_err(JobResult::Client)?;
            total += out.len() as u64;
            // max_download_kib_s: the user's sessions share one bucket.
            if let Some(rate) = rate {
                rate.pace(out.len()).await;
            }
        }
        Ok(total)
    };
    let total = tokio::select! {
        r = copy => r,
        _ = cancel.cancelled() => return JobResult::Aborted,
    };
    close_after(data, total).await
}

async fn upload_to(
    data: &mut DataConn,
    mut upload: Box<dyn Upload>,
    ascii: bool,
    mut limits: DataLimits,
    cancel: &CancellationToken,
) -> JobResult {
    let copy = async {
        // The quota share and upload rate apply to bytes as they arrive, below TYPE A.
        let mut body = Inbound::new(&mut *data, &mut limits);
        match ascii {
            true => upload.copy_from(&mut FromCrlf::new(&mut body)).await,
            false => upload.copy_from(&mut body).await,
        }
    };
    let copied = tokio::select! {
        r = copy => Some(r),
        _ = cancel.cancelled() => None,
    };
    match copied {
        Some(Ok(_)) => {
            // Everything arrived (TLS: up to close_notify). Close our side, then publish.
            let _ = close(data).await;
            let sha256 = upload.sha256();
            match upload.commit().await {
                Ok(bytes) => {
                    if let Some(hold) = limits.hold.take() {
                        hold.commit(bytes);
                    }
                    JobResult::Done { bytes, sha256 }
                }
                Err(e) => JobResult::Storage(e),
            }
        }
        // The client side failed (reset, TLS error, timeout): keep what the store holds so the
        // client can resume with REST + STOR (s3.resume_window_secs; 0 aborts instead).
        Some(Err(UploadError::Body(e))) => match quota::exceeded_in(&e) {
            // Past the user's quota: nothing of it may remain, not even for a resume.
            Some(q) => {
                let _ = close(data).await;
                upload.abort().await;
                JobResult::QuotaExceeded(q)
            }
            None => {
                upload.suspend().await;
                JobResult::Client(e)
            }
        },
        Some(Err(UploadError::Storage(e))) => {
            upload.abort().await;
            JobResult::Storage(e)
        }
        // ABOR, or the control connection is gone: the same, the client may resume.
        None => {
            upload.suspend().await;
            JobResult::Aborted
        }
    }
}

/// How a listing's lines are written.
struct Format {
    format: ListFormat,
    perms: Permissions,
    facts: MlstFacts,
    nlst_prefix: String,
}

async fn send_listing(
    data: &mut DataConn,
    source: ListingSource,
    f: &Format,
    cancel: &CancellationToken,
) -> JobResult {
    let now = SystemTime::now();
    let line = |e: &Entry| match f.format {
        ListFormat::List => listing::list_line(e, now),
        ListFormat::Nlst => listing::nlst_line(&f.nlst_prefix, e),
        ListFormat::Mlsd => listing::mlsd_line(e, f.perms, f.facts),
    };
    let send = async {
        let mut total = 0u64;
        match source {
            ListingSource::Single(e) => {
                let text = line(&e);
                data.write_all(text.as_bytes())
                    .await
                    .map_err(JobResult::Client)?;
                total += text.len() as u64;
            }
            ListingSource::Pages(mut pages) => {
                // Each page goes out as soon as the store returns it.
                while let Some(page) = pages.next().await {
                    let page = page.map_err(JobResult::Storage)?;
                    let text: String = listing::listable_entries(&page).map(line).collect();
                    data.write_all(text.as_bytes())
                        .await
                        .map_err(JobResult::Client)?;
                    total += text.len() as u64;
                }
            }
        }
        Ok(total)
    };
    let sent = tokio::select! {
        r = send => r,
        _ = cancel.cancelled() => return JobResult::Aborted,
    };
    close_after(data, sent).await
}

/// How a download or listing ends once its bytes are written (`Ok`: how many): our side closed
/// cleanly, or the error that stopped it.
async fn close_after(data: &mut DataConn, sent: Result<u64, JobResult>) -> JobResult {
    match sent {
        Ok(total) => match close(data).await {
            Ok(()) => JobResult::Done {
                bytes: total,
                sha256: None,
            },
            Err(e) => JobResult::Client(e),
        },
        Err(r) => r,
    }
}

/// Ends our side of a data connection cleanly: TLS close_notify, then FIN.
async fn close(data: &mut DataConn) -> io::Result<()> {
    data.shutdown().await
}

/// After [`close`]: a short wait for the client's own close before the socket is dropped, so
/// it is not closed with unread bytes, which would reset the connection under the client's
/// last reads.
async fn linger(mut data: DataConn) {
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = data.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
