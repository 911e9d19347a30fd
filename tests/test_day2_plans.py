"""Each day-2 edit of the README's table, planned: the exact steps `pulumi up` would create,
delete, forget (retained on delete: the provider is never called), replace and update, judged
by the pinned providers' own rules (tests/day2_plan.py). Remote steps, certificates and the
Kubernetes provider are pinned exactly; in-cluster objects are covered by their own tests.

Beside the pins, a guard over every edit: no step the engine would delete or replace runs a
delete script on a host (every per-node step is retained), no remote step reaches a node that
left the list, and the Kubernetes provider is never replaced."""

from __future__ import annotations

from typing import Any

import pytest

from tests.day2_plan import Edit, plan
from tests.harness.hosts import host
from tests.mocks import plain

PREFIX = "kubernetes-"  # the dev stack's clusterName, before every resource name
PINNED_TYPES = ("command:", "tls:", "pulumi:providers:")


def _add_control_plane(r: dict[str, Any]) -> None:
    r["controlPlane"].append(host("ubuntu-76", "10.21.22.76"))
    r["allowEvenControlPlane"] = True


def _remove_control_plane(r: dict[str, Any]) -> None:
    r["controlPlane"].pop()  # ubuntu-72; dead or alive, the plan is the same
    r["allowEvenControlPlane"] = True


def _remove_bootstrap(r: dict[str, Any]) -> None:
    r["controlPlane"].pop(0)  # ubuntu-73; ubuntu-70, the first left, becomes the bootstrap node
    r["allowEvenControlPlane"] = True


def _remove_worker(r: dict[str, Any]) -> None:
    r["workers"].pop()  # ubuntu-75, also an elastic pool node
    r["elasticApiserver"].update(poolNodes=["ubuntu-74"], maxReplicas=1)


def _to_virtual_ip(r: dict[str, Any]) -> None:
    r["endpoint"].update(address="10.21.22.100", virtualIp=True)
    r["loadBalancers"].append(host("haproxy-102", "10.21.22.102"))


EDITS: dict[str, Edit] = {
    "add a control-plane node": _add_control_plane,
    "remove a control-plane node": _remove_control_plane,
    "remove the bootstrap node": _remove_bootstrap,
    "add a worker": lambda r: r["workers"].append(host("ubuntu-76", "10.21.22.76")),
    "remove a worker": _remove_worker,
    "move the endpoint to another port": lambda r: r["endpoint"].update(port=7443),
    "move from one LB to a virtual IP": _to_virtual_ip,
    "switch node-local proxies on": lambda r: r.update(nodeLocalProxy=True),
    "switch the elastic apiserver off": lambda r: r["elasticApiserver"].update(enabled=False),
}

# A new name every apiserver must serve (a VIP, 127.0.0.1): every serving certificate is
# re-issued (tls: any input change replaces) and each node's steps install it.
EVERY_SERVING_CERTIFICATE = {
    f"{kind}-{part}" for kind in ("elastic-apiserver-serving", *(
        f"pki-apiserver-ubuntu-{n}" for n in (70, 72, 73))) for part in ("cert", "csr")}
EVERY_CONTROL_PLANE_NODE_STEP = {
    f"kubeadm-ubuntu-{n}-{step}" for n in (70, 72, 73)
    for step in ("control-plane", "serving-certificate")}

