"""Stack config in, `Cluster` out: every key read, checked once, every default in one table.

Pure: no Pulumi import. `parse_cluster` takes the stack's config values (keys without the
`kube-ha:` prefix, values already decoded from YAML/JSON) and returns a `Cluster`, or raises one
`ConfigError` listing every problem, each naming its key and the fix. Secret values never enter
the model: only whether they are set.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from kube_ha.elastic import metrics_server
from kube_ha.model import (
    DEPLOYED_IMAGES,
    ENDPOINT_TYPES,
    EVERY_NODE_PORTS,
    KUBEADM_PORTS,
    PROJECT,
    VERSION,
    CertificateSettings,
    Cluster,
    ControllerManagerSettings,
    ElasticApiserverSettings,
    Endpoint,
    HealthCheckSettings,
    Host,
    IPAddress,
    IPNetwork,
    LoadBalancerSettings,
    NetworkSettings,
    SchedulerSettings,
    is_dns_name,
    kubernetes_service_address,
    parse_ip,
)

# Every pattern here is used with `fullmatch` and spells its classes in ASCII (see kube_ha.model).
# POSIX portable user names as useradd accepts them by default (NAME_REGEX), no trailing `$`.
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
# An OpenSSH public key line (`ssh_host_*_key.pub`): type, base64 blob, optional comment. The
# pinned pulumi-command parses it with ssh.ParseAuthorizedKey and negotiates only that key type.
_HOST_KEY = re.compile(r"(ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa) "
                       r"([A-Za-z0-9+/]+={0,2})( [\x21-\x7e][\x20-\x7e]*)?")
_DIGITS = re.compile(r"-?[0-9]+")
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi)?")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_IMAGE_REPOSITORY = re.compile(r"[a-z0-9]([-a-z0-9.:]*[a-z0-9])?(/[a-z0-9._-]+)*")


class Verbatim(str):
    """A stack-file key as the user wrote it, namespace-less: shown as is, not as kube-ha:key."""


def _namespaced(key: str) -> bool:
    """Whether a problem's key is shown as is: written without a namespace, or with one."""
    return isinstance(key, Verbatim) or ":" in re.split(r"[.\[]", key, maxsplit=1)[0]


class ConfigError(ValueError):
    """One or more config problems; each line names the key and the fix."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        self.keys = [key for key, _ in problems]
        lines = [f"{key if _namespaced(key) else f'{PROJECT}:{key}'}: {message}"
                 for key, message in problems]
        super().__init__("invalid stack config:\n  " + "\n  ".join(lines))



# Scalar keys: name -> (type, default, description). Pulumi.yaml declares exactly these (a test
# keeps the two in step), so `pulumi config` users and the offline render see the same defaults.
SCALAR_KEYS: dict[str, tuple[type, Any, str]] = {
    "clusterName": (str, "kubernetes", "Cluster name (kubeadm clusterName, kubeconfig names)."),
    "kubernetesVersion": (str, "v1.32.3", "Kubernetes version the control plane runs (vX.Y.Z)."),
    "apiserverPort": (int, 6443, "Port kube-apiserver binds on each control-plane node."),
    "sshUser": (str, "root", "Default SSH user for hosts that do not name one (sudo if not root)."),
    "sshPort": (int, 22, "Default SSH port for hosts that do not name one."),
    "sshPrivateKey": (str, None, "SSH private key (PEM) for every host. Set with --secret."),
    "serviceSubnet": (str, "10.96.0.0/12", "Service CIDR; its first address is a SAN."),
    "podSubnet": (str, "10.244.0.0/16", "Pod CIDR."),
    "clusterDomain": (str, "cluster.local", "Cluster DNS domain."),
    "allowEvenControlPlane": (bool, False, "Allow an even control-plane count (etcd quorum)."),
    "nodeLocalProxy": (bool, False, "Workers run haproxy on 127.0.0.1; kubelets and kube-proxy dial it."),
    "imageRepository": (str, "registry.k8s.io", "Registry of the control-plane images."),
    "staticPodsRevision": (int, 0, "Bump after changing the static control-plane pods' flags or "
                           "the files they name: the in-cluster Deployments copy them again."),
    "insecureSkipHostKeyCheck": (bool, False, "Throwaway labs only: hosts without hostKey are "
                                 "trusted on first answer (no SSH host key verification)."),
}
# Structured keys: name -> (list or dict, default, description). Pulumi.yaml declares them too
# (`type: object`, or `array` of objects; CLI 3.187+), so the CLI refuses a value of the wrong
# shape; every field inside is checked here, naming the bad one. Each has an empty default, even
# those a stack must set: the CLI's "missing configuration value" would stop before this
# program could say what to set and how (or that a misspelled key was meant).
OBJECT_KEYS: dict[str, tuple[type, Any, str]] = {
    "endpoint": (dict, {}, "The address (and dnsName, port) every client dials."),
    "controlPlane": (list, [], "Control-plane nodes: name, address; one bootstrap: true."),
    "workers": (list, [], "Worker nodes: name, address."),
    "loadBalancers": (list, [], "haproxy hosts in front of the apiservers: name, address."),
    "healthCheck": (dict, {}, "haproxy's /readyz checks: intervals, rise, fall, timeout."),
    "loadBalancer": (dict, {}, "haproxy and keepalived settings."),
    "certificates": (dict, {}, "CA source, extra SANs, validity, rotation."),
    "elasticApiserver": (dict, {}, "Extra kube-apiservers as a Deployment + HPA on poolNodes."),
    "controllerManager": (dict, {}, "controller-manager Deployment: replicas, port."),
    "kubeScheduler": (dict, {}, "kube-scheduler Deployment: replicas, port."),
    "imageDigests": (dict, {}, "Image name -> sha256 digest the Deployments pin."),
}
SECRET_KEYS = {"sshPrivateKey"}

T = TypeVar("T")


def default(key: str) -> Any:
    """A scalar key's default: SCALAR_KEYS is its only home (Pulumi.yaml is kept equal to it)."""
    return SCALAR_KEYS[key][1]


