"""metrics-server, which the elastic apiservers' HPA reads CPU from, installed when the stack
asks (`elasticApiserver.installMetricsServer`). Pure.

The release is upstream's own `components.yaml`, pinned per Kubernetes minor by upstream's
compatibility matrix (kubernetes-sigs/metrics-server README, "Compatibility Matrix": 0.9.x
for 1.34+, 0.8.x for 1.31+, 0.7.x for 1.27+), applied from its release URL by
pulumi_kubernetes. It scrapes every kubelet over TLS and verifies the kubelet's serving
certificate against the cluster CA (README, "Requirements"): a kubeadm cluster needs signed
kubelet serving certificates (`serverTLSBootstrap: true`, CSRs approved) for it to report.
"""

from __future__ import annotations

# (lowest Kubernetes minor, release), newest first.
RELEASES = ((34, "v0.9.0"), (31, "v0.8.1"), (27, "v0.7.2"))
RELEASE_URL = "https://github.com/kubernetes-sigs/metrics-server/releases/download/{}/components.yaml"
# What the release registers: the aggregated API and the Service behind it.
APISERVICE = "v1beta1.metrics.k8s.io"
SERVICE = "kube-system/metrics-server"


def release_for(minor: tuple[int, int]) -> str | None:
    """The newest release that supports this Kubernetes minor (None: none does)."""
    return next((v for lowest, v in RELEASES if minor >= (1, lowest)), None)


def release_url(version: str) -> str:
    return RELEASE_URL.format(version)
