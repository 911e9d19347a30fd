"""The cluster as the program sees it: hosts, endpoint and the settings of each part, frozen.

Pure: no Pulumi import. `kube_ha.config` reads and validates stack config into these types;
everything else (topology, renderers, components) only reads them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, TypeGuard

PROJECT = "kube-ha"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Every pattern here is used with `fullmatch` and spells its classes in ASCII: `re.match(...$)`
# lets a trailing newline through (a command split in two), and `\d` matches non-ASCII digits.
# What passes these grammars is inert in a shell word and in a config-file line.
# DNS-1123 label, the rule Kubernetes applies to each dot-separated part of a Node name.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
VERSION = re.compile(r"v?([0-9]+)\.([0-9]+)\.([0-9]+)")


def is_dns_name(value: object) -> TypeGuard[str]:
    """A DNS-1123 subdomain: lower-case labels of at most 63, at most 253 in all, ASCII only."""
    return (isinstance(value, str) and 0 < len(value) <= 253
            and all(_DNS_LABEL.fullmatch(label) for label in value.split(".")))


def parse_ip(value: object) -> IPAddress | None:
    """An IPv4 or IPv6 address, exactly as written (ASCII, no spaces), or None. IPv6 zone ids
    (`fe80::1%eth0`) are refused: Python accepts any text after `%` and renders it back."""
    if not (isinstance(value, str) and value.isascii() and value == value.strip()):
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    return None if getattr(address, "scope_id", None) is not None else address


def url_host(address: IPAddress | str) -> str:
    """An address or name as it stands in a URL or `host:port`: IPv6 in brackets (RFC 3986)."""
    text = str(address)
    return f"[{text}]" if ":" in text else text


def host_port(address: IPAddress | str, port: int) -> str:
    return f"{url_host(address)}:{port}"


def kubernetes_service_address(service_subnet: IPNetwork) -> IPAddress:
    """The `kubernetes` Service's ClusterIP: the service subnet's address at index 1, as
    kube-apiserver picks it (pkg/controlplane/services.go ServiceIPRange, GetIndexedIP(range, 1))."""
    return service_subnet.network_address + 1


@dataclass(frozen=True)
class Host:
    """A machine reached over SSH."""

    name: str
    address: IPAddress
    user: str
    port: int
    bootstrap: bool = False
    # The host's SSH public key, `type base64` (OpenSSH authorized_keys form, comment dropped).
    # None only with insecureSkipHostKeyCheck: the SSH client then trusts whoever answers.
    host_key: str | None = None


# endpoint.type: haproxy on the LB host(s) at the endpoint's own address; a virtual IP that
# keepalived moves between them; or a load balancer of the user's (a cloud LB, an F5, DNS
# round-robin), which the program does not configure.
# `service`: the in-cluster Service kube-system/apiserver on a fixed ClusterIP, nodes switched
# between it and the control-plane addresses in /etc/hosts (kube_ha.endpoint_switch).
ENDPOINT_TYPES = ("loadBalancer", "virtualIp", "external", "service")


@dataclass(frozen=True)
class Endpoint:
    """The address every client dials: the LB (or VIP), never a node."""

    DEFAULT_PORT: ClassVar[int] = 6443

    address: IPAddress
    port: int
    dns_name: str | None = None
    # Declared, never inferred (a one-digit typo in `address` must not claim an IP): keepalived
    # moves `address` between the LB hosts.
    virtual_ip: bool = False
    # `endpoint.type`: what answers at `address` (ENDPOINT_TYPES).
    type: str = "loadBalancer"
    # `endpoint.manageHostsEntry`: each node's /etc/hosts maps dns_name to address
    # (kube_ha.hosts_entry), so the name needs no DNS.
    manage_hosts_entry: bool = False

    @property
    def service(self) -> bool:
        return self.type == "service"

    @property
    def external(self) -> bool:
        """The user's own load balancer: the program configures none, checks it answers."""
        return self.type == "external"

    @property
    def host(self) -> str:
        """What goes into kubeconfigs and controlPlaneEndpoint: the name if there is one."""
        return self.dns_name or url_host(self.address)

    @property
    def url(self) -> str:
        return f"https://{self.host_port}"

    @property
    def host_port(self) -> str:
        return f"{self.host}:{self.port}"  # `host` is already bracketed for IPv6


