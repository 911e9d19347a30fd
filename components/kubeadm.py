"""The kubeadm control-plane lifecycle over SSH, driven by the membership list.

Order: bootstrap (after the LB serves the endpoint) -> control-plane joins one at a time, each
waiting for its node Ready and etcd healthy -> workers in parallel, depending only on the
bootstrap. The chain grows with control-plane count, never with workers.

Removal: a node deleted from `controlPlane` deletes its `membership` step (on the bootstrap
node: drain, etcd member remove with a quorum guard, delete the Node) and then its
`control-plane` step (kubeadm reset on the node). Memberships form a chain, so removals run
one at a time.
"""

from __future__ import annotations

import functools
import json

import pulumi

from components import kubeadm_scripts as ks
from components.certificates import ClusterCertificates
from components.haproxy import node_local_frontend, render_haproxy_cfg
from components.lb_scripts import configure_script, install_script
from components.model import Cluster, Host
from components.remote import Ssh, run_script


def _cp_join(cluster: Cluster, node: Host, values: list[str]) -> str:
    cert, key, creds = values
    return ks.control_plane_join_script(cluster, node, cert, key, json.loads(creds))


def _worker_join(cluster: Cluster, node: Host, creds: str) -> str:
    return ks.worker_join_script(cluster, node, json.loads(creds))


class ControlPlane(pulumi.ComponentResource):
    def __init__(self, name: str, cluster: Cluster, ssh: Ssh, certs: ClusterCertificates,
                 endpoint_ready: list[pulumi.Resource],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("kube-ha:kubeadm:ControlPlane", name, None, opts)
        boot = cluster.bootstrap
        before_init: list[pulumi.Resource] = list(endpoint_ready)
        if cluster.certificates.ca_source == "generate":
            before_init.append(run_script(
                f"{name}-install-ca", boot, ssh,
                pulumi.Output.all(certs.ca_cert_pem, certs.ca_key_pem).apply(
                    lambda v: ks.install_ca_script(v[0], v[1])),
                parent=self, secret=True))
        # Every control-plane node has the same steps whatever its role, named by node: making
        # another node the bootstrap node only re-runs scripts; nothing is deleted (a delete
        # here means removal from etcd and `kubeadm reset`). It re-targets the membership steps'
        # `connection`, an in-place update in pulumi-command 1.2.1 (only `triggers` replaces);
        # a provider that replaced on it would run the old step's delete. Keep the pin.
        previous: pulumi.Resource | None = None
        self.steps: dict[str, pulumi.Resource] = {}
        for node in (boot, *cluster.joining_control_plane):
            cert = certs.apiserver[node.name]
            if node.bootstrap:
                script = pulumi.Output.all(cert.cert_pem, cert.key_pem).apply(
                    lambda v: ks.bootstrap_script(cluster, v[0], v[1]))
                deps = before_init
            else:
                creds = run_script(f"{name}-{node.name}-join-credentials", boot, ssh,
                                   ks.join_credentials_script(control_plane=True), parent=self,
                                   secret_stdout=True, depends_on=[previous] if previous else [])
                script = pulumi.Output.all(cert.cert_pem, cert.key_pem, creds.stdout).apply(
                    functools.partial(_cp_join, cluster, node))
                deps = [creds]
            step = run_script(f"{name}-{node.name}-control-plane", node, ssh, script,
                              parent=self, secret=True, delete_script=ks.reset_script(),
                              depends_on=deps)
            if node.bootstrap:
                self.bootstrap = step
            previous = run_script(
                f"{name}-{node.name}-membership", boot, ssh, ks.membership_check_script(node),
                parent=self, delete_script=ks.control_plane_removal_script(cluster, node),
                depends_on=[step])
            self.steps[node.name] = previous
        assert previous is not None
        self.last_control_plane_step = previous

        # Runs before removed workers' join steps are deleted (deletes come last): drain first,
        # `kubeadm reset` after.
        run_script(f"{name}-workers", boot, ssh, ks.workers_reconcile_script(cluster),
                   parent=self, depends_on=[self.bootstrap])
        self.workers: dict[str, pulumi.Resource] = {}
        if cluster.workers:
            creds = run_script(f"{name}-worker-join-credentials", boot, ssh,
                               ks.join_credentials_script(control_plane=False), parent=self,
                               secret_stdout=True, depends_on=[self.bootstrap])
            # Rendered once: the scripts are the same on every worker.
            reset = ks.reset_script()
            local: tuple[str, pulumi.Output[str]] | None = None
            if cluster.node_local_proxy:
                local_cfg = render_haproxy_cfg(cluster, frontend=node_local_frontend(cluster))
                local = (install_script(cluster, node_local=True),
                         pulumi.Output.all(certs.ca_cert_pem, certs.health_client_pem).apply(
                             lambda pems: configure_script(cluster, local_cfg, pems[0], pems[1])))
            for w in cluster.workers:
                before: list[pulumi.Resource] = [creds]
                if local is not None:
                    before.append(self._local_proxy(name, ssh, *local, w))
                self.workers[w.name] = run_script(
                    f"{name}-{w.name}-join", w, ssh,
                    creds.stdout.apply(functools.partial(_worker_join, cluster, w)),
                    parent=self, secret=True, delete_script=reset, depends_on=before)
        self.register_outputs({})

    def _local_proxy(self, name: str, ssh: Ssh, install_text: str, script: pulumi.Output[str],
                     worker: Host) -> pulumi.Resource:
        """haproxy on the worker's 127.0.0.1, rendered from the same membership list as the LB:
        a control-plane change rewrites every worker's proxy in place (never stale)."""
        install = run_script(f"{name}-{worker.name}-local-proxy-install", worker, ssh,
                             install_text, parent=self)
        return run_script(f"{name}-{worker.name}-local-proxy", worker, ssh, script,
                          parent=self, secret=True, depends_on=[install])
