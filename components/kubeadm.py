"""The kubeadm control-plane lifecycle over SSH, driven by the membership list.

Order: each control-plane node that already runs an apiserver gets its serving certificate,
one at a time -> bootstrap (after the LB serves the endpoint) -> control-plane joins one at a
time, each waiting for its etcd member healthy (and its node Ready once the cluster has a pod
network); workers in parallel after the bootstrap, two steps each (credentials on the
bootstrap node, one script on the worker); kube-proxy's kubeconfig right after the bootstrap,
or last with node-local proxies; the revocation of every join token and uploaded certificate,
last. The chain grows with control-plane count, never with workers.

Removal: a node deleted from the config is taken out by steps that do not run on it, since
it may be dead. On the bootstrap node, after every join, the removals step takes each departed
control-plane node out (quorum guard, drain, etcd member, Node; one at a time), and the
workers step each departed worker (drain, Node). Then the node's retire step resets it over
SSH from where `pulumi up` runs, skipped (and said so) when it does not answer. The per-node
steps are retained on delete: the engine never runs a delete on a node, so neither a removal
nor `pulumi destroy` can fail on a dead one or reset a node the config still lists.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pulumi

from components.certificates import ClusterCertificates
from components.loadbalancer import ProxyScripts
from components.remote import Ssh, retire, run_script
from kube_ha.elastic.pool import UNCHANGED, PoolTaints, pool_script
from kube_ha.kubeadm.etcd import control_plane_removals_script, membership_check_script
from kube_ha.kubeadm.scripts import (
    bootstrap_script,
    control_plane_join_script,
    endpoint_check_script,
    install_ca_script,
    join_credentials_script,
    kube_proxy_script,
    reset_script,
    retire_script,
    revoke_join_credentials_script,
    serving_certificate_script,
    worker_join_script,
    workers_reconcile_script,
)
from kube_ha.model import Cluster, Host

# Names one step per etcd member (the policy pack counts them); part of every member's URN.
MEMBERSHIP_STEP = "-membership"
# Name each node's init or join step, and the workers' reconcile step (the policy pack reads
# which nodes are control-plane nodes by them); part of their URNs.
CONTROL_PLANE_STEP = "-control-plane"
WORKERS_STEP = "-workers"


def _serving(cluster: Cluster, node: Host, values: list[str]) -> str:
    return serving_certificate_script(cluster, node, values[0], values[1])


def _cp_join(cluster: Cluster, node: Host, values: list[str]) -> str:
    cert, key, creds = values
    return control_plane_join_script(cluster, node, cert, key, json.loads(creds))


def _worker_join(cluster: Cluster, node: Host, values: list[Any]) -> str:
    creds, local = values
    return worker_join_script(cluster, node, json.loads(creds), tuple(local) if local else None)


class ControlPlane(pulumi.ComponentResource):
    """The control plane, one node at a time: the generated CA (if any), the bootstrap node's
    init or adoption, each join with its credentials, one membership check per etcd member,
    then the removals step and each departed node's retire step. `after_joins` adds the
    bootstrap node's last steps once the workers joined."""

    def __init__(self, name: str, cluster: Cluster, ssh: Ssh, certs: ClusterCertificates,
                 endpoint_ready: list[pulumi.Resource],
                 opts: pulumi.ResourceOptions | None = None,
                 checked: list[pulumi.Resource] | None = None,
                 departed: tuple[Host, ...] = ()):
        super().__init__("kube-ha:kubeadm:ControlPlane", name, None, opts)
        # What every step here and in `Workers` is named after (part of each URN).
        self.prefix = name
        self._cluster, self._ssh = cluster, ssh
        boot = cluster.bootstrap
        # After every host's preflight (`checked`) and the endpoint serving: every other step
        # here follows the bootstrap step or install-ca.
        before_init: list[pulumi.Resource] = [*(checked or []), *endpoint_ready]
        if cluster.certificates.ca_source == "generate":
            before_init.append(run_script(
                f"{name}-install-ca", boot, ssh,
                pulumi.Output.all(certs.ca_cert_pem, certs.ca_key_pem).apply(
                    lambda v: install_ca_script(v[0], v[1])),
                parent=self, secret=True, depends_on=list(checked or [])))
        # Before anything dials the endpoint, every node already running an apiserver serves
        # the certificate issued for it: one node at a time (a reload, no restart), then the
        # bootstrap step, which re-points the first clients at the endpoint.
        for node in cluster.control_plane:
            cert = certs.apiserver[node.name]
            before_init = [run_script(
                f"{name}-{node.name}-serving-certificate", node, ssh,
                pulumi.Output.all(cert.cert_pem, cert.key_pem).apply(
                    functools.partial(_serving, cluster, node)),
                parent=self, secret=True, depends_on=before_init)]
        # Your own load balancer: it must answer for the new certificates before anything is
        # pointed at it.
        if cluster.endpoint.external:
            before_init = [run_script(f"{name}-endpoint-check", boot, ssh,
                                      endpoint_check_script(cluster), parent=self,
                                      depends_on=before_init)]
        # Every control-plane node has the same steps whatever its role, named by node: making
        # another node the bootstrap node only re-runs scripts; nothing is deleted (a delete
        # here means removal from etcd and `kubeadm reset`). It re-targets the membership steps'
        # `connection`, an in-place update in pulumi-command 1.2.1 (only `triggers` replaces);
        # a provider that replaced on it would run the old step's delete. Keep the pin.
        previous: pulumi.Resource | None = None
        cp_creds = join_credentials_script(cluster, control_plane=True)
        for node in (boot, *cluster.joining_control_plane):
            cert = certs.apiserver[node.name]
            if node.bootstrap:
                script = pulumi.Output.all(cert.cert_pem, cert.key_pem).apply(
                    lambda v: bootstrap_script(cluster, v[0], v[1]))
                deps = before_init
            else:
                creds = run_script(f"{name}-{node.name}-join-credentials", boot, ssh, cp_creds,
                                   parent=self, secret_stdout=True,
                                   depends_on=[previous] if previous else [])
                script = pulumi.Output.all(cert.cert_pem, cert.key_pem, creds.stdout).apply(
                    functools.partial(_cp_join, cluster, node))
                deps = [creds]
            step = run_script(f"{name}-{node.name}{CONTROL_PLANE_STEP}", node, ssh, script,
                              parent=self, secret=True, delete_script=reset_script(),
                              retain_on_delete=True, depends_on=deps)
            if node.bootstrap:
                self.bootstrap: pulumi.Resource = step
            previous = run_script(
                f"{name}-{node.name}{MEMBERSHIP_STEP}", boot, ssh, membership_check_script(node),
                parent=self, retain_on_delete=True, depends_on=[step])
        assert previous is not None
        self.last_control_plane_step = previous
        # Every join first (a replacement joins before the node it replaces leaves), then the
        # departed nodes out, from here, then each one reset from where `pulumi up` runs.
        removals = run_script(f"{name}-control-plane-removals", boot, ssh,
                              control_plane_removals_script(departed), parent=self,
                              depends_on=[previous])
        self.retired = [retire(f"{name}-{h.name}-retire", h, ssh, retire_script(), parent=self,
                               depends_on=[removals]) for h in departed]
        # kube-proxy's kubeconfig (one ConfigMap for every node) names what nodes dial. The
        # endpoint answers once the bootstrap step is done, so without node-local proxies it is
        # re-pointed then, before the workers' steps: a worker whose node-local proxy is being
        # switched off removes it only after kube-proxy's kubeconfig no longer names it.
        self.kube_proxy: pulumi.Resource | None = None
        # With the endpoint's name kept in /etc/hosts (by the program, or by the Service
        # topology's switcher), a worker resolves it once its own step wrote the entry:
        # kube-proxy is re-pointed after every node's step, too.
        if not (cluster.node_local_proxy or cluster.endpoint.manage_hosts_entry
                or cluster.endpoint.service):
            self._kube_proxy_after([self.bootstrap])

    def after_joins(self, joined: list[pulumi.Resource]) -> None:
        """The bootstrap node's last steps, once every join of the run (`joined`: the
        `Workers` steps) is done. Registered here, not in `__init__`, because the workers
        join after the bootstrap step and before these."""
        name, boot, ssh, cluster = self.prefix, self._cluster.bootstrap, self._ssh, self._cluster
        after = [self.last_control_plane_step, *joined]
        # The tokens and uploaded certificates made for this run's joins are deleted (they
        # would otherwise stay valid for 1 h and 2 h). The node list is in the script, so
        # adding a node re-runs it after that node's join.
        run_script(f"{name}-revoke-join-credentials", boot, ssh,
                   revoke_join_credentials_script(cluster), parent=self, depends_on=after)
        # With node-local proxies kube-proxy's kubeconfig says 127.0.0.1, which answers on a
        # worker only after its step: re-pointed once every node's step is done.
        if self.kube_proxy is None:
            self._kube_proxy_after(after)
        self.register_outputs({})

    def _kube_proxy_after(self, after: list[pulumi.Resource]) -> None:
        self.kube_proxy = run_script(f"{self.prefix}-kube-proxy", self._cluster.bootstrap,
                                     self._ssh, kube_proxy_script(self._cluster), parent=self,
                                     depends_on=after)


