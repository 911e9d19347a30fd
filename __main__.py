"""kube-ha: a kubeadm cluster made highly available, its control plane sized by stack config."""

import pulumi

from components.cluster import HaCluster
from components.cluster_access import COPIES_OUTPUT, IDENTIFIER_OUTPUT
from components.config import MEMBERSHIP_OUTPUT, load_cluster
from components.model import membership_record

cluster, ssh_private_key = load_cluster()
ha = HaCluster(cluster.name, cluster, ssh_private_key)

pulumi.export("endpoint", ha.endpoint)
pulumi.export("apiserverSans", ha.sans)
pulumi.export("haproxyCfg", ha.load_balancer.haproxy_cfg)
pulumi.export("certificateExpiry", ha.certificate_expiry)
# The certificates copied from the bootstrap node (admin kubeconfig, the Deployments' files):
# when each expires, and the generation they were read at. The next run re-reads by it.
pulumi.export(COPIES_OUTPUT, ha.access.copies)
# The Kubernetes provider's identity, kept across endpoint and name changes (read back).
pulumi.export(IDENTIFIER_OUTPUT, ha.access.cluster_identifier)
# What was deployed, by address: the next run refuses renames and role moves against it.
pulumi.export(MEMBERSHIP_OUTPUT, membership_record(cluster))
# A working kubeconfig that dials the HA endpoint: pulumi stack output kubeconfig --show-secrets
pulumi.export("kubeconfig", ha.kubeconfig)
