"""The network paths the elastic control plane adds (kube_ha.elastic.firewall): opened where
firewalld runs, on each control-plane node and pool node, then probed from the pool workers
and the LB hosts. The elastic Deployment waits for `checked`.

A node's firewall step also exists, with nothing to open, while what the last `up` opened
there is still to close; no step has a delete (a node may be gone when it would run)."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from components.remote import Ssh, run_script
from kube_ha.elastic.firewall import lb_reach_script, node_firewall_script
from kube_ha.model import Cluster, Host
from kube_ha.preflight import elastic_paths


class ElasticPaths(pulumi.ComponentResource):
    def __init__(self, name: str, cluster: Cluster, ssh: Ssh, nodes: Sequence[Host],
                 checked: Sequence[pulumi.Resource], opts: pulumi.ResourceOptions | None = None):
        super().__init__("kube-ha:elastic:ElasticPaths", name, None, opts)

        def step(host: Host, after: Sequence[pulumi.Resource]) -> pulumi.Resource:
            return run_script(f"{name}-{host.name}-firewall", host, ssh,
                              node_firewall_script(cluster, host), parent=self,
                              depends_on=list(after))

        # Opened where they are dialled first; then the pool workers open theirs and probe
        # etcd on each control-plane node; then the LB hosts probe the elastic ports.
        first = [step(h, checked) for h in nodes if not elastic_paths(cluster, h)]
        probing = [step(h, [*checked, *first]) for h in nodes if elastic_paths(cluster, h)]
        lbs = [run_script(f"{name}-{lb.name}-reach", lb, ssh, reach, parent=self,
                          depends_on=[*checked, *first, *probing])
               for lb in cluster.load_balancers if (reach := lb_reach_script(cluster, lb))]
        self.checked: list[pulumi.Resource] = [*first, *probing, *lbs]
        self.register_outputs({})
