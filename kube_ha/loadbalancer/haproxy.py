"""haproxy.cfg for the apiserver load balancer. Pure; runs on haproxy 2.4 (RHEL 9) and later.

Why each choice (measured by tests/test_lb_failover.py and bench/lb_failover.py):
- `option redispatch 1` + `retries`: a refused connection is retried on *another* server at
  once. This, not check speed, is what makes a crashed apiserver invisible to clients.
- HTTPS `GET /readyz` checks verified against the cluster CA: a draining apiserver (readyz 500
  during --shutdown-delay-duration) leaves rotation before it stops accepting; a hung one (TCP
  accepted, no answer) fails its check after `timeout check`. TCP-only checks miss both.
- Fail open: every server is listed twice, checked, and again as an unchecked `backup`
  (`option allbackups`). A single bad server leaves rotation as fast as its checks say; when
  every checked server fails at once (etcd slow, all apiservers overloaded: /readyz slow
  everywhere while requests are still served), traffic goes on to all of them instead of the
  LB refusing everything (Envoy's panic threshold is the same idea).
- Long-lived clients (kubelets, controllers) hold one connection for hours and only give up on
  a silent one after client-go's 30 s + 15 s HTTP/2 health check. The session guard (Lua, in
  haproxy) cuts the sessions of a server that is DOWN because it stopped answering (check timed
  out or refused), while another server is UP, so they reconnect elsewhere within the detection
  time. It cuts nothing on a draining server (it answers /readyz 500 and still serves what is in
  flight) and nothing when every server is DOWN at once (a brownout: cutting them all would be a
  reconnect storm on overloaded apiservers).
- Long client/server/tunnel timeouts: watches are long-lived, mostly idle connections.
- `expose-fd listeners` on the admin socket: reloads hand listening sockets to the new worker,
  so no connection is refused during a reload; the server-state file keeps DOWN servers DOWN
  across it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kube_ha.model import Cluster, HealthCheckSettings, host_port
from kube_ha.paths import HAPROXY_FILES, HAPROXY_STATE
from kube_ha.topology import lb_backends

CHECK_PATH = "/readyz"
# `_` never occurs in a node name (DNS-1123), so a twin's name cannot clash with a real server.
FAIL_OPEN_SUFFIX = "_failopen"

# Check results that mean the server stopped answering, as haproxy reports them (stats field
# check_status). Dead: no connection or no TLS handshake (refused, or the process is stuck: the
# kernel accepts, nobody answers). Slow: TLS done, /readyz not answered in time; that is also
# what a brownout looks like on every server at once, so the guard waits a little before
# believing a slow server is alone. L7STS (it answered, e.g. 500 while draining) is neither.
DEAD_CHECKS = ("L4TOUT", "L4CON", "L6TOUT", "L6RSP", "SOCKERR")
SLOW_CHECKS = ("L7TOUT",)


def detection_ms(hc: HealthCheckSettings) -> int:
    """The longest a server can take to be marked DOWN once it fails: the wait for its next
    check, then `fall` checks each up to the timeout, fastinter apart."""
    return hc.inter_ms + hc.fall * hc.timeout_ms + (hc.fall - 1) * hc.fast_inter_ms


def session_guard_lua(health: HealthCheckSettings, poll_ms: int = 50) -> str:
    """The session guard haproxy runs (lua-load). Every `poll_ms`, in each backend, while at
    least one checked server is fully UP: cut the sessions of each checked server that is DOWN
    with a dead check, or with a slow check that has lasted one detection time of `health`
    with another server still fully UP (a lone slow server: in a brownout the others' checks
    fail within that time too, their checks being up to an interval apart), and of its
    fail-open twin. Never when no server is fully UP (fail open, no reconnect storm)."""
    slow_grace_ms = detection_ms(health)
    dead = ", ".join(f"{c} = true" for c in DEAD_CHECKS)
    slow = ", ".join(f"{c} = true" for c in SLOW_CHECKS)
    return f"""\
-- kube-ha session guard: rendered from stack config; `pulumi up` rewrites it.
-- Cuts the sessions of an apiserver that stopped answering while another one serves, so
-- long-lived clients reconnect at once instead of waiting out client-go's 45 s.
local DEAD = {{ {dead} }}
local SLOW = {{ {slow} }}
local SUFFIX = "{FAIL_OPEN_SUFFIX}"
local GRACE = {slow_grace_ms / 1000}
local slow_since = {{}}

local function now()
  local t = core.now()
  return t.sec + t.usec / 1000000
end

local function cut(backend, name)
  for _, victim in ipairs({{ name, name .. SUFFIX }}) do
    local server = backend.servers[victim]
    if server ~= nil and (server:get_stats().scur or 0) > 0 then
      core.Warning("kube-ha: " .. victim .. " stopped answering: cutting its sessions")
      server:shut_sess()
    end
  end
end

