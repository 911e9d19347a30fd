"""Each day-2 edit of the README's table, planned: the exact resources `pulumi up` would
create, delete, forget (retained on delete: the provider is never called), replace and update,
judged by the pinned providers' own rules (tests/day2_plan.py), every resource type pinned.
The same edit as `pulumi preview` shows it must match (issue 12, item 8).

Beside the pins, a guard over every edit: no step the engine would delete or replace runs a
delete script on a host (every per-node step is retained), no remote step reaches a node that
left the list, and neither the Kubernetes provider nor a Secret is ever replaced.

Renames and role moves are refused, not planned (tests/test_day2.py); removing a dead node
plans as removing a live one (the config edit is the same; tests/test_retire.py runs it)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pulumi.output import Unknown

from tests.day2_plan import Edit, plan, plan_between, preview_plan
from tests.harness.hosts import host
from tests.program import dev_stack, run_after, run_program

PREFIX = "kubernetes-"  # the dev stack's clusterName, before every resource name


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


def _replace_load_balancer(r: dict[str, Any]) -> None:
    r["loadBalancers"] = [host("haproxy-103", "10.21.22.103")]
    r["endpoint"]["address"] = "10.21.22.103"  # a single LB is the endpoint


def _promote(r: dict[str, Any]) -> None:
    del r["controlPlane"][0]["bootstrap"]  # ubuntu-73 stays, as an ordinary member
    r["controlPlane"][1]["bootstrap"] = True  # ubuntu-70


def _rotate(r: dict[str, Any]) -> None:
    r["certificates"]["rotation"] += 1


def _node_local_stack() -> dict[str, Any]:
    raw = dev_stack()
    raw["nodeLocalProxy"] = True
    return raw


EDITS: dict[str, Edit] = {
    "add a control-plane node": _add_control_plane,
    "remove a control-plane node": _remove_control_plane,
    "remove the bootstrap node": _remove_bootstrap,
    "make another node the bootstrap node": _promote,
    "add a worker": lambda r: r["workers"].append(host("ubuntu-76", "10.21.22.76")),
    "remove a worker": _remove_worker,
    "move the endpoint to another port": lambda r: r["endpoint"].update(port=7443),
    "move from one LB to a virtual IP": _to_virtual_ip,
    "switch node-local proxies on": lambda r: r.update(nodeLocalProxy=True),
    "switch the elastic apiserver off": lambda r: r["elasticApiserver"].update(enabled=False),
    "switch node-local proxies off": lambda r: r.update(nodeLocalProxy=False),
    "more apiserver capacity": lambda r: r["elasticApiserver"].update(minReplicas=2),
    "replace an LB host": _replace_load_balancer,
    "rotate the certificates": _rotate,
    # The operator changed a static pod's flags or an encryption key on the nodes.
    "copy the static pods again": lambda r: r.update(staticPodsRevision=1),
    "upgrade Kubernetes (kubernetesVersion to match)": lambda r: r.update(
        kubernetesVersion="v1.32.4"),
}
# The stack each edit starts from, when not the dev stack.
STARTS = {"switch node-local proxies off": _node_local_stack}

# A change of the names clients dial (a VIP, node-local proxies, a new LB address): every
# serving certificate is re-issued (tls: any input change replaces), each control-plane node's
# steps install it, the elastic one's Secret is patched, and each host's preflight checks the
# new names and ports.
NEW_NAMES_REISSUED = {f"pki-apiserver-ubuntu-{n}-{part}" for n in (70, 72, 73)
                      for part in ("cert", "csr")} | {
    "elastic-apiserver-serving-cert", "elastic-apiserver-serving-csr"}
NEW_NAMES_INSTALLED = {f"kubeadm-ubuntu-{n}-{step}" for n in (70, 72, 73)
                       for step in ("control-plane", "serving-certificate")} | {
    f"preflight-control-plane-ubuntu-{n}" for n in (70, 72, 73)} | {
    "preflight-worker-ubuntu-74", "preflight-worker-ubuntu-75", "elastic-apiserver-serving-secret"}
# Node-local proxies on or off: kube-proxy and each worker re-pointed, and the LB's checks of
# the elastic servers ask for the new names' marker.
WORKERS_REPOINTED = {"kubeadm-kube-proxy", "kubeadm-ubuntu-74-join", "kubeadm-ubuntu-75-join",
                     "lb-haproxy-101-configure"}


# Another bootstrap node (it moved, or the old one left): the steps that ran on the old one
# run on the new one (the reads, every join's credentials), every joined node's step re-runs
# once with its new credentials, and what the re-read files feed is updated.
BOOTSTRAP_MOVED = {
    'access-provider',
    'access-read-admin-kubeconfig',
    'access-read-controller-manager-pki',
    'access-read-elastic-apiserver-pki',
    'access-read-static-kube-apiserver',
    'access-read-static-kube-controller-manager',
    'controller-manager-deployment',
    'controller-manager-secret',
    'elastic-apiserver-deployment',
    'elastic-apiserver-pki-secret',
    'kubeadm-control-plane-removals',
    'kubeadm-elastic-pool',
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
    'preflight-control-plane-ubuntu-70',
}


# Every host's preflight probes the control-plane nodes it will dial (kubeadm's ports): a
# change of members re-runs each (read-only) against the new list.
PROBE_THE_CONTROL_PLANE = {"preflight-lb-haproxy-101", "preflight-worker-ubuntu-74",
                           "preflight-worker-ubuntu-75"}
EVERY_PREFLIGHT = PROBE_THE_CONTROL_PLANE | {
    f"preflight-control-plane-ubuntu-{n}" for n in (70, 72, 73)}


# The elastic control plane's paths (kube_ha.elastic.firewall): each control-plane node admits
# the pool workers to etcd, each pool worker admits the LB hosts to its elastic port and probes
# etcd on every control-plane node, each LB host probes the pool's elastic ports.
POOL_FIREWALLS = {"elastic-paths-ubuntu-74-firewall", "elastic-paths-ubuntu-75-firewall"}
CONTROL_PLANE_FIREWALLS = {f"elastic-paths-ubuntu-{n}-firewall" for n in (70, 72, 73)}


def lb_steps(n: int) -> set[str]:
    return {f"lb-haproxy-{n}-configure", f"lb-haproxy-{n}-install", f"preflight-lb-haproxy-{n}"}


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
            'elastic-paths-ubuntu-76-firewall',  # admits the pool workers to its etcd
        },
        'update': PROBE_THE_CONTROL_PLANE | POOL_FIREWALLS | {
            'controller-manager-deployment',
            'elastic-apiserver-deployment',
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
            'elastic-paths-ubuntu-72-firewall',  # no delete: the node is reset
        },
        'forget': {
            'kubeadm-ubuntu-72-control-plane',
            'kubeadm-ubuntu-72-membership',
        },
        'update': PROBE_THE_CONTROL_PLANE | POOL_FIREWALLS | {
            'controller-manager-deployment',
            'elastic-apiserver-deployment',
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
            'elastic-paths-ubuntu-73-firewall',
        },
        'forget': {
            'kubeadm-ubuntu-73-control-plane',
            'kubeadm-ubuntu-73-membership',
        },
        'update': BOOTSTRAP_MOVED | PROBE_THE_CONTROL_PLANE | POOL_FIREWALLS | {
            'lb-haproxy-101-configure',
            'preflight-control-plane-ubuntu-72',
        },
    },
    'make another node the bootstrap node': {
        'create': {
            'kubeadm-ubuntu-73-join-credentials',
        },
        'delete': {
            'kubeadm-ubuntu-70-join-credentials',
        },
        'update': BOOTSTRAP_MOVED | {
            'kubeadm-ubuntu-73-control-plane',
            'kubeadm-ubuntu-73-membership',
            'preflight-control-plane-ubuntu-73',
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
            'elastic-apiserver-pool-ubuntu-75',
            'elastic-paths-ubuntu-75-firewall',
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
        # One pool worker fewer: the control plane admits it to etcd no more, the LB probes
        # one elastic port fewer.
        'update': CONTROL_PLANE_FIREWALLS | {
            'elastic-paths-haproxy-101-reach',
            'elastic-apiserver-deployment',
            'elastic-apiserver-hpa',
            'elastic-apiserver-serving-secret',
            'kubeadm-elastic-pool',  # one worker fewer to taint (ubuntu-75's Node is deleted)
            'kubeadm-revoke-join-credentials',
            'kubeadm-workers',
            'lb-haproxy-101-configure',
        },
    },
    'move the endpoint to another port': {
        'update': {
            'access-provider',
            'controller-manager-deployment',
            'controller-manager-secret',
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
        'create': lb_steps(102) | {'elastic-paths-haproxy-102-reach'},
        'replace': NEW_NAMES_REISSUED,
        'update': NEW_NAMES_INSTALLED | lb_steps(101) | POOL_FIREWALLS,
    },
    'switch node-local proxies on': {
        'replace': NEW_NAMES_REISSUED,
        # Every node dials the elastic ports through its proxy: the port is open to all.
        'update': NEW_NAMES_INSTALLED | WORKERS_REPOINTED | POOL_FIREWALLS,
    },
    'switch the elastic apiserver off': {
        'delete': {
            'access-read-elastic-apiserver-pki',
            'access-read-static-kube-apiserver',
            'elastic-apiserver-carried-secret',
            'elastic-apiserver-deployment',
            'elastic-apiserver-hpa',
            'elastic-apiserver-pdb',
            'elastic-apiserver-pki-secret',
            'elastic-apiserver-pool-ubuntu-74',
            'elastic-apiserver-pool-ubuntu-75',
            'elastic-apiserver-serving-cert',
            'elastic-apiserver-serving-csr',
            'elastic-apiserver-serving-key',
            'elastic-apiserver-serving-secret',
            'elastic-paths-haproxy-101-reach',
        },
        # No metrics API or flags to check any more; the pool's workers untainted, what was
        # opened for the pool closed.
        'update': {f"preflight-control-plane-ubuntu-{n}" for n in (70, 72, 73)} | {
            'kubeadm-elastic-pool',
            'lb-haproxy-101-configure',
        } | POOL_FIREWALLS | CONTROL_PLANE_FIREWALLS,
    },
    'switch node-local proxies off': {
        # The same steps as switching them on: every name re-issued, every worker re-pointed.
        'replace': NEW_NAMES_REISSUED,
        # Every node dials the elastic ports through its proxy: the port is open to all.
        'update': NEW_NAMES_INSTALLED | WORKERS_REPOINTED | POOL_FIREWALLS,
    },
    'more apiserver capacity': {
        'update': {
            'elastic-apiserver-hpa',
        },
    },
    # The reads run again; what they feed changes only if the nodes' files did (here they
    # did not: the Deployments and Secrets stay).
    'copy the static pods again': {
        'update': {
            'access-read-static-kube-apiserver',
            'access-read-static-kube-controller-manager',
        },
    },
    'replace an LB host': {
        'create': lb_steps(103) | {'elastic-paths-haproxy-103-reach'},
        # No delete script: haproxy-101 is left as it is.
        'delete': lb_steps(101) | {'elastic-paths-haproxy-101-reach'},
        'replace': NEW_NAMES_REISSUED,
        'update': NEW_NAMES_INSTALLED | POOL_FIREWALLS,
    },
    'rotate the certificates': {
        'create': {
            'pki-read-ca-rotation-1',
        },
        'delete': {
            'pki-read-ca',
        },
        'replace': {
            'elastic-apiserver-serving-cert',
            'elastic-apiserver-serving-csr',
            'elastic-apiserver-serving-key',
            'pki-apiserver-ubuntu-70-cert',
            'pki-apiserver-ubuntu-70-csr',
            'pki-apiserver-ubuntu-70-key',
            'pki-apiserver-ubuntu-72-cert',
            'pki-apiserver-ubuntu-72-csr',
            'pki-apiserver-ubuntu-72-key',
            'pki-apiserver-ubuntu-73-cert',
            'pki-apiserver-ubuntu-73-csr',
            'pki-apiserver-ubuntu-73-key',
            'pki-lb-health-check-cert',
            'pki-lb-health-check-csr',
            'pki-lb-health-check-key',
        },
        'update': {
            'access-read-admin-kubeconfig',
            'access-read-controller-manager-pki',
            'access-read-elastic-apiserver-pki',
            'access-read-static-kube-apiserver',
            'access-read-static-kube-controller-manager',
            'elastic-apiserver-serving-secret',
            'kubeadm-ubuntu-70-control-plane',
            'kubeadm-ubuntu-70-serving-certificate',
            'kubeadm-ubuntu-72-control-plane',
            'kubeadm-ubuntu-72-serving-certificate',
            'kubeadm-ubuntu-73-control-plane',
            'kubeadm-ubuntu-73-serving-certificate',
            'lb-haproxy-101-configure',
        },
    },
    'upgrade Kubernetes (kubernetesVersion to match)': {
        'update': {
            'controller-manager-deployment',
            'elastic-apiserver-deployment',
            'kubeadm-revoke-join-credentials',
            'kubeadm-ubuntu-70-control-plane',
            'kubeadm-ubuntu-70-join-credentials',
            'kubeadm-ubuntu-72-control-plane',
            'kubeadm-ubuntu-72-join-credentials',
            'kubeadm-ubuntu-73-control-plane',
            'preflight-control-plane-ubuntu-70',
            'preflight-control-plane-ubuntu-72',
            'preflight-control-plane-ubuntu-73',
            'preflight-worker-ubuntu-74',
            'preflight-worker-ubuntu-75',
        },
    },
}


def _plans(what: str, preview: bool = False) -> tuple[dict[str, set[str]], Any, Any]:
    return (preview_plan if preview else plan)(EDITS[what], STARTS.get(what, dev_stack))


@pytest.mark.parametrize("what", sorted(EDITS))
def test_the_plan_of_each_edit_is_exactly_what_up_does(what: str) -> None:
    got, _, _ = _plans(what)
    assert {op: {n.removeprefix(PREFIX) for n in names}
            for op, names in got.items() if names} == EXPECTED[what]


@pytest.mark.parametrize("what", sorted(EDITS))
def test_preview_shows_what_up_does(what: str) -> None:
    """`pulumi preview` of the edit creates, deletes, forgets and replaces exactly what `up`
    does. It may show more updates only where it cannot know a value yet: a resource whose
    inputs hold an output that is unknown until `up` runs the step that prints it (the
    CLI shows those inputs as computed); the update then happens only if the value did
    change (a file re-read from a node, for instance)."""
    up, _, _ = _plans(what)
    shown, _, after = _plans(what, preview=True)
    for op in ("create", "delete", "forget", "replace"):
        assert shown[op] == up[op], op
    assert up["update"] <= shown["update"]
    for name in shown["update"] - up["update"]:
        assert _holds_unknown(after.mocks.named(name).inputs), name


def _holds_unknown(value: Any) -> bool:
    if isinstance(value, Unknown):
        return True
    if isinstance(value, dict):
        return any(_holds_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_unknown(v) for v in value)
    return False


@pytest.mark.parametrize("what", sorted(EDITS))
def test_no_edit_runs_a_delete_on_a_host_or_replaces_the_provider(what: str) -> None:
    p, before, after = _plans(what)
    for name in p["delete"] | p["replace"]:
        reg = before.reg(name)
        if reg.typ == "command:remote:Command":
            assert not before.mocks.named(name).inputs.get("delete"), name
        assert reg.typ != "pulumi:providers:kubernetes", name
    # Secrets are patched: a replacement would delete one the Deployments mount.
    assert not {n for n in p["replace"] if before.reg(n).typ == "kubernetes:core/v1:Secret"}
    left = {str(h.address) for h in before.scope["cluster"].nodes} - {
        str(h.address) for h in after.scope["cluster"].nodes}
    # Where each remote step connects as the engine stores it (a read-once step keeps the
    # host it first read from: ClusterMocks.engine_inputs), for a step it runs.
    reached = {after.mocks.stored[r.name]["connection"]["host"]
               for r in after.mocks.by_type("command:remote:Command")
               if r.name not in p["forget"] and (r.name in p["create"] | p["update"]
                                                 | p["replace"])}
    assert not reached & left


def test_a_rotation_after_the_bootstrap_node_left_reads_the_ca_from_the_new_one() -> None:
    """Two `up`s in a row. The CA read, kept through the bootstrap node's removal, still
    holds that node in the engine's store (its inputs are ignored, so it never runs again);
    a rotation then reads the CA through a step of a new name, made from the current inputs:
    it dials the new bootstrap node, not the reset one (a replacement of the old step would
    have dialled the stored host, as the engine builds it from the ignored inputs' old values)."""
    raw = dev_stack()
    first = run_program(raw)
    gone = copy.deepcopy(raw)
    _remove_bootstrap(gone)
    second = run_after(first, gone)
    assert "kubernetes-pki-read-ca" not in set().union(*plan_between(first, second).values())
    assert second.mocks.stored["kubernetes-pki-read-ca"]["connection"]["host"] == "10.21.22.73"

    rotated = copy.deepcopy(gone)
    _rotate(rotated)
    third = run_after(second, rotated)
    p = plan_between(second, third)
    assert "kubernetes-pki-read-ca-rotation-1" in p["create"]
    assert "kubernetes-pki-read-ca" in p["delete"]
    assert not second.inputs("kubernetes-pki-read-ca").get("delete")
    assert third.mocks.stored["kubernetes-pki-read-ca-rotation-1"]["connection"]["host"] == (
        "10.21.22.70")
