"""deploy/kubernetes: the fleet's kustomize base and overlays, checked without a cluster.

* Every manifest — the base's resource files as committed, and the base and each overlay as kustomize
  renders them — validates against the Kubernetes JSON schemas of ``kubernetes-validate`` (bundled in the
  wheel, read offline), strictly (an unknown field is an error), for the oldest Kubernetes the manifests
  need (1.29: ``backoffLimitPerIndex``, ``FailIndex``) and the newest the package knows.
* ``kustomize build`` is the real kustomize: a ``kustomize`` binary, else ``kubectl kustomize`` (kubectl
  embeds kustomize). The build must be clean: exit 0 and nothing on stderr (kustomize warns there).
* What kustomize cannot tie together is checked here: the shard count of each overlay (Job completions
  and parallelism, StatefulSet replicas, GATEWAYD_FLEET_SHARDS), the fleet's size per shard, the ops port
  of fleet.yaml against the probes, the container port and the scrape annotations.
* No credential is committed: the secretGenerator reads an ignored file, whose committed example is empty.
* The Job's wrapper (the shell script that prints the shard's report after gatewayd exits) runs here for
  real, around a stand-in gatewayd.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gatewayd.cli import build_parser
from gatewayd.inventory.config import Inventory
from tests.helpers.tools import missing_tool

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
BASE = DEPLOY / "base"
#: Each overlay and its shard count.
OVERLAYS = {"small": 3, "large": 100}
#: Gateways of one shard: what shard-pod.yaml's resources are sized for.
GATEWAYS_PER_SHARD = 1000
#: The oldest Kubernetes the manifests need (Indexed Job backoffLimitPerIndex, podFailurePolicy FailIndex:
#: beta and on by default since 1.29) and the newest whose schemas kubernetes-validate bundles.
K8S_VERSIONS = ("1.29.0", str(kubernetes_validate.latest_version()))
#: The values the tests' credentials.env holds: they may appear in a rendered Secret, nowhere committed.
TEST_CREDENTIAL = "test-only-not-a-secret"
REPORT_MARKER = "==> gatewayd fleet report <=="


def load_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def kustomization(directory: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8")))


def validate(doc: dict[str, Any], where: str) -> None:
    """``doc`` against the schemas of every version in K8S_VERSIONS, strictly; fail naming ``where``."""
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            pytest.fail(
                f"{where}: {doc['kind']}/{doc['metadata']['name']} at {path}: {exc.message} (k8s {version})"
            )


def kustomize_command() -> list[str]:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    missing_tool(
        "neither kustomize nor kubectl is on PATH: kustomize build cannot run (no current kustomize is "
        "packaged by Debian, npm or PyPI; kubectl >= 1.21 embeds one)"
    )


def credential_keys() -> list[str]:
    """The keys of the committed credentials.env.example, checking every value is empty."""
    keys = []
    for line in (BASE / "credentials.env.example").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"credentials.env.example: {line!r} is not KEY=VALUE"
        assert value == "", (
            f"credentials.env.example: {key} has a value; the committed example must hold none"
        )
        keys.append(key)
    return keys


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """``kustomize build`` of the base and each overlay, in a copy of deploy/kubernetes given a
    credentials.env of test values (as a user creates it from the example)."""
    command = kustomize_command()
    tree = tmp_path_factory.mktemp("kubernetes") / "kubernetes"
    shutil.copytree(DEPLOY, tree)
    (tree / "base" / "credentials.env").write_text(
        "".join(f"{key}={TEST_CREDENTIAL}\n" for key in credential_keys()), encoding="utf-8"
    )
    builds = {}
    for name, directory in [("base", tree / "base")] + [(o, tree / "overlays" / o) for o in OVERLAYS]:
        done = subprocess.run([*command, str(directory)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(command)} {name}: exit {done.returncode}\n{done.stderr}"
        assert done.stderr == "", f"{' '.join(command)} {name} is not clean:\n{done.stderr}"
        builds[name] = load_all(done.stdout)
    return builds


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def workloads(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The Job and the StatefulSet."""
    yield only(docs, "Job")
    yield only(docs, "StatefulSet")


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (the_container,) = workload["spec"]["template"]["spec"]["containers"]
    return dict(the_container)


