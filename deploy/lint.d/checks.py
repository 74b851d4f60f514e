"""Checks behind deploy/lint that no off-the-shelf validator makes (run in the lint venv).

    checks.py syntax DEPLOY_DIR            every *.json (no duplicate keys) and *.toml parses
    checks.py aws-api DEPLOY_DIR           the ECS files against the AWS API models (botocore)
    checks.py cfn-template DEPLOY_DIR OUT  the ECS and IAM JSON as one CloudFormation template
    checks.py consistency DEPLOY_DIR       the files agree with each other and with the program
    checks.py observability DEPLOY_DIR     the Grafana dashboard against its JSON schema; every
                                           metric the alert rules and the dashboard use is one
                                           the binary exposes (src/telemetry.rs METRIC_NAMES),
                                           every le="..." bound one of its buckets

Each prints one line per finding and exits 1 when there is any.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

findings: list[str] = []


def finding(where: str, message: str) -> None:
    findings.append(f"{where}: {message}")


def done() -> None:
    for line in findings:
        print(f"  FAIL {line}")
    sys.exit(1 if findings else 0)


def rel(path: Path, deploy: Path) -> str:
    return f"deploy/{path.relative_to(deploy)}"


def owned_files(deploy: Path, pattern: str) -> list[Path]:
    """Files under deploy/ except deploy/iam/ (linted by deploy/iam/lint)."""
    return sorted(p for p in deploy.rglob(pattern) if "iam" not in p.relative_to(deploy).parts[:1])


def load_json(path: Path):
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"duplicate key(s) {', '.join(dup)}")
        return dict(pairs)

    with open(path, encoding="utf-8") as f:
        return json.load(f, object_pairs_hook=no_duplicates)


# --- syntax ---------------------------------------------------------------------------------


def cmd_syntax(deploy: Path) -> None:
    for path in owned_files(deploy, "*.json"):
        try:
            load_json(path)
        except (OSError, ValueError) as e:
            finding(rel(path, deploy), f"not valid JSON: {e}")
    for path in owned_files(deploy, "*.toml"):
        try:
            with open(path, "rb") as f:
                tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as e:
            finding(rel(path, deploy), f"not valid TOML: {e}")
    done()


# --- the AWS API models -----------------------------------------------------------------------


def check_enums(value, shape, where: str, path: str = "") -> None:
    """botocore's ParamValidator checks types, required and unknown keys, not enum values."""
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, sub in value.items():
            if key in shape.members:
                check_enums(sub, shape.members[key], where, f"{path}.{key}" if path else key)
    elif shape.type_name == "list" and isinstance(value, list):
        for i, sub in enumerate(value):
            check_enums(sub, shape.member, where, f"{path}[{i}]")
    elif shape.type_name == "string" and isinstance(value, str):
        allowed = shape.enum or shape.metadata.get("enum")
        if allowed and value not in allowed:
            finding(where, f"{path}: '{value}' is not one of {', '.join(allowed)}")


def cmd_aws_api(deploy: Path) -> None:
    from botocore.session import get_session
    from botocore.validate import ParamValidator

    session = get_session()
    targets = [
        ("ecs/task-definition.json", "ecs", "RegisterTaskDefinition"),
        ("ecs/schedule.json", "scheduler", "CreateSchedule"),
    ]
    for name, service, operation in targets:
        path = deploy / name
        try:
            params = load_json(path)
        except (OSError, ValueError) as e:
            finding(f"deploy/{name}", f"unreadable: {e}")
            continue
        shape = session.get_service_model(service).operation_model(operation).input_shape
        report = ParamValidator().validate(params, shape)
        if report.has_errors():
            for line in report.generate_report().splitlines():
                if line.strip() and not line.startswith("Parameter validation failed"):
                    finding(f"deploy/{name} ({service} {operation})", line.strip())
        check_enums(params, shape, f"deploy/{name} ({service} {operation})")
        print(f"  ok   deploy/{name} is a valid {service} {operation} request")
    done()


# --- one CloudFormation template for cfn-lint ------------------------------------------------

# Maps whose keys are data, not property names: copied as they are.
FREE_FORM = {"options", "dockerLabels", "Options"}