class _Reader:
    """Collects problems instead of stopping at the first, so one run shows them all."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        # Every object read: its key (list indexes as `[]`) -> the fields it takes.
        self.fields: dict[str, set[str]] = {}

    def declare(self, key: str, allowed: set[str]) -> None:
        self.fields.setdefault(re.sub(r"\[[0-9]+\]", "[]", key), set()).update(allowed)

    def fail(self, key: str, message: str) -> None:
        self.problems.append((key, message))

    def typed(self, key: str, value: Any, kind: type[T], default: T) -> T:
        if value is None:
            return default
        # YAML/JSON config may carry numbers and booleans as strings ("6443", "true").
        if kind is bool and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"  # type: ignore[return-value]
        if kind is int and isinstance(value, str) and _DIGITS.fullmatch(value):
            return int(value)  # type: ignore[return-value]
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            name = {"int": "an integer", "bool": "a boolean", "str": "a string"}.get(kind.__name__, kind.__name__)
            self.fail(key, f"{value!r} is not {name}. Fix: give {name}.")
            return default
        return value

    def port(self, key: str, value: Any, default: int) -> int:
        port = self.typed(key, value, int, default)
        if not 1 <= port <= 65535:
            self.fail(key, f"port {port} is out of range. Fix: use 1-65535.")
        return port

    def positive(self, key: str, value: Any, default: int, minimum: int = 1,
                 maximum: int | None = None) -> int:
        number = self.typed(key, value, int, default)
        if number < minimum:
            self.fail(key, f"{number} is too small. Fix: use at least {minimum}.")
        elif maximum is not None and number > maximum:
            self.fail(key, f"{number} is too large. Fix: use at most {maximum}.")
        return number

    def within(self, minimum: int, maximum: int) -> Callable[[str, Any, int], int]:
        """A field reader for an integer in [minimum, maximum]."""
        return lambda k, v, df: self.positive(k, v, df, minimum, maximum)

    def ip(self, key: str, value: Any) -> IPAddress | None:
        address = parse_ip(value)
        if address is None:
            self.fail(key, f"{value!r} is not an IP address. Fix: give an IPv4 or IPv6 address, "
                      "without a zone id or spaces.")
        return address

    def cidr(self, key: str, value: Any) -> IPNetwork | None:
        try:
            if not (isinstance(value, str) and value.isascii() and value == value.strip()):
                raise ValueError("not a plain ASCII string")
            if "%" in value:  # Python takes `fe80::/64%anything` as a zone id, as for addresses
                raise ValueError("zone ids are not allowed")
            return ipaddress.ip_network(value, strict=True)
        except ValueError as err:
            self.fail(key, f"{value!r} is not a network CIDR ({err}). Fix: e.g. 10.96.0.0/12.")
            return None

    def user(self, key: str, value: Any, default: str) -> str:
        name = self.typed(key, value, str, default)
        if not _USER.fullmatch(name):
            self.fail(key, f"{name!r} is not a user name. Fix: lower-case letters, digits, '_' "
                      "or '-', starting with a letter, e.g. root or kube-admin.")
        return name

    def obj(self, key: str, value: Any, allowed: set[str]) -> Mapping[str, Any]:
        self.declare(key, allowed)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(key, "must be a mapping. Fix: give key: value pairs.")
            return {}
        for unknown in sorted(set(value) - allowed):
            if str(unknown).startswith(f"{PROJECT}:"):
                # A stack key indented into this one: YAML made it a field.
                top = re.split(r"[.\[]", key, maxsplit=1)[0]
                self.fail(f"{key}.{unknown}", f"is a stack key, indented into {PROJECT}:{key}. "
                          f"Fix: dedent it to the level of {PROJECT}:{top}.")
                continue
            hint = _closest(str(unknown), allowed)
            self.fail(
                f"{key}.{unknown}",
                f"unknown key.{f' Did you mean {hint!r}?' if hint else ''} "
                f"Fix: use one of {', '.join(sorted(allowed))}.",
            )
        return value


def misplaced_config_keys(full_keys: Iterable[str]) -> dict[str, str]:
    """Stack config keys meant for this program that it would never see, with why: no
    namespace (the CLI refuses those: `<namespace>:<name>`), or a namespace a typo away from
    `kube-ha` (the CLI hands those to no one, silently)."""
    found: dict[str, str] = {}
    for full in full_keys:
        namespace, sep, key = str(full).partition(":")
        if not sep:
            # parse_cluster says more when it is a field of an object, dedented out of it.
            found[Verbatim(full)] = (f"has no namespace, which the Pulumi CLI refuses. "
                                     f"Fix: write {PROJECT}:{full}.")
        elif ":" in key:
            found[full] = ("is not a key the Pulumi CLI reads (config/key.go ParseKey: "
                           "`<namespace>:<name>`). Fix: one colon, after the namespace.")
        elif namespace != PROJECT and _closest(namespace, {PROJECT}):
            found[full] = (f"is in namespace {namespace!r}, which nothing reads. Did you mean "
                           f"'{PROJECT}:{key}'?")
    return found


def _stands_for(key: str) -> str | None:
    """The name a misplaced key (misplaced_config_keys) was written for; None for a key of
    ours whose value did not decode."""
    return key.rpartition(":")[2] if isinstance(key, Verbatim) or ":" in key else None


def _unset(value: Any) -> bool:
    """Absent, or the empty default the CLI fills in for a key Pulumi.yaml declares."""
    return value in (None, {}, [])


def _meant(raw: Mapping[str, Any], unreadable: Mapping[str, str]) -> set[str]:
    """Keys whose own problems go unsaid: those that did not decode, and the stack keys a
    misplaced one was meant to be while unset (no `not set` after `write kube-ha:endpoint`)."""
    keys = set()
    for full in unreadable:
        meant = _stands_for(full)
        if meant is None:
            keys.add(str(full))
        elif meant in {*SCALAR_KEYS, *OBJECT_KEYS} and _unset(raw.get(meant)):
            keys.add(meant)
    return keys


def _misplaced(r: _Reader, raw: Mapping[str, Any], unreadable: Mapping[str, str]) -> dict[str, str]:
    """The unreadable keys' messages; a namespace-less key that is no stack key is told
    where it belongs: a field of an object, dedented out of it, or a near-miss."""
    out = dict(unreadable)
    for key in unreadable:
        meant = _stands_for(key)
        if meant is not None and not _unset(raw.get(meant)):
            # Its first sentence (". " ends one; "key.go" does not), then what to do instead.
            out[key] = (f"{unreadable[key].split('. ')[0]}, and {PROJECT}:{meant} is set as "
                        "well. Fix: remove this one, or merge what it holds into that key.")
            continue
        if not isinstance(key, Verbatim) or key in SCALAR_KEYS or key in OBJECT_KEYS:
            continue
        owners = [f"each entry of {PROJECT}:{o[:-2]}" if o.endswith("[]") else f"{PROJECT}:{o}"
                  for o in sorted(r.fields, key=lambda o: (o.endswith("[]"), o))
                  if key in r.fields[o]]
        if owners:
            which = "that key" if len(owners) == 1 else "the one it belongs to"
            out[key] = (f"has no namespace, and is a field of {' or '.join(owners)}: indented "
                        f"too little? Fix: indent it under {which}.")
        else:
            hint = _closest(key, {*SCALAR_KEYS, *OBJECT_KEYS})
            out[key] = (f"has no namespace, and no stack key has this name."
                        f"{f' Did you mean {PROJECT}:{hint}?' if hint else ''} Fix: remove it "
                        "or correct its spelling.")
    return out


def _closest(word: str, choices: set[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return match[0] if match else None


_HOST_KEYS = {"name", "address", "user", "port", "bootstrap", "hostKey"}


def _host_key(r: _Reader, key: str, value: Any, required: bool) -> str | None:
    if value is None:
        if required:
            r.fail(key, "is not set: without it the SSH client trusts whoever answers on the "
                   "address with root scripts, the CA key and join tokens. Fix: give the host's "
                   "/etc/ssh/ssh_host_ed25519_key.pub line, collected out of band (see README, "
                   "'SSH host keys'), or set insecureSkipHostKeyCheck: true for a throwaway lab.")
        return None
    m = _HOST_KEY.fullmatch(value) if isinstance(value, str) else None
    blob = b""
    if m:
        with contextlib.suppress(ValueError):
            blob = base64.b64decode(m.group(2), validate=True)
    # The blob starts with its own key type (RFC 4253 6.6): a pasted key of another type or a
    # truncated line is caught here, not at the first dial.
    kind = m.group(1).encode() if m else b""
    if not m or blob[4:4 + len(kind)] != kind or int.from_bytes(blob[:4], "big") != len(kind):
        r.fail(key, f"{value!r} is not an SSH public key. Fix: paste one line of "
               "/etc/ssh/ssh_host_ed25519_key.pub, e.g. 'ssh-ed25519 AAAAC3Nza... root@node'.")
        return None
    return f"{m.group(1)} {m.group(2)}"



def _hosts(r: _Reader, key: str, value: Any, user: str, port: int, cp: bool,
           need_host_key: bool) -> list[Host]:
    allowed = _HOST_KEYS if cp else _HOST_KEYS - {"bootstrap"}
    r.declare(f"{key}[]", allowed)
    if value is None:
        return []
    if not isinstance(value, list):
        r.fail(key, "must be a list of hosts. Fix: give - name: ..., address: ... entries.")
        return []
    hosts = []
    for i, entry in enumerate(value):
        k = f"{key}[{i}]"
        if entry is None:
            r.fail(k, "is empty (null). Fix: give name and address, or remove the line.")
            continue
        item = r.obj(k, entry, allowed)
        if not item:
            if isinstance(entry, Mapping):
                r.fail(k, "is empty. Fix: give name and address.")
            continue
        name = item.get("name")
        if not is_dns_name(name):
            r.fail(f"{k}.name", f"{name!r} is not a valid node name. Fix: lower-case DNS name.")
            name = f"invalid-{i}"
        address = r.ip(f"{k}.address", item.get("address"))
        _usable(r, f"{k}.address", address)
        hosts.append(
            Host(
                name=name,
                address=address or ipaddress.ip_address("0.0.0.0"),
                user=r.user(f"{k}.user", item.get("user"), user),
                port=r.port(f"{k}.port", item.get("port"), port),
                bootstrap=r.typed(f"{k}.bootstrap", item.get("bootstrap"), bool, False),
                host_key=_host_key(r, f"{k}.hostKey", item.get("hostKey"), need_host_key),
            )
        )
    return hosts


def _usable(r: _Reader, key: str, address: IPAddress | None) -> None:
    """An address a client can dial: not unspecified (0.0.0.0 dials localhost on Linux),
    multicast or broadcast."""
    if address is not None and (address.is_unspecified or address.is_multicast or (
            address.version == 4 and address == ipaddress.ip_address("255.255.255.255"))):
        r.fail(key, f"{address} is not a host address. Fix: give the address it is reached at.")


def _check_unique(r: _Reader, groups: list[tuple[str, list[Host]]]) -> None:
    seen_names: dict[str, str] = {}
    seen_addresses: dict[IPAddress, str] = {}
    for key, hosts in groups:
        for i, host in enumerate(hosts):
            where = f"{key}[{i}]"
            if host.name in seen_names:
                r.fail(f"{where}.name", f"{host.name!r} is also {seen_names[host.name]}. "
                       "Fix: give every host its own name.")
            seen_names.setdefault(host.name, where)
            if host.address in seen_addresses:
                r.fail(f"{where}.address", f"{host.address} is also {seen_addresses[host.address]}."
                       " Fix: give every host its own address.")
            seen_addresses.setdefault(host.address, where)


def parse_cluster(raw: Mapping[str, Any],
                  unreadable: Mapping[str, str] | None = None) -> Cluster:
    """Validate stack config and build the model. Raises ConfigError naming every bad key.

    `unreadable`: keys whose value could not even be decoded (key -> why); they are reported
    with every other problem, and nothing else is said about them."""
    r = _Reader()
    for unknown in sorted(set(raw) - set(SCALAR_KEYS) - set(OBJECT_KEYS)):
        hint = _closest(unknown, {*SCALAR_KEYS, *OBJECT_KEYS})
        r.fail(unknown, f"unknown key.{f' Did you mean {hint!r}?' if hint else ''} "
               "Fix: remove it or correct its spelling.")

    def scalar(key: str) -> Any:
        kind, fallback, _ = SCALAR_KEYS[key]
        return r.typed(key, raw.get(key), kind, fallback)

    name = scalar("clusterName")
    if not is_dns_name(name):
        r.fail("clusterName", f"{name!r} is not a DNS-1123 name. Fix: lower-case, digits, '-'.")
    version = scalar("kubernetesVersion")
    if not VERSION.fullmatch(version):
        r.fail("kubernetesVersion", f"{version!r} is not a version. Fix: e.g. v1.32.3.")
    elif not version.startswith("v"):
        version = "v" + version
    ssh_user = r.user("sshUser", raw.get("sshUser"), default("sshUser"))
    ssh_port = r.port("sshPort", raw.get("sshPort"), default("sshPort"))
    apiserver_port = r.port("apiserverPort", raw.get("apiserverPort"), default("apiserverPort"))
    if raw.get("sshPrivateKey") in (None, ""):
        r.fail("sshPrivateKey", "is not set. Fix: pulumi config set --secret sshPrivateKey "
               "< ~/.ssh/id_ed25519")

    need_key = not scalar("insecureSkipHostKeyCheck")
    cps = _hosts(r, "controlPlane", raw.get("controlPlane"), ssh_user, ssh_port, True, need_key)
    workers = _hosts(r, "workers", raw.get("workers"), ssh_user, ssh_port, False, need_key)
    lbs = _hosts(r, "loadBalancers", raw.get("loadBalancers"), ssh_user, ssh_port, False, need_key)
    _check_unique(r, [("controlPlane", cps), ("workers", workers)])
    _check_unique(r, [("loadBalancers", lbs)])

    allow_even = scalar("allowEvenControlPlane")  # read always: a bad value is reported
    if not cps:
        r.fail("controlPlane", "no control-plane nodes. Fix: list at least one (1, 3 or 5).")
    elif len(cps) % 2 == 0 and not allow_even:
        r.fail("controlPlane", f"{len(cps)} nodes is an even etcd member count: it tolerates no "
               "more failures than one fewer. Fix: use an odd count, or set "
               "allowEvenControlPlane: true while growing.")
    bootstraps = [h for h in cps if h.bootstrap]
    if len(bootstraps) > 1:
        r.fail("controlPlane", "more than one node has bootstrap: true. Fix: mark exactly one.")
    elif cps and not bootstraps:
        # The first node is the bootstrap node unless one is marked.
        cps[0] = dataclasses.replace(cps[0], bootstrap=True)

    ep_raw = r.obj("endpoint", raw.get("endpoint"),
                   {"address", "dnsName", "port", "virtualIp", "type", "manageHostsEntry"})
    ep_address = r.ip("endpoint.address", ep_raw.get("address")) if ep_raw else None
    _usable(r, "endpoint.address", ep_address)
    if not ep_raw:
        r.fail("endpoint", "is not set. Fix: give endpoint.address (the LB or VIP address).")
    dns_name = ep_raw.get("dnsName")
    if dns_name is not None and not is_dns_name(dns_name):
        r.fail("endpoint.dnsName", f"{dns_name!r} is not a DNS name. Fix: e.g. api.k8s.example.")
        dns_name = None
    vip_flag = r.typed("endpoint.virtualIp", ep_raw.get("virtualIp"), bool, False)
    ep_type = r.typed("endpoint.type", ep_raw.get("type"), str,
                      "virtualIp" if vip_flag else "loadBalancer")
    if ep_type not in ENDPOINT_TYPES:
        r.fail("endpoint.type", f"{ep_type!r} is not one of {', '.join(ENDPOINT_TYPES)}. Fix: "
               "loadBalancer (haproxy on the LB host), virtualIp (keepalived moves the address "
               "between the LB hosts) or external (your own load balancer).")
    elif vip_flag and ep_type != "virtualIp":
        r.fail("endpoint.virtualIp", f"is true, but endpoint.type is {ep_type}. Fix: keep one: "
               "endpoint.type: virtualIp (virtualIp: true says the same).")
    endpoint = Endpoint(
        address=ep_address or ipaddress.ip_address("0.0.0.0"),
        port=r.port("endpoint.port", ep_raw.get("port"), Endpoint.DEFAULT_PORT),
        dns_name=dns_name,
        virtual_ip=ep_type == "virtualIp",
        type=ep_type if ep_type in ENDPOINT_TYPES else "loadBalancer",
        manage_hosts_entry=r.typed("endpoint.manageHostsEntry", ep_raw.get("manageHostsEntry"),
                                   bool, False),
    )
    if endpoint.manage_hosts_entry and not endpoint.dns_name:
        r.fail("endpoint.manageHostsEntry", "is true, but endpoint.dnsName is not set: there is "
               "no name to map. Fix: set endpoint.dnsName, or leave this false.")
    node_addresses = {h.address: f"{k}" for k, hs in (("controlPlane", cps), ("workers", workers))
                      for h in hs}
    if ep_address is not None and ep_address in node_addresses:
        r.fail("endpoint.address", f"{ep_address} is a {node_addresses[ep_address]} node: the "
               "endpoint must survive that node. Fix: use the LB's address or a VIP.")

    service = r.cidr("serviceSubnet", scalar("serviceSubnet"))
    pod = r.cidr("podSubnet", scalar("podSubnet"))
    _subnet_sizes(r, service, pod)
    if service and pod and service.version == pod.version and service.overlaps(pod):  # type: ignore[arg-type]
        r.fail("podSubnet", f"{pod} overlaps serviceSubnet {service}. Fix: use disjoint CIDRs.")
    domain = scalar("clusterDomain")
    if not is_dns_name(domain):
        r.fail("clusterDomain", f"{domain!r} is not a DNS domain. Fix: e.g. cluster.local.")

    health = _health_check(r, raw.get("healthCheck"))
    lb = _load_balancer(r, raw.get("loadBalancer"))
    lb_addresses = {h.address: f"loadBalancers[{i}]" for i, h in enumerate(lbs)}
    if endpoint.service:
        _service_endpoint(r, endpoint, lbs, scalar("serviceSubnet"))
    elif endpoint.external and lbs:
        r.fail("loadBalancers", "lists hosts, but endpoint.type is external: your load balancer "
               "is yours, and the program configures none. Fix: remove loadBalancers, or set "
               "endpoint.type to loadBalancer or virtualIp.")
    elif endpoint.external:
        pass  # the address is the user's LB (a node's address is refused above)
    elif endpoint.virtual_ip and not lbs:
        r.fail("endpoint.virtualIp", "needs loadBalancers: keepalived runs on them. Fix: list "
               "the LB hosts, or set endpoint.type: external for a load balancer of your own.")
    elif not lbs:
        r.fail("loadBalancers", "no load-balancer hosts. Fix: list the LB VM(s) running haproxy, "
               "or set endpoint.type: external for a load balancer of your own.")
    elif endpoint.virtual_ip and ep_address in lb_addresses:
        r.fail("endpoint.virtualIp", f"{ep_address} is {lb_addresses[ep_address]}'s own address; "
               "a virtual IP is one no host owns. Fix: a free address in the LBs' subnet.")
    elif ep_address is not None and len(lbs) > 1 and ep_address in lb_addresses:
        r.fail("endpoint.address", f"{ep_address} belongs to one of {len(lbs)} load balancers, "
               "so the others would never serve it. Fix: use a free address in their subnet "
               "as a virtual IP (endpoint.virtualIp: true); keepalived then moves it to a "
               "healthy LB.")
    elif (lbs and ep_address is not None and not ep_address.is_unspecified
          and ep_address not in lb_addresses and ep_address not in node_addresses
          and not endpoint.virtual_ip):
        r.fail("endpoint.address", f"{ep_address} is none of the load balancers' addresses. Fix: "
               "give the LB's own address, or set endpoint.virtualIp: true to have keepalived "
               f"move {ep_address} between the LB hosts.")
    if endpoint.virtual_ip and lb.bind_address != "*":
        r.fail("loadBalancer.bindAddress", "with a virtual IP endpoint haproxy must listen on "
               "every address (a backup host does not own the VIP yet). Fix: leave it '*'.")
    certs = _certificates(r, raw.get("certificates"))
    names = {h.name for h in cps + workers}
    elastic = _elastic(r, raw.get("elasticApiserver"), names, apiserver_port)
    if elastic.enabled and endpoint.service:
        r.fail("elasticApiserver.enabled", "with endpoint.type service, nodes reach the static "
               "apiservers through the Service, which cannot select the elastic pods (another "
               "port). Fix: switch them off, or use a load balancer topology.")
    found = VERSION.fullmatch(version)
    if elastic.enabled and elastic.install_metrics_server and found and metrics_server.release_for(
            (int(found.group(1)), int(found.group(2)))) is None:
        r.fail("elasticApiserver.installMetricsServer", f"no metrics-server release supports "
               f"Kubernetes {version} (the oldest pinned, {metrics_server.RELEASES[-1][1]}, "
               f"needs 1.{metrics_server.RELEASES[-1][0]}). Fix: install one yourself and "
               "leave this false.")
    cm_raw = r.obj("controllerManager", raw.get("controllerManager"), {"replicas", "port"})
    cm = ControllerManagerSettings(
        replicas=r.positive("controllerManager.replicas", cm_raw.get("replicas"), 0, minimum=0),
        port=r.port("controllerManager.port", cm_raw.get("port"), ControllerManagerSettings.port),
    )
    sc_raw = r.obj("kubeScheduler", raw.get("kubeScheduler"), {"replicas", "port"})
    scheduler = SchedulerSettings(
        replicas=r.positive("kubeScheduler.replicas", sc_raw.get("replicas"), 0, minimum=0),
        port=r.port("kubeScheduler.port", sc_raw.get("port"), SchedulerSettings.port),
    )
    _check_ports(r, apiserver_port, elastic, cm, scheduler, len(cps))
    node_local = scalar("nodeLocalProxy")
    node_ports = [(p, f"{key}") for key, p, on in (
        ("elasticApiserver.port", elastic.port, elastic.enabled),
        ("controllerManager.port", cm.port, cm.replicas > 0),
        ("kubeScheduler.port", scheduler.port, scheduler.replicas > 0)) if on]
    _check_hosts(r, cps, workers, lbs, endpoint, apiserver_port, lb, node_local, node_ports)

    image_repository = scalar("imageRepository").rstrip("/")
    if not _IMAGE_REPOSITORY.fullmatch(image_repository):
        r.fail("imageRepository", f"{image_repository!r} is not a registry path. "
               "Fix: e.g. registry.k8s.io or registry.example.com/k8s.")
    image_digests = _image_digests(r, raw.get("imageDigests"))
    static_pods_revision = r.positive("staticPodsRevision", raw.get("staticPodsRevision"),
                                      default("staticPodsRevision"), minimum=0)

    if unreadable:
        r.problems = [*_misplaced(r, raw, unreadable).items(), *(
            (k, m) for k, m in r.problems if not any(
                k == bad or k.startswith((f"{bad}.", f"{bad}[")) for bad in _meant(raw, unreadable)))]
    if r.problems:
        raise ConfigError(r.problems)
    assert service is not None and pod is not None
    return Cluster(
        name=name,
        kubernetes_version=version,
        control_plane=tuple(cps),
        workers=tuple(workers),
        load_balancers=tuple(lbs),
        endpoint=endpoint,
        networking=NetworkSettings(service, pod, domain),
        apiserver_port=apiserver_port,
        health_check=health,
        load_balancer=lb,
        certificates=certs,
        elastic_apiserver=elastic,
        controller_manager=cm,
        scheduler=scheduler,
        node_local_proxy=node_local,
        image_repository=image_repository,
        image_digests=image_digests,
        insecure_skip_host_key_check=not need_key,
        static_pods_revision=static_pods_revision,
    )


def _image_digests(r: _Reader, value: Any) -> dict[str, str]:
    digests = {}
    for component, digest in r.obj("imageDigests", value, set(DEPLOYED_IMAGES)).items():
        if component not in DEPLOYED_IMAGES:
            continue  # already refused, as an unknown key
        if isinstance(digest, str) and _DIGEST.fullmatch(digest):
            digests[component] = digest
        else:
            r.fail(f"imageDigests.{component}", f"{digest!r} is not an image digest. Fix: give "
                   "the sha256 digest of the image at kubernetesVersion, e.g. 'sha256:<64 hex>' "
                   "(crane digest or skopeo inspect prints it).")
    return digests


# Ports kubeadm's nodes already use (kubernetes.io "Ports and Protocols"), each with its owner.
def _check_ports(r: _Reader, apiserver_port: int, elastic: ElasticApiserverSettings,
                 cm: ControllerManagerSettings, scheduler: SchedulerSettings, control_plane: int) -> None:
    """hostNetwork listeners on the same nodes: none on a kubeadm port or on another's port."""
    taken = {apiserver_port: "apiserverPort"}
    wanted = []
    if elastic.enabled:  # pool nodes may be control-plane nodes
        wanted.append(("elasticApiserver.port", elastic.port))
    if cm.replicas:
        wanted.append(("controllerManager.port", cm.port))
    if scheduler.replicas:
        wanted.append(("kubeScheduler.port", scheduler.port))
    if apiserver_port in KUBEADM_PORTS:
        r.fail("apiserverPort", f"{apiserver_port} is {KUBEADM_PORTS[apiserver_port]}. "
               "Fix: use 6443.")
    for key, port in wanted:
        if port in KUBEADM_PORTS:
            r.fail(key, f"{port} is {KUBEADM_PORTS[port]} on every node (hostNetwork). "
                   "Fix: use a free port, e.g. 7443, 10357 or 10359.")
        elif port in taken:
            r.fail(key, f"{port} is also {taken[port]}: both listen on the same nodes "
                   "(hostNetwork). Fix: give each its own port.")
        taken.setdefault(port, key)
    for key, replicas in (("controllerManager.replicas", cm.replicas),
                          ("kubeScheduler.replicas", scheduler.replicas)):
        if replicas > control_plane:
            r.fail(key, f"{replicas} replicas, one per control-plane node, but there are "
                   f"{control_plane}. Fix: at most {control_plane}.")