def env_config(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The data of the ConfigMap the shards take their environment from."""
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap" and "GATEWAYD_FLEET_SHARDS" in d["data"]]
    return dict(config_map["data"])


def fleet_template() -> dict[str, Any]:
    return dict(yaml.safe_load((BASE / "fleet.yaml").read_text(encoding="utf-8")))


# --------------------------------------------------------------------------------------------------
# Schemas


def test_committed_resources_validate() -> None:
    """The base's resource files as committed (not the patches: those are partial by design)."""
    resources = kustomization(BASE)["resources"]
    assert resources, "the base lists no resources"
    for name in resources:
        for doc in load_all((BASE / name).read_text(encoding="utf-8")):
            validate(doc, f"base/{name}")


@pytest.mark.parametrize("build", ["base", *OVERLAYS])
def test_rendered_manifests_validate(rendered: dict[str, list[dict[str, Any]]], build: str) -> None:
    docs = rendered[build]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        ["ConfigMap", "ConfigMap", "Secret", "Service", "PodDisruptionBudget", "Job", "StatefulSet"]
    )
    for doc in docs:
        validate(doc, f"kustomize build {build}")


# --------------------------------------------------------------------------------------------------
# Shards and sizing


@pytest.mark.parametrize(("overlay", "shards"), OVERLAYS.items())
def test_overlay_shard_count_agrees(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, shards: int
) -> None:
    docs = rendered[overlay]
    job, statefulset = workloads(docs)
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == shards
    assert job["spec"]["parallelism"] == shards
    assert statefulset["spec"]["replicas"] == shards
    env = env_config(docs)
    assert env["GATEWAYD_FLEET_SHARDS"] == str(shards)
    assert env["FLEET_GATEWAYS"] == str(shards * GATEWAYS_PER_SHARD)


@pytest.mark.parametrize(("overlay", "shards"), OVERLAYS.items())
def test_overlay_files_state_one_shard_count(overlay: str, shards: int) -> None:
    """The same agreement read from the overlay's own file: holds without a kustomize to render it."""
    spec = kustomization(DEPLOY / "overlays" / overlay)
    assert spec["resources"] == ["../../base"]
    assert spec["replicas"] == [{"name": "gatewayd-soak", "count": shards}]
    (generator,) = spec["configMapGenerator"]
    assert generator["behavior"] == "merge"
    literals = dict(item.split("=", 1) for item in generator["literals"])
    assert literals == {
        "GATEWAYD_FLEET_SHARDS": str(shards),
        "FLEET_GATEWAYS": str(shards * GATEWAYS_PER_SHARD),
    }
    (patch,) = spec["patches"]
    assert patch["target"]["kind"] == "Job"
    operations = {op["path"]: op["value"] for op in yaml.safe_load(patch["patch"])}
    assert operations == {"/spec/completions": shards, "/spec/parallelism": shards}


def test_shard_pods_are_hardened_sized_probed_and_scraped(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["small"]
    template = fleet_template()
    port = int(template["http"]["listen"].rsplit(":", 1)[1])
    for workload in workloads(docs):
        where = workload["kind"]
        pod = workload["spec"]["template"]
        assert pod["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "prometheus.io/path": "/metrics",
        }, where
        spec = pod["spec"]
        assert spec["automountServiceAccountToken"] is False, where
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001, where
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, where
        the_container = container(workload)
        assert the_container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
        }, where
        assert the_container["resources"] == {
            "requests": {"cpu": "1", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "256Mi"},
        }, where
        assert the_container["ports"] == [{"name": "http", "containerPort": port}], where
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert the_container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, (where, probe)
        mounts = {m["mountPath"]: m for m in the_container["volumeMounts"]}
        assert mounts[template["state_dir"]]["name"] == "state", where
        assert mounts["/etc/gatewayd"].get("readOnly") is True, where
        assert mounts["/run/secrets/gatewayd"].get("readOnly") is True, where
        env = {e["name"]: e["value"] for e in the_container["env"]}
        assert env["GATEWAYD_FLEET_REPORT"].startswith(template["state_dir"] + "/"), where
        assert "JOB_COMPLETION_INDEX" not in env, "the Job controller sets it; the manifest must not"
    job, statefulset = workloads(docs)
    assert {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}["state"]["emptyDir"]
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert job["spec"]["activeDeadlineSeconds"] > int(container(job)["args"][-1]), "deadline past --duration"


