//! How the process asks the C allocator for memory.
//!
//! The server's large blocks come and go: part buffers of uploads (8 MiB by default), argon2's
//! working memory at each login (19 MiB with the default parameters). glibc serves blocks above
//! its mmap threshold with their own mapping and unmaps them on free, but it raises that
//! threshold to the size of the largest mapped block freed so far (up to 32 MiB). After the
//! first login or upload, such blocks come from the heap arenas instead, and freed ones stay
//! resident there: one 2 GiB STOR peaked at ~110 MiB instead of ~60, and logins left hundreds of
//! KiB per session behind. Pinning the threshold keeps every block of 1 MiB or more in a
//! mapping of its own, returned to the system when freed.

/// Blocks at least this large get their own mapping.
const MMAP_THRESHOLD: usize = 1024 * 1024;

/// Sets the allocator up for the server. Call once, first thing in `main`, before any thread
/// starts. Does nothing where the C library is not glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
    }
}