def _check_hosts(r: _Reader, cps: list[Host], workers: list[Host], lbs: list[Host],
                 endpoint: Endpoint, apiserver_port: int, lb: LoadBalancerSettings,
                 node_local: bool, node_ports: list[tuple[int, str]]) -> None:
    """Addresses a host can be reached at, and listeners that would collide on one host."""
    nodes = {h.address: (f"controlPlane[{i}]", True) for i, h in enumerate(cps)}
    nodes.update({h.address: (f"workers[{i}]", False) for i, h in enumerate(workers)})
    for i, h in enumerate(lbs):
        where, control_plane = nodes.get(h.address, ("", False))
        if not where:
            continue
        key = f"loadBalancers[{i}].address"
        if not control_plane and node_local:
            r.fail(key, f"{h.address} is also {where}, whose node-local proxy is haproxy with "
                   "its own haproxy.cfg: one would overwrite the other. Fix: a separate LB host.")
            continue
        # A worker runs no static pod: only the kubelet and kube-proxy listen there.
        taken = {**{p: owner for p, owner in KUBEADM_PORTS.items() if control_plane or p in EVERY_NODE_PORTS},
                 **dict(node_ports), **({apiserver_port: "the apiserver's port"} if control_plane else {})}
        for what, port in (("endpoint.port", endpoint.port),
                           ("loadBalancer.statsBind", lb.stats_port)):
            if port is not None and port in taken:
                r.fail(key, f"{h.address} is also {where}, where {what} {port} is "
                       f"{taken[port]}. Fix: a separate LB host, or another {what}.")
    if lb.stats_port == endpoint.port:
        r.fail("loadBalancer.statsBind", f"port {endpoint.port} is the endpoint's. Fix: e.g. "
               "127.0.0.1:8404.")
    lb_addresses = {h.address for h in lbs}
    if lbs and endpoint.virtual_ip and not endpoint.address.is_unspecified:
        if {a.version for a in lb_addresses} != {endpoint.address.version}:
            r.fail("endpoint.address", f"virtual IP {endpoint.address} is not of the load "
                   "balancers' address family. Fix: a free address in their subnet.")
        elif endpoint.address.is_loopback:
            r.fail("endpoint.address", f"{endpoint.address} is a loopback address: no client "
                   "on another host can reach it. Fix: a free address in the LBs' subnet.")