@dataclass(frozen=True)
class NetworkSettings:
    service_subnet: IPNetwork
    pod_subnet: IPNetwork
    cluster_domain: str


@dataclass(frozen=True)
class HealthCheckSettings:
    """haproxy active checks. A hung node (TLS handshake never completes) fails each check after
    min(connect timeout, inter); one that completes TLS but never answers, after `timeout_ms`. It
    leaves rotation within inter + fall x that + (fall-1) x fastinter: 500 + 2x350 + 50 =
    1.25 s by default (target 1.5 s; long-lived clients then reconnect within 2 s). A /readyz
    that answers in 300 ms (loaded but healthy) stays inside timeout_ms. A node that turns
    ready joins within rise x downinter."""

    inter_ms: int = 500
    fast_inter_ms: int = 50
    down_inter_ms: int = 1000
    rise: int = 2
    fall: int = 2
    timeout_ms: int = 450
    shutdown_sessions_on_down: bool = False


@dataclass(frozen=True)
class LoadBalancerSettings:
    bind_address: str = "*"
    stats_bind: str | None = None
    # /metrics on the stats listener; needs haproxy built with USE_PROMEX (Debian, Fedora/RHEL
    # packages are). Without it `haproxy -c` refuses the config before it goes live.
    prometheus_metrics: bool = True
    max_conn: int = 20000
    # Also bounds a health check's TLS handshake (haproxy uses min(connect, inter) for it),
    # and a dead host's SYN is retried on another server after it (redispatch).
    connect_timeout_ms: int = 350
    client_timeout_s: int = 600
    tunnel_timeout_s: int = 3600
    retries: int = 3
    # With a virtual IP endpoint (an address no LB host owns), keepalived on every LB host
    # moves it to a host whose haproxy answers (VRRP over unicast, so clouds without
    # multicast work too). None: the interface that holds the LB host's `address`, found on
    # the host by its configure step (keepalived.DETECTED in the rendered file until then).
    vrrp_interface: str | None = None
    virtual_router_id: int = 51

    @property
    def stats_port(self) -> int | None:
        """The port of `stats_bind` (None when unset or malformed: the reader reports that)."""
        m = re.fullmatch(r".*:([0-9]{1,5})", self.stats_bind or "")
        return int(m.group(1)) if m else None


@dataclass(frozen=True)
class CertificateSettings:
    ca_source: str = "import"  # "import" from the bootstrap node, or "generate" for a new cluster
    rotation: int = 0
    extra_sans: tuple[str, ...] = ()
    validity_hours: int = 8760


@dataclass(frozen=True)
class ElasticApiserverSettings:
    enabled: bool = False
    pool_nodes: tuple[str, ...] = ()
    port: int = 7443
    min_replicas: int = 1
    max_replicas: int = 3
    cpu_target_percent: int = 70
    # Off unless set: an apiserver's memory is mostly its watch cache, which every replica
    # holds whole and which does not shrink with load, so a memory target would keep the HPA at
    # maxReplicas (and it rarely tracks request load, which CPU does).
    memory_target_percent: int | None = None
    scale_down_stabilization_s: int = 300
    cpu_request: str = "250m"
    memory_request: str = "512Mi"
    # Apply upstream's metrics-server release (kube_ha.elastic.metrics_server); else the
    # metrics API must already answer.
    install_metrics_server: bool = False


@dataclass(frozen=True)
class ControllerManagerSettings:
    replicas: int = 0
    port: int = 10357


@dataclass(frozen=True)
class SchedulerSettings:
    replicas: int = 0
    port: int = 10359


