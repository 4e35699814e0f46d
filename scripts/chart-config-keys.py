#!/usr/bin/env python3
"""Every server configuration key is settable through the chart's `config` values, and nothing else.

Reads the typed configuration (src/config.rs: the sections of `struct Config` and the `pub`
fields of each section's struct) and the chart's values.schema.json (`config.properties`), and
fails when a server key is missing from the schema (operators could not set it: the schema is
strict) or the schema has a key the server does not know (it would stop the server). Keys the
chart sets itself (listener addresses, mounted file paths) are listed in CHART_OWNED.

  chart-config-keys.py [REPO_ROOT]          check
  chart-config-keys.py [REPO_ROOT] --fix    add the missing keys to the schema (type from Rust)
"""
import json
import os
import re
import sys

SCHEMA = "helm/ftps-s3/values.schema.json"
CHART_OWNED = {
    "listeners.explicit", "listeners.implicit",
    "tls.cert_file", "tls.key_file", "tls.client_ca_file",
    "storage.backend", "storage.local_root",
    "auth.users_file",
    "admin.listen",
    "events.webhook_secret_file",
    # Cluster mode: rendered from mode/replicaCount/autoscaling and containerPorts.relay; the
    # ordinal comes from each StatefulSet pod's $HOSTNAME.
    "cluster.peers", "cluster.listen", "cluster.ordinal",
}


def server_keys():
    text = open("src/config.rs").read()
    structs = {}
    for m in re.finditer(r"^pub struct ([A-Za-z0-9]+) \{\n(.*?)^\}", text, re.M | re.S):
        structs[m.group(1)] = re.findall(r"^    pub ([a-z0-9_]+): (.+),$", m.group(2), re.M)
    keys = {}
    for section, typ in structs["Config"]:
        for field, ftype in structs.get(typ, []):
            keys[f"{section}.{field}"] = ftype
    return keys


def schema_for(rust):
    """A permissive JSON schema for a Rust field type (the server checks the value itself)."""
    opt = rust.startswith("Option<")
    inner = rust[7:-1] if opt else rust
    if inner == "bool":
        s = {"type": "boolean"}
    elif re.fullmatch(r"u(8|16|32|64|size)", inner):
        s = {"type": "integer", "minimum": 0}
    elif inner.startswith("Vec<"):
        s = {"type": "array", "items": {"type": "string"}}
    else:
        s = {"type": "string"}
    if opt:
        s = {"type": [s["type"], "null"], **{k: v for k, v in s.items() if k != "type"}}
    return s


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    os.chdir(args[0] if args else os.path.join(os.path.dirname(__file__), ".."))
    fix = "--fix" in sys.argv
    server = server_keys()
    schema = json.load(open(SCHEMA))
    config = schema["properties"]["config"]
    in_schema = {f"{s}.{k}" for s, sec in config["properties"].items()
                 for k in sec.get("properties", {})}
    want = set(server) - CHART_OWNED
    missing = sorted(want - in_schema)
    stale = sorted(in_schema - set(server))
    owned_in_schema = sorted(in_schema & CHART_OWNED)
    print(f"server keys: {len(server)} ({len(CHART_OWNED)} set by the chart); "
          f"in values.schema.json config: {len(in_schema)}")
    if fix and missing:
        for key in missing:
            section, field = key.split(".")
            sec = config["properties"].setdefault(section, {
                "type": "object", "additionalProperties": False, "properties": {}})
            sec.setdefault("properties", {})[field] = schema_for(server[key])
        with open(SCHEMA, "w") as f:
            json.dump(schema, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print(f"added {len(missing)} keys to {SCHEMA}: {', '.join(missing)}")
        missing = []
    bad = 0
    for key in missing:
        bad += 1
        print(f"FAIL {key} ({server[key]}) is a server key the chart's values cannot set")
    for key in stale:
        bad += 1
        print(f"FAIL config.{key} is in the chart's schema but not a server key")
    for key in owned_in_schema:
        bad += 1
        print(f"FAIL config.{key} is set by the chart (mounts, ports); it must not be a value")
    if not bad:
        print("ok   every server key is settable through config.*, and only those")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