# kubeadm refuses these before it touches a node (cmd/kubeadm/app/apis/kubeadm/validation
# ValidateNetworking, ValidateServiceSubnetSize, ValidatePodSubnetNodeMask; constants.go): a
# service subnet of at least 10 addresses (CoreDNS's Service takes the tenth) and at most 20
# host bits; a pod subnet that holds one node's range (the controller-manager's default
# --node-cidr-mask-size: /24 IPv4, /64 IPv6) and is at most 16 bits larger than one.
SERVICE_SUBNET_MIN_ADDRESSES = 10
SERVICE_SUBNET_MAX_HOST_BITS = 20
NODE_CIDR_MASK = {4: 24, 6: 64}
POD_SUBNET_MAX_NODE_BITS = 16


def _subnet_sizes(r: _Reader, service: IPNetwork | None, pod: IPNetwork | None) -> None:
    if service is not None:
        smallest = service.max_prefixlen - SERVICE_SUBNET_MAX_HOST_BITS
        if service.num_addresses < SERVICE_SUBNET_MIN_ADDRESSES:
            r.fail("serviceSubnet", f"{service} has {service.num_addresses} address(es); kubeadm needs at "
                   f"least {SERVICE_SUBNET_MIN_ADDRESSES} (CoreDNS's Service takes the tenth). Fix: e.g. "
                   "10.96.0.0/12.")
        elif service.prefixlen < smallest:
            r.fail("serviceSubnet", f"{service} is larger than kubeadm allows: the mask must be at least "
                   f"/{smallest}. Fix: e.g. 10.96.0.0/12.")
    if pod is not None:
        node = NODE_CIDR_MASK[pod.version]
        if pod.prefixlen > node:
            r.fail("podSubnet", f"{pod} is smaller than one node's pod range (/{node}): kubeadm refuses "
                   f"it. Fix: use a mask of /{node} or less, e.g. 10.244.0.0/16.")
        elif node - pod.prefixlen > POD_SUBNET_MAX_NODE_BITS:
            r.fail("podSubnet", f"{pod} is larger than kubeadm allows: the mask must be at least "
                   f"/{node - POD_SUBNET_MAX_NODE_BITS}. Fix: e.g. 10.244.0.0/16.")