def pascal(value, key: str | None = None):
    """The ECS API's camelCase request shape -> CloudFormation's PascalCase properties."""
    if isinstance(value, dict):
        if key in FREE_FORM:
            return dict(value)
        return {k[:1].upper() + k[1:]: pascal(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [pascal(v, key) for v in value]
    return value


def cmd_cfn_template(deploy: Path, out: Path) -> None:
    task = load_json(deploy / "ecs/task-definition.json")
    schedule = load_json(deploy / "ecs/schedule.json")
    aws = {p.stem: load_json(p) for p in sorted((deploy / "aws").glob("*.json"))}
    task_properties = pascal(task)
    schedule_properties = pascal(schedule)

    def role(trust: str, policy: str, name: str) -> dict:
        return {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": aws[trust],
                "Policies": [{"PolicyName": name, "PolicyDocument": aws[policy]}],
            },
        }

    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Generated by deploy/lint from deploy/ecs/*.json and deploy/aws/*.json as they are",
        "Resources": {
            "RunTaskDefinition": {"Type": "AWS::ECS::TaskDefinition", "Properties": task_properties},
            "RunSchedule": {"Type": "AWS::Scheduler::Schedule", "Properties": schedule_properties},
            "BaseRoleOnEks": role("base-role-trust-eks", "base-role-policy", "dropfolder-base"),
            "BaseRoleOnEcs": role("ecs-tasks-trust", "base-role-policy", "dropfolder-base"),
            "EcsExecutionRole": role("ecs-tasks-trust", "ecs-execution-role-policy", "dropfolder-ecs-execution"),
            "SchedulerRole": role("scheduler-role-trust", "scheduler-role-policy", "dropfolder-scheduler"),
        },
    }
    used = {"base-role-trust-eks", "base-role-policy", "ecs-tasks-trust", "ecs-execution-role-policy",
            "scheduler-role-trust", "scheduler-role-policy"}
    for stem in sorted(set(aws) - used):
        finding(f"deploy/aws/{stem}.json", "not covered by deploy/lint (add it to the generated template)")
    out.write_text(json.dumps(template, indent=2) + "\n", encoding="utf-8")
    done()


# --- consistency ----------------------------------------------------------------------------

CONFIG_PATH = "/etc/dropfolder/dropfolder.toml"
UID = 10001


def env_names(config) -> set[str]:
    """Every environment variable the config names (keys ending in _env)."""
    names: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k.endswith("_env") and isinstance(v, str):
                    names.add(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(config)
    return names


def duration_seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    m = re.fullmatch(r"\s*(\d+)\s*([smh])\s*", text)
    if not m:
        raise ValueError(f"'{text}' is not a duration like 5m")
    return int(m.group(1)) * units[m.group(2)]


def k8s_docs(deploy: Path) -> dict[str, list[dict]]:
    docs: dict[str, list[dict]] = {}
    for path in sorted((deploy / "kubernetes").glob("*.yaml")):
        with open(path, encoding="utf-8") as f:
            docs[path.name] = [d for d in yaml.safe_load_all(f) if d]
    return docs


def pod_spec(doc: dict) -> dict | None:
    kind = doc.get("kind")
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind in ("Deployment", "Job"):
        return doc["spec"]["template"]["spec"]
    return None


def check_pod(where: str, pod: dict, command: str, env_required: set[str], secret_keys: set[str],
              secret_name: str, grace: int, sa_name: str) -> list[str]:
    """Security context, mounts, args and env of one dropfolder pod. Returns the image(s)."""
    images = []
    psc = pod.get("securityContext", {})
    if pod.get("serviceAccountName") != sa_name:
        finding(where, f"serviceAccountName is not '{sa_name}' (the IRSA ServiceAccount)")
    if pod.get("automountServiceAccountToken") is not False:
        finding(where, "automountServiceAccountToken should be false (dropfolder never calls the API)")
    if command in ("run", "watch"):
        tgps = pod.get("terminationGracePeriodSeconds", 30)
        if tgps < grace + 30:
            finding(where, f"terminationGracePeriodSeconds {tgps} < [schedule] grace_period {grace} s + 30 s")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    containers = pod.get("containers", []) + pod.get("initContainers", [])
    for c in containers:
        cw = f"{where} container {c.get('name')}"
        csc = c.get("securityContext", {})

        def eff(key):
            return csc.get(key, psc.get(key))

        if eff("runAsNonRoot") is not True:
            finding(cw, "runAsNonRoot is not true")
        if eff("runAsUser") != UID:
            finding(cw, f"runAsUser is not {UID} (the image's USER)")
        if (eff("seccompProfile") or {}).get("type") != "RuntimeDefault":
            finding(cw, "seccompProfile is not RuntimeDefault")
        if csc.get("readOnlyRootFilesystem") is not True:
            finding(cw, "readOnlyRootFilesystem is not true")
        if csc.get("allowPrivilegeEscalation") is not False:
            finding(cw, "allowPrivilegeEscalation is not false")
        if csc.get("privileged"):
            finding(cw, "privileged")
        if (csc.get("capabilities") or {}).get("drop") != ["ALL"]:
            finding(cw, "capabilities.drop is not [ALL]")
        if (csc.get("capabilities") or {}).get("add"):
            finding(cw, "capabilities.add is set")
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in res.get(part, {}):
                    finding(cw, f"resources.{part}.{r} is missing")
        image = c.get("image", "")
        images.append(image)
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            finding(cw, f"image '{image}' has no fixed tag")
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        tmp = mounts.get("/tmp")
        if not tmp or "emptyDir" not in volumes.get(tmp["name"], {}):
            finding(cw, "/tmp is not an emptyDir mount (the root filesystem is read-only)")
        conf = mounts.get(str(Path(CONFIG_PATH).parent))
        if not conf or "configMap" not in volumes.get(conf["name"], {}) or not conf.get("readOnly"):
            finding(cw, f"{Path(CONFIG_PATH).parent} is not a read-only ConfigMap mount")
        args = c.get("args") or []
        if c.get("command"):
            finding(cw, "command overrides the image's ENTRYPOINT [dropfolder]; set args only")
        if args[-1:] != [command] or args[:2] != ["--config", CONFIG_PATH]:
            finding(cw, f"args are not ['--config', '{CONFIG_PATH}', ..., '{command}']")
        env = {e["name"]: e for e in c.get("env", [])}
        for name in sorted(env_required):
            e = env.get(name)
            if e is None:
                finding(cw, f"env {name} (named by the config) is not set")
                continue
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if "value" in e or not ref:
                finding(cw, f"env {name} is not from a secretKeyRef")
            elif ref.get("name") != secret_name or ref.get("key") not in secret_keys:
                finding(cw, f"env {name}: secretKeyRef {ref.get('name')}/{ref.get('key')} "
                            f"is not a key of secret.example.yaml")
    return images


def cmd_consistency(deploy: Path) -> None:
    repo = deploy.parent
    # The config: one text, in deploy/config and in the ConfigMap.
    config_text = (deploy / "config/dropfolder.toml").read_text(encoding="utf-8")
    config = tomllib.loads(config_text)
    required_env = env_names(config)
    grace = duration_seconds(config.get("schedule", {}).get("grace_period", "5m"))
    listen = config.get("server", {}).get("listen", "127.0.0.1:9090")
    host, _, port_text = listen.rpartition(":")
    port = int(port_text)
    if host not in ("0.0.0.0", "[::]"):
        finding("deploy/config/dropfolder.toml", f"[server] listen '{listen}' is unreachable from outside the container")
    server = config.get("server", {})
    if not (server.get("token_env") or server.get("token_file")):
        finding("deploy/config/dropfolder.toml",
                "[server] has no token_env/token_file: off loopback /status and /metrics need a bearer token")
    if len(config_text.encode()) > 8192:
        finding("deploy/config/dropfolder.toml", "over 8 KiB: too large for an SSM parameter (deploy/ecs)")
    state_url = config.get("state", {}).get("url", "")
    if not state_url.startswith(("postgres://", "postgresql://")):
        finding("deploy/config/dropfolder.toml", "[state] url is not PostgreSQL (needed for several replicas)")

    docs = k8s_docs(deploy)
    by_kind: dict[str, list[tuple[str, dict]]] = {}
    for name, ds in docs.items():
        for d in ds:
            by_kind.setdefault(d.get("kind"), []).append((name, d))
            ns = d.get("metadata", {}).get("namespace")
            if d.get("kind") != "Namespace" and ns != "dropfolder":
                finding(f"deploy/kubernetes/{name}", f"namespace is '{ns}', not 'dropfolder'")

    def first(kind: str) -> tuple[str, dict]:
        found = by_kind.get(kind, [])
        if len(found) != 1:
            finding("deploy/kubernetes", f"{len(found)} {kind} manifests, expected 1")
        return found[0] if found else ("", {})

    cm_file, cm = first("ConfigMap")
    if cm.get("data", {}).get("dropfolder.toml") != config_text:
        finding(f"deploy/kubernetes/{cm_file or 'configmap.yaml'}",
                "data.dropfolder.toml differs from deploy/config/dropfolder.toml")

    _, secret = first("Secret")
    secret_name = secret.get("metadata", {}).get("name")
    secret_data = secret.get("stringData", {}) | secret.get("data", {})
    for key, value in secret_data.items():
        if not str(value).startswith("REPLACE-ME"):
            finding("deploy/kubernetes/secret.example.yaml", f"{key}: not a REPLACE-ME placeholder")

    _, sa = first("ServiceAccount")
    sa_name = sa.get("metadata", {}).get("name")
    base_role = sa.get("metadata", {}).get("annotations", {}).get("eks.amazonaws.com/role-arn", "")
    if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", base_role):
        finding("deploy/kubernetes/serviceaccount.yaml", "eks.amazonaws.com/role-arn is not a role ARN")

    images: set[str] = set()
    seen = set()
    for kind, command in (("CronJob", "run"), ("Deployment", "watch"), ("Job", "check")):
        for name, d in by_kind.get(kind, []):
            seen.add(kind)
            where = f"deploy/kubernetes/{name}"
            images.update(check_pod(where, pod_spec(d), command, required_env, set(secret_data),
                                    secret_name, grace, sa_name))
    for kind in ("CronJob", "Deployment"):
        if kind not in seen:
            finding("deploy/kubernetes", f"no {kind}")

    for name, d in by_kind.get("CronJob", []):
        where, spec = f"deploy/kubernetes/{name}", d["spec"]
        if spec.get("schedule") != "*/15 * * * *":
            finding(where, f"schedule '{spec.get('schedule')}' is not every 15 minutes")
        for key in ("concurrencyPolicy", "startingDeadlineSeconds"):
            if key not in spec:
                finding(where, f"spec.{key} is not set")
        for key in ("activeDeadlineSeconds", "backoffLimit"):
            if key not in spec["jobTemplate"]["spec"]:
                finding(where, f"spec.jobTemplate.spec.{key} is not set")

    for name, d in by_kind.get("Deployment", []):
        where, spec = f"deploy/kubernetes/{name}", d["spec"]
        replicas = spec.get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 2:
            finding(where, "fewer than 2 replicas")
        c = pod_spec(d)["containers"][0]
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        if port not in ports.values():
            finding(where, f"no containerPort {port} ([server] listen)")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = (c.get(probe) or {}).get("httpGet") or {}
            target = ports.get(get.get("port"), get.get("port"))
            if get.get("path") != path or target != port:
                finding(where, f"{probe} is not GET {path} on port {port}")
            if get.get("httpHeaders"):
                finding(where, f"{probe} sends headers: the probes' paths need no token")
        labels = spec["template"]["metadata"]["labels"]
        for sname, svc in by_kind.get("Service", []):
            sel = svc["spec"].get("selector", {})
            if not sel or any(labels.get(k) != v for k, v in sel.items()):
                finding(f"deploy/kubernetes/{sname}", "selector does not match the Deployment's pods")
            ann = svc["metadata"].get("annotations", {})
            if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != str(port):
                finding(f"deploy/kubernetes/{sname}", f"prometheus.io annotations are not scrape=true, port={port}")

    # The Dockerfile: same UID, same port, entrypoint, and the context filter lets every COPY in.
    dockerfile = (deploy / "Dockerfile").read_text(encoding="utf-8")
    if not re.search(rf"^USER {UID}(:{UID})?$", dockerfile, re.M):
        finding("deploy/Dockerfile", f"USER is not {UID}:{UID}")
    if not re.search(rf"^EXPOSE {port}$", dockerfile, re.M):
        finding("deploy/Dockerfile", f"EXPOSE is not {port}")
    if '\nENTRYPOINT ["dropfolder"]\n' not in dockerfile:
        finding("deploy/Dockerfile", 'ENTRYPOINT is not ["dropfolder"]')
    if not re.search(r"^FROM \S+ AS builder$", dockerfile, re.M) or dockerfile.count("\nFROM ") < 2:
        finding("deploy/Dockerfile", "not a multi-stage build")
    if "cargo build --release --locked" not in dockerfile:
        finding("deploy/Dockerfile", "no `cargo build --release --locked`")
    if re.search(r"^\s*(ARG|ENV)\s+\S*(PASSWORD|SECRET|TOKEN|KEY)\S*", dockerfile, re.M | re.I):
        finding("deploy/Dockerfile", "an ARG/ENV looks like a secret: secrets are never baked in")
    ignore = [l.strip() for l in (deploy / "Dockerfile.dockerignore").read_text().splitlines()
              if l.strip() and not l.startswith("#")]

    def excluded(path: str) -> bool:
        result = False
        for pattern in ignore:
            negate = pattern.startswith("!")
            p = pattern[1:] if negate else pattern
            p = p.rstrip("/")
            if fnmatch.fnmatch(path, p) or path.startswith(p + "/"):
                result = not negate
        return result

    for m in re.finditer(r"^COPY (?!--from)(.+)$", dockerfile, re.M):
        sources = m.group(1).split()[:-1]
        for src in sources:
            if src.startswith("--"):
                continue
            src = src.rstrip("/")
            if excluded(src) or not (repo / src).exists():
                finding("deploy/Dockerfile", f"COPY {src}: missing from the repo or excluded by Dockerfile.dockerignore")

    # ECS: the same image, user, secrets and config; read-only with a /tmp volume.
    task = load_json(deploy / "ecs/task-definition.json")
    containers = {c["name"]: c for c in task["containerDefinitions"]}
    main = [c for c in task["containerDefinitions"] if c.get("image", "").split(":")[0].endswith("/dropfolder")]
    where = "deploy/ecs/task-definition.json"
    if len(main) != 1:
        finding(where, "not exactly one dropfolder container")
    for c in main:
        cw = f"{where} container {c['name']}"
        images.add(c["image"])
        if c.get("user") not in (f"{UID}", f"{UID}:{UID}"):
            finding(cw, f"user is not {UID}:{UID}")
        if c.get("command", [])[:2] != ["--config", CONFIG_PATH] or c.get("command", [])[-1:] != ["run"]:
            finding(cw, f"command is not ['--config', '{CONFIG_PATH}', ..., 'run']")
        if c.get("entryPoint"):
            finding(cw, "entryPoint overrides the image's [dropfolder]")
        given = {s["name"] for s in c.get("secrets", [])}
        plain = {e["name"] for e in c.get("environment", [])}
        for name in sorted(required_env):
            if name in plain:
                finding(cw, f"{name} is a plain environment value, not a secret")
            elif name not in given:
                finding(cw, f"secret {name} (named by the config) is not set")
        mounts = {m["containerPath"]: m for m in c.get("mountPoints", [])}
        if "/tmp" not in mounts or mounts["/tmp"].get("readOnly"):
            finding(cw, "no writable /tmp volume")
        if str(Path(CONFIG_PATH).parent) not in mounts:
            finding(cw, f"no {Path(CONFIG_PATH).parent} volume")
        for dep in c.get("dependsOn", []):
            if dep["containerName"] not in containers:
                finding(cw, f"dependsOn unknown container {dep['containerName']}")
    for c in task["containerDefinitions"]:
        cw = f"{where} container {c['name']}"
        if c.get("readonlyRootFilesystem") is not True:
            finding(cw, "readonlyRootFilesystem is not true")
        if c.get("privileged"):
            finding(cw, "privileged")
        if ((c.get("linuxParameters") or {}).get("capabilities") or {}).get("drop") != ["ALL"]:
            finding(cw, "linuxParameters.capabilities.drop is not [ALL]")
        if (c.get("logConfiguration") or {}).get("logDriver") != "awslogs":
            finding(cw, "logDriver is not awslogs")
    if len(images) != 1:
        finding("deploy", f"the workloads use different images: {', '.join(sorted(images))}")

    # AWS wiring: roles, policies, schedule and config agree.
    aws = {p.stem: load_json(p) for p in sorted((deploy / "aws").glob("*.json"))}
    schedule = load_json(deploy / "ecs/schedule.json")

    def statements(doc):
        s = doc.get("Statement", [])
        return s if isinstance(s, list) else [s]

    def as_list(v):
        return v if isinstance(v, list) else [v]

    def allows(policy: str, action: str, resource: str) -> bool:
        for s in statements(aws[policy]):
            if s.get("Effect") == "Allow" and action in as_list(s.get("Action", [])) and any(
                    fnmatch.fnmatchcase(resource, r) for r in as_list(s.get("Resource", []))):
                return True
        return False

    if task.get("taskRoleArn") != base_role:
        finding(where, f"taskRoleArn is not the EKS base role {base_role} (the role customers trust)")
    iam_trust = deploy / "iam/trust-policy.json"
    if iam_trust.exists():
        principals = json.dumps(load_json(iam_trust))
        if base_role not in principals:
            finding("deploy/iam/trust-policy.json", f"does not name the base role {base_role}")
    for i in config.get("integrations", []):
        if "role_arn" in i and not allows("base-role-policy", "sts:AssumeRole", i["role_arn"]):
            finding("deploy/aws/base-role-policy.json", f"no sts:AssumeRole on {i['role_arn']} (integration {i.get('name')})")
    queue = config.get("events", {}).get("queue_url")
    if queue:
        m = re.fullmatch(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com/(\d{12})/([\w-]+)", queue)
        if not m:
            finding("deploy/config/dropfolder.toml", f"[events] queue_url '{queue}' is not an SQS queue URL")
        else:
            arn = f"arn:aws:sqs:{m.group(1)}:{m.group(2)}:{m.group(3)}"
            for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                           "sqs:GetQueueAttributes"):
                if not allows("base-role-policy", action, arn):
                    finding("deploy/aws/base-role-policy.json", f"no {action} on {arn}")
    trust = json.dumps(aws["base-role-trust-eks"])
    ns = sa.get("metadata", {}).get("namespace")
    if f'"system:serviceaccount:{ns}:{sa_name}"' not in trust:
        finding("deploy/aws/base-role-trust-eks.json", f"does not trust system:serviceaccount:{ns}:{sa_name}")
    for c in task["containerDefinitions"]:
        for s in c.get("secrets", []):
            ref = s["valueFrom"]
            if ref.startswith("arn:aws:secretsmanager:"):
                arn = ":".join(ref.split(":")[:7])
                ok = allows("ecs-execution-role-policy", "secretsmanager:GetSecretValue", arn)
            else:
                ok = allows("ecs-execution-role-policy", "ssm:GetParameters", ref)
            if not ok:
                finding("deploy/aws/ecs-execution-role-policy.json", f"does not let ECS read {ref}")
    target = schedule["Target"]
    ecs = target.get("EcsParameters", {})
    family = task["family"]
    td = ecs.get("TaskDefinitionArn", "")
    if not re.fullmatch(rf"arn:aws:ecs:[a-z0-9-]+:\d{{12}}:task-definition/{re.escape(family)}(:\d+)?", td):
        finding("deploy/ecs/schedule.json", f"TaskDefinitionArn is not of family {family}")
    if not allows("scheduler-role-policy", "ecs:RunTask", td):
        finding("deploy/aws/scheduler-role-policy.json", f"no ecs:RunTask on {td}")
    for r in (task.get("taskRoleArn"), task.get("executionRoleArn")):
        if not allows("scheduler-role-policy", "iam:PassRole", r):
            finding("deploy/aws/scheduler-role-policy.json", f"no iam:PassRole on {r}")
    if target["Arn"] not in json.dumps(aws["scheduler-role-policy"]):
        finding("deploy/aws/scheduler-role-policy.json", f"does not name the cluster {target['Arn']}")
    if schedule.get("ScheduleExpression") not in ("cron(0/15 * * * ? *)", "cron(*/15 * * * ? *)", "rate(15 minutes)"):
        finding("deploy/ecs/schedule.json", "ScheduleExpression is not every 15 minutes")
    sched_arn = f"schedule/{schedule.get('GroupName', 'default')}/{schedule['Name']}"
    if sched_arn not in json.dumps(aws["scheduler-role-trust"]):
        finding("deploy/aws/scheduler-role-trust.json", f"does not name {sched_arn}")
    if ecs.get("LaunchType") != "FARGATE" or "FARGATE" not in task.get("requiresCompatibilities", []):
        finding("deploy/ecs", "not Fargate")
    if task.get("networkMode") != "awsvpc":
        finding(where, "networkMode is not awsvpc")
    done()


# --- alert rules and dashboard -----------------------------------------------------------------


def rust_array(source: str, name: str) -> str:
    """The text between the brackets of `const NAME: ... = [ ... ];` in Rust source."""
    match = re.search(rf"const {name}: [^=]+= &?\[(.*?)\];", source, re.S)
    if not match:
        raise ValueError(f"no const {name} in src/telemetry.rs")
    return match.group(1)


def go_float(text: str) -> str:
    """A bucket bound as prometheus-client writes `le` (Go's formatting: 900, 0.5)."""
    value = float(text)
    return str(int(value)) if value.is_integer() else repr(value)


def cmd_observability(deploy: Path) -> None:
    from jsonschema import Draft202012Validator

    telemetry = (deploy.parent / "src" / "telemetry.rs").read_text(encoding="utf-8")
    exposed = set(re.findall(r'"(dropfolder_[a-z0-9_]+)"', rust_array(telemetry, "METRIC_NAMES")))
    bounds = {"+Inf"}
    for name in ("SCAN_BUCKETS", "FILE_BUCKETS"):
        bounds |= {go_float(b) for b in re.findall(r"[0-9.]+", rust_array(telemetry, name))}

    schema_path = deploy / "lint.d" / "grafana-dashboard.schema.json"
    schema = load_json(schema_path)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    exprs: list[tuple[str, str]] = []
    for path in sorted((deploy / "grafana").glob("*.json")):
        where = rel(path, deploy)
        dashboard = load_json(path)
        for error in sorted(validator.iter_errors(dashboard), key=lambda e: list(e.absolute_path)):
            at = "/".join(str(p) for p in error.absolute_path)
            finding(where, f"schema: at /{at}: {error.message}")
        panels = dashboard.get("panels", []) if isinstance(dashboard, dict) else []
        ids = [p.get("id") for p in panels if isinstance(p, dict)]
        for dup in sorted({i for i in ids if ids.count(i) > 1}, key=str):
            finding(where, f"panel id {dup} is used more than once")
        for panel in panels:
            for target in panel.get("targets", []) if isinstance(panel, dict) else []:
                if isinstance(target, dict) and isinstance(target.get("expr"), str):
                    exprs.append((f"{where} panel {panel.get('title')!r}", target["expr"]))
        for variable in dashboard.get("templating", {}).get("list", []):
            if isinstance(variable, dict) and isinstance(variable.get("definition"), str):
                exprs.append((f"{where} variable {variable.get('name')!r}", variable["definition"]))

    for path in sorted((deploy / "prometheus").glob("*.yaml")):
        if path.name.endswith(".test.yaml"):
            continue
        rules = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for group in rules.get("groups", []):
            for rule in group.get("rules", []):
                name = rule.get("alert") or rule.get("record")
                exprs.append((f"{rel(path, deploy)} rule {name}", str(rule.get("expr", ""))))
    if not exprs:
        finding("deploy", "no alert rules or dashboard queries found")

    for where, expr in exprs:
        for metric in sorted(set(re.findall(r"\bdropfolder_[a-z0-9_]+", expr))):
            if metric not in exposed:
                finding(where, f"{metric} is not a metric the binary exposes (src/telemetry.rs METRIC_NAMES)")
        for bound in re.findall(r'le="([^"]*)"', expr):
            if bound not in bounds:
                finding(where, f'le="{bound}" is not a bucket bound of the histograms ({sorted(bounds)})')
    done()


def main() -> None:
    cmd, deploy = sys.argv[1], Path(sys.argv[2]).resolve()
    if cmd == "syntax":
        cmd_syntax(deploy)
    elif cmd == "aws-api":
        cmd_aws_api(deploy)
    elif cmd == "cfn-template":
        cmd_cfn_template(deploy, Path(sys.argv[3]))
    elif cmd == "consistency":
        try:
            cmd_consistency(deploy)
        except (KeyError, TypeError, ValueError, IndexError, OSError) as e:
            finding("deploy", f"cannot check consistency: {type(e).__name__}: {e}")
            done()
    elif cmd == "observability":
        try:
            cmd_observability(deploy)
        except (KeyError, TypeError, ValueError, OSError, yaml.YAMLError) as e:
            finding("deploy", f"cannot check the rules and dashboard: {type(e).__name__}: {e}")
            done()
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
