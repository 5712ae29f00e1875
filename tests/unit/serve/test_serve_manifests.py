"""The Kubernetes manifests of the model server validate offline and reference each other correctly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

K8S = Path(__file__).resolve().parents[3] / "deploy" / "k8s" / "serve"


def _docs() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out[doc["kind"]] = doc
    return out


def test_manifests_validate_strictly_against_the_kubernetes_schema() -> None:
    docs = _docs()
    assert set(docs) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    version = kubernetes_validate.latest_version()
    for doc in docs.values():
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError


def test_invalid_manifest_is_caught_by_the_validator() -> None:
    broken = _docs()["Deployment"]
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_service_hpa_and_deployment_reference_each_other() -> None:
    docs = _docs()
    dep, svc, hpa = docs["Deployment"], docs["Service"], docs["HorizontalPodAutoscaler"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    container = dep["spec"]["template"]["spec"]["containers"][0]
    port_names = {p["name"] for p in container["ports"]}
    assert svc["spec"]["ports"][0]["targetPort"] in port_names
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", dep["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "requests" in container["resources"]  # CPU utilisation needs requests


def test_container_runs_scaleforge_serve_with_open_health_probes() -> None:
    container = _docs()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    argv = container["command"] + container["args"]
    assert argv[:2] == ["scaleforge", "serve"] and "--workers" in argv
    port = int(argv[argv.index("--port") + 1])
    assert port == container["ports"][0]["containerPort"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"  # the only endpoint open without a token
    env = {e["name"] for e in container["env"]}
    assert {"SCALEFORGE_MONITOR__MULTIPROCESS_DIR", "SCALEFORGE_SERVE__TOKENS"} <= env
