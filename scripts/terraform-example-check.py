#!/usr/bin/env python3
"""Offline plan check of terraform/examples/complete: will one `terraform apply` work on a fresh
cluster, and is the result fit for production?

`terraform test` / `plan` need the provider registry, which the offline tooling cannot reach; this
reads the configuration (python-hcl2) and checks what a plan on a fresh cluster would hit:

  - every Kubernetes object the release references (the users Secret) is created by Terraform,
    in a namespace Terraform creates, and the release does not try to create that namespace too;
  - the namespace carries the AWS Load Balancer Controller's pod readiness gate label;
  - the release is atomic with cleanup_on_fail (a failed apply rolls back instead of leaving a
    broken release that blocks the next apply);
  - PASV clients get a fixed address: Elastic IPs, one per NLB subnet, and advertise_address set;
  - NLB cross-zone load balancing is on;
  - S3 traffic has a gateway VPC endpoint (not through the NAT gateway).

Usage: terraform-example-check.py [REPO_ROOT]
"""
import glob
import os
import re
import sys

import hcl2

EXAMPLE = "terraform/examples/complete"
MODULE = "terraform/modules/ftps-s3"


def load(d):
    body = {}
    for tf in sorted(glob.glob(os.path.join(d, "*.tf"))):
        with open(tf) as f:
            for k, v in hcl2.load(f).items():
                body.setdefault(k, []).extend(v)
    return body


def blocks(body, kind, rtype=None):
    """[(type, name, attrs)] of resource/data blocks (or [(name, attrs)] of modules)."""
    out = []
    for item in body.get(kind, []):
        for t, named in item.items():
            if rtype is None:
                out.append((t, named))
            elif t == rtype:
                out.extend((n, a) for n, a in named.items())
    return out


def text(d):
    return "\n".join(re.sub(r"^\s*#.*$", "", open(p).read(), flags=re.M)
                     for p in sorted(glob.glob(os.path.join(d, "*.tf"))))


def main():
    os.chdir(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    ex, mod = load(EXAMPLE), load(MODULE)
    ex_text, mod_text = text(EXAMPLE), text(MODULE)
    problems, ok = [], []

    def check(cond, good, bad):
        (ok if cond else problems).append(good if cond else bad)

    namespaces = blocks(ex, "resource", "kubernetes_namespace_v1") + blocks(ex, "resource", "kubernetes_namespace")
    secrets = blocks(ex, "resource", "kubernetes_secret_v1") + blocks(ex, "resource", "kubernetes_secret")
    modules = dict(blocks(ex, "module"))
    release = modules.get("ftps_s3", {})
    hr = release.get("helm_release", [{}])
    hr = hr[0] if isinstance(hr, list) else hr

    check(namespaces, "the namespace is created by Terraform",
          "the release's namespace is not created by Terraform (objects it needs cannot exist before it)")
    users_ref = re.search(r"users\s*=\s*\{\s*existingSecret\s*=\s*([^}\s]+)", ex_text)
    check(users_ref and "kubernetes_secret" in users_ref.group(1),
          "users.existingSecret names a Secret Terraform creates",
          f"users.existingSecret = {users_ref.group(1) if users_ref else '?'}: a Secret that must exist before apply "
          "(create it with kubernetes_secret_v1 from a variable or Secrets Manager)")
    for name, attrs in secrets:
        meta = attrs.get("metadata", [{}])[0]
        check("kubernetes_namespace" in str(meta.get("namespace")),
              f"Secret {name} is placed in the namespace resource (ordered after it)",
              f"Secret {name}: its namespace is not the namespace resource (apply order not guaranteed)")
    check(str(hr.get("create_namespace")) in ("False", "false"),
          "helm_release does not create the namespace again",
          "helm_release.create_namespace is not false while Terraform owns the namespace (or does not exist)")
    check(namespaces and "pod-readiness-gate-inject" in str(namespaces[0][1]),
          "namespace labelled elbv2.k8s.aws/pod-readiness-gate-inject=enabled",
          "namespace lacks elbv2.k8s.aws/pod-readiness-gate-inject: enabled (rollouts drop connections behind the NLB)")

    mod_releases = blocks(mod, "resource", "helm_release")
    for name, attrs in mod_releases:
        for arg in ("atomic", "cleanup_on_fail"):
            check(arg in attrs, f"module helm_release.{name} sets {arg}",
                  f"module helm_release.{name} has no {arg} (a failed apply leaves a broken release)")
    for arg in ("atomic", "cleanup_on_fail"):
        if str(hr.get(arg)) in ("False", "false"):
            problems.append(f"the example turns helm_release.{arg} off")

    eips = blocks(ex, "resource", "aws_eip")
    check(eips, "Elastic IPs are allocated for the NLB", "no aws_eip: the NLB's address changes, PASV clients break")
    check("advertise_address" in ex_text and "aws_eip" in ex_text.split("advertise_address", 1)[1].split("\n", 1)[0],
          "config.passive.advertise_address is an EIP", "config.passive.advertise_address is not set from an EIP")
    check("eip-allocations" in ex_text and "aws-load-balancer-subnets" in ex_text,
          "EIPs pinned to the NLB, one per subnet", "the NLB has no eip-allocations/subnets annotations")
    check("load_balancing.cross_zone.enabled=true" in ex_text,
          "NLB cross-zone load balancing on", "NLB cross-zone load balancing not enabled")

    endpoints = [a for _, a in blocks(ex, "resource", "aws_vpc_endpoint")]
    check(any("s3" in str(a.get("service_name")) and "Gateway" in str(a.get("vpc_endpoint_type")) for a in endpoints),
          "S3 gateway VPC endpoint", "no S3 gateway VPC endpoint: every byte to S3 crosses the NAT gateway")

    for line in ok:
        print(f"ok   {line}")
    for line in problems:
        print(f"FAIL {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
