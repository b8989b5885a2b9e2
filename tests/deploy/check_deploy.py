#!/usr/bin/env python3
"""Checks deploy/ against the code without a container engine, Kafka or a cluster.

Usage: check_deploy.py --source-dir DIR --coordinator BIN --worker BIN [--only CHECK ...]

Each check prints `ok`, `FAIL` (with the reasons) or `skip` (a tool this machine lacks); the
script exits 1 if any check failed. What each check proves is in deploy/README.md
("What the deploy test checks"). Every check has been seen to fail on a broken input.
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import yaml

# Options named in deploy/ that a newer binary brings. While the binary built here lacks one,
# it is reported and left out of the --print-config run; once the binary knows it, it is
# checked like any other. --metrics-listen arrives with the metrics change.
PENDING_OPTIONS: dict = {}
# Runtime packages that no binary built here links yet, for the same reason.
PENDING_PACKAGES: set = set()
# Packages every Debian system has; the image need not name them.
BASE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1"}
# What deploy/Dockerfile copies to /usr/share/td/, by source path.
IMAGE_SHARE = "/usr/share/td/"
TD_IMAGE = re.compile(r"^(task-director|registry\.example\.com/task-director)(:[\w.-]+)?$")


class Check:
    def __init__(self, name):
        self.name = name
        self.failures = []
        self.notes = []
        self.skipped = None

    def fail(self, message):
        self.failures.append(message)

    def note(self, message):
        self.notes.append(message)


# ---------------------------------------------------------------------------------------------
# Helpers


class UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate mapping keys (PyYAML keeps the last silently)."""


def _construct_mapping(loader, node, deep=False):
    # Only the keys written in this mapping: keys merged in with `<<` may be overridden.
    seen = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.load_all(f, Loader=UniqueKeyLoader) if d is not None]