def test_service_and_disruption_budget_select_the_right_pods(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["small"]
    job, statefulset = workloads(docs)
    service = only(docs, "Service")
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert job["spec"]["template"]["spec"]["subdomain"] == service["metadata"]["name"]
    pdb = only(docs, "PodDisruptionBudget")

    def selects(selector: dict[str, str], workload: dict[str, Any]) -> bool:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        return all(labels.get(k) == v for k, v in selector.items())

    assert selects(service["spec"]["selector"], job) and selects(service["spec"]["selector"], statefulset)
    assert selects(pdb["spec"]["selector"]["matchLabels"], statefulset)
    assert not selects(pdb["spec"]["selector"]["matchLabels"], job)
    assert (
        statefulset["spec"]["selector"]["matchLabels"].items()
        <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    )


def test_generated_config_reaches_the_pods(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The ConfigMaps and the Secret the pods name are the generated ones (hash-suffixed), the inventory
    is fleet.yaml byte for byte, and the two workloads run differently named fleets."""
    docs = rendered["small"]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    inventory = next(d for d in docs if d["kind"] == "ConfigMap" and "fleet.yaml" in d["data"])
    assert inventory["data"]["fleet.yaml"] == (BASE / "fleet.yaml").read_text(encoding="utf-8")
    runs = set()
    for workload in workloads(docs):
        spec = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert ("ConfigMap", volumes["inventory"]["configMap"]["name"]) in names
        assert ("Secret", volumes["credentials"]["secret"]["secretName"]) in names
        (env_from,) = container(workload)["envFrom"]
        assert ("ConfigMap", env_from["configMapRef"]["name"]) in names
        assert container(workload)["args"][:3] == ["fleet", "--config", "/etc/gatewayd/fleet.yaml"]
        runs.add(next(e["value"] for e in container(workload)["env"] if e["name"] == "FLEET_RUN"))
    assert len(runs) == 2, "the Job and the StatefulSet must be distinct fleets (gateway ids)"
    assert "${FLEET_RUN}" in fleet_template()["fleet"]["name"]


@pytest.mark.parametrize(("left_out", "kept"), [("soak", "Job"), ("loadtest", "StatefulSet")])
def test_one_workload_applies_alone(
    rendered: dict[str, list[dict[str, Any]]], left_out: str, kept: str
) -> None:
    """`kubectl apply -k ... -l 'app.kubernetes.io/component!=X'` (README) applies one workload with
    everything it names, and nothing of the other."""
    docs = rendered["small"]
    chosen = [
        d for d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") != left_out
    ]
    kinds = {d["kind"] for d in chosen}
    assert kept in kinds and ({"Job", "StatefulSet"} - {kept}).isdisjoint(kinds)
    assert ("PodDisruptionBudget" in kinds) == (kept == "StatefulSet")
    names = {(d["kind"], d["metadata"]["name"]) for d in chosen}
    workload = only(chosen, kept)
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    assert ("ConfigMap", volumes["inventory"]["configMap"]["name"]) in names
    assert ("Secret", volumes["credentials"]["secret"]["secretName"]) in names
    assert ("ConfigMap", container(workload)["envFrom"][0]["configMapRef"]["name"]) in names
    assert ("Service", "gatewayd-fleet") in names


# --------------------------------------------------------------------------------------------------
# Credentials


def test_no_credential_is_committed(rendered: dict[str, list[dict[str, Any]]]) -> None:
    keys = credential_keys()
    tracked = subprocess.run(
        ["git", "ls-files", "deploy"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "deploy/kubernetes/base/credentials.env" not in tracked
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/kubernetes/base/credentials.env"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "credentials.env must be git-ignored"
    for path in tracked:
        if path.endswith((".yaml", ".yml")):
            for doc in load_all((ROOT / path).read_text(encoding="utf-8")):
                assert doc.get("kind") != "Secret", f"{path} commits a Secret"
    # The generator reads exactly the example's keys, and fleet.yaml reads each as a mounted file.
    secret = only(rendered["small"], "Secret")
    assert sorted(secret["data"]) == sorted(keys)
    referenced = re.findall(r"\$\{file:/run/secrets/gatewayd/([a-z_]+)\}", (BASE / "fleet.yaml").read_text())
    assert sorted(referenced) == sorted(keys)


# --------------------------------------------------------------------------------------------------
# The inventory and the command the pods run


def test_fleet_template_passes_gatewayd_check(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """fleet.yaml with a pod's environment and credentials: `gatewayd check` accepts it. Until gatewayd
    knows the ``fleet:`` section (gatewayd.fleet), the rest of the template is checked without it."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for key in credential_keys():
        (secrets / key).write_text(TEST_CREDENTIAL, encoding="utf-8")
    text = (BASE / "fleet.yaml").read_text(encoding="utf-8").replace("/run/secrets/gatewayd/", f"{secrets}/")
    if "fleet" not in Inventory.model_fields:
        data = yaml.safe_load(text)
        del data["fleet"]
        text = yaml.safe_dump(data, sort_keys=False)
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(text.replace("/var/lib/gatewayd", str(tmp_path / "state")), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAYD_")}
    env.update(env_config(rendered["small"]), FLEET_RUN="loadtest")
    done = subprocess.run(
        [sys.executable, "-m", "gatewayd", "check", "--config", str(inventory)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def fleet_command_known() -> bool:
    """Whether this gatewayd has the `fleet` command (gatewayd.fleet, built on another branch)."""
    subcommands = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return any("fleet" in action.choices for action in subcommands)


def test_image_runs_the_fleet_command(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The Dockerfile's entrypoint is gatewayd: the StatefulSet's args run `gatewayd fleet ...`, the
    Job's wrapper runs `gatewayd "$@"` with the same args, under the image's /bin/sh (a Debian base)."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r'^ENTRYPOINT \["gatewayd"\]$', dockerfile, re.M)
    runtime_base = re.findall(r"^FROM (\S+)", dockerfile, re.M)[-1]
    assert "slim-bookworm" in runtime_base, f"the Job's wrapper needs /bin/sh in the image ({runtime_base})"
    job, statefulset = workloads(rendered["small"])
    assert "command" not in container(statefulset)
    assert container(job)["command"][:2] == ["/bin/sh", "-c"]
    assert 'gatewayd "$@" &' in container(job)["command"][2]
    if fleet_command_known():
        for workload in (job, statefulset):
            build_parser().parse_args(container(workload)["args"])


# --------------------------------------------------------------------------------------------------
# The Job's wrapper, run for real around a stand-in gatewayd

STAND_IN = """\
import json, os, signal, sys, time
report = os.environ["GATEWAYD_FLEET_REPORT"]
def finish(*_):
    print('{"event": "fleet.stopped"}', file=sys.stderr, flush=True)
    if os.environ.get("WRITE_REPORT") == "1":
        with open(report, "w") as f:
            json.dump({"format": "gatewayd-fleet-report/1", "argv": sys.argv[1:]}, f)
    sys.exit(int(os.environ.get("EXIT", "0")))
signal.signal(signal.SIGTERM, finish)
print('{"event": "fleet.running"}', file=sys.stderr, flush=True)
if os.environ.get("WAIT_FOR_TERM") == "1":
    open(report + ".running", "w").close()
    while True:
        time.sleep(0.05)
finish()
"""


@pytest.fixture
def wrapper(tmp_path: Path) -> Iterator[Any]:
    (job,) = load_all((BASE / "job.yaml").read_text(encoding="utf-8"))
    script = container(job)["command"][2]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "gatewayd"
    stand_in.write_text(f"#!{sys.executable}\n{STAND_IN}", encoding="utf-8")
    stand_in.chmod(0o755)
    report = tmp_path / "report.json"
    started: list[subprocess.Popen[str]] = []

    def start(**env: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            ["/bin/sh", "-c", script, "gatewayd-fleet", "fleet", "--config", "/etc/gatewayd/fleet.yaml"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "GATEWAYD_FLEET_REPORT": str(report), **env},
        )
        started.append(process)
        return process

    yield start, report
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("exit_code", [0, 1])
def test_job_wrapper_prints_the_report_last_and_keeps_the_exit_status(wrapper: Any, exit_code: int) -> None:
    start, _report = wrapper
    process = start(WRITE_REPORT="1", EXIT=str(exit_code))
    out, err = process.communicate(timeout=30)
    assert process.returncode == exit_code
    before, marker, after = out.partition(REPORT_MARKER + "\n")
    assert marker and before == "", out
    assert yaml.safe_load(after) == {
        "format": "gatewayd-fleet-report/1",
        "argv": ["fleet", "--config", "/etc/gatewayd/fleet.yaml"],
    }
    assert "fleet.stopped" in err


def test_job_wrapper_without_a_report_prints_no_marker(wrapper: Any) -> None:
    start, _report = wrapper
    process = start(WRITE_REPORT="0", EXIT="2")
    out, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert REPORT_MARKER not in out
    assert "exited 2 without a report" in err


def test_job_wrapper_passes_sigterm_on(wrapper: Any) -> None:
    """A deleted Job or a drain sends SIGTERM to the wrapper (PID 1): gatewayd gets it, stops cleanly,
    and its report is still printed."""
    start, report = wrapper
    process = start(WRITE_REPORT="1", WAIT_FOR_TERM="1", EXIT="0")
    running = Path(str(report) + ".running")
    deadline = time.monotonic() + 20
    while not running.exists():
        assert process.poll() is None and time.monotonic() < deadline, "the stand-in never started"
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    out, _err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert REPORT_MARKER in out
