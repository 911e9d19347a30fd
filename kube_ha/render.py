"""Offline render: every artifact the program sends to hosts, from Pulumi.<stack>.yaml alone.

    python -m kube_ha.render --stack dev --out rendered/

No Pulumi CLI, no Pulumi import: the same pure functions the program calls, fed by pyyaml.
Values only known at deploy time (the cluster CA read from the bootstrap node, issued
certificates, keys, tokens) appear as placeholders; secrets are never read.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import graphviz
import yaml

from kube_ha.config import OBJECT_KEYS, SECRET_KEYS, ConfigError, misplaced_config_keys, parse_cluster
from kube_ha.diagram import topology_dot, topology_svg
from kube_ha.elastic.firewall import firewall_nodes, lb_reach_script, node_firewall_script
from kube_ha.elastic.manifests import all_manifests
from kube_ha.elastic.pool import pool_script, pool_taints
from kube_ha.endpoint_switch import apiserver_service, switch_install_lines
from kube_ha.kubeadm.config import kubeadm_config
from kube_ha.kubeadm.etcd import control_plane_removals_script, membership_check_script
from kube_ha.kubeadm.scripts import (
    bootstrap_script,
    control_plane_join_script,
    endpoint_check_script,
    join_credentials_script,
    kube_proxy_script,
    read_ca_script,
    reset_script,
    retire_script,
    revoke_join_credentials_script,
    serving_certificate_script,
    worker_join_script,
    workers_reconcile_script,
)
from kube_ha.loadbalancer.haproxy import NODE_LOCAL_HEALTH, node_local_frontend, render_haproxy_cfg
from kube_ha.loadbalancer.keepalived import render_keepalived_conf
from kube_ha.loadbalancer.scripts import configure_script, install_script
from kube_ha.model import PROJECT, Cluster
from kube_ha.preflight import preflight_script, targets
from kube_ha.topology import all_sans, backend_registrations

PLACEHOLDER_CERT = "# <certificate issued at deploy time by pulumi_tls>\n"
PLACEHOLDER_KEY = "# <private key: a Pulumi secret, not rendered>\n"
PLACEHOLDER_CA = "# <cluster CA certificate, read from the bootstrap node at deploy time>\n"
PLACEHOLDER_CREDS = {"token": "<token>", "caCertHash": "sha256:<hash>",
                     "certificateKey": "<certificate-key>"}


class StackFileError(ValueError):
    """The stack file cannot be read as the Pulumi CLI reads it; says where."""


class _Yaml12Loader(yaml.SafeLoader):
    """Booleans as YAML 1.2 (the CLI's go-yaml v3) has them: `yes`, `on` and `no` are strings,
    which the program then refuses as booleans, as it would under `pulumi up`. A key given twice
    in one mapping is an error, as in go-yaml v3, not the last one silently winning."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # go-yaml compares keys as written (decode.go: same node kind, same Value), before any
        # typing: `1` and '1' clash, `true` and `True` do not; nor does a merge key (`<<`) get
        # an exception: one is allowed, a second is "already defined" (decode.go mapping).
        seen: dict[str, yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            first = seen.setdefault(key_node.value, key_node)
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    None, None, f"mapping key {json.dumps(key_node.value, ensure_ascii=False)} "
                    f"already defined at line {first.start_mark.line + 1}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))
# The top-level keys of a stack file (pulumi sdk/go/common/workspace ProjectStack).
STACK_FILE_KEYS = {"config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment"}


def stack_config(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """`kube-ha:` keys of a stack file, secure values replaced by a marker, never decrypted;
    and the keys it would never pass to this program, with why (parse_cluster reports them)."""
    try:
        doc = yaml.load(path.read_text(), Loader=_Yaml12Loader) or {}  # a SafeLoader
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path.name}:{mark.line + 1}:{mark.column + 1}" if mark else path.name
        raise StackFileError(f"{where}: not valid YAML ({getattr(err, 'problem', err)})") from err
    if not isinstance(doc, dict):
        raise StackFileError(f"{path.name}: not a mapping with a `config:` section")
    stray = sorted(str(k) for k in doc if k not in STACK_FILE_KEYS)
    if stray:
        raise StackFileError(
            f"{path.name}: {', '.join(stray)} outside `config:` (indented too little?); a stack "
            f"file holds only {', '.join(sorted(STACK_FILE_KEYS))}")
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(f"{path.name}: `config:` is not a mapping of keys to values")
    config = {_cli_key(k): v for k, v in config.items()}
    raw: dict[str, Any] = {}
    empty: dict[str, str] = {}
    for full_key, value in config.items():
        namespace, _, key = full_key.partition(":")
        if namespace != PROJECT:
            continue
        if value is None and key in OBJECT_KEYS:
            # Declared object/array in Pulumi.yaml: the CLI refuses a null (every entry
            # commented out), "must be of type" (pkg/workspace/config.go).
            empty[key] = "is empty (null), which the Pulumi CLI refuses for this key. Fix: give " \
                         "its entries, or remove the key to take the default."
            continue
        raw[key] = "[secret]" if isinstance(value, dict) and "secure" in value else value
    for key in SECRET_KEYS:
        # Rendering needs no secret: a stack without one still renders for review.
        raw.setdefault(key, "[secret: set at deploy time]")
    return raw, {**misplaced_config_keys(config), **empty}


def _cli_key(key: object) -> str:
    """A stack file's key as the CLI reads it (sdk/go/common/resource/config/key.go
    ParseKey): `<namespace>:config:<name>`, an old form, is `<namespace>:<name>`."""
    parts = str(key).split(":")
    return f"{parts[0]}:{parts[2]}" if len(parts) == 3 and parts[1] == "config" else str(key)


def artifacts(cluster: Cluster) -> dict[str, str]:
    """Relative path -> content, for everything a host or reviewer would see."""
    out = {
        "lb/haproxy.cfg": render_haproxy_cfg(cluster),
        "lb/install.sh": install_script(cluster),

        "sans.json": json.dumps(all_sans(cluster), indent=2) + "\n",
        "topology.dot": topology_dot(cluster),
        "backends.json": json.dumps(backend_registrations(cluster), indent=2) + "\n",
        "kubeadm/kubeadm.yaml": kubeadm_config(cluster),
        "kubeadm/read-ca.sh": read_ca_script(),
        "kubeadm/bootstrap.sh": bootstrap_script(cluster, PLACEHOLDER_CERT, PLACEHOLDER_KEY),
        "kubeadm/join-credentials.sh": join_credentials_script(cluster, control_plane=True),
        "kubeadm/reset.sh": reset_script(),
        "kubeadm/retire.sh": retire_script(),
        "kubeadm/revoke-join-credentials.sh": revoke_join_credentials_script(cluster),
        "kubeadm/workers.sh": workers_reconcile_script(cluster),
    }
    if cluster.endpoint.external:
        out["kubeadm/endpoint-check.sh"] = endpoint_check_script(cluster)
    if cluster.endpoint.service:
        out["manifests/apiserver-service.yaml"] = yaml.safe_dump(apiserver_service(cluster),
                                                                 sort_keys=False)
        out["endpoint/switch.sh"] = "\n".join(switch_install_lines(cluster)) + "\n"
    for t in targets(cluster):
        out[f"preflight/{t.role}-{t.host.name}.sh"] = preflight_script(cluster, t)
    for lb in cluster.load_balancers:
        out[f"lb/configure-{lb.name}.sh"] = configure_script(
            cluster, render_haproxy_cfg(cluster), PLACEHOLDER_CA,
            PLACEHOLDER_CERT + PLACEHOLDER_KEY, vip_host=lb if cluster.uses_vip else None)
        if cluster.uses_vip:
            out[f"lb/keepalived-{lb.name}.conf"] = render_keepalived_conf(cluster, lb)
    for node in cluster.joining_control_plane:
        out[f"kubeadm/join-{node.name}.sh"] = control_plane_join_script(
            cluster, node, PLACEHOLDER_CERT, PLACEHOLDER_KEY, PLACEHOLDER_CREDS)
        # What the removals step would run on the bootstrap node if this node left the list.
        out[f"kubeadm/remove-{node.name}.sh"] = control_plane_removals_script((node,))
    for node in cluster.control_plane:
        out[f"kubeadm/serving-certificate-{node.name}.sh"] = serving_certificate_script(
            cluster, node, PLACEHOLDER_CERT, PLACEHOLDER_KEY)
        out[f"kubeadm/membership-{node.name}.sh"] = membership_check_script(node)
    local_proxy: tuple[str, str] | None = None
    if cluster.node_local_proxy:
        local = render_haproxy_cfg(cluster, frontend=node_local_frontend(cluster))
        local_proxy = (install_script(cluster, node_local=True), configure_script(
            cluster, local, PLACEHOLDER_CA, PLACEHOLDER_CERT + PLACEHOLDER_KEY,
            health=NODE_LOCAL_HEALTH))
        out["node-local/haproxy.cfg"] = local
        out["node-local/install.sh"], out["node-local/configure.sh"] = local_proxy
    for node in cluster.workers:
        out[f"kubeadm/worker-{node.name}.sh"] = worker_join_script(
            cluster, node, PLACEHOLDER_CREDS, local_proxy)
    out["kubeadm/kube-proxy.sh"] = kube_proxy_script(cluster)
    if taints := pool_taints(None, cluster):  # untaints depend on the last `up`'s record
        out["kubeadm/elastic-pool.sh"] = pool_script(taints)
    for node in firewall_nodes(None, cluster):
        out[f"elastic/firewall-{node.name}.sh"] = node_firewall_script(cluster, node)
    for lb in cluster.load_balancers:
        if reach := lb_reach_script(cluster, lb):
            out[f"elastic/reach-{lb.name}.sh"] = reach
    for name, manifest in all_manifests(cluster).items():
        out[f"manifests/{name}"] = yaml.safe_dump(manifest, sort_keys=False)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kube_ha.render", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml")
    p.add_argument("--dir", type=Path, default=Path("."), help="project directory")
    p.add_argument("--out", type=Path, required=True, help="directory to write artifacts to")
    args = p.parse_args(argv)

    stack_file = args.dir / f"Pulumi.{args.stack}.yaml"
    if not stack_file.exists():
        print(f"error: {stack_file} not found", file=sys.stderr)
        return 2
    try:
        cluster = parse_cluster(*stack_config(stack_file))
    except (ConfigError, StackFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    rendered = artifacts(cluster)
    try:
        rendered["topology.svg"] = topology_svg(cluster)
    except graphviz.ExecutableNotFound:
        print("note: Graphviz's dot is not installed (apt install graphviz): topology.svg not "
              "drawn; topology.dot holds the same picture", file=sys.stderr)
    for rel, content in rendered.items():
        path = args.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        if rel.endswith(".sh"):
            path.chmod(0o755)
    print(f"rendered {len(rendered)} artifacts for stack {args.stack} into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
