//! [`ReadAhead`]: a read buffer under a data connection's TLS session.
//!
//! rustls asks its transport for at most 4 KiB of ciphertext per read, so without a buffer an
//! upload costs a `recv` system call (and a readiness check) per 4 KiB. With one, a single call
//! fills the buffer and rustls' reads are copies from cache-hot memory. Only data connections
//! get it: the control connection must not read past the client's close_notify at CCC/REIN
//! (see `session::codec::read_to_close_notify`), and its stream type has no room for one.

use tokio::io::BufReader;

/// How much one read from the socket may bring in.
pub const DATA_READ_AHEAD: usize = 64 * 1024;

/// A stream whose reads go through a buffer of [`DATA_READ_AHEAD`] bytes; writes go straight
/// through, and a read at least as large as the buffer bypasses it (tokio's `BufReader` does
/// exactly this).
pub type ReadAhead<S> = BufReader<S>;

/// `inner` with a [`DATA_READ_AHEAD`] buffer.
pub fn read_ahead<S: tokio::io::AsyncRead>(inner: S) -> ReadAhead<S> {
    BufReader::with_capacity(DATA_READ_AHEAD, inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn sent() -> Vec<u8> {
        (0..1000u32).map(|i| (i % 251) as u8).collect()
    }

    /// Small reads (through the buffer) and large ones (past it) see every byte in order.
    #[tokio::test]
    async fn reads_of_any_size_see_every_byte_in_order() {
        for chunk in [1, 7, 64, 100] {
            let (client, server) = tokio::io::duplex(300);
            let mut io = BufReader::with_capacity(64, server);
            let writer = tokio::spawn(async move {
                let mut client = client;
                client.write_all(&sent()).await.expect("write");
            });
            let mut got = Vec::new();
            let mut buf = vec![0u8; chunk];
            loop {
                let n = io.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            writer.await.expect("writer");
            assert_eq!(got, sent(), "reads of {chunk}");
        }
    }

    /// One socket read serves many small reads.
    #[tokio::test]
    async fn small_reads_are_served_from_the_buffer() {
        let (mut client, server) = tokio::io::duplex(300);
        let mut io = BufReader::with_capacity(64, server);
        client.write_all(&sent()[..64]).await.expect("write");
        let mut one = [0u8; 4];
        io.read_exact(&mut one).await.expect("first read");
        // The rest of what was written is buffered: reads succeed with the writer silent.
        let mut rest = [0u8; 60];
        io.read_exact(&mut rest).await.expect("buffered");
        assert_eq!(&rest[..], &sent()[4..64]);
        assert!(
            io.buffer().is_empty(),
            "all 64 bytes came from one socket read"
        );
    }
}
