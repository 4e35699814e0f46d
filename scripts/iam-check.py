#!/usr/bin/env python3
"""The IAM policy the Terraform module grants must be exactly what the code calls.

Lists every aws-sdk-s3 operation called in src/ (any file: src/vfs/s3.rs, src/vfs/s3/**, ...),
found by its fluent builder (`.put_object_tagging()`), maps each to the IAM actions S3 checks
for it, and compares with the actions of the module's `aws_iam_policy_document.server`:

  - an action the code needs and the policy lacks fails (AccessDenied in production);
  - an action the policy grants and no operation needs fails (least privilege), unless it is
    listed in GRANTED_WITHOUT_CALL with the reason;
  - an S3 operation with no entry in ACTIONS fails: say what it needs before calling it.

Operations are recognised from the operation modules of the aws-sdk-s3 crate in the cargo
registry (its src/operation/<name>/), so a new call is never missed; without the crate source,
from the names in ACTIONS. A call whose builder chain (up to `.send()`) sets a version id also
needs the `...Version...` action (versioned buckets).

Usage: iam-check.py [REPO_ROOT]     (needs python-hcl2: the lint venv has it through checkov)
"""
import glob
import os
import re
import sys

import hcl2

# S3 operation (SDK builder name) -> (IAM actions on the object ARN, on the bucket ARN).
# Sources: the "Permissions" section of each operation in the S3 API reference, and "Actions,
# resources, and condition keys for Amazon S3" (Service Authorization Reference).
ACTIONS = {
    "get_object": (["s3:GetObject"], []),
    "head_object": (["s3:GetObject"], []),
    "put_object": (["s3:PutObject"], []),
    "delete_object": (["s3:DeleteObject"], []),
    "delete_objects": (["s3:DeleteObject"], []),
    # The source is read, the destination written; tags are copied with the object (the
    # default tagging directive COPY), which needs the tagging actions on both.
    "copy_object": (["s3:GetObject", "s3:PutObject", "s3:GetObjectTagging", "s3:PutObjectTagging"], []),
    "create_multipart_upload": (["s3:PutObject"], []),
    "upload_part": (["s3:PutObject"], []),
    "upload_part_copy": (["s3:GetObject", "s3:PutObject"], []),
    "complete_multipart_upload": (["s3:PutObject"], []),
    "abort_multipart_upload": (["s3:AbortMultipartUpload"], []),
    "list_parts": (["s3:ListMultipartUploadParts"], []),
    "list_objects_v2": ([], ["s3:ListBucket"]),
    "list_objects": ([], ["s3:ListBucket"]),
    "list_multipart_uploads": ([], ["s3:ListBucketMultipartUploads"]),
    "head_bucket": ([], ["s3:ListBucket"]),
    "get_bucket_location": ([], ["s3:GetBucketLocation"]),
    "get_object_tagging": (["s3:GetObjectTagging"], []),
    "put_object_tagging": (["s3:PutObjectTagging"], []),
    "delete_object_tagging": (["s3:DeleteObjectTagging"], []),
    "get_object_attributes": (["s3:GetObject", "s3:GetObjectAttributes"], []),
}
# With a version id the same operation is authorised against the version action.
VERSIONED = {
    "s3:GetObject": "s3:GetObjectVersion",
    "s3:GetObjectTagging": "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging": "s3:PutObjectVersionTagging",
    "s3:DeleteObjectTagging": "s3:DeleteObjectVersionTagging",
    "s3:DeleteObject": "s3:DeleteObjectVersion",
}
# Granted although no builder call names it, with the reason. Keep this short.
GRANTED_WITHOUT_CALL = {}

POLICY_FILE = "terraform/modules/ftps-s3/iam.tf"
POLICY_NAME = "server"


def sdk_operations():
    """Operation names of the aws-sdk-s3 crate Cargo.lock pins, from its source in the registry."""
    try:
        lock = open("Cargo.lock").read()
        version = re.search(r'name = "aws-sdk-s3"\nversion = "([^"]+)"', lock).group(1)
    except (OSError, AttributeError):
        return None, None
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    for d in glob.glob(os.path.join(home, "registry", "src", "*", f"aws-sdk-s3-{version}", "src", "operation")):
        return {n for n in os.listdir(d) if os.path.isdir(os.path.join(d, n))}, version
    return None, version


