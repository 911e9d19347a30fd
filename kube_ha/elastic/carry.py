"""What an in-cluster control-plane pod copies from the static pod it stands beside. Pure.

A customised cluster runs its static pods with flags kubeadm's defaults lack (extraArgs, merged
in by kubeadm's ArgumentsToCommand): encryption at rest, a custom issuer, OIDC, audit, admission
plugins. A pod beside them must run the same or it is another control plane: an apiserver
without the encryption config reads no encrypted Secret and writes new ones in plaintext. So a
Deployment's command is the static pod's, read from the bootstrap node, with only each
instance's own flags replaced (its address, port, serving pair, kubeconfig, the etcds it dials);
each file a flag names is mounted from a Secret: the PKI Secret's own copies, or the carried
files Secret for the rest.

The preflight refuses, before anything changes, what cannot be carried (kube_ha.preflight
renders its check from the tables here); `carry` refuses the same, should it ever meet it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import yaml

from kube_ha.paths import K8S

# Flags whose value (a comma list) names files the component reads at start, and which a pod
# can be given as copies: the carried files Secret, mounted at CARRIED_DIR.
CARRIED_FILE_FLAGS: dict[str, tuple[str, ...]] = {
    "kube-apiserver": (
        "encryption-provider-config", "audit-policy-file", "audit-webhook-config-file",
        "admission-control-config-file", "authentication-config", "authorization-config",
        "authentication-token-webhook-config-file", "authorization-webhook-config-file",
        "oidc-ca-file", "service-account-key-file", "egress-selector-config-file",
        "tracing-config-file", "token-auth-file", "kubelet-certificate-authority",
        "requestheader-client-ca-file", "client-ca-file", "cloud-config"),
    "kube-controller-manager": ("cloud-config", "client-ca-file", "requestheader-client-ca-file",
                                "root-ca-file"),
    "kube-scheduler": ("config",),
}
# Flags whose value starts with "/" but names no file on the host.
NOT_PATHS = frozenset({"etcd-prefix"})
# Files the component writes: a pod writes to its container log instead ("-": stdout, in
# kube-apiserver's --audit-log-path reference: "'-' means standard out"), which the node's log
# pipeline collects like any pod's.
WRITTEN = {"audit-log-path": "-"}
# Keys inside a carried config file that name further host files or sockets (admission plugin
# configs, authorization webhooks' kubeconfigs, egress selectors' TLS files and UDS): a pod on
# another node has none of them. A KMS encryption provider needs its plugin's socket the same
# way.
NESTED_PATH_KEYS = ("path", "kubeConfigFile", "caBundle", "clientCert", "clientKey", "udsName",
                    "endpoint")
CARRIED_DIR = f"{K8S}/kube-ha-carried"


class CarryError(ValueError):
    """A static pod's flag a pod on another node cannot be given."""


@dataclass(frozen=True)
class PodView:
    """How one Deployment's pods see the host: `own` {flag: value} each instance sets for
    itself (added where the static pod lacks it); `mapped` {host path: pod path} for the files
    its PKI Secret already copies."""

    component: str
    own: Mapping[str, str]
    mapped: Mapping[str, str]


@dataclass(frozen=True)
class Carried:
    """The pod's flags (`--name=value`, kubeadm's order) and the carried files Secret's data
    {key: base64 content}."""

    flags: list[str]
    files: dict[str, str]


def static_command(manifest: str) -> list[str]:
    """The static pod's command line (command, then args), as the kubelet runs it."""
    doc = yaml.safe_load(manifest) or {}
    containers = (doc.get("spec") or {}).get("containers") or []
    if not containers:
        raise CarryError("the static pod manifest has no container")
    c = containers[0]
    return [str(a) for a in [*(c.get("command") or []), *(c.get("args") or [])]]


def split_flag(arg: str) -> tuple[str, str | None]:
    """`--name=value` -> (name, value); a bare `--name` -> (name, None)."""
    name, eq, value = arg.removeprefix("--").partition("=")
    return name, value if eq else None


def _sorted(flags: Iterable[tuple[str, str | None]]) -> list[str]:
    # kubeadm's ArgumentsToCommand order: by name, then value.
    return [f"--{n}" if v is None else f"--{n}={v}"
            for n, v in sorted(flags, key=lambda f: (f[0], f[1] or ""))]


def host_paths(name: str, value: str) -> list[str]:
    """The host files a flag's value names (each absolute element of its comma list)."""
    if name in NOT_PATHS or name in WRITTEN:
        return []
    return [p for p in value.split(",") if p.startswith("/")]


