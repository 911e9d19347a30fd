"""kubeadm over SSH: init or adopt, joins, etcd membership, removal and reset, as scripts."""