def _service_endpoint(r: _Reader, endpoint: Endpoint, lbs: list[Host], subnet: str) -> None:
    """`endpoint.type: service`: the address is the Service's fixed ClusterIP, inside the
    service range and not one kubeadm gives away (the `kubernetes` Service the first, cluster
    DNS the tenth: kubeadm constants GetDNSIP); nodes dial it by name."""
    if lbs:
        r.fail("loadBalancers", "lists hosts, but endpoint.type is service: nodes reach the "
               "apiservers through the Service. Fix: remove loadBalancers.")
    if not endpoint.dns_name:
        r.fail("endpoint.dnsName", "is needed with endpoint.type service: nodes dial it, and "
               "each keeps it in /etc/hosts. Fix: e.g. apiserver.kube-system.svc.cluster.local.")
    try:
        network = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        return  # refused as serviceSubnet
    address = endpoint.address
    if address.version != network.version or address not in network:
        r.fail("endpoint.address", f"{address} is outside serviceSubnet {network}: with "
               "endpoint.type service it is the Service's ClusterIP. Fix: a free address in it.")
        return
    taken = {network.network_address: "the network's own address",
             kubernetes_service_address(network): "the kubernetes Service's ClusterIP",
             network.network_address + 10: "cluster DNS's ClusterIP (kubeadm: the tenth)"}
    if network.version == 4:
        taken[network.broadcast_address] = "the broadcast address"
    if address in taken:
        r.fail("endpoint.address", f"{address} is {taken[address]}. Fix: another address in "
               f"serviceSubnet {network}.")