class Workers(pulumi.ComponentResource):
    """Every worker: the reconcile step on the bootstrap node (drains workers removed from the
    config before their reset), and two steps per worker whatever the topology: its own join
    credentials on the bootstrap node, and one script on the worker (its node-local proxy
    first, when there is one, then the join and the kubelet re-point). Then, when the elastic
    apiservers' pool has workers or had them, the pool step on the bootstrap node taints
    (and untaints) them (kube_ha.elastic.pool).

    Before this component existed the same steps were children of `ControlPlane`: each carries
    an alias to that parent, so an existing stack moves them over and runs nothing."""

    def __init__(self, name: str, cluster: Cluster, ssh: Ssh, control_plane: ControlPlane,
                 local_proxy: pulumi.Output[ProxyScripts] | None,
                 opts: pulumi.ResourceOptions | None = None,
                 departed: tuple[Host, ...] = (), pool: PoolTaints = UNCHANGED):
        super().__init__("kube-ha:kubeadm:Workers", name, None, opts)
        prefix, boot = control_plane.prefix, cluster.bootstrap
        moved = [pulumi.Alias(parent=control_plane)]
        # Runs before removed workers' join steps are deleted (deletes come last): drain first,
        # `kubeadm reset` after.
        reconcile = run_script(f"{prefix}{WORKERS_STEP}", boot, ssh,
                               workers_reconcile_script(cluster, departed), parent=self,
                               depends_on=[control_plane.bootstrap], aliases=moved)
        self.retired = [retire(f"{prefix}-{h.name}-retire", h, ssh, retire_script(), parent=self,
                               depends_on=[reconcile]) for h in departed]
        # Each worker's credentials are made in the same `up` that joins it (a token made when
        # the first workers joined has expired by the time one is added); workers that already
        # joined keep their credentials step, so adding one re-runs none. Rendered once: the
        # same on every worker. The join's recorded delete is never run (retained).
        reset, creds_script = reset_script(), join_credentials_script(cluster, False)
        # Without node-local proxies, kube-proxy's kubeconfig names the endpoint before any
        # worker's step runs (see ControlPlane).
        before_workers = [control_plane.kube_proxy] if control_plane.kube_proxy else []
        self.joins: list[pulumi.Resource] = []
        self.join_of: dict[str, pulumi.Resource] = {}
        for w in cluster.workers:
            creds = run_script(f"{prefix}-{w.name}-join-credentials", boot, ssh, creds_script,
                               parent=self, secret_stdout=True,
                               depends_on=[control_plane.bootstrap], aliases=moved)
            script = pulumi.Output.all(creds.stdout, local_proxy).apply(
                functools.partial(_worker_join, cluster, w))
            self.joins.append(run_script(
                f"{prefix}-{w.name}-join", w, ssh, script, parent=self, secret=True,
                delete_script=reset, retain_on_delete=True,
                depends_on=[creds, *before_workers], aliases=moved))
            self.join_of[w.name] = self.joins[-1]
        # Once the pool's workers joined. No delete: leaving the pool is a change to the script.
        self.pool: pulumi.Resource | None = None
        if pool:
            self.pool = run_script(
                f"{prefix}-elastic-pool", boot, ssh, pool_script(pool), parent=self,
                depends_on=[control_plane.bootstrap, *(self.join_of[n] for n in pool.taint)])
        self.register_outputs({})
