#!/usr/bin/env python3
"""The server under the Terraform module's IAM policy, against an S3 that enforces it (moto).

Starts moto_server with IAM enforcement (INITIAL_NO_AUTH_ACTION_COUNT: the setup calls run
unauthenticated, everything after is checked against IAM), creates the bucket and an IAM user
whose only policy is the module's `aws_iam_policy_document.server` (actions from iam.tf, resources
the bucket and its objects), then runs the real ftps-s3 binary with that user's keys and drives it
with curl: a multipart upload (digest tags), a download, a rename (copy + tags), a listing, a
delete. Fails when the server logs AccessDenied or the renamed object lost its digest tags.

Usage: iam-moto-check.py BINARY [IAM_TF]    (python with moto[server], boto3, python-hcl2)
IAM_MOTO_DEBUG=1 prints the end of the server's log when something failed.
"""
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BUCKET = "iam-check"
USER, PASSWORD = "acme", "iam-check-password"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited early ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on {port}")


def policy(iam_tf):
    spec = importlib.util.spec_from_file_location("iam_check", os.path.join(os.path.dirname(__file__), "iam-check.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.POLICY_FILE = iam_tf
    granted = mod.granted()
    arn = f"arn:aws:s3:::{BUCKET}"
    statements = []
    for scope, resource in (("bucket", arn), ("object", f"{arn}/*")):
        actions = sorted(a for a, s in granted.items() if scope in s)
        if actions:
            statements.append({"Effect": "Allow", "Action": actions, "Resource": resource})
    return {"Version": "2012-10-17", "Statement": statements}


def main():
    binary = os.path.abspath(sys.argv[1])
    iam_tf = sys.argv[2] if len(sys.argv) > 2 else "terraform/modules/ftps-s3/iam.tf"
    import boto3

    work = tempfile.mkdtemp(prefix="iam-moto.")
    procs = []
    try:
        moto_port = free_port()
        # The moto of this interpreter's environment (the lint venv), else one on PATH.
        moto_bin = os.path.join(os.path.dirname(sys.executable), "moto_server")
        if not os.path.exists(moto_bin):
            moto_bin = shutil.which("moto_server") or moto_bin
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="4")
        moto = subprocess.Popen([moto_bin, "-H", "127.0.0.1", "-p", str(moto_port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "moto.log"), "w"))
        procs.append(moto)
        wait_port(moto_port, moto, "moto_server")
        endpoint = f"http://127.0.0.1:{moto_port}"
        root = dict(endpoint_url=endpoint, region_name="us-east-1",
                    aws_access_key_id="setup", aws_secret_access_key="setup")
        # The four unauthenticated setup calls.
        boto3.client("s3", **root).create_bucket(Bucket=BUCKET)
        iam = boto3.client("iam", **root)
        iam.create_user(UserName="ftps-s3")
        doc = policy(iam_tf)
        iam.put_user_policy(UserName="ftps-s3", PolicyName="server", PolicyDocument=json.dumps(doc))
        key = iam.create_access_key(UserName="ftps-s3")["AccessKey"]
        granted = sorted({a for st in doc["Statement"] for a in st["Action"]})
        print(f"policy from {iam_tf}: {', '.join(granted)}")

        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "1", "-subj", "/CN=iam", "-keyout", f"{work}/tls.key", "-out", f"{work}/tls.crt"],
                       check=True, capture_output=True)
        pw_hash = subprocess.run([binary, "hash-password"], input=PASSWORD.encode(), check=True,
                                 capture_output=True).stdout.decode().strip()
        with open(f"{work}/users.toml", "w") as f:
            f.write(f'[[user]]\nname = "{USER}"\npassword_hash = "{pw_hash}"\nhome = "{USER}/"\n'
                    'permissions = ["list", "read", "write", "overwrite", "delete", "rename"]\n')
        ftp_port, admin_port = free_port(), free_port()
        first = free_port()
        with open(f"{work}/config.toml", "w") as f:
            f.write(f'[listeners]\nexplicit = "127.0.0.1:{ftp_port}"\nimplicit = "off"\n'
                    f'[tls]\ncert_file = "{work}/tls.crt"\nkey_file = "{work}/tls.key"\n'
                    f'[auth]\nusers_file = "{work}/users.toml"\nfailure_delay_ms = 10\n'
                    f'[passive]\nports = "{first}-{first}"\n'
                    f'[s3]\nbucket = "{BUCKET}"\nregion = "us-east-1"\nendpoint = "{endpoint}"\n'
                    'force_path_style = true\npart_size_mib = 5\nupload_concurrency = 2\nmax_attempts = 1\n'
                    f'[admin]\nlisten = "127.0.0.1:{admin_port}"\n[log]\nformat = "json"\n')
        server_env = {k: v for k, v in os.environ.items() if not k.startswith(("FTPS_S3_", "AWS_"))}
        server_env.update(AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"],
                          AWS_EC2_METADATA_DISABLED="true")
        log_path = f"{work}/server.log"
        server = subprocess.Popen([binary, "serve", "--config", f"{work}/config.toml"], env=server_env,
                                  stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
        procs.append(server)
        wait_port(ftp_port, server, "ftps-s3")

        body = os.urandom(12 * 1024 * 1024)  # 3 parts of 5 MiB: a multipart upload with digest tags
        with open(f"{work}/up.bin", "wb") as f:
            f.write(body)
        url = f"ftp://127.0.0.1:{ftp_port}/"
        curl = ["curl", "-sS", "-k", "--ssl-reqd", "-u", f"{USER}:{PASSWORD}", "--max-time", "60"]
        steps = [
            ("upload (multipart)", curl + ["-T", f"{work}/up.bin", url + "up.bin"]),
            ("download", curl + ["-o", f"{work}/down.bin", url + "up.bin"]),
            ("rename", curl + ["-Q", "-RNFR up.bin", "-Q", "-RNTO moved.bin", url]),
            ("list", curl + ["-l", url]),
        ]
        failures = []
        for label, cmd in steps:
            r = subprocess.run(cmd, capture_output=True, text=True)
            print(f"{'ok  ' if r.returncode == 0 else 'FAIL'} curl {label}" + ("" if r.returncode == 0 else f": {r.stderr.strip()}"))
            if r.returncode:
                failures.append(label)
        if not os.path.exists(f"{work}/down.bin") or open(f"{work}/down.bin", "rb").read() != body:
            failures.append("download differs from upload")
        user_s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                               aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        try:
            tags = {t["Key"]: t["Value"] for t in user_s3.get_object_tagging(Bucket=BUCKET, Key=f"{USER}/moved.bin")["TagSet"]}
        except Exception as e:  # noqa: BLE001 - report whatever the store says
            tags = {"error": str(e)}
        print(f"tags on the renamed object: {sorted(tags)}")
        if not any("sha256" in k for k in tags):
            failures.append("the renamed multipart upload has no SHA-256 tag")
        r = subprocess.run(curl + ["-Q", "-DELE moved.bin", url], capture_output=True, text=True)
        print(f"{'ok  ' if r.returncode == 0 else 'FAIL'} curl delete")
        if r.returncode:
            failures.append("delete")
        time.sleep(0.5)
        if failures and os.environ.get("IAM_MOTO_DEBUG"):
            print(open(log_path).read()[-4000:])
        denied = [l for l in open(log_path) if "AccessDenied" in l]
        for line in denied[:10]:
            try:
                j = json.loads(line)
                print(f"FAIL server log: {j.get('message')}: {j.get('error', '')[:160]}")
            except ValueError:
                print(f"FAIL server log: {line.strip()[:200]}")
        if denied:
            failures.append(f"{len(denied)} AccessDenied lines in the server log")
        for f in failures:
            print(f"FAIL {f}")
        if not failures:
            print("ok   every server operation allowed by the module's policy (moto with IAM enforcement)")
        return 1 if failures else 0
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
