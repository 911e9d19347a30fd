"""The kubeadm control-plane lifecycle over SSH, driven by the membership list.

Order: bootstrap (after the LB serves the endpoint) -> control-plane joins one at a time, each
waiting for its node Ready and etcd healthy; workers in parallel after the bootstrap, two steps
each (credentials on the bootstrap node, one script on the worker) -> kube-proxy's kubeconfig
and the revocation of every join token and uploaded certificate, last. The chain grows with
control-plane count, never with workers.

Removal: a node deleted from `controlPlane` deletes its `membership` step (on the bootstrap
node: drain, etcd member remove with a quorum guard, delete the Node) and then its
`control-plane` step (kubeadm reset on the node). Memberships form a chain, so removals run
one at a time.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pulumi

from components.certificates import ClusterCertificates
from components.remote import Ssh, run_script
from kube_ha.kubeadm import scripts as ks
from kube_ha.loadbalancer.haproxy import NODE_LOCAL_HEALTH, node_local_frontend, render_haproxy_cfg
from kube_ha.loadbalancer.scripts import configure_script, install_script
from kube_ha.model import Cluster, Host

# Names one step per etcd member (the policy pack counts them); part of every member's URN.
MEMBERSHIP_STEP = "-membership"


def _cp_join(cluster: Cluster, node: Host, values: list[str]) -> str:
    cert, key, creds = values
    return ks.control_plane_join_script(cluster, node, cert, key, json.loads(creds))


def _worker_join(cluster: Cluster, node: Host, values: list[Any]) -> str:
    creds, local = values
    return ks.worker_join_script(cluster, node, json.loads(creds),
                                 tuple(local) if local else None)


class ControlPlane(pulumi.ComponentResource):
    def __init__(self, name: str, cluster: Cluster, ssh: Ssh, certs: ClusterCertificates,
                 endpoint_ready: list[pulumi.Resource],
                 opts: pulumi.ResourceOptions | None = None,
                 checked: list[pulumi.Resource] | None = None):
        super().__init__("kube-ha:kubeadm:ControlPlane", name, None, opts)
        boot = cluster.bootstrap
        # After every host's preflight (`checked`) and the endpoint serving: every other step
        # here follows the bootstrap step or install-ca.
        before_init: list[pulumi.Resource] = [*(checked or []), *endpoint_ready]
        if cluster.certificates.ca_source == "generate":
            before_init.append(run_script(
                f"{name}-install-ca", boot, ssh,
                pulumi.Output.all(certs.ca_cert_pem, certs.ca_key_pem).apply(
                    lambda v: ks.install_ca_script(v[0], v[1])),
                parent=self, secret=True, depends_on=list(checked or [])))
        # Every control-plane node has the same steps whatever its role, named by node: making
        # another node the bootstrap node only re-runs scripts; nothing is deleted (a delete
        # here means removal from etcd and `kubeadm reset`). It re-targets the membership steps'
        # `connection`, an in-place update in pulumi-command 1.2.1 (only `triggers` replaces);
        # a provider that replaced on it would run the old step's delete. Keep the pin.
        previous: pulumi.Resource | None = None
        self.steps: dict[str, pulumi.Resource] = {}
        cp_creds = ks.join_credentials_script(cluster, control_plane=True)
        for node in (boot, *cluster.joining_control_plane):
            cert = certs.apiserver[node.name]
            if node.bootstrap:
                script = pulumi.Output.all(cert.cert_pem, cert.key_pem).apply(
                    lambda v: ks.bootstrap_script(cluster, v[0], v[1]))
                deps = before_init
            else:
                creds = run_script(f"{name}-{node.name}-join-credentials", boot, ssh, cp_creds,
                                   parent=self, secret_stdout=True,
                                   depends_on=[previous] if previous else [])
                script = pulumi.Output.all(cert.cert_pem, cert.key_pem, creds.stdout).apply(
                    functools.partial(_cp_join, cluster, node))
                deps = [creds]
            step = run_script(f"{name}-{node.name}-control-plane", node, ssh, script,
                              parent=self, secret=True, delete_script=ks.reset_script(),
                              depends_on=deps)
            if node.bootstrap:
                self.bootstrap = step
            previous = run_script(
                f"{name}-{node.name}{MEMBERSHIP_STEP}", boot, ssh, ks.membership_check_script(node),
                parent=self, delete_script=ks.control_plane_removal_script(cluster, node),
                depends_on=[step])
            self.steps[node.name] = previous
        assert previous is not None
        self.last_control_plane_step = previous

        # Runs before removed workers' join steps are deleted (deletes come last): drain first,
        # `kubeadm reset` after.
        run_script(f"{name}-workers", boot, ssh, ks.workers_reconcile_script(cluster),
                   parent=self, depends_on=[self.bootstrap])
        # Two steps per worker, whatever the topology: its own join credentials on the bootstrap
        # node, created in the same `up` that joins it (a token made when the first workers
        # joined has expired by the time one is added), and one script on the worker (its
        # node-local proxy first, when there is one, then the join and the kubelet re-point).
        # Workers that already joined keep their credentials step, so adding one re-runs none.
        self.workers: dict[str, pulumi.Resource] = {}
        # Rendered once: the same on every worker.
        reset, worker_creds = ks.reset_script(), ks.join_credentials_script(cluster, False)
        local: pulumi.Output[tuple[str, str]] | None = None
        if cluster.node_local_proxy:
            local_cfg = render_haproxy_cfg(cluster, frontend=node_local_frontend(cluster))
            install = install_script(cluster, node_local=True)
            local = pulumi.Output.all(certs.ca_cert_pem, certs.health_client_pem).apply(
                lambda pems: (install, configure_script(cluster, local_cfg, pems[0], pems[1],
                                                        health=NODE_LOCAL_HEALTH)))
        for w in cluster.workers:
            creds = run_script(f"{name}-{w.name}-join-credentials", boot, ssh, worker_creds,
                               parent=self, secret_stdout=True, depends_on=[self.bootstrap])
            script = pulumi.Output.all(creds.stdout, local).apply(
                functools.partial(_worker_join, cluster, w))
            self.workers[w.name] = run_script(
                f"{name}-{w.name}-join", w, ssh, script, parent=self, secret=True,
                delete_script=reset, depends_on=[creds])
        # Once every join of the run is done: the tokens and uploaded certificates made for them
        # are deleted (they would otherwise stay valid for 1 h and 2 h). The node list is in the
        # script, so adding a node re-runs it after that node's join.
        self.revoke_join_credentials = run_script(
            f"{name}-revoke-join-credentials", boot, ssh,
            ks.revoke_join_credentials_script(cluster),
            parent=self, depends_on=[self.last_control_plane_step, *self.workers.values()])
        # kube-proxy's kubeconfig serves every node: re-pointed once every node can dial what
        # it names (with node-local proxies, 127.0.0.1 answers on a worker only after its step).
        run_script(f"{name}-kube-proxy", boot, ssh, ks.kube_proxy_script(cluster), parent=self,
                   depends_on=[self.last_control_plane_step, *self.workers.values()])
        self.register_outputs({})
