//! A logged-in user's namespace: which client paths lead where. Each [`Mount`] puts a [`Home`]
//! (store + key prefix) at a virtual path with its own permissions. A user without folders has
//! one mount at `/` with their own permissions; a user with folders has one per folder, and the
//! directories above them (`/`, `/a` for a folder `/a/b`) are virtual: listable, read-only, and
//! backed by no store. One code path for both.

use crate::auth::{Permission, Permissions};

use super::{Entry, Home, ObjectKey, VirtualPath};

/// One folder (or the whole home) as the session sees it.
#[derive(Clone)]
pub struct Mount {
    /// Where the client sees it; `/` for a user without folders.
    pub path: VirtualPath,
    pub home: Home,
    pub permissions: Permissions,
}

/// Where a client path leads.
pub enum Place<'a> {
    /// Inside a mount: `rel` is the path as seen from the mount (`/` is the mount point itself).
    Mounted {
        mount: &'a Mount,
        rel: VirtualPath,
        key: ObjectKey,
    },
    /// A directory above some mounts, holding (as directories) the next segment of each.
    Virtual(Vec<Entry>),
    /// Neither: nothing there, and no store is asked.
    Outside,
}

/// Every mount of one user, none inside another (checked when the folders were loaded).
#[derive(Clone)]
pub struct Mounts {
    mounts: Vec<Mount>,
}

impl Mounts {
    /// A user without folders: their home at `/`.
    pub fn single(home: Home, permissions: Permissions) -> Self {
        Mounts {
            mounts: vec![Mount {
                path: VirtualPath::root(),
                home,
                permissions,
            }],
        }
    }

    /// A user with folders. `mounts` must not nest (`auth` checks folders so).
    pub fn folders(mounts: Vec<Mount>) -> Self {
        Mounts { mounts }
    }

    /// Where `path` leads.
    pub fn locate(&self, path: &VirtualPath) -> Place<'_> {
        if let Some((mount, rel)) = self
            .mounts
            .iter()
            .find_map(|m| path.relative_to(&m.path).map(|rel| (m, rel)))
        {
            let key = mount.home.key(&rel);
            return Place::Mounted { mount, rel, key };
        }
        let mut children: Vec<Entry> = Vec::new();
        for m in &self.mounts {
            if let Some(below) = m.path.relative_to(path) {
                if let Some(name) = below.segments().next() {
                    if !children.iter().any(|c| c.name == name) {
                        children.push(Entry::dir(name));
                    }
                }
            }
        }
        if children.is_empty() {
            Place::Outside
        } else {
            children.sort_by(|a, b| a.name.cmp(&b.name));
            Place::Virtual(children)
        }
    }

    /// The home `path` is stored in, if it is inside a mount.
    pub fn home_of(&self, path: &VirtualPath) -> Option<&Home> {
        match self.locate(path) {
            Place::Mounted { mount, .. } => Some(&mount.home),
            _ => None,
        }
    }

    /// Every mount, in the order the folders were given.
    pub fn iter(&self) -> impl Iterator<Item = &Mount> {
        self.mounts.iter()
    }

    /// The mounts the user can change (any permission beyond `list` and `read`): where their
    /// own files are, for per-user accounting (quotas). A read-only folder is left out.
    pub fn writable(&self) -> impl Iterator<Item = &Mount> {
        use Permission::*;
        self.mounts.iter().filter(|m| {
            [Write, Overwrite, Delete, Rename, Mkdir]
                .iter()
                .any(|p| m.permissions.allows(*p))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::vfs::memory::MemoryStorage;

    fn p(s: &str) -> VirtualPath {
        VirtualPath::resolve(&VirtualPath::root(), s).expect("path")
    }

    fn mount(path: &str, prefix: &str, perms: &[Permission]) -> Mount {
        Mount {
            path: p(path),
            home: Home::new(Arc::new(MemoryStorage::new()), prefix),
            permissions: Permissions::from_list(perms),
        }
    }

    fn names(place: Place<'_>) -> Vec<String> {
        match place {
            Place::Virtual(entries) => entries.into_iter().map(|e| e.name).collect(),
            _ => panic!("not a virtual directory"),
        }
    }

    #[test]
    fn folders_and_the_virtual_directories_above_them() {
        use Permission::*;
        let m = Mounts::folders(vec![
            mount("/outbox", "out/acme", &[List, Read]),
            mount("/inbox", "in/acme/", &[List, Write]),
            mount("/deep/a/b", "", &[List, Read]),
        ]);
        assert_eq!(names(m.locate(&p("/"))), ["deep", "inbox", "outbox"]);
        assert_eq!(names(m.locate(&p("/deep"))), ["a"]);
        assert_eq!(names(m.locate(&p("/deep/a"))), ["b"]);
        match m.locate(&p("/inbox/x/f.txt")) {
            Place::Mounted { mount, rel, key } => {
                assert_eq!(mount.path.as_str(), "/inbox");
                assert_eq!(rel.as_str(), "/x/f.txt");
                assert_eq!(key.as_str(), "in/acme/x/f.txt");
                assert!(mount.permissions.allows(Write));
            }
            _ => panic!("/inbox/x/f.txt is in /inbox"),
        }
        match m.locate(&p("/inbox")) {
            Place::Mounted { rel, key, .. } => {
                assert!(rel.is_root());
                assert_eq!(key.as_str(), "in/acme");
            }
            _ => panic!("/inbox is a mount point"),
        }
        match m.locate(&p("/deep/a/b/c")) {
            Place::Mounted { key, .. } => assert_eq!(key.as_str(), "c"),
            _ => panic!("in /deep/a/b"),
        }
        for outside in [
            "/in",
            "/inboxes",
            "/x",
            "/deep/b",
            "/deep/a/c",
            "/etc/passwd",
        ] {
            assert!(matches!(m.locate(&p(outside)), Place::Outside), "{outside}");
        }
        let writable: Vec<_> = m.writable().map(|m| m.path.as_str()).collect();
        assert_eq!(writable, ["/inbox"]);
        assert!(m.home_of(&p("/outbox/f")).is_some());
        assert!(m.home_of(&p("/")).is_none());
    }

    #[test]
    fn a_user_without_folders_is_one_mount_at_the_root() {
        let m = Mounts::single(
            Home::new(Arc::new(MemoryStorage::new()), "partners/acme/"),
            Permissions::ALL,
        );
        for (path, want) in [("/", "partners/acme"), ("/a/b", "partners/acme/a/b")] {
            match m.locate(&p(path)) {
                Place::Mounted { rel, key, .. } => {
                    assert_eq!(rel, p(path));
                    assert_eq!(key.as_str(), want);
                }
                _ => panic!("{path} is in the home"),
            }
        }
        assert_eq!(m.writable().count(), 1);
    }
}