def _fields(r: _Reader, key: str, value: Any, spec: dict[str, tuple[str, Any, Callable[..., Any]]]
            ) -> dict[str, Any]:
    """Read a config object whose camelCase keys map to dataclass fields via `spec`."""
    obj = r.obj(key, value, set(spec))
    return {attr: read(f"{key}.{ck}", obj.get(ck), default)
            for ck, (attr, default, read) in spec.items()}


def _health_check(r: _Reader, value: Any) -> HealthCheckSettings:
    d = HealthCheckSettings()
    hc = HealthCheckSettings(**_fields(r, "healthCheck", value, {
        "interMs": ("inter_ms", d.inter_ms, r.within(100, 60_000)),
        "fastInterMs": ("fast_inter_ms", d.fast_inter_ms, r.within(50, 60_000)),
        "downInterMs": ("down_inter_ms", d.down_inter_ms, r.within(100, 60_000)),
        "rise": ("rise", d.rise, r.within(1, 100)),
        "fall": ("fall", d.fall, r.within(1, 100)),
        "timeoutMs": ("timeout_ms", d.timeout_ms, r.within(50, 60_000)),
        "shutdownSessionsOnDown": ("shutdown_sessions_on_down", d.shutdown_sessions_on_down,
                                   lambda k, v, df: r.typed(k, v, bool, df)),
    }))
    if hc.timeout_ms >= hc.inter_ms:
        r.fail("healthCheck.timeoutMs", f"{hc.timeout_ms} >= interMs {hc.inter_ms}: checks would "
               "overlap. Fix: keep the check timeout below the interval.")
    return hc