EXPECTED: dict[str, dict[str, set[str]]] = {
    'add a control-plane node': {
        'create': {
            'kubeadm-ubuntu-76-control-plane',
            'kubeadm-ubuntu-76-join-credentials',
            'kubeadm-ubuntu-76-membership',
            'kubeadm-ubuntu-76-serving-certificate',
            'pki-apiserver-ubuntu-76-cert',
            'pki-apiserver-ubuntu-76-csr',
            'pki-apiserver-ubuntu-76-key',
            'preflight-control-plane-ubuntu-76',
        },
        'update': {
            'kubeadm-revoke-join-credentials',
            'kubeadm-workers',
            'lb-haproxy-101-configure',
            'preflight-control-plane-ubuntu-70',
            'preflight-control-plane-ubuntu-72',
            'preflight-control-plane-ubuntu-73',
        },
    },
    'remove a control-plane node': {
        'create': {
            'kubeadm-ubuntu-72-retire',
        },
        'delete': {
            'kubeadm-ubuntu-72-join-credentials',
            'kubeadm-ubuntu-72-serving-certificate',
            'pki-apiserver-ubuntu-72-cert',
            'pki-apiserver-ubuntu-72-csr',
            'pki-apiserver-ubuntu-72-key',
            'preflight-control-plane-ubuntu-72',
        },
        'forget': {
            'kubeadm-ubuntu-72-control-plane',
            'kubeadm-ubuntu-72-membership',
        },
        'update': {
            'kubeadm-control-plane-removals',
            'kubeadm-revoke-join-credentials',
            'kubeadm-workers',
            'lb-haproxy-101-configure',
            'preflight-control-plane-ubuntu-70',
            'preflight-control-plane-ubuntu-73',
        },
    },
    'remove the bootstrap node': {
        'create': {
            'kubeadm-ubuntu-73-retire',
        },
        'delete': {
            'kubeadm-ubuntu-70-join-credentials',
            'kubeadm-ubuntu-73-serving-certificate',
            'pki-apiserver-ubuntu-73-cert',
            'pki-apiserver-ubuntu-73-csr',
            'pki-apiserver-ubuntu-73-key',
            'preflight-control-plane-ubuntu-73',
        },
        'forget': {
            'kubeadm-ubuntu-73-control-plane',
            'kubeadm-ubuntu-73-membership',
        },
        'update': {
            'access-read-admin-kubeconfig',
            'access-read-control-plane-files',
            'kubeadm-control-plane-removals',
            'kubeadm-kube-proxy',
            'kubeadm-revoke-join-credentials',
            'kubeadm-ubuntu-70-control-plane',
            'kubeadm-ubuntu-70-membership',
            'kubeadm-ubuntu-72-control-plane',
            'kubeadm-ubuntu-72-join-credentials',
            'kubeadm-ubuntu-72-membership',
            'kubeadm-ubuntu-74-join',
            'kubeadm-ubuntu-74-join-credentials',
            'kubeadm-ubuntu-75-join',
            'kubeadm-ubuntu-75-join-credentials',
            'kubeadm-workers',
            'lb-haproxy-101-configure',
            'pki-read-ca',
            'preflight-control-plane-ubuntu-70',
            'preflight-control-plane-ubuntu-72',
        },
    },
    'add a worker': {
        'create': {
            'kubeadm-ubuntu-76-join',
            'kubeadm-ubuntu-76-join-credentials',
            'preflight-worker-ubuntu-76',
        },
        'update': {
            'kubeadm-revoke-join-credentials',
            'kubeadm-workers',
        },
    },
    'remove a worker': {
        'create': {
            'kubeadm-ubuntu-75-retire',
        },
        'delete': {
            'kubeadm-ubuntu-75-join-credentials',
            'preflight-worker-ubuntu-75',
        },
        'forget': {
            'kubeadm-ubuntu-75-join',
        },
        'replace': {
            'elastic-apiserver-serving-cert',
            'elastic-apiserver-serving-csr',
        },
        'update': {
            'kubeadm-revoke-join-credentials',
            'kubeadm-workers',
            'lb-haproxy-101-configure',
        },
    },
    'move the endpoint to another port': {
        'update': {
            'access-provider',
            'kubeadm-kube-proxy',
            'kubeadm-ubuntu-70-control-plane',
            'kubeadm-ubuntu-72-control-plane',
            'kubeadm-ubuntu-73-control-plane',
            'kubeadm-ubuntu-74-join',
            'kubeadm-ubuntu-75-join',
            'lb-haproxy-101-configure',
            'lb-haproxy-101-install',
            'preflight-lb-haproxy-101',
        },
    },
    'move from one LB to a virtual IP': {
        'create': {
            'lb-haproxy-102-configure',
            'lb-haproxy-102-install',
            'preflight-lb-haproxy-102',
        },
        'replace': EVERY_SERVING_CERTIFICATE,
        'update': EVERY_CONTROL_PLANE_NODE_STEP | {
            'lb-haproxy-101-configure',
            'lb-haproxy-101-install',
            'preflight-control-plane-ubuntu-70',
            'preflight-control-plane-ubuntu-72',
            'preflight-control-plane-ubuntu-73',
            'preflight-lb-haproxy-101',
            'preflight-worker-ubuntu-74',
            'preflight-worker-ubuntu-75',
        },
    },
    'switch node-local proxies on': {
        'replace': EVERY_SERVING_CERTIFICATE,
        'update': EVERY_CONTROL_PLANE_NODE_STEP | {
            'kubeadm-kube-proxy',
            'kubeadm-ubuntu-74-join',
            'kubeadm-ubuntu-75-join',
            'preflight-control-plane-ubuntu-70',
            'preflight-control-plane-ubuntu-72',
            'preflight-control-plane-ubuntu-73',
            'preflight-worker-ubuntu-74',
            'preflight-worker-ubuntu-75',
        },
    },
    'switch the elastic apiserver off': {
        'delete': {
            'elastic-apiserver-serving-cert',
            'elastic-apiserver-serving-csr',
            'elastic-apiserver-serving-key',
        },
        'update': {
            'access-read-control-plane-files',
            'lb-haproxy-101-configure',
        },
    },
}


def pinned_plan(what: str) -> tuple[dict[str, set[str]], Any, Any]:
    p, before, after = plan(EDITS[what])
    types = {r.name: r.typ for r in [*before.mocks.resources, *after.mocks.resources]}
    return ({op: {n.removeprefix(PREFIX) for n in names if types[n].startswith(PINNED_TYPES)}
             for op, names in p.items()}, before, after)


@pytest.mark.parametrize("what", sorted(EDITS))
def test_the_plan_of_each_edit_is_exactly_what_up_does(what: str) -> None:
    got, _, _ = pinned_plan(what)
    assert {op: names for op, names in got.items() if names} == EXPECTED[what]


@pytest.mark.parametrize("what", sorted(EDITS))
def test_no_edit_runs_a_delete_on_a_host_or_replaces_the_provider(what: str) -> None:
    p, before, after = plan(EDITS[what])
    for name in p["delete"] | p["replace"]:
        reg = before.reg(name)
        if reg.typ == "command:remote:Command":
            assert not before.mocks.named(name).inputs.get("delete"), name
        assert reg.typ != "pulumi:providers:kubernetes", name
    left = {str(h.address) for h in before.scope["cluster"].nodes} - {
        str(h.address) for h in after.scope["cluster"].nodes}
    reached = {plain(r.inputs["connection"])["host"]
               for r in after.mocks.by_type("command:remote:Command")}
    assert reached and not reached & left
