//! `VirtualPath::resolve` with an arbitrary current directory and client path, then `Home::key`.
//!
//! The jail's invariants (vfs/path.rs, vfs/mod.rs):
//! - the result is absolute, with no `.`, `..` or empty segments and no trailing `/` (but `/`);
//! - it holds no NUL and no backslash (those are refused);
//! - resolving it again, from any directory, gives it back (idempotent, absolute);
//! - its key is the home prefix itself or `prefix/…`, and the part after the prefix has no `.`,
//!   `..` or empty segment: no key outside the home can be named.
#![no_main]

use std::sync::{Arc, OnceLock};

use ftps_s3::vfs::{local::LocalStorage, Home, VirtualPath};
use libfuzzer_sys::fuzz_target;

const PREFIX: &str = "partners/acme";

/// The input is `cwd LF path` in UTF-8 (a control line never holds an LF, and the parser hands
/// on only UTF-8), or just `path` with the root as cwd: corpus files stay readable.
struct Input<'a> {
    /// Where the client has `CWD`'d to (itself resolved from the root first).
    cwd: &'a str,
    /// The path argument of a command.
    path: &'a str,
}

impl<'a> Input<'a> {
    fn split(data: &'a [u8]) -> Option<Self> {
        let s = std::str::from_utf8(data).ok()?;
        let (cwd, path) = s.split_once('\n').unwrap_or(("/", s));
        Some(Input { cwd, path })
    }
}

/// A home in a local store (nothing is written: `Home::key` is pure). Built once per process.
fn home() -> &'static Home {
    static HOME: OnceLock<Home> = OnceLock::new();
    HOME.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ftps-s3-fuzz-{}", std::process::id()));
        let storage = LocalStorage::new(dir).expect("local store for the fuzz home");
        Home::new(Arc::new(storage), "/partners/acme/")
    })
}

fn check_clean(p: &VirtualPath, from: &str) {
    let s = p.as_str();
    assert!(s.starts_with('/'), "{s:?} from {from:?} is not absolute");
    assert!(s == "/" || !s.ends_with('/'), "{s:?}: trailing slash");
    assert!(!s.contains(['\0', '\\']), "{s:?}: NUL or backslash");
    for seg in s[1..].split('/') {
        if s == "/" {
            break;
        }
        assert!(
            !seg.is_empty() && seg != "." && seg != "..",
            "{s:?}: segment {seg:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::split(data) else {
        return;
    };
    let root = VirtualPath::root();
    let cwd = match VirtualPath::resolve(&root, input.cwd) {
        Ok(c) => c,
        Err(_) => VirtualPath::root(),
    };
    check_clean(&cwd, input.cwd);
    let Ok(p) = VirtualPath::resolve(&cwd, input.path) else {
        // Refused inputs are exactly the empty ones and those with NUL or backslash.
        assert!(
            input.path.is_empty() || input.path.contains(['\0', '\\']),
            "{:?} refused",
            input.path
        );
        return;
    };
    check_clean(&p, input.path);
    assert_eq!(
        VirtualPath::resolve(&root, p.as_str()).as_ref(),
        Ok(&p),
        "not idempotent"
    );
    assert_eq!(
        VirtualPath::resolve(&cwd, p.as_str()).as_ref(),
        Ok(&p),
        "not absolute"
    );
    // `..` never climbs above the root: the result is a descendant of the root only, and a
    // relative path without `..` stays under cwd.
    if !input.path.starts_with('/') && !input.path.split('/').any(|s| s == "..") {
        assert!(
            cwd.is_root() || p == cwd || p.as_str().starts_with(&format!("{}/", cwd.as_str())),
            "{p} left {cwd}"
        );
    }

    let key = home().key(&p);
    let k = key.as_str();
    if p.is_root() {
        assert_eq!(k, PREFIX);
    } else {
        let rest = k
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or_else(|| panic!("key {k:?} of {p} is outside {PREFIX}/"));
        assert_eq!(
            format!("/{rest}"),
            p.as_str(),
            "key {k:?} does not mirror {p}"
        );
        assert!(
            rest.split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".."),
            "key {k:?} has a traversal segment"
        );
    }
});