@dataclass(frozen=True, kw_only=True)
class Cluster:
    """Built only by `kube_ha.config.parse_cluster`, which passes every field: the defaults of
    scalar keys live in its SCALAR_KEYS table, those of each section on its *Settings type."""

    name: str
    kubernetes_version: str
    control_plane: tuple[Host, ...]
    workers: tuple[Host, ...]
    load_balancers: tuple[Host, ...]
    endpoint: Endpoint
    networking: NetworkSettings
    apiserver_port: int
    health_check: HealthCheckSettings
    load_balancer: LoadBalancerSettings
    certificates: CertificateSettings
    elastic_apiserver: ElasticApiserverSettings
    controller_manager: ControllerManagerSettings
    scheduler: SchedulerSettings
    node_local_proxy: bool
    image_repository: str
    # component -> "sha256:<hex>": its image is pulled by digest (`tag@digest`), so a registry
    # or mirror cannot swap what runs with the cluster's keys.
    image_digests: Mapping[str, str]
    insecure_skip_host_key_check: bool
    # Re-reads the static pods the in-cluster Deployments copy (kube_ha.elastic.carry).
    static_pods_revision: int = 0

    @property
    def node_url(self) -> str:
        """What worker kubelets and every kube-proxy dial: 127.0.0.1 with `nodeLocalProxy` (a
        worker's node-local proxy; on a control-plane node its own apiserver), else the
        endpoint. Control-plane kubelets always dial the endpoint."""
        return f"https://{host_port('127.0.0.1', self.apiserver_port)}" if self.node_local_proxy else (
            self.endpoint.url)

    @property
    def access_url(self) -> str:
        """What the machine running `pulumi up` dials (the Kubernetes provider, the kubeconfig
        output): the endpoint, or with the Service topology the bootstrap node (a ClusterIP
        answers only inside the cluster)."""
        if self.endpoint.service:
            return f"https://{host_port(self.bootstrap.address, self.apiserver_port)}"
        return self.endpoint.url

    @property
    def in_cluster_url(self) -> str:
        """What the in-cluster Deployments' kubeconfigs dial: the endpoint, or with the Service
        topology its ClusterIP (cluster DNS does not read the nodes' /etc/hosts)."""
        ep = self.endpoint
        return f"https://{host_port(ep.address, ep.port)}" if ep.service else ep.url

    @property
    def uses_vip(self) -> bool:
        """The endpoint is a virtual IP (`endpoint.virtualIp`): keepalived moves it between the
        LB hosts."""
        return self.endpoint.virtual_ip

    @property
    def bootstrap(self) -> Host:
        return next(h for h in self.control_plane if h.bootstrap)

    @property
    def joining_control_plane(self) -> tuple[Host, ...]:
        """Control-plane nodes other than the bootstrap node, in config order (= join order)."""
        return tuple(h for h in self.control_plane if not h.bootstrap)

    @property
    def nodes(self) -> tuple[Host, ...]:
        return self.control_plane + self.workers

    @property
    def node_groups(self) -> tuple[tuple[str, tuple[Host, ...]], ...]:
        """(config key, hosts) of the two node lists."""
        return (("controlPlane", self.control_plane), ("workers", self.workers))

    def node(self, name: str) -> Host:
        return next(h for h in self.nodes if h.name == name)

    @property
    def minor_version(self) -> tuple[int, int]:
        m = VERSION.fullmatch(self.kubernetes_version)
        assert m, "validated by parse_cluster"
        return int(m.group(1)), int(m.group(2))


KUBEADM_PORTS = {2379: "etcd's client port", 2380: "etcd's peer port", 10250: "the kubelet's port",
                 10256: "kube-proxy's health-check port", 10257: "the static kube-controller-manager's port",
                 10259: "the static kube-scheduler's port"}
# Of those, what listens on every node, workers included.
EVERY_NODE_PORTS = (10250, 10256)
# The images this program deploys itself (kubeadm pulls the static pods' own images).
DEPLOYED_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