def calls(ops):
    """{operation: [(file:line, versioned)]} for every `.op()` builder call under src/."""
    found = {}
    pattern = re.compile(r"\.\s*(" + "|".join(sorted(ops, key=len, reverse=True)) + r")\s*\(\s*\)")
    for path in sorted(glob.glob("src/**/*.rs", recursive=True)):
        text = open(path).read()
        # Test modules talk to S3 to set up fixtures; the server's own calls are what counts.
        cut = re.search(r"^#\[cfg\(test\)\]\s*\nmod tests", text, re.M)
        body = text[: cut.start()] if cut else text
        for m in pattern.finditer(body):
            line = body.count("\n", 0, m.start()) + 1
            end = body.find(".send()", m.end())
            chain = body[m.end(): end if end != -1 else m.end() + 2000]
            versioned = re.search(r"\.\s*(set_)?version_id\s*\(", chain) is not None
            found.setdefault(m.group(1), []).append((f"{path}:{line}", versioned))
    return found


def granted():
    """{action: set of 'object'|'bucket'} granted by the module's server policy document."""
    with open(POLICY_FILE) as f:
        body = hcl2.load(f)
    out = {}
    for data in body.get("data", []):
        doc = data.get("aws_iam_policy_document", {}).get(POLICY_NAME)
        if not doc:
            continue
        for st in doc.get("statement", []):
            actions = [a for group in st.get("actions", []) for a in group]
            resources = " ".join(str(r) for r in st.get("resources", []))
            scope = "object" if "/*" in resources else "bucket"
            for a in actions:
                out.setdefault(a, set()).add(scope)
    return {a: s for a, s in out.items() if a.startswith("s3:")}


def main():
    os.chdir(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    crate_ops, version = sdk_operations()
    if crate_ops is None:
        print(f"note: aws-sdk-s3 {version or '?'} source not in the cargo registry; "
              "recognising only the operations listed in ACTIONS")
        ops = set(ACTIONS)
    else:
        ops = crate_ops | set(ACTIONS)
    used = calls(ops)
    have = granted()
    problems = []
    need = {}  # (action, scope) -> operations
    print(f"operations used in src/ (aws-sdk-s3 {version or '?'}) vs actions granted by "
          f"{POLICY_FILE} ({POLICY_NAME}):")
    for op in sorted(used):
        sites = used[op]
        if op not in ACTIONS:
            problems.append(f"{op} (at {sites[0][0]}) has no entry in ACTIONS: add the IAM actions it needs")
            continue
        obj, bkt = ACTIONS[op]
        actions = [(a, "object") for a in obj] + [(a, "bucket") for a in bkt]
        if any(v for _, v in sites):
            actions += [(VERSIONED[a], s) for a, s in actions if a in VERSIONED and a != "s3:GetObject"]
        row = []
        for a, scope in actions:
            need.setdefault((a, scope), []).append(op)
            ok = scope in have.get(a, ())
            row.append(f"{a}{'' if ok else ' MISSING'}")
        print(f"  {op:<26} {len(sites):>2} call(s)  -> {', '.join(row)}")
    for (a, scope), by in sorted(need.items()):
        if scope not in have.get(a, ()):
            problems.append(f"{a} on the {scope} ARN is needed by {', '.join(sorted(set(by)))} but not granted")
    needed_actions = {a for a, _ in need}
    for a in sorted(have):
        if a not in needed_actions and a not in GRANTED_WITHOUT_CALL:
            problems.append(f"{a} is granted but no operation in src/ needs it")
        elif a in GRANTED_WITHOUT_CALL:
            print(f"  granted without a call: {a} ({GRANTED_WITHOUT_CALL[a]})")
    print(f"used: {len(used)} operations -> {len(needed_actions)} actions; granted: {len(have)} s3 actions")
    for p in problems:
        print(f"FAIL {p}")
    if not problems:
        print("ok   the policy grants exactly the actions the code needs")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
