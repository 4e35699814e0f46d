//! `STAT <path>` (RFC 959): the LIST of a path on the control connection, as a multi-line 213.
//! The handler prepares a [`StatusListing`] (resolve, stat, start the listing) and returns it as
//! [`Outcome::Status`](crate::session::Outcome::Status); the session loop writes it, page by page
//! as the store returns them, since only the loop touches the socket.

use std::time::SystemTime;

use futures::StreamExt;

use crate::listing;
use crate::session::reply::Reply;
use crate::session::Session;
use crate::vfs::{Entry, ListPages, VirtualPath};

/// A prepared `STAT <path>` reply.
pub(crate) struct StatusListing {
    pub(in crate::session) path: VirtualPath,
    pub(in crate::session) source: StatusSource,
}

pub(crate) enum StatusSource {
    /// The path named a file: its one line.
    Single(Entry),
    /// The path named a directory: its pages.
    Pages(ListPages),
}

/// One entry of the reply, indented by one space so no name can end the multi-line reply.
fn status_line(e: &Entry, now: SystemTime) -> String {
    format!(" {}", listing::list_line(e, now))
}

impl Session {
    /// Writes `213-Status of …`, the entries, and the closing 213. `false` ends the session
    /// (the control connection failed).
    pub(in crate::session) async fn write_status(&mut self, status: StatusListing) -> bool {
        let now = SystemTime::now();
        let head = format!("213-Status of {}:\r\n", status.path);
        if self.conn.write_raw(head.as_bytes()).await.is_err() {
            return false;
        }
        let mut storage_error = None;
        match status.source {
            StatusSource::Single(e) => {
                if self
                    .conn
                    .write_raw(status_line(&e, now).as_bytes())
                    .await
                    .is_err()
                {
                    return false;
                }
            }
            StatusSource::Pages(mut pages) => {
                while let Some(page) = pages.next().await {
                    let text: String = match page {
                        Ok(p) => listing::listable_entries(&p)
                            .map(|e| status_line(e, now))
                            .collect(),
                        Err(e) => {
                            storage_error = Some(e);
                            break;
                        }
                    };
                    if self.conn.write_raw(text.as_bytes()).await.is_err() {
                        return false;
                    }
                }
            }
        }
        let end = match storage_error {
            None => Reply::file_status("End of status"),
            Some(e) => {
                crate::session::log_storage_error("list", &e);
                Reply::file_status("End of status (listing incomplete: storage error)")
            }
        };
        self.send(&end).await.is_ok()
    }
}
