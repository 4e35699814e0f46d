#!/usr/bin/env bash
# Checks that Cargo.toml's `rust-version` is at least the highest `rust-version` any locked
# dependency declares (cargo metadata --locked: exactly the versions Cargo.lock pins), so the
# minimum README states is one the build really accepts. Exit 1 naming the dependencies that
# need more. Needs cargo and python3 (standard library only).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

meta=$(mktemp)
trap 'rm -f "$meta"' EXIT
cargo metadata --format-version 1 --locked >"$meta"
python3 - "$meta" <<'PY'
import json, sys

def version(text):
    return tuple(int(part) for part in text.split("."))

meta = json.load(open(sys.argv[1]))
ours = set(meta["workspace_members"])
declared = None
needs = []
for package in meta["packages"]:
    rv = package.get("rust_version")
    if package["id"] in ours:
        if package["name"] == "ftps-s3":
            declared = rv
    elif rv:
        needs.append((version(rv), rv, f"{package['name']} {package['version']}"))
if declared is None:
    sys.exit("Cargo.toml declares no rust-version")
needs.sort(reverse=True)
highest = needs[0][0] if needs else (0,)
if highest > version(declared):
    over = [f"{name} (rust-version {rv})" for v, rv, name in needs if v > version(declared)]
    sys.exit(f"rust-version = \"{declared}\" in Cargo.toml, but locked dependencies need more: "
             + ", ".join(over[:10]) + (" ..." if len(over) > 10 else "")
             + f"\nset rust-version = \"{needs[0][1]}\" (and README)")
print(f"rust-version {declared} >= {needs[0][1]} ({needs[0][2]}, the highest a locked dependency declares)")
PY
