//! `VirtualPath`: the only way a client's path reaches storage (re-exported by `vfs`; a top-level
//! module because users' folders in `auth` name client paths too, and `vfs` depends on `auth`).
//!
//! A virtual path is absolute (`/`, `/in/a.csv`), has no `.`/`..`/empty segments and no trailing
//! slash. `..` at the root stays at the root, as in a chroot: `CWD ../..` cannot leave the user's
//! home. NUL and backslash are refused rather than guessed at (a backslash could be a Windows
//! separator or part of a name; either reading would surprise someone). Control characters
//! (C0, DEL, C1) are refused too: a CR in a name splits listing lines and replies in clients
//! (a fake entry in whoever browses the folder), and escape sequences reach terminals.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VirtualPath(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path contains a backslash")]
    Backslash,
    #[error("path contains a control character")]
    Control,
    #[error("path is empty")]
    Empty,
}

impl VirtualPath {
    /// The user's root, `/`.
    pub fn root() -> Self {
        VirtualPath("/".to_string())
    }

    /// Resolves a client path against the current directory `cwd`: absolute if it starts with
    /// `/`, relative otherwise. The result never escapes `/`.
    pub fn resolve(cwd: &VirtualPath, input: &str) -> Result<VirtualPath, PathError> {
        if input.is_empty() {
            return Err(PathError::Empty);
        }
        if input.contains('\0') {
            return Err(PathError::Nul);
        }
        if input.contains('\\') {
            return Err(PathError::Backslash);
        }
        if input.chars().any(char::is_control) {
            return Err(PathError::Control);
        }
        let mut segments: Vec<&str> = Vec::new();
        if !input.starts_with('/') {
            segments.extend(cwd.segments());
        }
        for seg in input.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    segments.pop();
                }
                s => segments.push(s),
            }
        }
        Ok(VirtualPath(format!("/{}", segments.join("/"))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The path's segments, root having none.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }

    /// The last segment; `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        self.segments().last()
    }

    /// Whether `other` is this path or below it (the root contains every path).
    pub fn contains(&self, other: &VirtualPath) -> bool {
        self.is_root()
            || other.0 == self.0
            || (other.0.starts_with(&self.0) && other.0.as_bytes().get(self.0.len()) == Some(&b'/'))
    }

    /// `self` as seen from inside `base` (`/in/a.txt` from `/in` is `/a.txt`; `/in` is `/`),
    /// or `None` when `base` does not contain it.
    pub fn relative_to(&self, base: &VirtualPath) -> Option<VirtualPath> {
        if !base.contains(self) {
            return None;
        }
        if base.is_root() {
            return Some(self.clone());
        }
        match &self.0[base.0.len()..] {
            "" => Some(VirtualPath::root()),
            rest => Some(VirtualPath(rest.to_string())),
        }
    }

    /// The parent directory; the root is its own parent.
    pub fn parent(&self) -> VirtualPath {
        match self.0.rfind('/') {
            Some(0) | None => VirtualPath::root(),
            Some(i) => VirtualPath(self.0[..i].to_string()),
        }
    }
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(cwd: &str, p: &str) -> String {
        let cwd = VirtualPath::resolve(&VirtualPath::root(), cwd).expect("cwd");
        VirtualPath::resolve(&cwd, p).expect("path").0
    }

    #[test]
    fn resolves_relative_and_absolute() {
        assert_eq!(r("/", "a.csv"), "/a.csv");
        assert_eq!(r("/in", "a.csv"), "/in/a.csv");
        assert_eq!(r("/in", "/out/b"), "/out/b");
        assert_eq!(r("/in", "./x/../y//z/"), "/in/y/z");
        assert_eq!(r("/in", "."), "/in");
    }

    #[test]
    fn dot_dot_is_clamped_at_root() {
        assert_eq!(r("/", ".."), "/");
        assert_eq!(r("/in", "../.."), "/");
        assert_eq!(r("/in", "../../other/x"), "/other/x");
        assert_eq!(r("/", "/../../../etc/passwd"), "/etc/passwd");
    }

    #[test]
    fn refuses_nul_backslash_and_empty() {
        let root = VirtualPath::root();
        assert_eq!(VirtualPath::resolve(&root, "a\0b"), Err(PathError::Nul));
        assert_eq!(
            VirtualPath::resolve(&root, "..\\x"),
            Err(PathError::Backslash)
        );
        assert_eq!(VirtualPath::resolve(&root, ""), Err(PathError::Empty));
    }

    #[test]
    fn refuses_c0_del_and_c1_controls() {
        let root = VirtualPath::root();
        for bad in [
            "a\rb",
            "a\nb",
            "\t",
            "esc\x1b[2J",
            "del\x7f",
            "c1\u{85}",
            "c1\u{9b}x",
        ] {
            assert_eq!(
                VirtualPath::resolve(&root, bad),
                Err(PathError::Control),
                "{bad:?}"
            );
        }
        // Other Unicode is a name like any other.
        assert!(VirtualPath::resolve(&root, "r\u{e9}sum\u{e9} \u{a0}.pdf").is_ok());
    }

    #[test]
    fn parent_and_name() {
        let p = VirtualPath::resolve(&VirtualPath::root(), "/a/b").expect("path");
        assert_eq!(p.parent().as_str(), "/a");
        assert_eq!(p.file_name(), Some("b"));
        assert_eq!(p.parent().parent(), VirtualPath::root());
        assert_eq!(VirtualPath::root().file_name(), None);
    }

    #[test]
    fn containment_is_by_whole_segments() {
        let p = |s: &str| VirtualPath::resolve(&VirtualPath::root(), s).expect("path");
        assert!(p("/in").contains(&p("/in")));
        assert!(p("/in").contains(&p("/in/a")));
        assert!(!p("/in").contains(&p("/inbox")));
        assert!(!p("/in/a").contains(&p("/in")));
        assert!(VirtualPath::root().contains(&p("/x")));
        assert_eq!(p("/in/a/b").relative_to(&p("/in")), Some(p("/a/b")));
        assert_eq!(p("/in").relative_to(&p("/in")), Some(VirtualPath::root()));
        assert_eq!(p("/x").relative_to(&VirtualPath::root()), Some(p("/x")));
        assert_eq!(p("/inbox").relative_to(&p("/in")), None);
    }

    proptest! {
        #[test]
        fn normalised_paths_are_clean_and_idempotent(cwd in "(/[a-z.]{0,3}){0,4}", input in "[a-z./]{1,24}") {
            let cwd = VirtualPath::resolve(&VirtualPath::root(), if cwd.is_empty() { "/" } else { &cwd }).expect("cwd");
            let p = VirtualPath::resolve(&cwd, &input).expect("path");
            prop_assert!(p.0.starts_with('/'));
            prop_assert!(p.is_root() || !p.0.ends_with('/'));
            prop_assert!(p.segments().all(|s| s != "." && s != ".."));
            prop_assert_eq!(VirtualPath::resolve(&VirtualPath::root(), p.as_str()).expect("again"), p);
        }
    }
}
