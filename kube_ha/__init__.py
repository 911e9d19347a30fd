"""The pure core: the config model, topology, and every renderer (scripts, configs, manifests).

Nothing here imports Pulumi (tests/test_layering.py walks the package to keep it so): the same
functions feed the Pulumi components in `components/`, the offline render
(`python -m kube_ha.render`) and the tests that run real haproxy, keepalived, etcd and openssl.
"""
