//! Directory listing formats. Pure functions of an [`Entry`]; the session streams their output.
//!
//! - LIST: the `ls -l` shape that FileZilla, WinSCP, lftp and curl's users parse. There is no
//!   standard (RFC 959 leaves it open); this is the Unix form every client understands:
//!   `-rw-r--r-- 1 ftp ftp 1234 Nov 25 14:03 name` (time for the last six months, year before).
//! - NLST: names only (RFC 959 §4.1.3), after the directory as the client named it
//!   (`NLST d` → `d/a.txt`: RETR-able lines, as vsftpd and ProFTPD answer).
//! - MLSD/MLST: RFC 3659 §7 facts `type`, `size`, `modify`, `perm`, then a space and the name.
//!
//! Names with a control character (C0, DEL, C1: keys written to the bucket by other means)
//! are left out of every listing ([`listable`]): a CR or LF would split the line and show the
//! client an entry of the key writer's choosing, and no command could name such a file anyway
//! (paths with control characters are refused with `553`).

use std::time::SystemTime;

use chrono::{DateTime, Datelike, Utc};

use crate::auth::{Permission, Permissions};
use crate::vfs::{Entry, EntryKind};

/// Whether `entry` may appear in a listing: its name has no control character.
pub fn listable(entry: &Entry) -> bool {
    !entry.name.chars().any(char::is_control)
}

/// The entries of one listing page that may be shown; those left out are logged (the name
/// escaped) so an operator can find and rename them.
pub fn listable_entries(page: &[Entry]) -> impl Iterator<Item = &Entry> {
    let hidden = page.iter().filter(|e| !listable(e)).count();
    if hidden > 0 {
        let first = page.iter().find(|e| !listable(e)).map(|e| e.name.as_str());
        tracing::warn!(
            hidden,
            first = ?first,
            "listing: left out names with control characters"
        );
    }
    page.iter().filter(|e| listable(e))
}

/// One LIST line (with CRLF) for `entry`, as of `now`.
pub fn list_line(entry: &Entry, now: SystemTime) -> String {
    let (mode, links) = match entry.kind {
        EntryKind::Dir => ("drwxr-xr-x", 2),
        EntryKind::File => ("-rw-r--r--", 1),
    };
    let when = entry.modified.unwrap_or(now);
    format!(
        "{mode} {links:>3} ftp ftp {size:>12} {date} {name}\r\n",
        size = entry.size,
        date = ls_date(when, now),
        name = entry.name
    )
}

/// `Mmm dd HH:MM` within six months of `now`, `Mmm dd  YYYY` otherwise (as `ls -l`).
fn ls_date(t: SystemTime, now: SystemTime) -> String {
    let t: DateTime<Utc> = t.into();
    let now: DateTime<Utc> = now.into();
    let half_year = chrono::Duration::days(182);
    if t <= now + chrono::Duration::hours(1) && now - t < half_year {
        t.format("%b %e %H:%M").to_string()
    } else {
        format!("{} {:>5}", t.format("%b %e"), t.year())
    }
}

/// One NLST line (with CRLF): `prefix` (the directory as the client named it, with `/`, or
/// empty) and the name.
pub fn nlst_line(prefix: &str, entry: &Entry) -> String {
    format!("{prefix}{}\r\n", entry.name)
}

/// The MLST/MLSD facts a client asked for with `OPTS MLST` (RFC 3659 §7.9); all by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MlstFacts {
    pub kind: bool,
    pub size: bool,
    pub modify: bool,
    pub perm: bool,
}

impl Default for MlstFacts {
    fn default() -> Self {
        MlstFacts {
            kind: true,
            size: true,
            modify: true,
            perm: true,
        }
    }
}

impl MlstFacts {
    /// `type;size;` → those facts; unknown names are ignored, as §7.9 asks.
    pub fn parse(list: &str) -> Self {
        let mut f = MlstFacts {
            kind: false,
            size: false,
            modify: false,
            perm: false,
        };
        for name in list.split(';').map(|n| n.trim().to_ascii_lowercase()) {
            match name.as_str() {
                "type" => f.kind = true,
                "size" => f.size = true,
                "modify" => f.modify = true,
                "perm" => f.perm = true,
                _ => {}
            }
        }
        f
    }

    /// The selected facts as `OPTS MLST` answers them: `type;size;`.
    pub fn selected(&self) -> String {
        self.list(false)
    }

    /// FEAT's line: every supported fact, `*` after the selected ones.
    pub fn feat_line(&self) -> String {
        format!("MLST {}", self.list(true))
    }

