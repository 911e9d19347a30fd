"""kube-ha: a kubeadm cluster made highly available, its control plane sized by stack config."""

import pulumi

from components.cluster import HaCluster
from components.config import load_cluster

cluster, ssh_private_key, last = load_cluster()
ha = HaCluster(cluster.name, cluster, ssh_private_key, last)

pulumi.export("endpoint", ha.endpoint)
pulumi.export("apiserverSans", ha.sans)
pulumi.export("haproxyCfg", ha.load_balancer.haproxy_cfg)
# Every backend an LB in front of the apiservers lists: with your own LB, what to register.
pulumi.export("loadBalancerBackends", ha.backends)
pulumi.export("certificateExpiry", ha.certificate_expiry)
for name, value in ha.recorded.items():  # what the next run reads back
    pulumi.export(name, value)
# A working kubeconfig that dials the HA endpoint: pulumi stack output kubeconfig --show-secrets
pulumi.export("kubeconfig", ha.kubeconfig)
