"""Preflight: a read-only step per host, in parallel; every step that changes a host waits for
all of them, so a problem anywhere is reported, with its stack key, before anything changes."""

from __future__ import annotations

import pulumi

from components.remote import Ssh, run_script
from kube_ha.model import Cluster
from kube_ha.preflight import preflight_command, preflight_script, targets


class Preflight(pulumi.ComponentResource):
    def __init__(self, name: str, cluster: Cluster, ssh: Ssh,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("kube-ha:preflight:Preflight", name, None, opts)
        # Named by role too: an LB may share a control-plane node's host and name.
        # The script embeds what it checks against (versions, ports, names), so a config
        # edit that matters re-runs it; an unchanged host is not re-checked.
        self.steps: list[pulumi.Resource] = [
            run_script(f"{name}-{t.role}-{t.host.name}", t.host, ssh,
                       preflight_script(cluster, t), parent=self, run=preflight_command(t))
            for t in targets(cluster)]
        self.register_outputs({})