    fn list(&self, all: bool) -> String {
        let mut out = String::new();
        for (name, on) in [
            ("type", self.kind),
            ("size", self.size),
            ("modify", self.modify),
            ("perm", self.perm),
        ] {
            match (all, on) {
                (true, true) => out.push_str(&format!("{name}*;")),
                (true, false) => out.push_str(&format!("{name};")),
                (false, true) => out.push_str(&format!("{name};")),
                (false, false) => {}
            }
        }
        out
    }
}

/// RFC 3659 §7.2 facts for `entry` (`type=file;size=3;modify=…;perm=…;`), without the name.
pub fn mlsx_facts(entry: &Entry, perms: Permissions, selected: MlstFacts) -> String {
    let mut facts = String::with_capacity(80);
    let (kind, perm) = match entry.kind {
        // §7.5.5: e enter, l list, c create files, m make dirs, d delete, f rename.
        EntryKind::Dir => ("dir", dir_perm(perms)),
        // r retrieve, w write (store over), d delete, f rename.
        EntryKind::File => ("file", file_perm(perms)),
    };
    if selected.kind {
        facts.push_str(&format!("type={kind};"));
    }
    if selected.size && entry.kind == EntryKind::File {
        facts.push_str(&format!("size={};", entry.size));
    }
    if let Some(t) = entry.modified.filter(|_| selected.modify) {
        facts.push_str(&format!("modify={};", mdtm(t)));
    }
    if selected.perm {
        facts.push_str(&format!("perm={perm};"));
    }
    facts
}

/// One MLSD line (with CRLF): facts, a space, the name.
pub fn mlsd_line(entry: &Entry, perms: Permissions, selected: MlstFacts) -> String {
    format!("{} {}\r\n", mlsx_facts(entry, perms, selected), entry.name)
}

/// RFC 3659 §2.3 time-val, `YYYYMMDDHHMMSS` in UTC (MDTM and the `modify` fact).
pub fn mdtm(t: SystemTime) -> String {
    let t: DateTime<Utc> = t.into();
    t.format("%Y%m%d%H%M%S").to_string()
}

fn file_perm(p: Permissions) -> String {
    let mut s = String::new();
    if p.allows(Permission::Read) {
        s.push('r');
    }
    if p.allows(Permission::Write) {
        s.push('w');
    }
    if p.allows(Permission::Delete) {
        s.push('d');
    }
    if p.allows(Permission::Rename) {
        s.push('f');
    }
    s
}

fn dir_perm(p: Permissions) -> String {
    let mut s = String::from("e");
    if p.allows(Permission::List) {
        s.push('l');
    }
    if p.allows(Permission::Write) {
        s.push('c');
    }
    if p.allows(Permission::Mkdir) {
        s.push('m');
    }
    if p.allows(Permission::Delete) {
        s.push('d');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn file(name: &str, size: u64, t: SystemTime) -> Entry {
        Entry {
            name: name.into(),
            kind: EntryKind::File,
            size,
            modified: Some(t),
        }
    }

    // 2026-11-25 02:36:00 UTC
    const NOW: u64 = 1_795_574_160;

    #[test]
    fn recent_files_show_the_time() {
        let line = list_line(&file("a b.csv", 1234, at(NOW - 3600)), at(NOW));
        assert_eq!(
            line,
            "-rw-r--r--   1 ftp ftp         1234 Nov 25 01:36 a b.csv\r\n"
        );
    }

    #[test]
    fn old_files_show_the_year() {
        let line = list_line(&file("old", 1, at(NOW - 400 * 86400)), at(NOW));
        assert!(line.contains("Oct 21  2025 old"), "{line}");
    }

    #[test]
    fn dirs_have_d() {
        let d = Entry {
            name: "in".into(),
            kind: EntryKind::Dir,
            size: 0,
            modified: None,
        };
        assert!(list_line(&d, at(NOW)).starts_with("drwxr-xr-x"));
        assert_eq!(
            mlsd_line(&d, Permissions::ALL, MlstFacts::default()),
            "type=dir;perm=elcmd; in\r\n"
        );
    }

    #[test]
    fn mlsd_facts() {
        let perms = Permissions::from_list(&[Permission::List, Permission::Write]);
        assert_eq!(
            mlsd_line(&file("x", 3, at(NOW)), perms, MlstFacts::default()),
            "type=file;size=3;modify=20261125023600;perm=w; x\r\n"
        );
        let only = MlstFacts::parse("size;TYPE;bogus;");
        assert_eq!(only.selected(), "type;size;");
        assert_eq!(only.feat_line(), "MLST type*;size*;modify;perm;");
        assert_eq!(
            mlsd_line(&file("x", 3, at(NOW)), perms, only),
            "type=file;size=3; x\r\n"
        );
        assert_eq!(mdtm(at(NOW)), "20261125023600");
    }
}
