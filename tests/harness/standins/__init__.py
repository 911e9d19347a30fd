"""Recording stand-ins for the tools our host scripts call but that cannot run here.

`bin/` holds the executables the harness (tests/harness/script_host.py) puts first on a script's
PATH: kubeadm, kubectl, crictl, systemctl, and `hostbin/etcdctl`, a recorder in front of the
real etcdctl for hosts that have one installed. Each behaves as the real tool does for the verbs
our scripts use (output, exit codes, files written or removed), with the upstream source it
follows cited next to the code; any other verb fails loudly ("stand-in: unsupported"). The
fake cluster they share (API objects, tokens, uploaded certs, node registrations) lives in the
directory named by KUBE_HA_STATE; etcd is the real one, run per node by `etcd.py`, and each
control-plane node's kube-apiserver is a small TLS server (`apiserver.py`) serving the node's
apiserver.crt as kube-apiserver does, reloaded from disk.
"""
