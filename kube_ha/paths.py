"""Where things live, on the hosts and in the pods: the one home of every shared path.

Renderers import these instead of spelling a path again, so a script that writes a file and the
manifest, check or cleanup that reads it cannot drift apart.
"""

from __future__ import annotations

# kubeadm's layout on every node.
K8S = "/etc/kubernetes"
PKI = f"{K8S}/pki"
ADMIN_CONF = f"{K8S}/admin.conf"
KUBELET_CONF = f"{K8S}/kubelet.conf"
STATIC_PODS = f"{K8S}/manifests"
# What kube-ha itself keeps on a node (0700: kubeadm configs with secrets, markers).
NODE_STATE = f"{K8S}/kube-ha"
# Where the elastic control plane's pods mount their Secret (inside the container).
POD_CONFIG = f"{K8S}/kube-ha"

# The load balancer: haproxy on LB hosts and node-local proxies, keepalived with a VIP.
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
HAPROXY_FILES = "/etc/haproxy/kube-ha"  # CA, health-check client, session guard (root:haproxy)
HAPROXY_STATE = "/var/lib/haproxy"
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
KEEPALIVED_CHECK = "/usr/libexec/keepalived/kube-ha-check.sh"  # RHEL labels this dir for scripts
