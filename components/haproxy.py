"""haproxy.cfg for the apiserver load balancer. Pure; runs on haproxy 2.4 (RHEL 9) and later.

Why each choice (measured by tests/test_lb_failover.py and bench/lb_failover.py):
- `option redispatch 1` + `retries`: a refused connection is retried on *another* server at
  once. This, not check speed, is what makes a crashed apiserver invisible to clients.
- HTTPS `GET /readyz` checks verified against the cluster CA: a draining apiserver (readyz 500
  during --shutdown-delay-duration) leaves rotation before it stops accepting; a hung one (TCP
  accepted, no answer) fails its check after `timeout check`. TCP-only checks miss both.
- Sessions on a server marked DOWN are kept by default: cutting them would fail requests still
  in flight on a draining apiserver; clients (client-go's HTTP/2 pings) abandon a hung one.
- Long client/server/tunnel timeouts: watches are long-lived, mostly idle connections.
- `expose-fd listeners` on the admin socket: reloads hand listening sockets to the new worker,
  so no connection is refused during a reload; the server-state file keeps DOWN servers DOWN
  across it.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.model import Cluster, HealthCheck, host_port
from components.topology import lb_backends

CHECK_PATH = "/readyz"


@dataclass(frozen=True)
class HaproxyPaths:
    """Where things live on the LB host. Tests point these at a temp dir."""

    ca_file: str = "/etc/haproxy/kube-ha/ca.crt"
    client_cert: str | None = "/etc/haproxy/kube-ha/health-client.pem"
    admin_socket: str = "/run/haproxy/admin.sock"
    state_file: str = "/var/lib/haproxy/server-state"
    chroot: str | None = "/var/lib/haproxy"
    user: str | None = "haproxy"
    log_target: str = "/dev/log local0 info"


@dataclass(frozen=True)
class Frontend:
    """Where a proxy listens and how hard it checks: the LB, or a node-local proxy."""

    purpose: str
    bind: str
    health: HealthCheck
    max_conn: int
    stats_bind: str | None = None


# Node-local proxies (one per worker) check gently: N workers x every control-plane node adds up
# (500 workers at 800 ms would be 625 TLS checks a second per apiserver). Failover stays fast
# through redispatch and passive checks (`observe layer4`), which cost nothing.
NODE_LOCAL_HEALTH = HealthCheck(inter_ms=5000, fast_inter_ms=1000, down_inter_ms=5000, rise=2,
                                fall=2, timeout_ms=1000)


def lb_frontend(cluster: Cluster) -> Frontend:
    lb = cluster.load_balancer
    port = cluster.endpoint.port
    bind = host_port(lb.bind_address, port)
    return Frontend(f"apiserver load balancer for cluster {cluster.name}", bind,
                    cluster.health_check, lb.max_conn, lb.stats_bind)


def node_local_frontend(cluster: Cluster) -> Frontend:
    """127.0.0.1:<apiserver port> on a worker: the same URL reaches the local apiserver on a
    control-plane node, so one kubeconfig (kube-proxy's) serves every node."""
    return Frontend(f"node-local apiserver proxy for cluster {cluster.name}",
                    host_port("127.0.0.1", cluster.apiserver_port), NODE_LOCAL_HEALTH, 2000)


def render_haproxy_cfg(cluster: Cluster, paths: HaproxyPaths | None = None,
                       frontend: Frontend | None = None) -> str:
    paths = paths or HaproxyPaths()
    fe = frontend or lb_frontend(cluster)
    hc = fe.health
    lb = cluster.load_balancer
    ep = cluster.endpoint
    bind = fe.bind
    g = [
        f"    log {paths.log_target}",
        f"    maxconn {fe.max_conn}",
        f"    stats socket {paths.admin_socket} mode 660 level admin expose-fd listeners",
        "    stats timeout 30s",
        f"    server-state-file {paths.state_file}",
        "    ssl-default-server-options ssl-min-ver TLSv1.2",
        # A worker left behind by a reload may hold watches; bound how long it lingers.
        "    hard-stop-after 15m",
    ]
    if paths.chroot:
        g.insert(1, f"    chroot {paths.chroot}")
    if paths.user:
        g.insert(1, f"    user {paths.user}\n    group {paths.user}")

    check_tls = f"check-ssl verify required ca-file {paths.ca_file}"
    if paths.client_cert:
        # Checks authenticate, so they pass on clusters with --anonymous-auth=false.
        check_tls += f" crt {paths.client_cert}"
    default_server = (
        f"    default-server check {check_tls} inter {hc.inter_ms}ms fastinter {hc.fast_inter_ms}ms"
        f" downinter {hc.down_inter_ms}ms rise {hc.rise} fall {hc.fall}"
        " observe layer4 error-limit 1 on-error fastinter"
    )
    if hc.shutdown_sessions_on_down:
        default_server += " on-marked-down shutdown-sessions"

    lines = [
        f"# kube-ha: {fe.purpose}.",
        "# Rendered from stack config; `pulumi up` rewrites it. Do not edit by hand.",
        "global",
        *g,
        "",
        "defaults",
        "    mode tcp",
        "    log global",
        "    option dontlognull",
        "    load-server-state-from-file global",
        f"    timeout connect {lb.connect_timeout_ms}ms",
        f"    timeout client {lb.client_timeout_s}s",
        f"    timeout server {lb.client_timeout_s}s",
        f"    timeout tunnel {lb.tunnel_timeout_s}s",
        "    timeout client-fin 10s",
        "    timeout server-fin 10s",
        f"    timeout check {hc.timeout_ms}ms",
        f"    retries {lb.retries}",
        "    option redispatch 1",
        "",
        "frontend kube-apiserver",
        f"    bind {bind}",
        "    option tcplog",
        "    default_backend kube-apiserver",
        "",
        "backend kube-apiserver",
        # Watches are long-lived: spread connections, not requests.
        "    balance leastconn",
        "    option httpchk",
        f"    http-check send meth GET uri {CHECK_PATH} ver HTTP/1.1 hdr Host {ep.host}",
        "    http-check expect status 200",
        default_server,
    ]
    for b in lb_backends(cluster):
        lines.append(f"    server {b.name} {host_port(b.address, b.port)}")
    if fe.stats_bind:
        lines += [
            "",
            "frontend stats",
            "    mode http",
            f"    bind {fe.stats_bind}",
            *(["    http-request use-service prometheus-exporter if { path /metrics }"]
              if lb.prometheus_metrics else []),
            "    stats enable",
            "    stats uri /stats",
            "    stats refresh 10s",
        ]
    return "\n".join(lines) + "\n"
