//! Logical folders (`[[user.folder]]`, and `folders` in an identity endpoint's answer): the
//! client paths a user sees, each mapped to a bucket and key prefix with its own permissions.
//! Checked here once, for both sources, so the session can rely on them: absolute, no `.`/`..`,
//! not `/`, no duplicates, none inside another, prefixes plain.

use serde::Deserialize;

use super::{check_home, Permission, Permissions};
use crate::vpath::VirtualPath;

/// One folder as written in the users file or the endpoint's JSON.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FolderEntry {
    path: String,
    bucket: Option<String>,
    #[serde(default)]
    prefix: String,
    permissions: Vec<Permission>,
}

/// One checked folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// Where the client sees it (`/inbox`); never `/`.
    pub path: VirtualPath,
    /// `None`: the default bucket (`s3.bucket`).
    pub bucket: Option<String>,
    /// Key prefix, without slashes at either end; empty is the bucket's root.
    pub prefix: String,
    pub permissions: Permissions,
}

/// Checks `entries`; the error names the folder (by index and path) and what is wrong.
pub(super) fn check(entries: Vec<FolderEntry>) -> Result<Vec<Folder>, String> {
    let mut folders: Vec<Folder> = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let at = format!("folder[{i}] ({:?})", e.path);
        let path = folder_path(&e.path).map_err(|why| format!("{at}: path {why}"))?;
        check_home(&e.prefix)
            .map_err(|_| format!("{at}: prefix must be a plain key prefix (no . or ..)"))?;
        if let Some(other) = folders.iter().find(|f| f.path == path) {
            return Err(format!("{at}: path {} is given twice", other.path));
        }
        if let Some(other) = folders
            .iter()
            .find(|f| f.path.contains(&path) || path.contains(&f.path))
        {
            return Err(format!(
                "{at}: folders cannot be inside one another ({} and {path})",
                other.path
            ));
        }
        folders.push(Folder {
            path,
            bucket: e.bucket.filter(|b| !b.is_empty()),
            prefix: e.prefix.trim_matches('/').to_string(),
            permissions: Permissions::from_list(&e.permissions),
        });
    }
    Ok(folders)
}

/// Pairs of folders whose keys overlap (one prefix inside the other, in the same bucket as far
/// as the file says): legal, but each folder's permissions then reach the other's objects, which
/// is rarely meant. One sentence per pair, for warnings.
pub(super) fn overlaps(folders: &[Folder]) -> Vec<String> {
    let inside = |outer: &str, inner: &str| {
        outer.is_empty() || inner == outer || inner.starts_with(&format!("{outer}/"))
    };
    let mut found = Vec::new();
    for (i, a) in folders.iter().enumerate() {
        for b in &folders[i + 1..] {
            if a.bucket == b.bucket
                && (inside(&a.prefix, &b.prefix) || inside(&b.prefix, &a.prefix))
            {
                found.push(format!(
                    "folders {} and {} share keys (prefixes {:?} and {:?} in one bucket): each one's permissions reach the other's files",
                    a.path, b.path, a.prefix, b.prefix
                ));
            }
        }
    }
    found
}

/// A folder's path: written absolute and already clean (`/a/b`, a trailing `/` allowed), so
/// what the operator wrote is what the client sees.
fn folder_path(text: &str) -> Result<VirtualPath, String> {
    if !text.starts_with('/') {
        return Err("must be absolute (start with /)".into());
    }
    let inner = text.trim_end_matches('/');
    if inner.is_empty() {
        return Err("cannot be / (a user with folders sees them under a virtual /)".into());
    }
    if inner[1..]
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err("must not hold empty, . or .. segments".into());
    }
    VirtualPath::resolve(&VirtualPath::root(), inner).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, prefix: &str) -> FolderEntry {
        FolderEntry {
            path: path.into(),
            bucket: None,
            prefix: prefix.into(),
            permissions: vec![Permission::List],
        }
    }

    #[test]
    fn good_folders_are_normalised() {
        let f = check(vec![entry("/inbox/", "/in/acme/"), entry("/a/b", "")]).expect("valid");
        assert_eq!(f[0].path.as_str(), "/inbox");
        assert_eq!(f[0].prefix, "in/acme");
        assert_eq!(f[1].path.as_str(), "/a/b");
        assert!(f[1].permissions.allows(Permission::List));
    }

    #[test]
    fn bad_folders_say_what_is_wrong() {
        for (folders, want) in [
            (vec![entry("inbox", "")], "absolute"),
            (vec![entry("/", "")], "cannot be /"),
            (vec![entry("/a/../b", "")], ".."),
            (vec![entry("/a//b", "")], "empty"),
            (vec![entry("/a\\b", "")], "backslash"),
            (vec![entry("/a\rb", "")], "control"),
            (vec![entry("/in", "../x")], "prefix"),
            (vec![entry("/in", ""), entry("/in/", "x")], "twice"),
            (vec![entry("/in", ""), entry("/in/sub", "x")], "inside"),
            (vec![entry("/a/b", ""), entry("/a", "x")], "inside"),
        ] {
            let e = check(folders).expect_err(want);
            assert!(e.contains(want) && e.contains("folder["), "{want}: {e}");
        }
        // Overlapping prefixes in one bucket load, with a warning.
        let f = check(vec![
            entry("/a", "out/"),
            entry("/b", "out/acme/"),
            entry("/c", "outbox/"),
        ])
        .expect("valid");
        let warnings = overlaps(&f);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("/a and /b share keys"), "{warnings:?}");
        let mut other_bucket = entry("/d", "out/acme/");
        other_bucket.bucket = Some("other".into());
        assert!(
            overlaps(&check(vec![entry("/a", "out/"), other_bucket]).expect("valid")).is_empty()
        );
        // A shared first segment is not nesting.
        assert!(check(vec![entry("/a/b", ""), entry("/a/c", ""), entry("/ab", "")]).is_ok());
    }
}
