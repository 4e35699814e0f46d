//! Puts the git commit into `ftps-s3 --version` (`FTPS_BUILD_COMMIT`): from the environment
//! variable of that name when set (the Dockerfile passes it, having no `.git`), else from
//! `git rev-parse`, else "unknown". Reruns when HEAD moves.
//!
//! Links the `ftps-s3` binary with packed relative relocations (`-z pack-relative-relocs`,
//! DT_RELR) on Linux with glibc: the dynamic loader reads all of a position-independent
//! executable's relocations at start, and they stay resident; packed, 1.5 MiB of `.rela.dyn`
//! become a few KiB (bench/README.md, "Peak RSS"). The binary then needs glibc 2.36 to run (an
//! older loader refuses it at start, naming `GLIBC_ABI_DT_RELR`); the Dockerfile's Debian 12
//! has it.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    let target = |key: &str| std::env::var(key).unwrap_or_default();
    if target("CARGO_CFG_TARGET_OS") == "linux" && target("CARGO_CFG_TARGET_ENV") == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-env-changed=FTPS_BUILD_COMMIT");
    let commit = std::env::var("FTPS_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| {
            // Every commit, checkout and reset appends to logs/HEAD (in a worktree, its own).
            for path in ["HEAD", "logs/HEAD"] {
                if let Some(p) = git(&["rev-parse", "--git-path", path]) {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=FTPS_BUILD_COMMIT={commit}");
}