def _secret_key(path: str, taken: set[str]) -> str:
    base = "".join(c if c.isalnum() or c in "-._" else "-" for c in path.rsplit("/", 1)[-1])
    key, i = base or "file", 1
    while key in taken:
        i += 1
        key = f"{i}-{base}"
    taken.add(key)
    return key


def nested_problem(flag: str, path: str, text: str) -> str | None:
    """Why a carried file cannot work in a pod on another node, or None."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return None  # not YAML (a token file, a PEM): nothing nested
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "kms" and flag == "encryption-provider-config":
                    found.append("a KMS provider (its plugin's socket is on the control-plane"
                                 " hosts only)")
                elif k in NESTED_PATH_KEYS and isinstance(v, str) and v.startswith(("/", "unix:")):
                    found.append(f"{k}: {v}")
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    if not found:
        return None
    return f"--{flag}={path} names {found[0]}, which a pod on another node does not have"


def carry(view: PodView, manifest: str, files: Mapping[str, str]) -> Carried:
    """The pod's flags from the static pod's `manifest` and `files` {host path: base64
    content} read beside it. CarryError names the first flag that cannot be carried."""
    static = static_command(manifest)[1:]
    out: list[tuple[str, str | None]] = []
    carried: dict[str, str] = {}
    keys: set[str] = set()
    by_path: dict[str, str] = {}
    for arg in static:
        name, value = split_flag(arg)
        if name in view.own:
            continue
        if value is None:
            out.append((name, None))
            continue
        if name in WRITTEN:
            out.append((name, WRITTEN[name]))
            continue
        parts = value.split(",")
        paths = host_paths(name, value)
        for i, part in enumerate(parts):
            if part not in paths:
                continue
            if part in view.mapped:
                parts[i] = view.mapped[part]
            elif name in CARRIED_FILE_FLAGS.get(view.component, ()):
                if part not in files:
                    raise CarryError(f"--{name}={value}: {part} was not read from the node")
                content = base64.b64decode(files[part]).decode(errors="replace")
                why = nested_problem(name, part, content)
                if why:
                    raise CarryError(why)
                if part not in by_path:
                    by_path[part] = _secret_key(part, keys)
                    carried[by_path[part]] = files[part]
                parts[i] = f"{CARRIED_DIR}/{by_path[part]}"
            else:
                raise CarryError(f"--{name}={value} names {part}, a host file a pod on another"
                                 " node cannot be given")
        out.append((name, ",".join(parts)))
    out += list(view.own.items())
    return Carried(_sorted(out), carried)


def read_static_pod_output(text: str) -> tuple[str, dict[str, str]]:
    """The read step's stdout (kube_ha.kubeadm.scripts.read_static_pod_script): the manifest,
    and {host path: base64 content} of each file a carried flag names."""
    manifest, files = "", {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "manifest":
            manifest = base64.b64decode(rest).decode()
        elif kind == "file":
            path, _, content = rest.partition(" ")
            files[base64.b64decode(path).decode()] = content
    return manifest, files


# Shell, for the read step and the preflight: `static_flags MANIFEST` prints each `--name=value`
# of a static pod's command as `name=value` (kubeadm writes one `- --name=value` per line, quoted
# when YAML needs it); `host_files NAMES` (the read step's) reads those lines and prints each
# absolute element of the comma-list values of the flags named (space-separated), once.
STATIC_FLAGS = r"""static_flags() {
  sed -n "s/^ *- *['\"]\{0,1\}--\([^=]*\)=\(.*\)$/\1=\2/p" "$1" | sed "s/['\"]$//"
}"""
HOST_FILES = r"""host_files() {
  NAMES=" $1 " awk '{ k = $0; sub(/=.*/, "", k); v = substr($0, length(k) + 2) }
    index(ENVIRON["NAMES"], " " k " ") { n = split(v, p, ","); for (i = 1; i <= n; i++)
      if (p[i] ~ /^\// && !(p[i] in seen)) { seen[p[i]] = 1; print p[i] } }'
}"""


def nested_pattern(flag: str) -> str:
    """An extended regex (grep -E) matching a line of a carried file that `nested_problem`
    refuses: a key naming a host path or socket, or a KMS provider."""
    keys = "|".join(NESTED_PATH_KEYS)
    ref = f"""(^|[[:space:]{{,-])["']?({keys})["']?[[:space:]]*:[[:space:]]*["']?(/|unix:)"""
    if flag == "encryption-provider-config":
        return f"""{ref}|(^|[[:space:]{{,-])["']?kms["']?[[:space:]]*:"""
    return ref