def _load_balancer(r: _Reader, value: Any) -> LoadBalancerSettings:
    d = LoadBalancerSettings()

    def text(k: str, v: Any, df: Any) -> Any:
        return df if v is None else r.typed(k, v, str, "")

    lb = LoadBalancerSettings(**_fields(r, "loadBalancer", value, {
        "bindAddress": ("bind_address", d.bind_address, text),
        "statsBind": ("stats_bind", d.stats_bind, text),
        "prometheusMetrics": ("prometheus_metrics", d.prometheus_metrics,
                              lambda k, v, df: r.typed(k, v, bool, df)),
        "maxConn": ("max_conn", d.max_conn, r.within(100, 1_000_000)),
        "connectTimeoutMs": ("connect_timeout_ms", d.connect_timeout_ms, r.within(50, 60_000)),
        "clientTimeoutSeconds": ("client_timeout_s", d.client_timeout_s,
                                 r.within(600, 7 * 86_400)),
        "tunnelTimeoutSeconds": ("tunnel_timeout_s", d.tunnel_timeout_s,
                                 r.within(600, 7 * 86_400)),
        "retries": ("retries", d.retries, r.within(1, 10)),
        "vrrpInterface": ("vrrp_interface", d.vrrp_interface, text),
        "virtualRouterId": ("virtual_router_id", d.virtual_router_id, r.positive),
    }))
    if not 1 <= lb.virtual_router_id <= 255:
        r.fail("loadBalancer.virtualRouterId", f"{lb.virtual_router_id} is out of range. "
               "Fix: 1-255, unique on the LBs' network.")
    if lb.vrrp_interface is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,15}",
                                                          lb.vrrp_interface):
        r.fail("loadBalancer.vrrpInterface", f"{lb.vrrp_interface!r} is not an interface name. "
               "Fix: e.g. eth0 or ens192.")
    if lb.stats_bind is not None:
        # `*`, an IPv4 address or a bracketed IPv6 one, then the port: ASCII, nothing else.
        m = re.fullmatch(r"(\*|[0-9.]+|\[[0-9a-fA-F:.]+\]):([0-9]{1,5})", lb.stats_bind)
        if not m or not 1 <= int(m.group(2)) <= 65535:
            r.fail("loadBalancer.statsBind", f"{lb.stats_bind!r} is not ADDRESS:PORT. "
                   "Fix: e.g. 127.0.0.1:8404 or [::1]:8404.")
        elif m.group(1) != "*":
            r.ip("loadBalancer.statsBind", m.group(1).strip("[]"))
    if lb.bind_address != "*":
        address = r.ip("loadBalancer.bindAddress", lb.bind_address)
        if address is not None:  # rendered in canonical form, never as typed
            lb = dataclasses.replace(lb, bind_address=str(address))
    return lb


