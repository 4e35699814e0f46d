//! How the process asks the C allocator for memory.
//!
//! The server's large blocks come and go: part buffers of uploads (8 MiB by default), argon2's
//! working memory at each login (19 MiB with the default parameters). glibc serves blocks above
//! its mmap threshold with their own mapping and unmaps them on free, but it raises that
//! threshold to the size of the largest mapped block freed so far (up to 32 MiB). After the
//! first login or upload, such blocks come from the heap arenas instead, and freed ones stay
//! resident there: one 2 GiB STOR peaked at ~110 MiB instead of ~60, and logins left hundreds of
//! KiB per session behind. Pinning the threshold keeps every block of 1 MiB or more in a
//! mapping of its own, returned to the system when freed. Smaller blocks stay in the arenas,
//! with up to [`TRIM_THRESHOLD`] of free memory kept at the top of each for reuse.

/// Blocks at least this large get their own mapping.
const MMAP_THRESHOLD: usize = 1024 * 1024;

/// Free memory at the top of a heap is handed back to the kernel only above this. Pinning the
/// mmap threshold also pins glibc's trim threshold at its 128 KiB default (its dynamic rule
/// would have raised it to twice the mmap threshold), and then every freed read buffer of a
/// few hundred KiB (the S3 client's, during a download) went back to the kernel and the next
/// one was faulted in again page by page: a third of the server's CPU in a RETR profile. Twice
/// the mmap threshold, as glibc's own rule: at most this much stays free per arena.
const TRIM_THRESHOLD: usize = 2 * MMAP_THRESHOLD;

/// Sets the allocator up for the server. Call once, first thing in `main`, before any thread
/// starts. Does nothing where the C library is not glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Minor page faults of the calling thread so far (field 10 of /proc/thread-self/stat).
    fn thread_minor_faults() -> u64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
        // The command name (field 2) may hold spaces; the fields after it do not.
        let after_name = &stat[stat.rfind(')').expect("comm") + 2..];
        after_name
            .split(' ')
            .nth(7)
            .and_then(|f| f.parse().ok())
            .expect("minflt")
    }

    /// A download churns blocks of a few hundred KiB (the S3 client's read buffers): freeing
    /// one must not hand its pages back to the kernel, or the next one faults them in again,
    /// page by page (a third of the server's CPU in a RETR profile).
    #[test]
    fn freed_buffers_below_the_mmap_threshold_keep_their_pages() {
        tune_allocator();
        let faults = std::thread::spawn(|| {
            const BLOCK: usize = 512 * 1024;
            const ROUNDS: usize = 50;
            // Warm up this thread's arena, then count.
            std::hint::black_box(vec![1u8; BLOCK]);
            let before = thread_minor_faults();
            for i in 0..ROUNDS {
                let v = std::hint::black_box(vec![i as u8; BLOCK]);
                drop(v);
            }
            thread_minor_faults() - before
        })
        .join()
        .expect("thread");
        // Faulting every block in anew would be ROUNDS × 128 pages (6,400).
        assert!(
            faults < 640,
            "{faults} page faults for 50 reused 512 KiB blocks"
        );
    }
}
