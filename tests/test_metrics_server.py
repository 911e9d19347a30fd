"""metrics-server on request (`elasticApiserver.installMetricsServer`): upstream's release,
pinned per Kubernetes minor, applied from its URL. The releases themselves are checked here
through local copies (tests/fixtures/metrics-server, each built from its tag as upstream's
Makefile builds the release artifact): they validate strictly, and register what the
preflight looks for before installing."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kube_ha.config import ConfigError, parse_cluster
from kube_ha.elastic import metrics_server
from tests.mocks import plain
from tests.program import dev_stack, run_program

FIXTURES = Path(__file__).parent / "fixtures" / "metrics-server"


@pytest.mark.parametrize("minor, release", [
    ((1, 37), "v0.9.0"), ((1, 34), "v0.9.0"), ((1, 33), "v0.8.1"), ((1, 31), "v0.8.1"),
    ((1, 30), "v0.7.2"), ((1, 27), "v0.7.2"), ((1, 26), None)])
def test_the_release_follows_upstreams_compatibility_matrix(minor: tuple[int, int],
                                                            release: str | None) -> None:
    assert metrics_server.release_for(minor) == release


def test_a_kubernetes_no_release_supports_is_refused_naming_the_key() -> None:
    raw = dev_stack()
    raw["kubernetesVersion"] = "v1.26.15"
    raw["elasticApiserver"]["installMetricsServer"] = True
    with pytest.raises(ConfigError) as err:
        parse_cluster(raw)
    assert err.value.keys == ["elasticApiserver.installMetricsServer"], str(err.value)
    raw["elasticApiserver"]["installMetricsServer"] = False
    assert parse_cluster(raw).elastic_apiserver.install_metrics_server is False


@pytest.mark.parametrize("lowest, release", metrics_server.RELEASES)
def test_each_pinned_release_validates_and_registers_what_the_preflight_checks(
        lowest: int, release: str) -> None:
    docs = [d for d in yaml.safe_load_all((FIXTURES / f"{release}.yaml").read_text()) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, f"1.{max(lowest, 29)}", strict=True)
    (apiservice,) = [d for d in docs if d["kind"] == "APIService"]
    assert apiservice["metadata"]["name"] == metrics_server.APISERVICE
    service = apiservice["spec"]["service"]
    assert f"{service['namespace']}/{service['name']}" == metrics_server.SERVICE
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"registry.k8s.io/metrics-server/metrics-server:{release}"
    # As released: the kubelets' serving certificates are verified (README says what that
    # needs on a kubeadm cluster).
    assert "--kubelet-insecure-tls" not in container["args"]


def test_the_program_applies_the_pinned_release_before_the_hpa() -> None:
    raw = dev_stack()
    raw["elasticApiserver"]["installMetricsServer"] = True
    run = run_program(raw)
    name = "kubernetes-elastic-apiserver-metrics-server"
    assert run.reg(name).typ == "kubernetes:yaml/v2:ConfigFile"
    assert plain(run.inputs(name))["file"] == (
        "https://github.com/kubernetes-sigs/metrics-server/releases/download/v0.8.1/"
        "components.yaml")  # kubernetesVersion v1.32.3
    assert name in run.upstream("kubernetes-elastic-apiserver-hpa")
    without = run_program(dev_stack())
    assert not any(r.typ == "kubernetes:yaml/v2:ConfigFile" for r in without.mocks.resources)
