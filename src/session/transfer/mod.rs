//! Transfers: RETR, STOR, LIST, NLST, MLSD, and ABOR while one runs.
//!
//! A transfer command is checked and prepared by its handler ([`prepare`]) *before* `150` is
//! sent, so errors such as `550` come without opening a data connection. Then
//! [`Session::run_transfer`] sends `150`, and runs the job ([`io`]: open the data connection,
//! move the bytes, close) while still reading the control connection, so that ABOR (or the
//! client vanishing, or shutdown) interrupts the job at once. Other commands that arrive
//! meanwhile are queued and answered after the transfer (RFC 959 allows pipelining). The
//! ending — the job's result and what interrupted it — decides the final replies
//! ([`outcome`]) and the metrics and audit line ([`report`]).
//!
//! Uploads end in exactly one of `commit` (everything read up to TLS close_notify, or EOF in
//! the clear) or `abort` (ABOR, reset, TLS error, timeout, store failure): a truncated file is
//! never committed.

mod io;
mod job;
mod outcome;
mod prepare;
mod report;

use std::{io as stdio, time::Instant};

use tokio_util::sync::CancellationToken;

use crate::session::codec::Line;
use crate::session::command::Command;
use crate::session::reply::Reply;
use crate::session::state::{DataProtection, ListenerKind};
use crate::session::Session;

use io::{execute, DataParams};
use job::Work;
pub(crate) use job::{ListFormat, StoreKind, TransferJob};
use outcome::{final_replies, Interruption, JobResult};
use report::JobInfo;

/// Lines queued during a transfer before we stop reading the control connection (backpressure).
const MAX_PENDING: usize = 64;

impl Session {
    /// Sends 150, runs `job` while watching the control connection, sends the final reply.
    /// `false` ends the session (the control connection is gone).
    pub(in crate::session) async fn run_transfer(&mut self, mut job: TransferJob) -> bool {
        let Some(plan) = self.state.data.take() else {
            if let Work::Upload(u) = job.work {
                u.abort().await;
            }
            return self.send(&Reply::no_data_target()).await.is_ok();
        };
        let text = job.opening.take().unwrap_or_else(|| {
            format!(
                "Opening data connection for {} {}",
                job.kind.verb(),
                job.path
            )
        });
        let opening = Reply::new(150, text);
        if self.send(&opening).await.is_err() {
            if let Work::Upload(u) = job.work {
                u.abort().await;
            }
            return false;
        }
        let cancel = CancellationToken::new();
        let info = JobInfo {
            kind: job.kind,
            path: job.path.clone(),
            key: job.key.clone(),
            started: Instant::now(),
        };
        let fut = execute(
            plan,
            self.data_params(),
            job.work,
            job.ascii,
            job.limits,
            cancel.clone(),
        );
        tokio::pin!(fut);

        enum Event {
            Finished((JobResult, u64)),
            Control(stdio::Result<Line>),
            EndedByShutdown,
        }
        let mut interruption: Option<Interruption> = None;
        let end_transfers = self.env.end_transfers.clone();
        let (result, moved) = loop {
            let control_open = interruption != Some(Interruption::ControlLost);
            let event = tokio::select! {
                r = &mut fut => Event::Finished(r),
                l = self.conn.read_line(), if control_open && self.pending.len() < MAX_PENDING => Event::Control(l),
                _ = end_transfers.cancelled(), if interruption.is_none() => Event::EndedByShutdown,
            };
            let next = match event {
                Event::Finished(r) => break r,
                // The grace period is over: end the job through its own cleanup.
                Event::EndedByShutdown => Interruption::Shutdown,
                Event::Control(Ok(Line::Text(bytes))) => {
                    if Command::parse(&bytes) != Ok(Command::Abor) {
                        self.pending.push_back(Line::Text(bytes));
                        continue;
                    }
                    Interruption::Abor
                }
                Event::Control(Ok(Line::TooLong)) => {
                    self.pending.push_back(Line::TooLong);
                    continue;
                }
                // The client is gone: stop the transfer and clean up (the job aborts uploads).
                Event::Control(Ok(Line::Eof) | Err(_)) => Interruption::ControlLost,
            };
            interruption = Interruption::then(interruption, next);
            cancel.cancel();
        };
        self.log_transfer(&info, &result, interruption, moved);
        if interruption == Some(Interruption::ControlLost) {
            return false;
        }
        let replies = final_replies(result, interruption, &info.path);
        if let Some(first) = replies.first() {
            tracing::Span::current().record("reply_code", first.code);
        }
        for r in &replies {
            if self.send(r).await.is_err() {
                return false;
            }
        }
        true
    }

    /// What opening this session's data connection needs, from its state and the config.
    fn data_params(&self) -> DataParams {
        let policy = &self.env.policy;
        DataParams {
            local_ip: self.state.local.ip(),
            source_port: match self.state.listener {
                ListenerKind::Implicit => policy.implicit_source_port,
                ListenerKind::Explicit => None,
            },
            tls: (self.state.protection == DataProtection::Private).then(|| self.tls.data.clone()),
            require_resumption: policy.require_session_reuse,
            keepalive_secs: policy.tcp_keepalive_secs,
            connect_timeout: policy.data_connect_timeout,
            idle_timeout: policy.data_idle_timeout,
            background: self.env.background.clone(),
        }
    }
}
