"""How scripts on a control-plane node act on the cluster, and the mark of what kube-ha joined.

kubectl runs with the node's admin kubeconfig and bounded requests. A node this program ran
`kubeadm init` or `join` on carries a marker file and, for the control plane, a Node
annotation: who joined it, for its operator (removal is by the config list, not by these).
"""

from __future__ import annotations

from kube_ha.paths import ADMIN_CONF, NODE_STATE
from kube_ha.shell import quote

# Every kubectl call is bounded: kubectl's default --request-timeout is 0 (none), so an
# apiserver that accepts and never answers would hang the step. `wait` and `drain` carry their
# own --timeout and use KUBECTL_LONG (a watch must outlive one request timeout).
KUBECTL_LONG = f"kubectl --kubeconfig={ADMIN_CONF}"
KUBECTL = f"{KUBECTL_LONG} --request-timeout=30s"


# A node it ran `kubeadm init` or `join` on carries this file and, for the control plane, this
# Node annotation. The join steps' recorded delete (never run now: retained) resets only a node
# with the file.
MANAGED_MARKER = f"{NODE_STATE}/joined-by-kube-ha"
MANAGED_ANNOTATION = "kube-ha.io/joined-by"


# Right after this program's `kubeadm init`/`join` succeeded on this node.
MARK_MANAGED = f"echo 'kubeadm init/join run by kube-ha' > {MANAGED_MARKER}"


def drain_or_cordon(node: str) -> str:
    """Lines that take the workloads off a Node that is leaving (`node`: a shell word, quoted
    or a "$variable"). A Ready node is drained. A node whose kubelet is gone (NotReady,
    Unknown) is only cordoned: its pods would stay Terminating until the kubelet confirms them
    gone, which a dead one never does, so a drain would fail after its whole --timeout
    (kubectl drain.go waitForDelete; "global timeout reached"). Deleting the Node afterwards
    lets the pod garbage collector remove them and their controllers start them elsewhere.
    No Node: nothing to do."""
    return "\n".join([
        f"leaving={node}",
        f'status=$({KUBECTL} get node "$leaving" --no-headers 2>/dev/null | awk \'{{print $2}}\''
        " || true)",
        'case "$status" in',
        '  "") ;;',
        f'  Ready|Ready,*) {KUBECTL_LONG} drain "$leaving" --ignore-daemonsets'
        " --delete-emptydir-data --timeout=300s >&2 ;;",
        f'  *) {KUBECTL} cordon "$leaving" >&2',
        '     log "$leaving is $status (its kubelet is gone): cordoned, not drained; deleting its'
        ' Node frees its pods" ;;',
        "esac",
    ])


def keep_annotated(node_name: str) -> str:
    """After the init/join branch, whichever ran: a node this program joined has its Node
    annotated, through this node's admin.conf (again on every run: one that failed, or a Node
    registered again, would otherwise lose it)."""
    return (f"if [ -f {MANAGED_MARKER} ]; then {KUBECTL} annotate node {quote(node_name)}"
            f" {MANAGED_ANNOTATION}=kube-ha --overwrite >&2; fi")