def help_options(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    return set(re.findall(r"--([a-z][a-z0-9-]*)", out.stdout + out.stderr))


def expand_k8s(value, env):
    """$(VAR) references of a Kubernetes env value or arg."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def td_command_lines(command):
    """The td-* invocations in a container command: argv itself, or lines of a bash -c script."""
    if not command:
        return []
    if os.path.basename(command[0]).startswith("td-"):
        return [command]
    if command[0] in ("bash", "sh") and "-c" in command:
        script = command[command.index("-c") + 1]
        lines = []
        for line in script.splitlines():
            words = shlex.split(line, comments=True) if line.strip() else []
            if words and words[0].startswith("td-"):
                lines.append(words)
        return lines
    return []


def flags_of(argv):
    """Long options of an argv, as (name, value-or-None)."""
    flags = []
    i = 1
    while i < len(argv):
        word = argv[i]
        if word.startswith("--"):
            name, _, value = word[2:].partition("=")
            if not value and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                value = argv[i + 1]
                i += 1
            flags.append((name, value or None))
        i += 1
    return flags


class Binaries:
    def __init__(self, coordinator, worker):
        self.paths = {"td-coordinator": coordinator, "td-worker": worker}
        self.options = {name: help_options(path) for name, path in self.paths.items()}

    def known(self, program, option):
        return option in self.options[program]

    def pending(self, program, option):
        return option in PENDING_OPTIONS.get(program, set()) and not self.known(program, option)


def env_name_ok(binaries, program, name):
    if name in ("TD_CONFIG",) or name.startswith("TD_KAFKA_"):
        return True
    option = name[3:].lower().replace("_", "-")
    return binaries.known(program, option) or binaries.pending(program, option)


def check_invocation(check, binaries, where, argv, env, config_text, path_map, source_dir):
    """Flags and TD_* names of one td-* invocation, then --print-config with its file and env."""
    program = os.path.basename(argv[0])
    if program not in binaries.paths:
        return
    # Files the image provides (--print-config loads the schema as a start would).
    for value in list(argv[1:]) + list(env.values()):
        if value.startswith(IMAGE_SHARE) and not os.path.exists(path_map(value)):
            check.fail(f"{where}: {value} is not in the image ({path_map(value)} does not exist)")
    run_argv = [binaries.paths[program]]
    for name, value in flags_of(argv):
        if binaries.pending(program, name):
            check.note(f"{where}: --{name} not in this {program} yet (pending change); left out")
            continue
        if not binaries.known(program, name):
            check.fail(f"{where}: {program} has no option --{name}")
            continue
        run_argv.append(f"--{name}")
        if value is not None:
            run_argv.append(path_map(value))
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.gettempdir()}
    for name, value in env.items():
        if not name.startswith("TD_"):
            continue
        if not env_name_ok(binaries, program, name):
            check.fail(f"{where}: {name} names no {program} option (the binary would ignore it)")
            continue
        option = name[3:].lower().replace("_", "-")
        if binaries.pending(program, option):
            check.note(f"{where}: {name} is for a pending option; left out")
            continue
        run_env[name] = path_map(value)
    with tempfile.TemporaryDirectory() as tmp:
        if config_text is not None:
            config = os.path.join(tmp, "config.yaml")
            with open(config, "w", encoding="utf-8") as f:
                f.write(config_text)
            os.chmod(config, 0o600)
            run_env["TD_CONFIG"] = config
        else:
            run_env.pop("TD_CONFIG", None)
        result = subprocess.run(run_argv + ["--print-config"], env=run_env, capture_output=True,
                                text=True, timeout=30, cwd=source_dir)
    if result.returncode != 0:
        check.fail(f"{where}: {program} --print-config exited {result.returncode}: "
                   f"{result.stderr.strip()}")
        return
    for name in run_env:
        if name.startswith("TD_") and name != "TD_CONFIG" and f"env {name}" not in result.stdout:
            check.fail(f"{where}: --print-config shows no value from {name}")


# ---------------------------------------------------------------------------------------------
# The checks


def check_yaml(check, src):
    deploy = os.path.join(src, "deploy")
    count = 0
    for root, _, files in os.walk(deploy):
        for name in sorted(files):
            if not name.endswith((".yaml", ".yml")):
                continue
            path = os.path.join(root, name)
            try:
                docs = load_all(path)
            except yaml.YAMLError as e:
                check.fail(f"{os.path.relpath(path, src)}: {e}")
                continue
            if not docs:
                check.fail(f"{os.path.relpath(path, src)}: no YAML document")
            count += len(docs)
            # Embedded YAML (ConfigMap data) parses too.
            for doc in docs:
                if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
                    for key, text in (doc.get("data") or {}).items():
                        if key.endswith((".yaml", ".yml")):
                            try:
                                list(yaml.load_all(text, Loader=UniqueKeyLoader))
                            except yaml.YAMLError as e:
                                check.fail(f"{os.path.relpath(path, src)}: data {key}: {e}")
    check.note(f"{count} YAML documents")


def k8s_docs(src):
    docs = []
    k8s = os.path.join(src, "deploy", "k8s")
    for name in sorted(os.listdir(k8s)):
        if name.endswith(".yaml") and name != "kustomization.yaml":
            for doc in load_all(os.path.join(k8s, name)):
                docs.append((name, doc))
    return docs


def pod_spec(doc):
    kind = doc.get("kind")
    if kind in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        return doc["spec"]["template"]["spec"]
    return None


def check_k8s(check, src):
    k8s = os.path.join(src, "deploy", "k8s")
    docs = k8s_docs(src)
    configmaps, secrets = {}, {}
    for name, doc in docs:
        for field in ("apiVersion", "kind"):
            if field not in doc:
                check.fail(f"{name}: a document without {field}")
        if not (doc.get("metadata") or {}).get("name"):
            check.fail(f"{name}: a {doc.get('kind')} without metadata.name")
        if doc.get("kind") == "ConfigMap":
            configmaps[doc["metadata"]["name"]] = set((doc.get("data") or {}).keys())
        if doc.get("kind") == "Secret":
            secrets[doc["metadata"]["name"]] = set((doc.get("stringData") or {}).keys()) | set(
                (doc.get("data") or {}).keys())
    kustomization = load_all(os.path.join(k8s, "kustomization.yaml"))[0]
    for resource in kustomization.get("resources", []):
        if not os.path.exists(os.path.join(k8s, resource)):
            check.fail(f"kustomization.yaml: resource {resource} does not exist")
    # Every ConfigMap/Secret key a pod reads exists.
    for name, doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        where = f"{name} {doc['kind']}/{doc['metadata']['name']}"
        for volume in spec.get("volumes", []):
            for kind, ref_name, table in (("configMap", "name", configmaps),
                                          ("secret", "secretName", secrets)):
                if kind in volume:
                    ref = volume[kind][ref_name]
                    if ref not in table:
                        check.fail(f"{where}: volume {volume['name']}: no {kind} {ref}")
                        continue
                    for item in volume[kind].get("items", []):
                        if item["key"] not in table[ref]:
                            check.fail(f"{where}: {kind} {ref} has no key {item['key']}")
        containers = spec.get("initContainers", []) + spec.get("containers", [])
        mounts_ok = {v["name"] for v in spec.get("volumes", [])}
        for c in containers:
            for m in c.get("volumeMounts", []):
                if m["name"] not in mounts_ok:
                    check.fail(f"{where}: container {c['name']} mounts unknown volume {m['name']}")
            for e in c.get("env", []):
                ref = (e.get("valueFrom") or {})
                if "secretKeyRef" in ref:
                    r = ref["secretKeyRef"]
                    if r["key"] not in secrets.get(r["name"], set()):
                        check.fail(f"{where}: env {e['name']}: secret {r['name']} has no key {r['key']}")
                if "configMapKeyRef" in ref:
                    r = ref["configMapKeyRef"]
                    if r["key"] not in configmaps.get(r["name"], set()):
                        check.fail(f"{where}: env {e['name']}: configmap {r['name']} has no key {r['key']}")
            if c in spec.get("containers", []) and not (c.get("resources") or {}).get("requests"):
                check.fail(f"{where}: container {c['name']} has no resource requests")
            sc = c.get("securityContext") or {}
            if sc.get("allowPrivilegeEscalation") is not False:
                check.fail(f"{where}: container {c['name']} allows privilege escalation")
        if not (spec.get("securityContext") or {}).get("runAsNonRoot"):
            check.fail(f"{where}: pod does not set runAsNonRoot")
    # The CI build Job retries exactly td-worker's infrastructure exit code (3) and fails for
    # good on its other failures (operations.md, "Exit codes").
    for name, doc in docs:
        if doc.get("kind") != "Job" or (doc.get("metadata") or {}).get("labels", {}).get(
                "app.kubernetes.io/component") != "worker":
            continue
        rules = ((doc.get("spec") or {}).get("podFailurePolicy") or {}).get("rules", [])
        by_action = {}
        for rule in rules:
            codes = (rule.get("onExitCodes") or {}).get("values", [])
            by_action.setdefault(rule.get("action"), set()).update(codes)
        if by_action.get("Count") != {3}:
            check.fail(f"{name}: podFailurePolicy must Count (retry) exit code 3 only, "
                       f"not {sorted(by_action.get('Count', set()))}")
        if not {1, 2, 4} <= by_action.get("FailJob", set()):
            check.fail(f"{name}: podFailurePolicy must FailJob on exit codes 1, 2 and 4")
        if (doc["spec"].get("backoffLimit") or 0) < 1:
            check.fail(f"{name}: backoffLimit 0 never retries exit code 3")
        if pod_spec(doc).get("restartPolicy") != "Never":
            check.fail(f"{name}: podFailurePolicy needs restartPolicy: Never")
    kubectl = shutil.which("kubectl")
    if kubectl:
        r = subprocess.run([kubectl, "kustomize", k8s], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            check.fail(f"kubectl kustomize deploy/k8s: {r.stderr.strip()}")
        else:
            check.note("kubectl kustomize deploy/k8s renders")
    else:
        check.note("kubectl not installed: kustomize rendering not checked")


def coordinator_deployment(src):
    for name, doc in k8s_docs(src):
        if doc.get("kind") == "Deployment":
            for c in pod_spec(doc)["containers"]:
                if td_command_lines(c.get("command", []) + c.get("args", [])) and \
                        "td-coordinator" in (c.get("command") or [""])[0]:
                    return name, doc, c
    return None, None, None


def metrics_port(argv):
    for name, value in flags_of(argv):
        if name == "metrics-listen" and value:
            return int(value.rsplit(":", 1)[1])
    return None


def check_coordinators(check, src):
    """Several replicas, a distinct id from the pod name, probes on the metrics port."""
    name, doc, c = coordinator_deployment(src)
    if doc is None:
        check.fail("deploy/k8s: no Deployment running td-coordinator")
        return
    if doc["spec"].get("replicas", 1) < 2:
        check.fail(f"{name}: the coordinator Deployment has fewer than 2 replicas")
    env = {e["name"]: e for e in c.get("env", [])}
    id_env = env.get("TD_COORDINATOR_ID", {})
    argv = c["command"] + c.get("args", [])
    id_from_arg = any(n == "coordinator-id" for n, _ in flags_of(argv))
    field = ((id_env.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
    if field != "metadata.name" and not id_from_arg:
        check.fail(f"{name}: TD_COORDINATOR_ID does not come from the pod name (downward API)")
    port = metrics_port(argv)
    if port is None:
        check.fail(f"{name}: td-coordinator has no --metrics-listen HOST:PORT")
        return
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = ((c.get(probe) or {}).get("httpGet")) or {}
        if get.get("path") != path:
            check.fail(f"{name}: {probe} does not GET {path}")
        probe_port = ports.get(get.get("port"), get.get("port"))
        if probe_port != port:
            check.fail(f"{name}: {probe} port {get.get('port')} is not --metrics-listen's {port}")
    compose = load_all(os.path.join(src, "deploy", "compose", "compose.yaml"))[0]
    coordinators = [s for s, svc in compose["services"].items()
                    if (svc.get("command") or [""])[0] == "td-coordinator"]
    if len(coordinators) < 2:
        check.fail("compose.yaml: fewer than two coordinators")
    ids = set()
    for s in coordinators:
        svc = compose["services"][s]
        ids.add((svc.get("environment") or {}).get("TD_COORDINATOR_ID"))
        test = " ".join(svc.get("healthcheck", {}).get("test", []))
        p = metrics_port(svc["command"])
        if "/readyz" not in test or p is None or f"/{p}" not in test:
            check.fail(f"compose.yaml: {s}'s healthcheck does not GET /readyz on its "
                       f"--metrics-listen port")
    if None in ids or len(ids) != len(coordinators):
        check.fail("compose.yaml: the coordinators have no distinct TD_COORDINATOR_ID")
    workers = [s for s, svc in compose["services"].items()
               if (svc.get("command") or [""])[0] == "td-worker"]
    if len(workers) < 3:
        check.fail("compose.yaml: fewer than three workers")


def check_options(check, src, binaries):
    """Every td-* invocation in compose, k8s and systemd names only options the binaries take,
    and --print-config accepts its file, variables and flags."""
    examples = os.path.join(src, "examples")

    def path_map(value):
        return (value.replace("/usr/share/td/examples", examples)
                .replace("/usr/share/td/config", os.path.join(src, "deploy", "config"))
                .replace("/usr/share/td/create-topics.sh",
                         os.path.join(src, "deploy", "create-topics.sh")))

    # The example files on their own.
    for program, config in (("td-coordinator", "coordinator.yaml"), ("td-worker", "worker.yaml")):
        with open(os.path.join(src, "deploy", "config", config), encoding="utf-8") as f:
            text = f.read()
        argv = [program]
        if program == "td-worker":
            argv += ["--schema", "/usr/share/td/examples/demo.yaml", "--peer-id", "p",
                     "--repository", "r", "--base-ref", "main", "--change-ref", "c"]
        check_invocation(check, binaries, f"deploy/config/{config}", argv, {}, text, path_map, src)

    # compose: the mounted config file, the service's environment and command.
    compose_dir = os.path.join(src, "deploy", "compose")
    compose = load_all(os.path.join(compose_dir, "compose.yaml"))[0]
    seen = 0
    for service, svc in compose["services"].items():
        if not TD_IMAGE.match(svc.get("image", "")):
            continue
        argv = svc.get("command") or []
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        config_text = None
        for volume in svc.get("volumes", []):
            host, target = volume.split(":")[:2]
            if target == env.get("TD_CONFIG"):
                with open(os.path.join(compose_dir, host), encoding="utf-8") as f:
                    config_text = f.read()
        if "TD_CONFIG" in env and config_text is None:
            check.fail(f"compose.yaml {service}: TD_CONFIG {env['TD_CONFIG']} is not mounted")
        for line in td_command_lines(argv):
            seen += 1
            check_invocation(check, binaries, f"compose.yaml {service}", line, env, config_text,
                             path_map, src)

    # Kubernetes: the ConfigMap key mounted at TD_CONFIG, literal env, valueFrom as a stand-in.
    configmaps = {doc["metadata"]["name"]: doc.get("data", {})
                  for _, doc in k8s_docs(src) if doc.get("kind") == "ConfigMap"}
    for name, doc in k8s_docs(src):
        spec = pod_spec(doc)
        if spec is None:
            continue
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            if not TD_IMAGE.match(c.get("image", "")):
                continue
            env = {}
            for e in c.get("env", []):
                env[e["name"]] = expand_k8s(e["value"], env) if "value" in e else \
                    f"from-{e['name'].lower()}"
            config_text = None
            if "TD_CONFIG" in env:
                for m in c.get("volumeMounts", []):
                    cm = volumes[m["name"]].get("configMap")
                    if cm and env["TD_CONFIG"].startswith(m["mountPath"].rstrip("/") + "/"):
                        key = env["TD_CONFIG"][len(m["mountPath"].rstrip("/")) + 1:]
                        for item in cm.get("items", []):
                            if item["path"] == key:
                                key = item["key"]
                        config_text = configmaps.get(cm["name"], {}).get(key)
                if config_text is None:
                    check.fail(f"{name} {c['name']}: TD_CONFIG {env['TD_CONFIG']} is not a "
                               f"mounted ConfigMap key")
            argv = [expand_k8s(a, env) for a in c.get("command", []) + c.get("args", [])]
            for line in td_command_lines(argv):
                seen += 1
                check_invocation(check, binaries, f"{name} {c['name']}", line, env, config_text,
                                 path_map, src)

    # systemd: ExecStart's flags and the example EnvironmentFiles' names.
    systemd = os.path.join(src, "deploy", "systemd")
    with open(os.path.join(systemd, "td-coordinator@.service"), encoding="utf-8") as f:
        unit = f.read()
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M)
    env = {}
    for example in sorted(os.listdir(systemd)):
        if example.endswith(".env.example"):
            with open(os.path.join(systemd, example), encoding="utf-8") as f:
                for line in f:
                    if line.strip() and not line.lstrip().startswith("#"):
                        k, _, v = line.strip().partition("=")
                        env[k] = v
    for k, v in re.findall(r"^Environment=(\w+)=(.*)$", unit, re.M):
        env[k] = v
    config_text = None
    if env.get("TD_CONFIG") == "/etc/td/coordinator.yaml":
        with open(os.path.join(src, "deploy", "config", "coordinator.yaml"), encoding="utf-8") as f:
            config_text = f.read()
    if exec_start:
        argv = shlex.split(exec_start.group(1).replace("%i", "instance-a"))
        seen += 1
        check_invocation(check, binaries, "td-coordinator@.service", argv, env, config_text,
                         path_map, src)
    else:
        check.fail("td-coordinator@.service: no ExecStart")
    if seen < 8:
        check.fail(f"only {seen} td-* invocations found in compose, k8s and systemd (expected "
                   f"2 coordinators + 3 workers in compose, the k8s Deployment and Job, systemd)")
    check.note(f"{seen} invocations checked")


def code_topics(src):
    with open(os.path.join(src, "protocol", "protocol.h"), encoding="utf-8") as f:
        names = set(re.findall(r'prefix_ \+ "([a-z.-]+)"', f.read()))
    names.discard("assign.")
    with open(os.path.join(src, "broker", "server.h"), encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"kTopics = \{(.*?)\};", text, re.S).group(1)
    broker = {t[len("td."):] for t in re.findall(r'"([a-z.-]+)"', block)}
    with open(os.path.join(src, "coordinator", "shell", "service.cpp"), encoding="utf-8") as f:
        text = f.read()
    body = re.search(r"Service::checkPartitionCounts\([^)]*\) \{(.*?)\n\}", text, re.S).group(1)
    same = set(re.findall(r"topics\.(\w+)\(\)", body))
    camel = {"stepStats": "step-stats"}
    same = {camel.get(t, t) for t in same}
    return names, broker, same


def dry_run(src, args):
    r = subprocess.run(["bash", os.path.join(src, "deploy", "create-topics.sh"), "--dry-run"] + args,
                       capture_output=True, text=True, timeout=30)
    topics = {}
    for line in r.stdout.splitlines():
        words = shlex.split(line)
        if "--create" not in words:
            continue
        name = words[words.index("--topic") + 1]
        configs = dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "--config")
        topics[name] = (int(words[words.index("--partitions") + 1]), configs)
    return r.returncode, topics, r.stderr


def check_topics(check, src):
    names, broker, same = code_topics(src)
    if names != broker:
        check.fail(f"protocol.h topics {sorted(names)} differ from td-broker's {sorted(broker)}")
    if not same:
        check.fail("could not read the topics of Service::checkPartitionCounts")
    # The four that must agree: the coordinator's check plus td.joins (its replies go to the
    # registration's partition).
    must_agree = same | {"joins"}
    compacted = {"state", "step-stats"}
    retained = {"events", "dlq", "logs"}
    # The invocations in compose and the topic Job, plus a prefix of our own.
    compose = load_all(os.path.join(src, "deploy", "compose", "compose.yaml"))[0]
    invocations = [("compose.yaml", compose["services"]["topics"]["command"])]
    for name, doc in k8s_docs(src):
        spec = pod_spec(doc)
        for c in (spec or {}).get("containers", []):
            if any("create-topics.sh" in w for w in c.get("command", [])):
                invocations.append((name, c.get("args", [])))
    if len(invocations) < 2:
        check.fail("create-topics.sh is not run by both compose.yaml and a k8s Job")
    invocations.append(("--prefix ci.td.", ["--bootstrap-server", "k:9092", "--prefix", "ci.td.",
                                            "--partitions", "5"]))
    coordinators = {"compose.yaml": sum(1 for svc in compose["services"].values()
                                        if (svc.get("command") or [""])[0] == "td-coordinator")}
    _, deployment, _ = coordinator_deployment(src)
    replicas = deployment["spec"].get("replicas", 1) if deployment else 0
    for where, args in invocations:
        args = [str(a) for a in args]
        prefix = args[args.index("--prefix") + 1] if "--prefix" in args else "td."
        partitions = int(args[args.index("--partitions") + 1]) if "--partitions" in args else None
        code, topics, err = dry_run(src, args)
        if code != 0:
            check.fail(f"{where}: create-topics.sh --dry-run exited {code}: {err.strip()}")
            continue
        expected = {prefix + n for n in names}
        if set(topics) != expected:
            check.fail(f"{where}: creates {sorted(topics)}, the code uses {sorted(expected)}")
        counts = {t: topics[prefix + t][0] for t in must_agree if prefix + t in topics}
        if len(set(counts.values())) != 1:
            check.fail(f"{where}: {', '.join(sorted(must_agree))} need one partition count: {counts}")
        elif partitions is not None and set(counts.values()) != {partitions}:
            check.fail(f"{where}: --partitions {partitions} but the topics get {counts}")
        for t in compacted:
            if topics.get(prefix + t, (0, {}))[1].get("cleanup.policy") != "compact":
                check.fail(f"{where}: {prefix}{t} is not cleanup.policy=compact")
        for t in retained | must_agree - {"state"}:
            if topics.get(prefix + t, (0, {}))[1].get("cleanup.policy", "delete") != "delete":
                check.fail(f"{where}: {prefix}{t} must not be compacted")
        for t in retained:
            if "retention.ms" not in topics.get(prefix + t, (0, {}))[1]:
                check.fail(f"{where}: {prefix}{t} has no retention.ms")
        n = coordinators.get(where) or (replicas if where.endswith(".yaml") and where != "compose.yaml" else 0)
        if counts and n > next(iter(counts.values())):
            check.fail(f"{where}: {n} coordinators but only {next(iter(counts.values()))} partitions")
    # The script's own check of existing topics, against a stand-in kafka-topics.sh.
    with tempfile.TemporaryDirectory() as tmp:
        fake = os.path.join(tmp, "kafka-topics.sh")
        with open(fake, "w", encoding="utf-8") as f:
            f.write('#!/bin/bash\ncase "$*" in *--describe*--topic\\ td.state*) '
                    'echo "Topic: td.state PartitionCount: ${STATE_COUNT} ReplicationFactor: 1";;\n'
                    '*--describe*) echo "Topic: x PartitionCount: 4 ReplicationFactor: 1";;\nesac\n')
        os.chmod(fake, 0o755)
        for state_count, want in (("4", 0), ("8", 1)):
            env = dict(os.environ, KAFKA_TOPICS=fake, STATE_COUNT=state_count)
            r = subprocess.run(["bash", os.path.join(src, "deploy", "create-topics.sh"),
                                "--bootstrap-server", "k:9092", "--partitions", "4"],
                               env=env, capture_output=True, text=True, timeout=30)
            if r.returncode != want:
                check.fail(f"create-topics.sh with an existing td.state of {state_count} of 4 "
                           f"partitions exited {r.returncode}, expected {want}: {r.stderr.strip()}")


def acls_dry_run(src, args):
    """create-acls.sh --dry-run ARGS: (exit code, ACL set, kafka-acls.sh calls, stderr). An ACL
    is (principal, pattern, operation, resource type, name)."""
    r = subprocess.run(["bash", os.path.join(src, "deploy", "create-acls.sh"), "--dry-run",
                        "--bootstrap-server", "k:9092"] + args,
                       capture_output=True, text=True, timeout=30)
    acls, calls = set(), 0
    for line in r.stdout.splitlines():
        words = shlex.split(line)
        if "--add" not in words:
            continue
        calls += 1
        principal = words[words.index("--allow-principal") + 1]
        pattern = words[words.index("--resource-pattern-type") + 1]
        ops = [words[i + 1] for i, w in enumerate(words) if w == "--operation"]
        resources = [(w[2:], words[i + 1]) for i, w in enumerate(words)
                     if w in ("--topic", "--group", "--transactional-id", "--cluster")]
        for op in ops:
            for kind, name in resources:
                acls.add((principal, pattern, op, kind, name))
    return r.returncode, acls, calls, r.stderr


def documented_acls(path, heading, resource_column, pattern_column=None):
    """The ACL table under `heading` in a doc: rows `| coordinator | ...` or `| worker | ...`."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start = text.index(heading)
    acls = set()
    for line in text[start:].splitlines()[1:]:
        if line.startswith("#"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or cells[0] not in ("coordinator", "worker"):
            continue
        principal = f"User:td-{cells[0]}"
        resources = cells[resource_column]
        ops_cell = cells[resource_column - 1]
        for segment in resources.split(";"):
            segment = segment.strip()
            kind = ("transactional-id" if segment.startswith("transactional")
                    else "group" if segment.startswith("group") else "topic")
            if pattern_column is not None:
                pattern = cells[pattern_column]
            else:
                pattern = "prefixed" if "prefixed" in segment else "literal"
            for name in re.findall(r"`([^`]+)`", segment):
                for op in [o.strip() for o in ops_cell.split(",")]:
                    acls.add((principal, pattern, op, kind, name))
    return acls


def check_acls(check, src):
    names, _, _ = code_topics(src)
    code, full, calls, err = acls_dry_run(src, ["--exactly-once"])
    if code != 0:
        check.fail(f"create-acls.sh --dry-run --exactly-once exited {code}: {err.strip()}")
        return
    # Both docs list exactly what the script grants (defaults, admin mode, --exactly-once).
    for path, heading, columns in (
            (os.path.join(src, "docs", "configuration.md"), "### ACLs", (2, None)),
            (os.path.join(src, "deploy", "README.md"), "## ACLs: create-acls.sh", (3, 1))):
        documented = documented_acls(path, heading, *columns)
        rel = os.path.relpath(path, src)
        for acl in sorted(full - documented):
            check.fail(f"{rel} does not list {acl}, which create-acls.sh grants")
        for acl in sorted(documented - full):
            check.fail(f"{rel} lists {acl}, which create-acls.sh does not grant")
    # What the code uses: the topics of protocol.h, the coordinator's default group and its
    # transactional.id (<consumer-group>.<coordinator-id>).
    with open(os.path.join(src, "coordinator", "shell", "service.h"), encoding="utf-8") as f:
        group = re.search(r'consumer_group = "([^"]+)"', f.read()).group(1)
    with open(os.path.join(src, "coordinator", "kafka", "kafka_port.cpp"), encoding="utf-8") as f:
        if not re.search(r'"transactional\.id", o\.consumer_group \+ "\." \+', f.read()):
            check.fail("kafka_port.cpp's transactional.id is no longer <consumer-group>.<id>")
    for principal, pattern, op, kind, name in full:
        if kind == "topic" and not (name[len("td."):] in names or name == "td.assign."):
            check.fail(f"create-acls.sh names topic {name}, which protocol.h does not have")
        if kind in ("group", "transactional-id") and not name.startswith(group):
            check.fail(f"create-acls.sh names {kind} {name}; the coordinator's group is {group}")
    # Workers can forge nothing the coordinators write.
    for principal, pattern, op, kind, name in full:
        if principal == "User:td-worker" and op != "Read" and name in ("td.joins", "td.assign.",
                                                                      "td.events", "td.state"):
            check.fail(f"workers may {op} {name}")
    if calls != 7:
        check.fail(f"create-acls.sh --exactly-once makes {calls} kafka-acls.sh calls, not 7")
    # Without --exactly-once no transactional id; with --assign-topics auto no Delete.
    _, default, _, _ = acls_dry_run(src, [])
    if default != {a for a in full if a[3] != "transactional-id"}:
        check.fail("create-acls.sh without --exactly-once grants more than transactional ids less")
    _, auto, _, _ = acls_dry_run(src, ["--assign-topics", "auto"])
    if auto != {a for a in default if a[2] != "Delete"}:
        check.fail("create-acls.sh --assign-topics auto differs from the default by more than Delete")
    # Another prefix, group and principals: every name moves with them.
    _, other, _, _ = acls_dry_run(src, ["--prefix", "ci.td.", "--consumer-group", "ci-coord",
                                        "--coordinator-principal", "User:c",
                                        "--worker-principal", "User:w", "--exactly-once"])
    moved = {("User:c" if p == "User:td-coordinator" else "User:w", pat, op, kind,
              ("ci.td." + n[len("td."):]) if kind == "topic"
              else "ci-coord" + n[len(group):])
             for p, pat, op, kind, n in full}
    if other != moved:
        check.fail(f"create-acls.sh --prefix ci.td. --consumer-group ci-coord: "
                   f"{sorted(other ^ moved)} differ")
    for bad in (["--assign-topics", "both"], ["--worker-principal", "td-worker"], ["--what"]):
        code, _, _, _ = acls_dry_run(src, bad)
        if code != 2:
            check.fail(f"create-acls.sh {' '.join(bad)} exited {code}, expected 2 (usage)")
    if not check.failures:
        check.note(f"{len(full)} ACLs in {calls} kafka-acls.sh calls, as both docs list them")


def shell_scripts(src):
    scripts = [os.path.join(src, "scripts", "td")]
    for root, _, files in os.walk(os.path.join(src, "deploy")):
        scripts += [os.path.join(root, f) for f in files if f.endswith(".sh")]
    return sorted(scripts)


def check_shell(check, src):
    with tempfile.TemporaryDirectory() as tmp:
        files = shell_scripts(src)
        # bash -c scripts embedded in compose and the k8s pods.
        embedded = []
        compose = load_all(os.path.join(src, "deploy", "compose", "compose.yaml"))[0]
        commands = [("compose.yaml " + s, (svc.get("healthcheck") or {}).get("test", []))
                    for s, svc in compose["services"].items()]
        for name, doc in k8s_docs(src):
            for c in (pod_spec(doc) or {}).get("initContainers", []) + \
                    (pod_spec(doc) or {}).get("containers", []):
                commands.append((f"{name} {c['name']}", c.get("command", [])))
        for where, command in commands:
            if len(command) > 2 and "bash" in command and "-c" in command:
                path = os.path.join(tmp, f"embedded{len(embedded)}.sh")
                with open(path, "w", encoding="utf-8") as f:
                    f.write("#!/usr/bin/env bash\n" + command[command.index("-c") + 1] + "\n")
                embedded.append((where, path))
        for path in files + [p for _, p in embedded]:
            label = dict((p, w) for w, p in embedded).get(path, os.path.relpath(path, src))
            r = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
            if r.returncode != 0:
                check.fail(f"bash -n {label}: {r.stderr.strip()}")
        shellcheck = shutil.which("shellcheck")
        if not shellcheck:
            check.note("shellcheck not installed: only bash -n")
            return
        for path in files + [p for _, p in embedded]:
            label = dict((p, w) for w, p in embedded).get(path, os.path.relpath(path, src))
            r = subprocess.run([shellcheck, "-s", "bash", path], capture_output=True, text=True)
            if r.returncode != 0:
                check.fail(f"shellcheck {label}:\n{r.stdout.strip()}")
        check.note(f"shellcheck: {len(files)} scripts, {len(embedded)} embedded")


def check_systemd(check, src, coordinator_bin):
    path = os.path.join(src, "deploy", "systemd", "td-coordinator@.service")
    with open(path, encoding="utf-8") as f:
        unit = f.read()
    required = [r"^ExecStart=\S*td-coordinator\b.*--coordinator-id %i\b",
                r"^EnvironmentFile=", r"^(DynamicUser=yes|User=\S+)", r"^NoNewPrivileges=yes",
                r"^ProtectSystem=strict", r"^Restart=on-failure", r"^PrivateTmp=yes",
                r"^CapabilityBoundingSet=$"]
    for pattern in required:
        if not re.search(pattern, unit, re.M):
            check.fail(f"td-coordinator@.service: nothing matches {pattern}")
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        check.note("systemd-analyze not installed: the unit was not verified")
        return
    with tempfile.TemporaryDirectory() as tmp:
        # verify needs ExecStart's binary to exist: point it at the one built here.
        instance = os.path.join(tmp, "td-coordinator@test.service")
        with open(instance, "w", encoding="utf-8") as f:
            f.write(re.sub(r"^ExecStart=\S+", f"ExecStart={coordinator_bin}", unit, flags=re.M))
        r = subprocess.run([analyze, "verify", instance], capture_output=True, text=True,
                           timeout=60)
    # verify exits 0 after warnings such as unknown keys, so any line about the unit fails.
    lines = [l for l in (r.stdout + r.stderr).splitlines() if "td-coordinator@" in l]
    if r.returncode != 0 or lines:
        if "Failed to connect to bus" in r.stderr or "System has not been booted" in r.stderr:
            check.skipped = f"systemd-analyze verify cannot run here: {r.stderr.strip()}"
            return
        check.fail("systemd-analyze verify: " + "\n".join(lines or [r.stderr.strip()]))
    else:
        check.note("systemd-analyze verify: clean")


def dockerfile_stages(src):
    with open(os.path.join(src, "deploy", "Dockerfile"), encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    stages = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            current = m.group(2) or m.group(1)
            stages[current] = {"from": m.group(1), "lines": []}
        elif current:
            stages[current]["lines"].append(line)
    return stages


def apt_installs(lines):
    packages = []
    for line in lines:
        if not line.upper().startswith("RUN"):
            continue
        for m in re.finditer(r"apt-get\s+install\s+([^&;|]*)", line):
            packages += [w for w in m.group(1).split() if not w.startswith("-")]
    return packages


def needed_packages(binaries):
    """Debian packages of the libraries the binaries link directly (readelf NEEDED)."""
    packages = {}
    for binary in binaries:
        r = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True)
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        for soname in re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", r.stdout):
            m = re.search(re.escape(soname) + r" => (\S+)", ldd)
            path = os.path.realpath(m.group(1)) if m else soname
            owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
            if owner.returncode != 0:  # /lib vs /usr/lib (merged /usr)
                owner = subprocess.run(["dpkg", "-S", path.replace("/usr/lib/", "/lib/")],
                                       capture_output=True, text=True)
            package = owner.stdout.split(":")[0].strip() if owner.returncode == 0 else None
            packages.setdefault(package or f"? {soname}", set()).add(
                f"{os.path.basename(binary)}:{soname}")
    return packages


def check_dockerfile(check, src, bins):
    stages = dockerfile_stages(src)
    build = stages.get("build")
    runtime = stages.get("runtime")
    if not build or not runtime:
        check.fail(f"Dockerfile: stages 'build' and 'runtime' expected, found {sorted(stages)}")
        return
    for name, stage in (("build", build), ("runtime", runtime)):
        if not re.match(r"debian:bookworm(-slim)?$", stage["from"]):
            check.fail(f"Dockerfile: stage {name} is FROM {stage['from']}, not Debian 12 (bookworm)")
    # Build stage: CI's installer and build, no package list of its own.
    runs = " ".join(l for l in build["lines"] if l.upper().startswith("RUN"))
    for sub in ("deps", "build"):
        if not re.search(rf"scripts/td {sub}\b", runs):
            check.fail(f"Dockerfile build stage: does not run `scripts/td {sub}` (CI's commands)")
    if apt_installs(build["lines"]):
        check.fail(f"Dockerfile build stage installs {apt_installs(build['lines'])} itself; "
                   f"scripts/td owns the package list")
    if re.search(r"^\s*(cmake|make|ninja)\b", runs.replace("RUN", "\n"), re.M):
        check.fail("Dockerfile build stage builds with its own cmake/make, not scripts/td build")
    # Runtime stage: exactly the runtime packages of what the binaries link.
    listed = set(apt_installs(runtime["lines"]))
    needed = needed_packages(bins)
    for package, users in sorted(needed.items()):
        if package in BASE_PACKAGES:
            continue
        if package not in listed:
            check.fail(f"Dockerfile runtime stage lacks {package} (for {', '.join(sorted(users))})")
    extra = listed - set(needed) - {"ca-certificates"}
    for package in sorted(extra):
        if package in PENDING_PACKAGES:
            check.note(f"runtime {package}: linked by no binary built here yet (pending change)")
        else:
            check.fail(f"Dockerfile runtime stage installs {package}, which no binary links")
    apt_cache = shutil.which("apt-cache")
    if apt_cache:
        for package in sorted(listed):
            r = subprocess.run([apt_cache, "show", "--no-all-versions", package],
                               capture_output=True, text=True)
            if r.returncode != 0 or not r.stdout.strip():
                check.fail(f"Dockerfile runtime stage: no Debian package {package}")
    users = [l.split()[1] for l in runtime["lines"] if l.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        check.fail("Dockerfile runtime stage does not end as a non-root USER")
    copies = " ".join(l for l in runtime["lines"] if l.upper().startswith("COPY --FROM=BUILD"))
    builds = " ".join(build["lines"])
    for b in ("td-coordinator", "td-worker", "td-audit"):
        if b not in builds or not copies:
            check.fail(f"Dockerfile: {b} does not reach the runtime stage")
    for path in ("examples/", "deploy/create-topics.sh"):
        if not any(l.upper().startswith("COPY") and path in l for l in runtime["lines"]):
            check.fail(f"Dockerfile runtime stage does not copy {path} (used by compose/k8s)")


def check_docs(check, src):
    readme = os.path.join(src, "deploy", "README.md")
    if not os.path.exists(readme):
        check.fail("deploy/README.md is missing")
        return
    with open(readme, encoding="utf-8") as f:
        rows = [l for l in f.read().splitlines() if l.startswith("| `")]
    deploy = os.path.join(src, "deploy")
    for root, _, files in os.walk(deploy):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), deploy)
            if rel != "README.md" and not any(f"`{rel}`" in row for row in rows):
                check.fail(f"deploy/README.md's table of files does not describe {rel}")
    for doc, link in (("README.md", "deploy/README.md"),
                      ("docs/operations.md", "../deploy/README.md")):
        with open(os.path.join(src, doc), encoding="utf-8") as f:
            if f"]({link})" not in f.read():
                check.fail(f"{doc} does not link {link}")


CHECKS = ["yaml", "k8s", "coordinators", "options", "topics", "acls", "shell", "systemd",
          "dockerfile", "docs"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--audit", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--only", action="append", choices=CHECKS)
    args = parser.parse_args()
    src = os.path.abspath(args.source_dir)
    for name in ("coordinator", "worker", "audit", "broker"):
        setattr(args, name, os.path.abspath(getattr(args, name)))
    binaries = Binaries(args.coordinator, args.worker)
    bins = [args.coordinator, args.worker, args.audit, args.broker]
    run = {
        "yaml": lambda c: check_yaml(c, src),
        "k8s": lambda c: check_k8s(c, src),
        "coordinators": lambda c: check_coordinators(c, src),
        "options": lambda c: check_options(c, src, binaries),
        "topics": lambda c: check_topics(c, src),
        "acls": lambda c: check_acls(c, src),
        "shell": lambda c: check_shell(c, src),
        "systemd": lambda c: check_systemd(c, src, args.coordinator),
        "dockerfile": lambda c: check_dockerfile(c, src, bins),
        "docs": lambda c: check_docs(c, src),
    }
    failed = 0
    for name in args.only or CHECKS:
        check = Check(name)
        try:
            run[name](check)
        except Exception as e:  # a crash in a check is that check's failure, reported as such
            check.fail(f"{type(e).__name__}: {e}")
        if check.failures:
            failed += 1
            print(f"FAIL {name}")
            for f in check.failures:
                print("     " + f.replace("\n", "\n     "))
        elif check.skipped:
            print(f"skip {name}: {check.skipped}")
        else:
            print(f"ok   {name}" + (f" ({'; '.join(check.notes)})" if check.notes else ""))
            continue
        for n in check.notes:
            print("     note: " + n)
    print(f"{failed} of {len(args.only or CHECKS)} checks failed" if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