local function guard()
  while true do
    local t = now()
    for bname, backend in pairs(core.backends) do
      local up, dead, slow = 0, {{}}, {{}}
      for name, server in pairs(backend.servers) do
        local stats = server:get_stats()
        if stats.bck == 0 then
          -- While a check runs haproxy shows its last result as "* L7TOUT" (stats.c prefixes
          -- "* " for CHK_ST_INPROGRESS): strip it, or every other poll forgets the state.
          local status = tostring(stats.status)
          local check = tostring(stats.check_status):gsub("^%* ", "")
          -- Fully UP: its last checks passed. A server already failing checks ("UP 1/2")
          -- does not count: in a brownout the others are failing too.
          if status == "UP" then
            up = up + 1
          elseif status:sub(1, 4) == "DOWN" and DEAD[check] then
            dead[#dead + 1] = name
          elseif status:sub(1, 4) == "DOWN" and SLOW[check] then
            slow[#slow + 1] = name
          end
        end
      end
      local seen = {{}}
      for _, name in ipairs(slow) do
        local key = bname .. "/" .. name
        seen[key] = true
        if up == 0 then
          slow_since[key] = nil
        else
          slow_since[key] = slow_since[key] or t
          if t - slow_since[key] >= GRACE then dead[#dead + 1] = name end
        end
      end
      for key in pairs(slow_since) do
        if key:sub(1, #bname + 1) == bname .. "/" and not seen[key] then slow_since[key] = nil end
      end
      if up > 0 then
        for _, name in ipairs(dead) do cut(backend, name) end
      end
    end
    core.msleep({poll_ms})
  end
end

core.register_task(guard)
"""


@dataclass(frozen=True)
class HaproxyPaths:
    """Where things live on the LB host. Tests point these at a temp dir."""

    ca_file: str = f"{HAPROXY_FILES}/ca.crt"
    client_cert: str | None = f"{HAPROXY_FILES}/health-client.pem"
    admin_socket: str = "/run/haproxy/admin.sock"
    state_file: str = f"{HAPROXY_STATE}/server-state"
    chroot: str | None = HAPROXY_STATE
    session_guard: str | None = f"{HAPROXY_FILES}/session-guard.lua"
    user: str | None = "haproxy"
    log_target: str = "/dev/log local0 info"


@dataclass(frozen=True)
class Frontend:
    """Where a proxy listens and how hard it checks: the LB, or a node-local proxy."""

    purpose: str
    bind: str
    health: HealthCheckSettings
    max_conn: int
    stats_bind: str | None = None


# Node-local proxies (one per worker) check gently: N workers x every control-plane node adds up
# (500 workers at 800 ms would be 625 TLS checks a second per apiserver). Failover stays fast
# through redispatch and passive checks (`observe layer4`), which cost nothing.
NODE_LOCAL_HEALTH = HealthCheckSettings(inter_ms=5000, fast_inter_ms=1000, down_inter_ms=5000, rise=2,
                                fall=2, timeout_ms=1000)


def lb_frontend(cluster: Cluster) -> Frontend:
    lb = cluster.load_balancer
    port = cluster.endpoint.port
    bind = host_port(lb.bind_address, port)
    return Frontend(f"apiserver load balancer for cluster {cluster.name}", bind,
                    cluster.health_check, lb.max_conn, lb.stats_bind)


# First line of every haproxy.cfg kube-ha writes, naming what the config is for.
HEADER = "# kube-ha: {purpose}."
NODE_LOCAL_PURPOSE = "node-local apiserver proxy"
# How a worker finds the proxy kube-ha put there once `nodeLocalProxy` is switched off.
NODE_LOCAL_MARK = HEADER.format(purpose=NODE_LOCAL_PURPOSE).removesuffix(".")


def node_local_frontend(cluster: Cluster) -> Frontend:
    """127.0.0.1:<apiserver port> on a worker: the same URL reaches the local apiserver on a
    control-plane node, so one kubeconfig (kube-proxy's) serves every node."""
    return Frontend(f"{NODE_LOCAL_PURPOSE} for cluster {cluster.name}",
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
    if paths.session_guard:  # loaded before chroot; needs haproxy built with Lua (Debian, RHEL)
        g.append(f"    lua-load {paths.session_guard}")
    if paths.user:
        g.insert(1, f"    user {paths.user}\n    group {paths.user}")

    check_tls = f"check-ssl verify required ca-file {paths.ca_file}"
    if ep.dns_name:
        # Clients dial the name: a backend still on a certificate without it (before its
        # re-issue rolled out) stays out of rotation. haproxy verifies DNS names only, not IP
        # SANs, so an IP-only endpoint relies on the rollout order instead (each control-plane
        # node serves its certificate before anything is re-pointed). Elastic servers are
        # checked for their own name (topology.elastic_san_marker), set per server below.
        check_tls += f" check-sni {ep.dns_name} verifyhost {ep.dns_name}"
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
        HEADER.format(purpose=fe.purpose),
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
        "    option allbackups",
        "    option httpchk",
        f"    http-check send meth GET uri {CHECK_PATH} ver HTTP/1.1 hdr Host {ep.host}",
        "    http-check expect status 200",
        default_server,
    ]
    backends = lb_backends(cluster)
    for b in backends:
        own_check = f" check-sni {b.check_name} verifyhost {b.check_name}" if b.check_name else ""
        lines.append(f"    server {b.name} {host_port(b.address, b.port)}{own_check}")
    # The fail-open twins: used only while no checked server is UP. The static apiservers only:
    # they are the floor that always exists (a pool node without an elastic pod refuses).
    for b in (b for b in backends if not b.elastic):
        lines.append(f"    server {b.name}{FAIL_OPEN_SUFFIX} {host_port(b.address, b.port)}"
                     " backup no-check")
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