def _certificates(r: _Reader, value: Any) -> CertificateSettings:
    d = CertificateSettings()

    def sans(k: str, v: Any, df: Any) -> tuple[str, ...]:
        if v is None:
            return df
        if not isinstance(v, list):
            r.fail(k, "must be a list of DNS names or IP addresses. Fix: e.g. [api.example.com].")
            return df
        out = []
        for i, s in enumerate(v):
            if not isinstance(s, str):
                r.fail(f"{k}[{i}]", f"{s!r} is not a string. Fix: a DNS name or an IP address.")
                continue
            address = parse_ip(s)
            if address is not None:
                out.append(str(address))
            elif s.isascii() and is_dns_name(s.lower()):
                out.append(s.lower())
            else:
                r.fail(f"{k}[{i}]", f"{s!r} is neither an IP address (no zone id) nor a DNS name. "
                       "Fix: correct it.")
        return tuple(out)

    certs = CertificateSettings(**_fields(r, "certificates", value, {
        "caSource": ("ca_source", d.ca_source, lambda k, v, df: r.typed(k, v, str, df)),
        "rotation": ("rotation", d.rotation, lambda k, v, df: r.positive(k, v, df, 0)),
        "extraSans": ("extra_sans", d.extra_sans, sans),
        # At most 10 years: no issued certificate outlives a generated cluster CA.
        "validityHours": ("validity_hours", d.validity_hours, r.within(24, 87_600)),
    }))
    if certs.ca_source not in ("import", "generate"):
        r.fail("certificates.caSource", f"{certs.ca_source!r} is not a CA source. Fix: 'import' "
               "(read it from the bootstrap node) or 'generate' (new cluster).")
    return certs


def _elastic(r: _Reader, value: Any, node_names: set[str], apiserver_port: int) -> ElasticApiserverSettings:
    d = ElasticApiserverSettings()

    def pool(k: str, v: Any, df: Any) -> tuple[str, ...]:
        if v is None:
            return df
        if not isinstance(v, list) or not all(isinstance(n, str) for n in v):
            r.fail(k, "must be a list of node names. Fix: e.g. [worker-1, worker-2].")
            return df
        for i, n in enumerate(v):
            if n not in node_names:
                r.fail(f"{k}[{i}]", f"{n!r} is not a node in controlPlane or workers. "
                       "Fix: name a listed node.")
        if len(set(v)) != len(v):
            r.fail(k, "lists a node twice. Fix: list each node once.")
        return tuple(v)

    def quantity(k: str, v: Any, df: Any) -> str:
        q = df if v is None else r.typed(k, v, str, df)
        if not _QUANTITY.fullmatch(q):
            r.fail(k, f"{q!r} is not a Kubernetes quantity. Fix: e.g. 250m or 512Mi.")
        return q

    e = ElasticApiserverSettings(**_fields(r, "elasticApiserver", value, {
        "enabled": ("enabled", d.enabled, lambda k, v, df: r.typed(k, v, bool, df)),
        "poolNodes": ("pool_nodes", d.pool_nodes, pool),
        "port": ("port", d.port, r.port),
        "minReplicas": ("min_replicas", d.min_replicas, r.within(1, 1000)),
        "maxReplicas": ("max_replicas", d.max_replicas, r.within(1, 1000)),
        "cpuTargetPercent": ("cpu_target_percent", d.cpu_target_percent, r.within(1, 1000)),
        "memoryTargetPercent": ("memory_target_percent", d.memory_target_percent,
                                lambda k, v, df: df if v is None else r.positive(k, v, 1, 1, 1000)),
        # The HPA API refuses a stabilization window over one hour (autoscaling/v2 validation).
        "scaleDownStabilizationSeconds": ("scale_down_stabilization_s",
                                          d.scale_down_stabilization_s, r.within(0, 3600)),
        "cpuRequest": ("cpu_request", d.cpu_request, quantity),
        "memoryRequest": ("memory_request", d.memory_request, quantity),
        "installMetricsServer": ("install_metrics_server", d.install_metrics_server,
                                 lambda k, v, df: r.typed(k, v, bool, df)),
    }))
    if e.enabled:
        if not e.pool_nodes:
            r.fail("elasticApiserver.poolNodes", "is empty. Fix: name the nodes that may run "
                   "extra apiservers.")
        if e.max_replicas > len(e.pool_nodes):
            r.fail("elasticApiserver.maxReplicas", f"{e.max_replicas} exceeds the pool of "
                   f"{len(e.pool_nodes)} nodes (one pod per node). Fix: lower it or grow "
                   "poolNodes.")
        if e.min_replicas > e.max_replicas:
            r.fail("elasticApiserver.minReplicas", f"{e.min_replicas} > maxReplicas "
                   f"{e.max_replicas}. Fix: keep min <= max.")
        if e.port == apiserver_port:
            r.fail("elasticApiserver.port", f"{e.port} is the static apiserver's port; pods use "
                   "hostNetwork. Fix: use another port, e.g. 7443.")
    return e
