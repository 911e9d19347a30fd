"""What each load-balancer artifact means, directive by directive: haproxy.cfg (the LB's and a
worker's node-local proxy), the session guard, keepalived.conf and its helpers, the LB install and
configure scripts, the read-only preflight, and the service topology's endpoint switcher.

haproxy and keepalived judge their own files here (`haproxy -c`, `keepalived -t`); the shell
fragments run under bash with stand-in commands defined as functions (a bash function is found
before a program on PATH), so each check's verdict, not its wording in the script, is what fails.
"""

from __future__ import annotations

import re
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kube_ha.config import parse_cluster
from kube_ha.loadbalancer.haproxy import (
    NODE_LOCAL_HEALTH,
    NODE_LOCAL_MARK,
    HaproxyPaths,
    detection_ms,
    lb_frontend,
    node_local_frontend,
    render_haproxy_cfg,
    session_guard_lua,
)
from kube_ha.model import Cluster, HealthCheckSettings
from tests.harness import pki
from tests.harness.hosts import host
from tests.harness.lab import haproxy_paths_under
from tests.program import cluster_of, dev_stack, example_stack, vip_stack


def lb_edits(**lb: Any) -> dict[str, Any]:
    return {"loadBalancer": {**dev_stack()["loadBalancer"], **lb}}


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A private directory: pytest's own numbered ones are pruned by any other pytest session of
    the same user, which on a shared machine can remove one under a running test."""
    with tempfile.TemporaryDirectory(prefix="kube-ha-lb-pins-") as d:
        yield Path(d)


# --- haproxy.cfg ----------------------------------------------------------------------------

def sections(cfg: str) -> dict[str, list[str]]:
    """haproxy.cfg as haproxy reads it: a section header at column 0, its directives indented;
    comments and blank lines carry nothing."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in cfg.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            current = line.strip()
            out[current] = []
        else:
            out[current].append(" ".join(line.split()))
    return out


def directive(section: list[str], *words: str) -> list[str]:
    """The arguments of the one directive in `section` starting with `words`."""
    found = [d.split()[len(words):] for d in section if d.split()[:len(words)] == list(words)]
    assert len(found) == 1, (words, section)
    return found[0]


def tokens_after(words: list[str], keyword: str) -> str:
    """The value following `keyword` (its first use) on a server or default-server line."""
    assert keyword in words, (keyword, words)
    return words[words.index(keyword) + 1]


@pytest.fixture(scope="module")
def haproxy_files() -> Iterator[HaproxyPaths]:
    """A CA, a health-check client cert and the guard where a test's haproxy can read them."""
    with tempfile.TemporaryDirectory(prefix="kube-ha-lb-pins-") as d:
        ca = pki.make_ca()
        paths = haproxy_paths_under(Path(d), ca, pki.issue(ca, "kube-ha:lb-health-check", client=True),
                                    HealthCheckSettings())
        Path(paths.state_file).write_text("1\n")
        yield paths


def haproxy_c(cfg: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    path = tmp / "haproxy.cfg"
    path.write_text(cfg)
    return subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)


TUNED = {
    "healthCheck": {"interMs": 900, "fastInterMs": 300, "downInterMs": 1700, "rise": 3, "fall": 4,
                    "timeoutMs": 470},
    **lb_edits(connectTimeoutMs=420, clientTimeoutSeconds=700, tunnelTimeoutSeconds=5000, retries=4,
               maxConn=12345),
}


def test_defaults_carry_every_timeout_retry_and_redispatch_from_the_stack() -> None:
    """Watches idle for minutes (client/server/tunnel), a dead SYN is retried elsewhere after
    `timeout connect` (retries + redispatch), a hung /readyz fails after `timeout check`: each
    value dropped would fall back to haproxy's own default, silently."""
    d = sections(render_haproxy_cfg(cluster_of(**TUNED)))["defaults"]
    assert directive(d, "timeout", "connect") == ["420ms"]
    assert directive(d, "timeout", "client") == ["700s"]
    assert directive(d, "timeout", "server") == ["700s"]
    assert directive(d, "timeout", "tunnel") == ["5000s"]
    assert directive(d, "timeout", "check") == ["470ms"]
    assert directive(d, "timeout", "client-fin") == ["10s"]
    assert directive(d, "timeout", "server-fin") == ["10s"]
    assert directive(d, "retries") == ["4"]
    assert directive(d, "option", "redispatch") == ["1"]
    assert directive(d, "mode") == ["tcp"]  # TLS passes through: the apiserver sees the client cert
    assert directive(d, "log") == ["global"]
    assert directive(d, "option", "dontlognull") == []
    assert directive(d, "load-server-state-from-file") == ["global"]


def test_global_bounds_connections_and_keeps_server_states_across_reloads() -> None:
    g = sections(render_haproxy_cfg(cluster_of(**TUNED)))["global"]
    assert directive(g, "maxconn") == ["12345"]
    assert directive(g, "stats", "socket") == ["/run/haproxy/admin.sock", "mode", "660", "level", "admin",
                                               "expose-fd", "listeners"]
    assert directive(g, "stats", "timeout") == ["30s"]
    assert directive(g, "server-state-file") == ["/var/lib/haproxy/server-state"]
    assert directive(g, "ssl-default-server-options") == ["ssl-min-ver", "TLSv1.2"]
    assert directive(g, "hard-stop-after") == ["15m"]
    assert directive(g, "log") == ["/dev/log", "local0", "info"]
    # The production host drops root into its own chroot; haproxy loads the guard before that.
    assert directive(g, "user") == ["haproxy"] and directive(g, "group") == ["haproxy"]
    assert directive(g, "chroot") == ["/var/lib/haproxy"]
    assert directive(g, "lua-load") == ["/etc/haproxy/kube-ha/session-guard.lua"]


def test_the_default_paths_are_where_the_configure_step_writes() -> None:
    """The files haproxy.cfg names on a host: the CA and the checks' client certificate under
    the kube-ha directory, the admin socket where the reload saves states from."""
    p = HaproxyPaths()
    assert (p.ca_file, p.client_cert, p.session_guard) == (
        "/etc/haproxy/kube-ha/ca.crt", "/etc/haproxy/kube-ha/health-client.pem",
        "/etc/haproxy/kube-ha/session-guard.lua")
    assert (p.admin_socket, p.state_file, p.chroot, p.user, p.log_target) == (
        "/run/haproxy/admin.sock", "/var/lib/haproxy/server-state", "/var/lib/haproxy", "haproxy",
        "/dev/log local0 info")


def test_without_user_chroot_or_guard_those_lines_are_absent_and_haproxy_accepts_it(
        haproxy_files: HaproxyPaths, tmp_path: Path) -> None:
    cfg = render_haproxy_cfg(cluster_of(), replace(haproxy_files, session_guard=None))
    g = sections(cfg)["global"]
    assert not [d for d in g if d.split()[0] in ("user", "group", "chroot", "lua-load")]
    ran = haproxy_c(cfg, tmp_path)
    assert ran.returncode == 0, ran.stderr


def test_user_group_and_chroot_are_accepted_by_haproxy(haproxy_files: HaproxyPaths, tmp_path: Path) -> None:
    """`user`/`group` must name an account haproxy can resolve; here the distro's own."""
    cfg = render_haproxy_cfg(cluster_of(), replace(haproxy_files, user="haproxy", chroot=str(tmp_path)))
    g = sections(cfg)["global"]
    assert directive(g, "user") == ["haproxy"] and directive(g, "group") == ["haproxy"]
    assert directive(g, "chroot") == [str(tmp_path)]
    assert directive(g, "lua-load") == [str(haproxy_files.session_guard)]
    ran = haproxy_c(cfg, tmp_path)
    assert ran.returncode == 0, ran.stderr


@pytest.mark.parametrize(("bind_address", "want"), [
    ("*", "*:6443"), ("10.21.22.101", "10.21.22.101:6443"), ("fd00::101", "[fd00::101]:6443"),
    ("::", "[::]:6443"),
])
def test_the_bind_address_is_rendered_as_haproxy_parses_it(bind_address: str, want: str,
                                                            haproxy_files: HaproxyPaths,
                                                            tmp_path: Path) -> None:
    """haproxy reads `[v6]:port` and `*:port`; a bare v6 address would lose its port."""
    cluster = cluster_of(**lb_edits(bindAddress=bind_address))
    assert lb_frontend(cluster).bind == want
    cfg = render_haproxy_cfg(cluster, haproxy_files)
    assert directive(sections(cfg)["frontend kube-apiserver"], "bind") == [want]
    ran = haproxy_c(cfg, tmp_path)
    assert ran.returncode == 0, ran.stderr


def test_the_frontend_hands_every_connection_to_the_apiserver_backend() -> None:
    s = sections(render_haproxy_cfg(cluster_of()))
    fe = s["frontend kube-apiserver"]
    assert directive(fe, "default_backend") == ["kube-apiserver"]
    assert directive(fe, "option", "tcplog") == []
    be = s["backend kube-apiserver"]
    assert directive(be, "balance") == ["leastconn"]
    assert directive(be, "option", "allbackups") == []
    assert directive(be, "option", "httpchk") == []
    assert directive(be, "http-check", "send") == ["meth", "GET", "uri", "/readyz", "ver", "HTTP/1.1",
                                                   "hdr", "Host", "api.k8s.lab.internal"]
    assert directive(be, "http-check", "expect") == ["status", "200"]


def test_checks_are_verified_https_at_the_stacks_pace() -> None:
    cfg = render_haproxy_cfg(cluster_of(**TUNED))
    ds = directive(sections(cfg)["backend kube-apiserver"], "default-server")
    assert ds[0] == "check" and "check-ssl" in ds
    assert tokens_after(ds, "verify") == "required"
    assert tokens_after(ds, "ca-file") == "/etc/haproxy/kube-ha/ca.crt"
    assert tokens_after(ds, "check-sni") == "api.k8s.lab.internal"
    assert tokens_after(ds, "verifyhost") == "api.k8s.lab.internal"
    assert tokens_after(ds, "crt") == "/etc/haproxy/kube-ha/health-client.pem"
    assert [tokens_after(ds, k) for k in ("inter", "fastinter", "downinter", "rise", "fall")] == [
        "900ms", "300ms", "1700ms", "3", "4"]
    assert [tokens_after(ds, k) for k in ("observe", "error-limit", "on-error")] == [
        "layer4", "1", "fastinter"]
    assert "on-marked-down" not in ds


def test_shutdown_sessions_on_down_is_opt_in() -> None:
    raw = dev_stack()
    raw["healthCheck"]["shutdownSessionsOnDown"] = True
    ds = directive(sections(render_haproxy_cfg(parse_cluster(raw)))["backend kube-apiserver"],
                   "default-server")
    assert tokens_after(ds, "on-marked-down") == "shutdown-sessions"


def test_an_ip_only_endpoint_checks_without_sni_and_no_client_cert_without_one() -> None:
    raw = dev_stack()
    raw["endpoint"].pop("dnsName")
    cfg = render_haproxy_cfg(parse_cluster(raw), replace(HaproxyPaths(), client_cert=None))
    ds = directive(sections(cfg)["backend kube-apiserver"], "default-server")
    assert "check-sni" not in ds and "verifyhost" not in ds and "crt" not in ds
    assert tokens_after(ds, "ca-file") == "/etc/haproxy/kube-ha/ca.crt"


def servers(cfg: str) -> dict[str, list[str]]:
    return {d.split()[1]: d.split()[2:] for d in sections(cfg)["backend kube-apiserver"]
            if d.startswith("server ")}


def test_every_apiserver_is_a_checked_server_and_each_static_one_has_a_fail_open_twin() -> None:
    """Elastic servers are checked for their own certificate name; only the static apiservers
    (the floor that always exists) get an unchecked backup twin."""
    cluster = cluster_of()
    got = servers(render_haproxy_cfg(cluster))
    static = {h.name: f"{h.address}:6443" for h in cluster.control_plane}
    for name, where in static.items():
        assert got[name] == [where]
        assert got[f"{name}_failopen"] == [where, "backup", "no-check"]
    marker = next(w for n, w in got.items() if n.startswith("elastic-"))
    assert marker[0] == "10.21.22.74:7443"
    assert tokens_after(marker, "check-sni") == tokens_after(marker, "verifyhost")
    assert tokens_after(marker, "check-sni") not in ("", "None")
    assert set(got) == {*static, *(f"{n}_failopen" for n in static), "elastic-ubuntu-74", "elastic-ubuntu-75"}


def test_the_stats_listener_serves_stats_and_metrics_only_when_asked() -> None:
    st = sections(render_haproxy_cfg(cluster_of()))["frontend stats"]
    assert directive(st, "mode") == ["http"]
    assert directive(st, "bind") == ["127.0.0.1:8404"]
    assert directive(st, "http-request") == ["use-service", "prometheus-exporter", "if", "{", "path",
                                             "/metrics", "}"]
    assert directive(st, "stats", "enable") == []
    assert directive(st, "stats", "uri") == ["/stats"]
    assert directive(st, "stats", "refresh") == ["10s"]
    off = sections(render_haproxy_cfg(cluster_of(**lb_edits(prometheusMetrics=False))))["frontend stats"]
    assert not [d for d in off if d.startswith("http-request")]
    raw = dev_stack()
    raw["loadBalancer"].pop("statsBind")
    assert "frontend stats" not in sections(render_haproxy_cfg(parse_cluster(raw)))


def test_the_config_names_its_purpose_and_ends_with_a_newline() -> None:
    cfg = render_haproxy_cfg(cluster_of())
    first, second = cfg.splitlines()[:2]
    assert first == "# kube-ha: apiserver load balancer for cluster kubernetes."
    assert second.startswith("# Rendered from stack config")
    assert cfg.endswith("\n") and not cfg.endswith("\n\n")
    assert list(sections(cfg)) == ["global", "defaults", "frontend kube-apiserver", "backend kube-apiserver",
                                   "frontend stats"]


def test_explicit_paths_and_frontend_are_the_ones_rendered() -> None:
    cluster = cluster_of()
    paths = replace(HaproxyPaths(), admin_socket="/tmp/x.sock")
    cfg = render_haproxy_cfg(cluster, paths, node_local_frontend(cluster))
    assert directive(sections(cfg)["global"], "stats", "socket")[0] == "/tmp/x.sock"
    assert cfg.startswith("# kube-ha: node-local apiserver proxy for cluster kubernetes.\n")


def test_a_node_local_proxy_listens_on_loopback_and_checks_gently() -> None:
    """127.0.0.1:<apiserver port> on each worker, 2000 connections, checks every 5 s: N workers
    checking every apiserver must not add up to a load."""
    cluster = cluster_of()
    fe = node_local_frontend(cluster)
    assert (fe.bind, fe.max_conn, fe.stats_bind) == ("127.0.0.1:6443", 2000, None)
    assert HealthCheckSettings(inter_ms=5000, fast_inter_ms=1000, down_inter_ms=5000,
                                                    rise=2, fall=2, timeout_ms=1000) == NODE_LOCAL_HEALTH
    cfg = render_haproxy_cfg(cluster, frontend=fe)
    s = sections(cfg)
    assert directive(s["global"], "maxconn") == ["2000"]
    assert directive(s["frontend kube-apiserver"], "bind") == ["127.0.0.1:6443"]
    assert directive(s["defaults"], "timeout", "check") == ["1000ms"]
    ds = directive(s["backend kube-apiserver"], "default-server")
    assert [tokens_after(ds, k) for k in ("inter", "fastinter", "downinter", "rise", "fall")] == [
        "5000ms", "1000ms", "5000ms", "2", "2"]
    assert cfg.startswith(NODE_LOCAL_MARK + " for cluster kubernetes.\n")
    assert NODE_LOCAL_MARK == "# kube-ha: node-local apiserver proxy"


# --- the session guard ------------------------------------------------------------------------

def lua_table(lua: str, name: str) -> set[str]:
    m = re.search(rf"^local {name} = \{{ (.*) \}}$", lua, re.M)
    assert m, name
    entries = m.group(1).split(", ")
    assert all(re.fullmatch(r"[A-Z0-9]+ = true", e) for e in entries), entries
    return {e.split(" = ")[0] for e in entries}


def test_detection_time_is_the_wait_then_fall_checks_fastinter_apart() -> None:
    hc = HealthCheckSettings(inter_ms=800, fast_inter_ms=250, timeout_ms=500, fall=3)
    assert detection_ms(hc) == 800 + 3 * 500 + 2 * 250


def test_the_guard_cuts_dead_and_long_slow_servers_and_polls_every_50ms() -> None:
    """Refused/unanswered connections and failed handshakes are a dead server; an L7 timeout
    is slow (a brownout looks the same at first); a 500 while draining is neither."""
    hc = HealthCheckSettings(inter_ms=800, fast_inter_ms=250, timeout_ms=500, fall=3)
    lua = session_guard_lua(hc)
    assert lua_table(lua, "DEAD") == {"L4TOUT", "L4CON", "L6TOUT", "L6RSP", "SOCKERR"}
    assert lua_table(lua, "SLOW") == {"L7TOUT"}
    assert 'local SUFFIX = "_failopen"' in lua.splitlines()
    assert "local GRACE = 2.8" in lua.splitlines()
    assert re.findall(r"core\.msleep\((\d+)\)", lua) == ["50"]
    assert re.findall(r"core\.msleep\((\d+)\)", session_guard_lua(hc, poll_ms=20)) == ["20"]


def test_the_guard_loads_in_haproxy(tmp_path: Path, haproxy_files: HaproxyPaths) -> None:
    """haproxy compiles the Lua at `haproxy -c`: a broken table or call fails there."""
    guard = tmp_path / "guard.lua"
    guard.write_text(session_guard_lua(HealthCheckSettings(fall=3)))
    ran = haproxy_c(render_haproxy_cfg(cluster_of(), replace(haproxy_files, session_guard=str(guard))),
                    tmp_path)
    assert ran.returncode == 0, ran.stderr


# --- keepalived -------------------------------------------------------------------------------

def vip_of(**edits: Any) -> Cluster:
    return cluster_of(vip_stack(), **edits)


def ipv6_vip() -> Cluster:
    raw = vip_stack()
    raw["endpoint"]["address"] = "fd00::100"
    raw["loadBalancers"][0]["address"] = "fd00::101"
    raw["loadBalancers"][1]["address"] = "fd00::102"
    return parse_cluster(raw)


def keepalived_blocks(conf: str) -> dict[str, list[str]]:
    """`name { ... }` blocks (nested ones flattened into their parent's lines)."""
    out: dict[str, list[str]] = {}
    stack: list[str] = []
    for raw_line in conf.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("{"):
            stack.append(line[:-1].strip())
            out.setdefault(stack[-1], [])
        elif line == "}":
            stack.pop()
        else:
            for name in stack:
                out[name].append(line)
    return out


def test_keepalived_accepts_the_rendered_conf(tmp_path: Path) -> None:
    from kube_ha.loadbalancer.keepalived import render_keepalived_conf
    cluster = vip_of(loadBalancer={"vrrpInterface": "eth0"})
    conf = tmp_path / "keepalived.conf"
    conf.write_text(render_keepalived_conf(cluster, cluster.load_balancers[0], "/bin/true"))
    ran = subprocess.run(["keepalived", "-t", "-f", str(conf)], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0, ran.stderr


def test_each_lb_host_advertises_to_the_others_only_at_its_own_priority() -> None:
    """The first LB listed is preferred (150, then 10 less each); adverts go unicast from this
    host's address to every *other* LB host, and come only from them."""
    from kube_ha.loadbalancer.keepalived import render_keepalived_conf
    cluster = vip_of(loadBalancer={"vrrpInterface": "ens5", "virtualRouterId": 77})
    first, second = (keepalived_blocks(render_keepalived_conf(cluster, h)) for h in cluster.load_balancers)
    inst = first["vrrp_instance kube_ha_apiserver"]
    assert "interface ens5" in inst and "virtual_router_id 77" in inst and "priority 150" in inst
    assert "unicast_src_ip 10.21.22.101" in inst and "check_unicast_src" in inst
    assert first["unicast_peer"] == ["10.21.22.102"]
    assert first["virtual_ipaddress"] == ["10.21.22.100/32 dev ens5"]
    assert second["unicast_peer"] == ["10.21.22.101"]
    assert "priority 140" in second["vrrp_instance kube_ha_apiserver"]


def test_without_a_vrrp_interface_the_conf_waits_for_the_detected_one() -> None:
    from kube_ha.loadbalancer.keepalived import DETECTED, render_keepalived_conf
    cluster = vip_of()
    conf = keepalived_blocks(render_keepalived_conf(cluster, cluster.load_balancers[0]))
    assert DETECTED == "@KUBE_HA_VRRP_INTERFACE@"
    assert f"interface {DETECTED}" in conf["vrrp_instance kube_ha_apiserver"]
    assert conf["virtual_ipaddress"] == [f"10.21.22.100/32 dev {DETECTED}"]


def test_an_ipv6_virtual_ip_is_a_single_address_prefix() -> None:
    from kube_ha.loadbalancer.keepalived import render_keepalived_conf
    cluster = ipv6_vip()
    conf = keepalived_blocks(render_keepalived_conf(cluster, cluster.load_balancers[1]))
    assert conf["virtual_ipaddress"][0].startswith("fd00::100/128 dev ")
    assert conf["unicast_peer"] == ["fd00::101"]


def run_bash(body: str, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    from kube_ha.shell import script
    return subprocess.run(["bash", "-c", script("t", body)], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **(env or {})}, cwd=cwd)


def ip_standin(line: str) -> str:
    """`ip -o addr show to X` as iproute2 prints it (one line, `<index>: <name> inet ...`)."""
    return f"ip() {{ printf '%s\\n' {line!r}; }}\n"


@pytest.mark.parametrize(("shown", "iface"), [
    ("2: ens3    inet 10.21.22.101/24 brd 10.21.22.255 scope global ens3", "ens3"),
    ("7: eth0@if12    inet 10.21.22.101/24 scope global eth0", "eth0"),  # a veth's peer suffix
])
def test_vrrp_runs_on_the_interface_holding_the_hosts_address(shown: str, iface: str, tmp_path: Path) -> None:
    from kube_ha.loadbalancer import keepalived
    host = vip_of().load_balancers[0]
    detect = keepalived.detect_interface(host).replace(keepalived.CONF, str(tmp_path / "k.conf"))
    body = (ip_standin(shown) + detect
            + "\nprintf '%s' \"interface @KUBE_HA_VRRP_INTERFACE@\" | " + keepalived.fill_interface())
    ran = run_bash(body)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"interface {iface}"
    assert f"VRRP on {iface} (it holds 10.21.22.101)" in ran.stderr


def test_no_interface_holding_the_address_stops_naming_the_keys(tmp_path: Path) -> None:
    from kube_ha.loadbalancer import keepalived
    host = vip_of().load_balancers[0]
    ran = run_bash("ip() { :; }\n" + keepalived.detect_interface(host) + "\necho reached")
    assert ran.returncode == 1 and "reached" not in ran.stdout
    assert ("no interface here holds 10.21.22.101 (this host's address in loadBalancers), so VRRP has no"
            " interface: fix the address or set loadBalancer.vrrpInterface") in ran.stderr


def test_a_keepalived_already_on_another_interface_is_not_moved_silently(tmp_path: Path) -> None:
    from kube_ha.loadbalancer import keepalived
    host = vip_of().load_balancers[0]
    conf = tmp_path / "k.conf"
    conf.write_text("vrrp_instance x {\n    interface eth9\n}\n")
    body = keepalived.detect_interface(host).replace(keepalived.CONF, str(conf))
    ran = run_bash(ip_standin("2: ens3    inet 10.21.22.101/24 scope global ens3") + body + "\necho reached")
    assert ran.returncode == 1 and "reached" not in ran.stdout
    assert ("loadBalancer.vrrpInterface: keepalived here runs VRRP on eth9, but the interface holding"
            " 10.21.22.101 is ens3: set loadBalancer.vrrpInterface to eth9 to keep it there, or to ens3"
            " to move it") in ran.stderr
    conf.write_text("    interface ens3\n")
    same = run_bash(ip_standin("2: ens3    inet 10.21.22.101/24 scope global ens3") + body + "\necho reached")
    assert same.returncode == 0 and "reached" in same.stdout, same.stderr


def test_the_vrrp_check_is_healthy_only_while_haproxy_accepts_on_the_endpoint_port() -> None:
    from kube_ha.loadbalancer.keepalived import check_script
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        raw = vip_stack()
        raw["endpoint"]["port"] = port
        check = check_script(parse_cluster(raw))
        assert check.splitlines()[1] == "# kube-ha: vrrp-check"
        up = subprocess.run(["bash", "-c", check], capture_output=True, timeout=10)
    down = subprocess.run(["bash", "-c", check], capture_output=True, timeout=10)
    assert (up.returncode, down.returncode != 0) == (0, True)


# --- the endpoint switcher (endpoint.type: service) -------------------------------------------

SVC_NAME = "apiserver.kube-system.svc.cluster.local"
# curl as the switcher calls it: `--resolve name:port:addr`, exit 0 when /readyz answered 200.
# This one answers for the `addr:port` pairs listed in $ANSWER and records each call.
CURL = r"""#!/bin/bash
echo "$*" >> "$CALLS"
for a in "$@"; do case $a in --resolve) next=1 ;; *) if [ "${next:-}" = 1 ]; then r=$a; next=; fi ;; esac; done
at=${r#*:}; port=${at%%:*}; addr=${at#*:}
case " $ANSWER " in *" $addr:$port "*) exit 0 ;; esac
exit 7
"""
CRICTL = """#!/bin/sh
echo "$*" >> "$CALLS"
case "$1" in ps) echo 3f2a ;; stop) echo "$2" ;; esac
"""


@pytest.fixture
def switcher(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    for name, body in (("curl", CURL), ("crictl", CRICTL)):
        (tmp_path / name).write_text(body)
        (tmp_path / name).chmod(0o755)
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    yield tmp_path, hosts


def switch(tmp: Path, hosts: Path, answer: str, ca: str = "none") -> tuple[str, list[str]]:
    from kube_ha.endpoint_switch import switch_program
    program = switch_program(SVC_NAME, "10.96.0.50", 443, ["10.0.0.11", "10.0.0.12"], 6443)
    calls = tmp / "calls"
    calls.write_text("")
    ran = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30, env={
        "PATH": f"{tmp}:/usr/bin:/bin", "KUBE_HA_HOSTS_FILE": str(hosts), "KUBE_HA_CA": ca,
        "ANSWER": answer, "CALLS": str(calls)})
    assert ran.returncode == 0, ran.stderr
    mapped = [line for line in hosts.read_text().splitlines() if SVC_NAME in line]
    assert len(mapped) <= 1, mapped
    # what the stand-ins were asked, then what the switcher logged
    return (mapped[0].split()[0] if mapped else ""), calls.read_text().splitlines() + ran.stderr.splitlines()


def test_the_switcher_prefers_the_cluster_ip_then_the_first_answering_apiserver(
        switcher: tuple[Path, Path]) -> None:
    tmp, hosts = switcher
    target, calls = switch(tmp, hosts, "10.0.0.12:6443")
    assert target == "10.0.0.12"
    probes = [c for c in calls if "--resolve" in c]
    assert [c.split("--resolve ")[1].split()[0] for c in probes] == [
        f"{SVC_NAME}:443:10.96.0.50", f"{SVC_NAME}:6443:10.0.0.11", f"{SVC_NAME}:6443:10.0.0.12"]
    assert all(f"https://{SVC_NAME}:" in c and "/readyz" in c and "--insecure" in c for c in probes)
    assert "stop 3f2a" in calls and "ps -q --name ^kube-proxy$" in calls  # its /etc/hosts is a copy
    assert hosts.read_text() == f"127.0.0.1 localhost\n10.0.0.12 {SVC_NAME} # kube-ha\n"
    assert "kube-ha[endpoint switch]: kube-proxy restarted (its /etc/hosts is a copy)" in calls
    target, calls = switch(tmp, hosts, "10.0.0.11:6443 10.0.0.12:6443 10.96.0.50:443")
    assert target == "10.96.0.50" and "stop 3f2a" in calls
    target, calls = switch(tmp, hosts, "10.96.0.50:443")
    assert target == "10.96.0.50" and not [c for c in calls if c.startswith("stop")]  # unchanged
    assert len([c for c in calls if "--resolve" in c]) == 1


def test_nothing_answering_keeps_the_entry_or_starts_at_the_first_node(switcher: tuple[Path, Path]) -> None:
    tmp, hosts = switcher
    assert switch(tmp, hosts, "")[0] == "10.0.0.11"
    switch(tmp, hosts, "10.0.0.12:6443")
    assert switch(tmp, hosts, "")[0] == "10.0.0.12"


def test_the_switcher_verifies_with_the_cluster_ca_once_it_has_one(switcher: tuple[Path, Path]) -> None:
    tmp, hosts = switcher
    (tmp / "ca.crt").write_text("CA\n")
    _, calls = switch(tmp, hosts, "10.96.0.50:443", ca=str(tmp / "ca.crt"))
    probe = next(c for c in calls if "--resolve" in c)
    assert f"--cacert {tmp / 'ca.crt'}" in probe and "--insecure" not in probe
    assert "--max-time 2" in probe and "-fs" in probe


def test_the_service_selects_the_static_apiservers_on_the_fixed_cluster_ip() -> None:
    from kube_ha.endpoint_switch import apiserver_service
    svc = apiserver_service(parse_cluster(example_stack("service")))
    assert svc == {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "apiserver", "namespace": "kube-system",
                     "labels": {"app.kubernetes.io/managed-by": "kube-ha"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.50",
                 "selector": {"component": "kube-apiserver", "tier": "control-plane"},
                 "ports": [{"name": "https", "protocol": "TCP", "port": 6443, "targetPort": 6443}]},
    }


def test_the_switcher_is_installed_before_the_kubelet_and_run_every_5s() -> None:
    from kube_ha.endpoint_switch import SWITCH, TIMER, UNIT, switch_install_lines
    cluster = parse_cluster(example_stack("service"))
    lines = switch_install_lines(cluster)
    assert (SWITCH, UNIT, TIMER) == ("/usr/local/sbin/kube-ha-endpoint-switch",
                                     "/etc/systemd/system/kube-ha-endpoint-switch.service",
                                     "/etc/systemd/system/kube-ha-endpoint-switch.timer")
    text = "\n".join(lines)
    assert lines[0] == "units=0" and lines[-1] == SWITCH
    assert "Before=kubelet.service" in text and f"ExecStart={SWITCH}" in text
    assert "OnActiveSec=5s\nOnUnitActiveSec=5s" in text
    assert 'if [ "$units" = 1 ]; then systemctl daemon-reload; fi' in lines
    assert "systemctl enable --quiet kube-ha-endpoint-switch.service kube-ha-endpoint-switch.timer" in lines
    assert "systemctl start kube-ha-endpoint-switch.timer" in lines
    assert switch_install_lines(parse_cluster(dev_stack())) == []


# --- the LB host's install and configure scripts ------------------------------------------------

# Stand-ins for what the scripts call on an LB host, each recording `name args` in $CALLS.
# firewall-cmd answers "not yet" to every --query-*; getsebool prints as selinux-utils does
# (`haproxy_connect_any --> off`); `systemctl is-active` succeeds for the units in $ACTIVE;
# `haproxy -v` prints $BANNER, `haproxy -c` exits $HAPROXY_C (haproxy.c display_version).
STANDINS = {
    "systemctl": 'case "$1" in is-active) u=${*: -1}; case " $ACTIVE " in *" $u "*) exit 0;; esac; exit 3;;'
                 " esac",
    "haproxy": 'case "$1" in -v) echo "$BANNER";; -c) exit "${HAPROXY_C:-0}";; esac',
    "keepalived": "",
    "socat": "echo 1; echo '# be_id be_name srv_id srv_name'",
    "firewall-cmd": 'case "$*" in *--query-*) exit 1;; esac',
    "getenforce": 'echo "${SELINUX:-Enforcing}"',
    "getsebool": 'echo "haproxy_connect_any --> ${SEBOOL:-off}"',
    "setsebool": "", "apt-get": "", "dnf": "", "restorecon": "",
    "ip": 'echo "2: ens3    inet $IP_ADDR/24 scope global ens3"',
}


@pytest.fixture
def lb_host(tmp_path: Path) -> Path:
    """A stand-in bin directory; /usr/sbin (this machine's real haproxy) left off PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STANDINS.items():
        (bin_dir / name).write_text(f'#!/bin/bash\necho "{name} $*" >> "$CALLS"\n{body}\n')
        (bin_dir / name).chmod(0o755)
    return tmp_path


PRODUCTION_DIRS = ("/etc/haproxy", "/etc/keepalived", "/usr/libexec/keepalived", "/var/lib/haproxy",
                   "/run/haproxy")
# What the haproxy package leaves; the scripts make the rest themselves.
PACKAGED_DIRS = ("/etc/haproxy", "/var/lib/haproxy", "/run/haproxy")


def relocated(text: str, root: Path) -> str:
    for d in PRODUCTION_DIRS:
        text = text.replace(d, f"{root}{d}")
    return text


def on_lb_host(tmp: Path, text: str, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run a script with every production directory moved under `tmp/root`."""
    root = tmp / "root"
    for d in PACKAGED_DIRS:
        (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
    text = relocated(text, root)
    calls = tmp / "calls"
    calls.write_text("")
    ran = subprocess.run(["bash", "-c", text], capture_output=True, text=True, timeout=60, env={
        "PATH": f"{tmp / 'bin'}:/usr/bin:/bin", "CALLS": str(calls), "ACTIVE": "firewalld",
        "BANNER": "HAProxy version 2.6.12-1 2023/04/01 - https://haproxy.org/", "IP_ADDR": "10.21.22.101",
        **env})
    return ran, [line.replace(str(root), "") for line in calls.read_text().splitlines()]


def test_install_opens_the_endpoint_port_and_sets_the_selinux_boolean(lb_host: Path) -> None:
    """haproxy may bind the apiserver ports under enforcing SELinux; firewalld opens only what
    clients dial (a loopback stats listener needs no hole)."""
    from kube_ha.loadbalancer.scripts import install_script
    ran, calls = on_lb_host(lb_host, install_script(cluster_of()))
    assert ran.returncode == 0, ran.stderr
    assert "kube-ha[lb-install]: haproxy socat already installed" in ran.stderr
    assert "setsebool -P haproxy_connect_any on" in calls
    assert "firewall-cmd --permanent --add-port=6443/tcp" in calls and "firewall-cmd --reload" in calls
    assert not [c for c in calls if "8404" in c or "vrrp" in c or c.startswith(("apt-get", "dnf"))]
    made = lb_host / "root/etc/haproxy/kube-ha"
    assert made.is_dir() and oct(made.stat().st_mode & 0o777) == "0o750"
    assert made.group() == "haproxy"


def test_install_leaves_selinux_and_firewalld_alone_when_they_are_off_or_done(lb_host: Path) -> None:
    from kube_ha.loadbalancer.scripts import install_script
    text = install_script(cluster_of())
    for env in ({"SELINUX": "Disabled", "ACTIVE": ""}, {"SEBOOL": "on", "ACTIVE": ""}):
        ran, calls = on_lb_host(lb_host, text, **env)
        assert ran.returncode == 0, ran.stderr
        assert not [c for c in calls if c.startswith(("setsebool", "firewall-cmd"))], calls


def test_install_with_a_vip_adds_keepalived_and_admits_vrrp_from_the_peers_only(lb_host: Path) -> None:
    from kube_ha.loadbalancer.scripts import install_script, packages
    (lb_host / "bin/keepalived").unlink()
    cluster = vip_of()
    assert packages(cluster) == ["haproxy", "socat", "keepalived"]
    ran, calls = on_lb_host(lb_host, install_script(cluster))
    assert ran.returncode == 0, ran.stderr
    assert "apt-get install -y -q haproxy socat keepalived" in calls
    rules = [c for c in calls if "--add-rich-rule" in c]
    assert rules == [f'firewall-cmd --permanent --add-rich-rule=rule family="ipv4" source address="{a}"'
                     ' protocol value="vrrp" accept' for a in ("10.21.22.101", "10.21.22.102")]
    assert "firewall-cmd --permanent --query-rich-rule=rule protocol value=\"vrrp\" accept" in calls


def test_an_ipv6_peer_is_admitted_as_ipv6(lb_host: Path) -> None:
    from kube_ha.loadbalancer.scripts import install_script
    ran, calls = on_lb_host(lb_host, install_script(ipv6_vip()))
    assert ran.returncode == 0, ran.stderr
    assert [c.split('"')[1] for c in calls if "--add-rich-rule" in c] == ["ipv6", "ipv6"]


def test_a_node_local_proxy_installs_no_keepalived_and_opens_nothing(lb_host: Path) -> None:
    from kube_ha.loadbalancer.scripts import install_script, packages
    (lb_host / "bin/keepalived").unlink()  # an LB host of this stack would install it
    cluster = vip_of()
    assert packages(cluster, node_local=True) == ["haproxy", "socat"]
    ran, calls = on_lb_host(lb_host, install_script(cluster, node_local=True))
    assert ran.returncode == 0, ran.stderr
    assert "haproxy socat already installed" in ran.stderr
    assert not [c for c in calls if c.startswith(("firewall-cmd", "apt-get"))], calls


@pytest.mark.parametrize(("banner", "too_old"), [
    ("HA-Proxy version 2.2.9-2+deb11u5 2023/04/10 - https://haproxy.org/", True),
    ("HA-Proxy version 1.8.27 2020/11/06", True),
    ("HAProxy version 2.3.0 2020/11/05", True),
    ("HAProxy version 2.4.22-f8e3218 2023/02/14 - https://haproxy.org/", False),
    ("HAProxy version 2.10.1 2024/06/14", False),
])
def test_install_refuses_an_haproxy_older_than_2_4(banner: str, too_old: bool, lb_host: Path) -> None:
    from kube_ha.loadbalancer.scripts import install_script
    ran, _ = on_lb_host(lb_host, install_script(cluster_of()), BANNER=banner)
    assert ran.returncode == (1 if too_old else 0), ran.stderr
    version = banner.split()[2][:3]
    assert ("is too old: 2.4 or later is needed" in ran.stderr) is too_old
    if too_old:
        assert f"haproxy {version}" in ran.stderr


@pytest.mark.parametrize(("stats_bind", "opened"), [
    (None, [6443]), ("127.0.0.1:8404", [6443]), ("[::1]:8404", [6443]), ("*:8404", [6443, 8404]),
    ("10.21.22.101:8404", [6443, 8404]), ("[fd00::1]:9000", [6443, 9000]),
])
def test_the_stats_port_is_opened_only_beyond_loopback(stats_bind: str | None, opened: list[int]) -> None:
    from kube_ha.loadbalancer.scripts import firewall_ports
    raw = dev_stack()
    if stats_bind is None:
        raw["loadBalancer"].pop("statsBind")
    else:
        raw["loadBalancer"]["statsBind"] = stats_bind
    assert firewall_ports(parse_cluster(raw)) == opened


def configure(cluster: Cluster, cfg: str, client: str | None = "CLIENT\n", vip: bool = False,
              paths: HaproxyPaths | None = None) -> str:
    from kube_ha.loadbalancer.scripts import configure_script
    return configure_script(cluster, cfg, "CA\n", client, cluster.load_balancers[0] if vip else None,
                            paths or HaproxyPaths())


def test_configure_writes_each_file_validates_and_starts_then_reloads_only_on_change(lb_host: Path) -> None:
    cluster = cluster_of()
    cfg = render_haproxy_cfg(cluster)
    root = lb_host / "root"
    ran, calls = on_lb_host(lb_host, configure(cluster, cfg), ACTIVE="")
    assert ran.returncode == 0, ran.stderr
    for path, mode, content in (("etc/haproxy/kube-ha/ca.crt", "0o640", "CA\n"),
                                ("etc/haproxy/kube-ha/health-client.pem", "0o640", "CLIENT\n"),
                                ("etc/haproxy/haproxy.cfg", "0o644", None)):
        f = root / path
        assert oct(f.stat().st_mode & 0o777) == mode, path
        assert content is None or f.read_text() == content
        assert f.group() == ("haproxy" if "kube-ha" in path else "root"), path
    guard = root / "etc/haproxy/kube-ha/session-guard.lua"
    assert guard.read_text() == session_guard_lua(cluster.health_check)
    assert oct(guard.stat().st_mode & 0o777) == "0o644" and guard.group() == "haproxy"
    assert (root / "etc/haproxy/haproxy.cfg").read_text() == relocated(cfg, root)
    assert [c for c in calls if c.startswith("systemctl") and "is-active" not in c] == [
        "systemctl enable --quiet haproxy", "systemctl start haproxy"]
    # haproxy judges the candidate beside the live file, before it replaces it
    assert [c.split(".kube-ha.")[0] for c in calls if c.startswith("haproxy -c")] == [
        "haproxy -c -q -f /etc/haproxy/haproxy.cfg"]
    assert "kube-ha[lb-configure]: starting haproxy" in ran.stderr
    assert "restorecon -R /etc/haproxy" in calls  # the new files get haproxy's SELinux label

    ran, calls = on_lb_host(lb_host, configure(cluster, cfg), ACTIVE="haproxy")
    assert ran.returncode == 0 and "haproxy running with this config already" in ran.stderr
    assert not [c for c in calls if c.startswith(("socat", "systemctl reload", "systemctl start"))]

    edited = cfg.replace("balance leastconn", "balance roundrobin")
    ran, calls = on_lb_host(lb_host, configure(cluster, edited), ACTIVE="haproxy")
    assert ran.returncode == 0 and "reloading haproxy" in ran.stderr
    assert calls[-2:] == ["socat stdio UNIX-CONNECT:/run/haproxy/admin.sock", "systemctl reload haproxy"]
    assert (root / "var/lib/haproxy/server-state").read_text() == "1\n# be_id be_name srv_id srv_name\n"


def test_a_config_haproxy_rejects_never_goes_live(lb_host: Path) -> None:
    cluster = cluster_of()
    ran, calls = on_lb_host(lb_host, configure(cluster, "bad\n"), HAPROXY_C="1")
    assert ran.returncode == 1
    assert not (lb_host / "root/etc/haproxy/haproxy.cfg").exists()
    assert not [c for c in calls if c.startswith("systemctl")]


def test_configure_without_a_client_cert_or_guard_writes_neither(lb_host: Path) -> None:
    cluster = cluster_of()
    paths = replace(HaproxyPaths(), session_guard=None)
    ran, _ = on_lb_host(lb_host, configure(cluster, render_haproxy_cfg(cluster), client=None, paths=paths),
                        ACTIVE="")
    assert ran.returncode == 0, ran.stderr
    assert sorted(p.name for p in (lb_host / "root/etc/haproxy/kube-ha").iterdir()) == ["ca.crt"]


def test_configure_with_a_vip_fills_in_the_interface_and_starts_keepalived(lb_host: Path) -> None:
    from kube_ha.loadbalancer import keepalived
    cluster = vip_of()
    ran, calls = on_lb_host(lb_host, configure(cluster, render_haproxy_cfg(cluster), vip=True),
                            ACTIVE="haproxy")
    assert ran.returncode == 0, ran.stderr
    root = lb_host / "root"
    conf = (root / keepalived.CONF.lstrip("/")).read_text()
    assert "interface ens3" in conf and keepalived.DETECTED not in conf
    check = root / keepalived.CHECK_SCRIPT.lstrip("/")
    assert check.read_text() == keepalived.check_script(cluster)
    assert oct(check.stat().st_mode & 0o777) == "0o755"
    assert [c.split()[:2] for c in calls if c.startswith("keepalived")] == [["keepalived", "-t"]]
    assert [c for c in calls if "is-active" not in c][-2:] == ["systemctl enable --quiet keepalived",
                                                                "systemctl start keepalived"]
    assert "restorecon -R /etc/keepalived /usr/libexec/keepalived/kube-ha-check.sh" in calls
    made = root / keepalived.CHECK_SCRIPT.rsplit("/", 1)[0].lstrip("/")
    assert oct(made.stat().st_mode & 0o777) == "0o755"
    ran, calls = on_lb_host(lb_host, configure(cluster, render_haproxy_cfg(cluster), vip=True),
                            ACTIVE="haproxy keepalived")
    assert "keepalived running with this config already" in ran.stderr
    named = vip_of(loadBalancer={"vrrpInterface": "bond0"})
    ran, calls = on_lb_host(lb_host, configure(named, render_haproxy_cfg(named), vip=True),
                            ACTIVE="haproxy keepalived")
    assert ran.returncode == 0, ran.stderr
    assert "interface bond0" in (root / keepalived.CONF.lstrip("/")).read_text()
    assert "reloading keepalived" in ran.stderr and calls[-1] == "systemctl reload keepalived"
    assert not [c for c in calls if c.startswith("ip ")]  # a named interface is not looked for


# --- the preflight ------------------------------------------------------------------------------

# What the preflight calls, as each tool prints it, answering from the environment:
# kubeadm `version -o short` -> v1.32.3; kubelet `--version` -> "Kubernetes v1.32.3"; `ip -o addr
# show` (iproute2's one-line form); `ss -Hltnp` -> a listener line whose last field names the
# process, as ss prints it; openssl x509 `-subject` / `-ext subjectAltName` (OpenSSL 3's forms);
# getent ahosts -> "<address> STREAM <name>"; timeout (bash's /dev/tcp connect): exit 124 when it
# ran out, bash's "connect: <strerror>" otherwise; kubectl answers the three reads it is given.
PREFLIGHT_STANDINS = {
    "kubeadm": '[ -n "${KUBEADM:-}" ] || exit 127; echo "$KUBEADM"',
    "kubelet": '[ -n "${KUBELET:-}" ] || exit 127; echo "Kubernetes $KUBELET"',
    "crictl": 'exit "${CRICTL_RC:-0}"',
    "ip": 'case "$*" in "-o addr show") printf "%s\\n" "1: lo    inet 127.0.0.1/8 scope host lo" '
          '"2: eth0    inet $ADDR/24 brd 10.21.22.255 scope global eth0";;'
          ' "link show dev "*) case " $LINKS " in *" ${*: -1} "*) exit 0;; esac; exit 1;;'
          ' "-o link show") for l in $LINKS; do echo "1: $l: <UP> mtu 1500"; done;;'
          ' "-o addr show to "*) [ "${*: -1}" = "$ADDR" ] && echo "2: eth0    inet $ADDR/24 scope global eth0";;'
          " esac; exit 0",
    "ss": 'port=${*: -1}; port=${port##*:}; port=${port%% *}; for l in ${LISTEN:-}; do'
          ' [ "${l%%=*}" = "$port" ] && echo "LISTEN 0 4096 *:$port *:* users:((\\"${l#*=}\\",pid=9,fd=3))"; done;'
          " exit 0",
    "openssl": 'case "$*" in *-subject*) cat >/dev/null 2>&1 || true;'
               ' echo "subject=O = system:nodes, CN = system:node:$NODE";;'
               ' *subjectAltName*) echo "X509v3 Subject Alternative Name: "; echo "    $SERVED";; esac',
    "getent": '[ -n "${RESOLVED:-}" ] || exit 2; for a in $RESOLVED; do echo "$a STREAM $3"; done',
    "timeout": 'w=$5:$6; case " ${REACH:-} " in *" $w=drop "*) exit 124;; *" $w=noroute "*)'
               ' echo "bash: line 1: connect: No route to host" >&2; exit 1;; esac;'
               ' echo "bash: line 1: connect: Connection refused" >&2; exit 1',
    # `kubectl get --raw` on an unregistered API group: "Error from server (NotFound): the server could not
    # find the requested resource" on stderr, exit 1 (kubectl cmdutil.CheckErr; metrics-server issue 283).
    "kubectl": 'case "$*" in *configmap*) [ -n "${CC:-}" ] || { echo "The connection was refused" >&2; exit 1; };'
               ' printf "%b\\n" "$CC";; *--raw*) [ "${METRICS_RC:-0}" = 0 ] || { echo "Error from server'
               ' (NotFound): the server could not find the requested resource" >&2; exit "$METRICS_RC"; };;'
               ' *apiservice*) echo "$APISERVICE"; exit "${APISERVICE_RC:-0}";; esac',
    "haproxy": 'echo "$BANNER"',
    "curl": "",
}
SYSTEM_TOOLS = ("bash", "sed", "awk", "grep", "head", "tr", "sort", "mktemp", "cat", "rm", "base64", "ls",
                "tail", "env", "sleep", "cut", "wc")
RELOCATED = ("/etc/kubernetes", "/etc/os-release", "/etc/cni", "/etc/keepalived")
GOOD_CC = ("clusterName: kubernetes\\nnetworking:\\n  serviceSubnet: 10.96.0.0/12\\n  podSubnet: 10.244.0.0/16\\n"
           "  dnsDomain: cluster.local")


class Node:
    """One host as the preflight sees it: a root directory for its files, stand-ins for its
    tools (only those on PATH exist), and the answers they give."""

    def __init__(self, tmp: Path) -> None:
        import shutil
        self.tmp = tmp
        self.root = tmp / "root"
        (self.root / "etc/kubernetes/pki").mkdir(parents=True)
        (self.root / "etc/cni/net.d").mkdir(parents=True)
        (self.root / "etc/keepalived").mkdir(parents=True)
        (self.root / "etc/os-release").write_text('ID=ubuntu\nID_LIKE=debian\n')
        self.hosts = tmp / "hosts"
        self.hosts.write_text("127.0.0.1 localhost\n")
        self.bin = tmp / "bin"
        self.bin.mkdir()
        for name, body in PREFLIGHT_STANDINS.items():
            (self.bin / name).write_text(f"#!/bin/bash\n{body}\n")
            (self.bin / name).chmod(0o755)
        for tool in SYSTEM_TOOLS:
            found = shutil.which(tool)
            assert found, tool
            (self.bin / tool).symlink_to(found)
        self.env = {"KUBEADM": "v1.32.3", "KUBELET": "v1.32.3", "ADDR": "10.21.22.73", "LINKS": "lo eth0",
                    "NODE": "ubuntu-73", "SERVED": "DNS:kubernetes, IP Address:10.96.0.1",
                    "RESOLVED": "10.21.22.101", "CC": GOOD_CC, "BANNER": "HAProxy version 2.6.12 2023/04/01",
                    "APISERVICE": 'Error from server (NotFound): apiservices "v1beta1.metrics.k8s.io" not found',
                    "APISERVICE_RC": "1"}

    def file(self, path: str, content: str) -> None:
        f = self.root / path.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(content)

    def joined_control_plane(self, image: str = "registry.k8s.io/kube-apiserver:v1.32.3",
                             flags: tuple[str, ...] = ()) -> None:
        """What kubeadm left on a control-plane node: the kubelet's kubeconfig (its client
        certificate inline), the static pods, the PKI, admin.conf and a CNI config."""
        from kube_ha.elastic.manifests import in_cluster_pods
        self.file("/etc/kubernetes/kubelet.conf", "users:\n- user:\n    client-certificate-data: Zm9vCg==\n")
        # Host files the flags name live under this node's root, as the script's own paths do.
        command = "\n".join(f"    - --{f}".replace("=/etc/", f"={self.root}/etc/")
                            for f in ("secure-port=6443", *flags))
        self.file("/etc/kubernetes/manifests/kube-apiserver.yaml",
                  f"spec:\n  containers:\n  - name: kube-apiserver\n    image: {image}\n"
                  f"    command:\n    - kube-apiserver\n{command}\n")
        self.file("/etc/kubernetes/manifests/kube-controller-manager.yaml",
                  "spec:\n  containers:\n  - command:\n    - kube-controller-manager\n"
                  "    - --kubeconfig=/etc/kubernetes/controller-manager.conf\n")
        for pod in in_cluster_pods(cluster_of()):
            for f in pod.pki.files.values():
                self.file(f, "x\n")
        self.file("/etc/kubernetes/pki/apiserver.crt", "x\n")
        self.file("/etc/kubernetes/admin.conf", "x\n")
        self.file("/etc/cni/net.d/10-net.conflist", "{}\n")

    def run(self, text: str, **env: str) -> tuple[int, list[str], str]:
        for d in RELOCATED:
            text = text.replace(d, f"{self.root}{d}")
        ran = subprocess.run(["bash", "-c", text], capture_output=True, text=True, timeout=30, env={
            "PATH": str(self.bin), "KUBE_HA_HOSTS_FILE": str(self.hosts), **self.env, **env})
        err = re.sub(r"line \d+:", "line N:", ran.stderr.replace(str(self.root), ""))
        return ran.returncode, [line[2:] for line in err.splitlines() if line.startswith("  ")], err


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def preflight_of(cluster: Cluster, name: str, role: str | None = None) -> str:
    from kube_ha.preflight import preflight_script, targets
    return preflight_script(cluster, next(t for t in targets(cluster)
                                          if t.host.name == name and (role is None or t.role == role)))


def test_a_good_joined_bootstrap_node_passes(node: Node) -> None:
    node.joined_control_plane()
    rc, problems, err = node.run(preflight_of(cluster_of(), "ubuntu-73"))
    assert (rc, problems) == (0, []), err
    assert "ubuntu-73 is ready (control-plane)" in err


def test_a_bootstrap_node_with_every_problem_lists_them_all_naming_the_keys(node: Node) -> None:
    """One run names everything wrong, each after the host's stack key, so one fix round does."""
    node.joined_control_plane(image="registry.k8s.io/kube-apiserver:v1.31.4")
    node.file("/etc/os-release", "ID=arch\n")
    (node.root / "etc/cni/net.d/10-net.conflist").unlink()
    (node.bin / "kubectl").unlink()
    rc, problems, err = node.run(
        preflight_of(cluster_of(), "ubuntu-73"), KUBEADM="v1.30.2", KUBELET="v1.33.0", CRICTL_RC="1",
        ADDR="10.21.22.9", NODE="ubuntu-99", SERVED="DNS:kubernetes, DNS:old.example, IP Address:10.9.9.9",
        RESOLVED="10.21.22.55 10.21.22.56",
        REACH="10.21.22.70:6443=drop 10.21.22.72:2379=noroute 10.21.22.70:2380=drop"
             " 10.21.22.72:10250=noroute")
    assert rc == 1
    w = "controlPlane[0] (ubuntu-73): "
    assert problems == [w + p for p in [
        "the OS (arch) is not one this program supports (Debian, Ubuntu or the RHEL family)",
        "kubeadm is 1.30; kubernetesVersion v1.32.3 needs kubeadm 1.32 or 1.33",
        "kubelet is 1.33; with kubernetesVersion v1.32.3 it must be 1.29 to 1.32",
        "no container runtime answers crictl (containerd or CRI-O, running, with crictl pointed at it)",
        "kubectl is not installed",
        "10.21.22.73 is not an address of this host (it is what the cluster will dial)",
        "this host joined as Node ubuntu-99, not ubuntu-73: the address belongs to another node (fix the name"
        " or the address)",
        "kube-apiserver runs v1.31.4 here but kubernetesVersion is v1.32.3: set kubernetesVersion to the"
        " cluster's version (this program does not upgrade)",
        "certificates.extraSans: the apiserver here serves DNS:old.example IP Address:10.9.9.9 (a certificate"
        " kube-ha did not issue), which the certificate replacing it would not name: clients dialling those"
        " would fail x509 checks. Add each name clients still use to certificates.extraSans",
        "the cluster has no pod network (no CNI config in /etc/cni/net.d): joined nodes would never turn Ready;"
        " install one first",
        "the running cluster does not answer kubectl with its admin.conf (reading kube-system/kubeadm-config:"
        " bash: line N: kubectl: command not found): is its apiserver up?",
        "endpoint.dnsName api.k8s.lab.internal resolves to 10.21.22.55 10.21.22.56 here, not to endpoint.address"
        " 10.21.22.101",
        # in the order of the findings' file names (address, then port as text)
        "cannot reach the etcd peer port of controlPlane[1] (ubuntu-70) at 10.21.22.70:2380 (no answer in 3 s: a"
        " firewall dropping it?): open it between these hosts (README, Ports)",
        "cannot reach the apiserver of controlPlane[1] (ubuntu-70) at 10.21.22.70:6443 (no answer in 3 s: a"
        " firewall dropping it?): open it between these hosts (README, Ports)",
        "cannot reach the kubelet of controlPlane[2] (ubuntu-72) at 10.21.22.72:10250 (No route to"
        " host): open it between these hosts (README, Ports)",
        "cannot reach the etcd client port of controlPlane[2] (ubuntu-72) at 10.21.22.72:2379 (No route to"
        " host): open it between these hosts (README, Ports)",
    ]], err
    assert "refusing before any host is changed:" in err and "is ready" not in err


def test_the_live_cluster_must_be_the_stacks_and_serve_the_metrics_api(node: Node) -> None:
    """kubeadm-config is what every join follows; the HPA scales on the metrics API."""
    node.joined_control_plane()
    cc = ("clusterName: Prod\\nnetworking:\\n  serviceSubnet: '10.100.0.0/16'\\n  podSubnet: 10.32.0.0/12\\n"
          "  dnsDomain: corp.internal")
    rc, problems, err = node.run(preflight_of(cluster_of(), "ubuntu-73"), CC=cc, METRICS_RC="1")
    w = "controlPlane[0] (ubuntu-73): "
    assert rc == 1
    assert problems == [w + p for p in [
        "clusterName: the cluster runs clusterName Prod (kubeadm-config), the stack says kubernetes: set"
        " clusterName to the cluster's",
        "serviceSubnet: the cluster runs networking.serviceSubnet 10.100.0.0/16 (kubeadm-config), the stack says"
        " 10.96.0.0/12: set serviceSubnet to the cluster's",
        "podSubnet: the cluster runs networking.podSubnet 10.32.0.0/12 (kubeadm-config), the stack says"
        " 10.244.0.0/16: set podSubnet to the cluster's",
        "clusterDomain: the cluster runs networking.dnsDomain corp.internal (kubeadm-config), the stack says"
        " cluster.local: set clusterDomain to the cluster's",
        "elasticApiserver.enabled: the metrics API does not answer (Error from server (NotFound): the server"
        " could not find the requested resource), so the elastic apiservers'"
        " HorizontalPodAutoscaler could never scale: install metrics-server first (README, Prerequisites), or"
        " set elasticApiserver.installMetricsServer: true",
    ]], err
    # Case does not matter to kubeadm's names (a cluster named Kubernetes is this one).
    rc, problems, err = node.run(preflight_of(cluster_of(), "ubuntu-73"),
                                 CC=GOOD_CC.replace("kubernetes", "Kubernetes"))
    assert (rc, problems) == (0, []), err
    assert "kube-ha[preflight ubuntu-73]: ubuntu-73 is ready (control-plane)" in err


@pytest.mark.parametrize(("served_by", "rc", "found"), [
    ("kube-system/metrics-server", "0", None),
    ('Error from server (NotFound): apiservices "v1beta1.metrics.k8s.io" not found', "1", None),
    ("monitoring/prometheus-adapter", "0", "elasticApiserver.installMetricsServer: the metrics API is served by"
     " monitoring/prometheus-adapter (APIService v1beta1.metrics.k8s.io), which metrics-server's release would"
     " take over. Fix: leave elasticApiserver.installMetricsServer false; the HPA reads that API as it is"),
    ("Unable to connect to the server", "1", "elasticApiserver.installMetricsServer: cannot read APIService"
     " v1beta1.metrics.k8s.io (Unable to connect to the server)"),
])
def test_installing_metrics_server_never_takes_over_another_metrics_api(
        served_by: str, rc: str, found: str | None, node: Node) -> None:
    node.joined_control_plane()
    raw = dev_stack()
    raw["elasticApiserver"]["installMetricsServer"] = True
    code, problems, err = node.run(preflight_of(parse_cluster(raw), "ubuntu-73"), APISERVICE=served_by,
                                   APISERVICE_RC=rc, METRICS_RC="1")
    assert problems == ([f"controlPlane[0] (ubuntu-73): {found}"] if found else []), err
    assert code == (1 if found else 0)


def test_in_cluster_pods_cannot_run_what_the_static_pods_read_from_host_files(node: Node) -> None:
    """The elastic apiservers run the static one's flags on other nodes: a host file no table
    carries, a carried file missing, or one naming a KMS plugin would break them there."""
    node.joined_control_plane(flags=("tls-cipher-suites=TLS_AES_128_GCM_SHA256",
                                     "profiling=false",
                                     "oidc-ca-file=/etc/oidc/ca.pem",
                                     "encryption-provider-config=/etc/kubernetes/enc/enc.yaml",
                                     "audit-policy-file=/etc/kubernetes/audit.yaml",
                                     "admission-control-config-file=/etc/kubernetes/admission.yaml",
                                     "service-account-issuer=https://kubernetes.default.svc",
                                     "etcd-servers=https://127.0.0.1:2379",
                                     "token-auth-file=/etc/kubernetes/tokens.csv",
                                     "some-host-file=/etc/ssl/extra.pem"))
    node.file("/etc/kubernetes/enc/enc.yaml",
              "resources:\n- providers:\n  - kms:\n      endpoint: unix:///kms.sock\n")
    node.file("/etc/kubernetes/audit.yaml", "rules: []\n")
    # Any carried file, not only the encryption config, may name a further host file.
    node.file("/etc/kubernetes/admission.yaml", "plugins:\n- name: EventRateLimit\n"
              "  path: /etc/kubernetes/eventconfig.yaml\n")
    (node.root / "etc/kubernetes/pki/sa.pub").unlink()
    rc, problems, err = node.run(preflight_of(cluster_of(), "ubuntu-73"))
    w = "controlPlane[0] (ubuntu-73): elasticApiserver.enabled: "
    assert rc == 1
    assert problems == [
        w + "/etc/kubernetes/pki/sa.pub is missing here, and the elastic kube-apiservers needs it (a cluster with"
            " an external CA keeps ca.key off its nodes): switch them off",
        w + "the static kube-apiserver here runs --oidc-ca-file=/etc/oidc/ca.pem, but /etc/oidc/ca.pem is missing",
        w + "the static kube-apiserver here runs --encryption-provider-config=/etc/kubernetes/enc/enc.yaml, whose"
            ' "kms:" names a KMS plugin or a host file a pod on another node does not have: the elastic'
            " kube-apiservers cannot run it (switch them off)",
        w + "the static kube-apiserver here runs --admission-control-config-file=/etc/kubernetes/admission.yaml,"
            ' whose "path: /" names a KMS plugin or a host file a pod on another node does not have: the elastic'
            " kube-apiservers cannot run it (switch them off)",
        w + "the static kube-apiserver here runs --token-auth-file=/etc/kubernetes/tokens.csv, but"
            " /etc/kubernetes/tokens.csv is missing",
        w + "the static kube-apiserver here runs --some-host-file=/etc/ssl/extra.pem: /etc/ssl/extra.pem is a host"
            " file the elastic kube-apiservers cannot be given (switch them off, or drop the flag)",
    ], err


def test_a_carried_config_naming_a_host_file_is_refused_without_an_encryption_config(node: Node) -> None:
    """The check of an admission config does not lean on the encryption config's pattern."""
    node.joined_control_plane(flags=("admission-control-config-file=/etc/kubernetes/admission.yaml",))
    node.file("/etc/kubernetes/admission.yaml", "plugins:\n- name: EventRateLimit\n"
              "  path: /etc/kubernetes/eventconfig.yaml\n")
    rc, problems, err = node.run(preflight_of(cluster_of(), "ubuntu-73"))
    assert (rc, problems) == (1, [
        "controlPlane[0] (ubuntu-73): elasticApiserver.enabled: the static kube-apiserver here runs"
        " --admission-control-config-file=/etc/kubernetes/admission.yaml, whose \"path: /\" names a KMS plugin or"
        " a host file a pod on another node does not have: the elastic kube-apiservers cannot run it (switch"
        " them off)"]), err


def test_in_cluster_pods_never_run_newer_than_the_static_apiserver(node: Node) -> None:
    node.joined_control_plane(image="registry.k8s.io/kube-apiserver:v1.32.1@sha256:abc")
    rc, problems, err = node.run(preflight_of(cluster_of(), "ubuntu-73"))
    assert rc == 1
    assert problems == [
        "controlPlane[0] (ubuntu-73): kubernetesVersion: the elastic kube-apiservers and controller-manager"
        " Deployment would run v1.32.3, newer than the static kube-apiserver here (v1.32.1): set"
        " kubernetesVersion to v1.32.1, or upgrade this node first"], err
    node.joined_control_plane(image="registry.k8s.io/kube-apiserver:v1.32.4")
    assert node.run(preflight_of(cluster_of(), "ubuntu-73"))[:2] == (0, [])


def test_a_joined_node_without_a_readable_kubelet_certificate_or_apiserver_is_named(node: Node) -> None:
    node.joined_control_plane()
    (node.root / "etc/kubernetes/manifests/kube-apiserver.yaml").unlink()
    (node.root / "etc/cni/net.d/10-net.conflist").unlink()  # only the bootstrap node asks the cluster
    node.file("/etc/kubernetes/kubelet.conf",
              "users:\n- user:\n    client-certificate: /var/lib/kubelet/pki/c.pem\n")
    rc, problems, err = node.run(preflight_of(cluster_of(), "ubuntu-70"), NODE="", ADDR="10.21.22.70")
    assert rc == 1
    assert problems == ["controlPlane[1] (ubuntu-70): " + p for p in [
        "/etc/kubernetes/kubelet.conf names no readable client certificate: cannot tell which Node this host is",
        "this host joined the cluster but runs no kube-apiserver static pod: is it a worker?"]], err
    # The certificate file named by path is the one read (openssl -in), and it names this node.
    rc, problems, err = node.run(preflight_of(cluster_of(), "ubuntu-70"), NODE="ubuntu-70", ADDR="10.21.22.70")
    assert problems == ["controlPlane[1] (ubuntu-70): this host joined the cluster but runs no kube-apiserver"
                        " static pod: is it a worker?"], err


def test_a_new_control_plane_node_needs_kubeadms_ports_free_and_its_tools(node: Node) -> None:
    rc, problems, err = node.run(preflight_of(cluster_of(), "ubuntu-70"), KUBEADM="", KUBELET="",
                                 ADDR="10.21.22.70",
                                 LISTEN="2379=etcd 10257=None 10259=kube-scheduler 8080=nginx")
    w = "controlPlane[1] (ubuntu-70): "
    assert rc == 1
    # Whatever holds a port counts, whatever its name (here even the word Python prints for
    # "no owner"): only an LB's or node-local proxy's port may be held, and only by haproxy.
    assert problems == [w + p for p in [
        "kubeadm is not installed (or does not run): install kubeadm v1.32.3",
        "kubelet is not installed (or does not run): install kubelet v1.32.3",
        'port 2379 is in use (users:(("etcd",pid=9,fd=3)))',
        'port 10257 is in use (users:(("None",pid=9,fd=3)))',
        'port 10259 is in use (users:(("kube-scheduler",pid=9,fd=3)))',
    ]], err


@pytest.mark.parametrize(("kubeadm", "kubelet", "ok"), [
    ("v1.32.0", "v1.29.9", True), ("v1.33.1", "v1.32.3", True), ("v1.31.9", "v1.32.3", False),
    ("v1.34.0", "v1.32.3", False), ("v1.32.3", "v1.28.1", False), ("v2.32.3", "v1.32.3", False),
    ("v1.32.3", "v2.32.3", False),
])
def test_versions_follow_kubeadms_skew_policy(kubeadm: str, kubelet: str, ok: bool, node: Node) -> None:
    rc, problems, err = node.run(preflight_of(cluster_of(), "ubuntu-75"), KUBEADM=kubeadm, KUBELET=kubelet)
    assert (rc == 0) is ok and (problems == []) is ok, err


def test_a_worker_checks_its_own_ports_and_that_the_endpoint_name_resolves(node: Node) -> None:
    (node.bin / "kubectl").unlink()  # a worker needs none
    rc, problems, err = node.run(preflight_of(cluster_of(), "ubuntu-75"), ADDR="10.9.9.9", RESOLVED="",
                                 LISTEN="10250=kubelet 10256=kube-proxy 2379=etcd 6443=nginx",
                                 REACH="10.21.22.72:6443=drop")
    w = "workers[1] (ubuntu-75): "
    assert rc == 1
    assert problems == [w + p for p in [
        'port 10250 is in use (users:(("kubelet",pid=9,fd=3)))',
        'port 10256 is in use (users:(("kube-proxy",pid=9,fd=3)))',
        "endpoint.dnsName api.k8s.lab.internal does not resolve here (the kubeconfigs dial it)",
        "cannot reach the apiserver of controlPlane[2] (ubuntu-72) at 10.21.22.72:6443 (no answer in 3 s: a"
        " firewall dropping it?): open it between these hosts (README, Ports)",
    ]], err
    assert "ubuntu-75 is ready" not in err


def test_a_node_local_proxys_port_may_be_haproxys_only_and_haproxy_recent(node: Node) -> None:
    cluster = cluster_of(example_stack("node-local"))
    worker = cluster.workers[0]
    text = preflight_of(cluster, worker.name)
    assert node.run(text, LISTEN="6443=haproxy")[:2] == (0, [])
    rc, problems, err = node.run(text, LISTEN="6443=nginx", BANNER="HA-Proxy version 2.2.9-2 2021/01/01")
    assert rc == 1, err
    key = f"workers[0] ({worker.name}): "
    assert problems == [key + 'port 6443 is in use (users:(("nginx",pid=9,fd=3)))',
                        key + "haproxy 2.2 is installed here; kube-ha needs 2.4 or later: upgrade it"], err
    (node.bin / "haproxy").unlink()
    assert node.run(text)[:2] == (0, [])  # none yet: the install step brings a recent one


def lb_preflight(cluster: Cluster, index: int = 0) -> str:
    from kube_ha.preflight import Target, preflight_script
    return preflight_script(cluster, Target(cluster.load_balancers[index], f"loadBalancers[{index}]", "lb"))


def test_an_lb_hosts_ports_must_be_free_or_haproxys(node: Node) -> None:
    text = lb_preflight(cluster_of())
    assert node.run(text, LISTEN="6443=haproxy 8404=haproxy", ADDR="10.21.22.101")[:2] == (0, [])
    rc, problems, err = node.run(text, LISTEN="6443=nginx 8404=grafana")
    assert rc == 1
    assert problems == ['loadBalancers[0] (haproxy-101): port 6443 is in use (users:(("nginx",pid=9,fd=3)))',
                        'loadBalancers[0] (haproxy-101): port 8404 is in use (users:(("grafana",pid=9,fd=3)))'
                        ], err
    assert "haproxy-101 is ready (lb)" not in err


def test_an_lb_host_needs_haproxy_or_a_package_manager(node: Node) -> None:
    (node.bin / "haproxy").unlink()
    rc, problems, err = node.run(lb_preflight(cluster_of()))
    assert rc == 1
    assert problems == ["loadBalancers[0] (haproxy-101): no haproxy, and neither apt-get nor dnf to install it"
                        ], err
    for manager in ("apt-get", "dnf"):
        (node.bin / manager).write_text("#!/bin/sh\n")
        (node.bin / manager).chmod(0o755)
        rc, problems, err = node.run(lb_preflight(cluster_of()))
        assert (rc, problems) == (0, []), err
        assert "haproxy-101 is ready (lb)" in err
        (node.bin / manager).unlink()


def test_a_vip_lb_host_needs_its_address_and_the_named_interface(node: Node) -> None:
    named = vip_of(loadBalancer={"vrrpInterface": "ens3"})
    rc, problems, err = node.run(lb_preflight(named, 1), ADDR="10.21.22.9", LINKS="lo eth0")
    assert rc == 1, err
    w = "loadBalancers[1] (haproxy-102): "
    assert problems == [w + "10.21.22.102 is not an address of this host (it is what the cluster will dial)",
                        w + "loadBalancer.vrrpInterface: ens3 does not exist here (this host has: lo eth0 )"], err
    assert node.run(lb_preflight(named, 1), ADDR="10.21.22.102", LINKS="lo ens3")[:2] == (0, [])


def test_a_vip_lb_host_finds_the_interface_by_its_address(node: Node) -> None:
    found = vip_of()
    w = "loadBalancers[0] (haproxy-101): "
    rc, problems, err = node.run(lb_preflight(found), ADDR="10.21.22.9")
    assert problems == [w + "10.21.22.101 is not an address of this host (VRRP runs on the interface that holds"
                            " it; or set loadBalancer.vrrpInterface)"], err
    assert node.run(lb_preflight(found), ADDR="10.21.22.101")[:2] == (0, [])
    node.file("/etc/keepalived/keepalived.conf", "    interface eth9\n")
    rc, problems, err = node.run(lb_preflight(found), ADDR="10.21.22.101")
    assert rc == 1, err
    assert problems == [w + "loadBalancer.vrrpInterface: keepalived here runs VRRP on eth9, but the interface"
                            " holding 10.21.22.101 is eth0: set loadBalancer.vrrpInterface to eth9 to keep it"
                            " there, or to eth0 to move it"], err


def test_the_service_topology_needs_curl_and_no_foreign_line_for_its_name(node: Node) -> None:
    cluster = cluster_of(example_stack("service"))
    name = cluster.endpoint.dns_name
    assert name
    text = preflight_of(cluster, "ubuntu-75")
    node.hosts.write_text(f"127.0.0.1 localhost\n10.21.22.73 {name}\n10.96.0.50 {name} # kube-ha\n"
                          f"# 10.1.1.1 {name}\n")
    assert node.run(text)[:2] == (0, [])  # a control-plane address is one the switcher writes too
    node.hosts.write_text(f"10.9.9.9 other {name.upper()}\n10.9.9.8 {name}\n")
    (node.bin / "curl").unlink()
    rc, problems, err = node.run(text)
    assert rc == 1, err
    w = "workers[1] (ubuntu-75): "
    assert problems == [
        w + "endpoint.type: service needs curl on every node (its /etc/hosts switcher probes /readyz): install it",
        w + f"endpoint.type: /etc/hosts here maps {name} to 10.9.9.8 10.9.9.9 in a line kube-ha does not keep:"
            " remove that line (the program writes its own)"], err


def test_only_the_service_topology_needs_curl(node: Node) -> None:
    """Only its /etc/hosts switcher probes /readyz with curl; a node of any other topology may lack it."""
    (node.bin / "curl").unlink()
    assert node.run(preflight_of(cluster_of(), "ubuntu-75"))[:2] == (0, [])


def test_a_managed_hosts_entry_tolerates_only_the_endpoint_address(node: Node) -> None:
    raw = dev_stack()
    raw["endpoint"]["manageHostsEntry"] = True
    text = preflight_of(parse_cluster(raw), "ubuntu-75")
    node.hosts.write_text("10.21.22.101 api.k8s.lab.internal\n")
    assert node.run(text, RESOLVED="")[:2] == (0, [])  # the name need not resolve: the program maps it
    node.hosts.write_text("10.21.22.73 api.k8s.lab.internal\n")
    rc, problems, err = node.run(text)
    assert rc == 1, err
    assert problems == ["workers[1] (ubuntu-75): endpoint.manageHostsEntry: /etc/hosts here maps"
                        " api.k8s.lab.internal to 10.21.22.73 in a line kube-ha does not keep: remove that line"
                        " (the program writes its own)"], err


def test_a_sudo_user_is_asked_for_passwordless_sudo_first_naming_the_host(tmp_path: Path) -> None:
    """sudo's own "a password is required" names neither the host nor the fix."""
    from kube_ha.preflight import preflight_command, targets
    raw = dev_stack()
    raw["sshUser"] = "deploy"
    command = preflight_command(targets(parse_cluster(raw))[0])
    (tmp_path / "sudo").write_text("#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n")
    (tmp_path / "sudo").chmod(0o755)
    ran = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=10, input="echo ran\n",
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert ran.returncode == 1 and "ran" not in ran.stdout
    assert ran.stderr == ("kube-ha: controlPlane[0] (ubuntu-73): the SSH user deploy cannot run sudo without a"
                          " password here: allow it passwordless sudo (NOPASSWD in sudoers), or connect as root."
                          " sudo said: sudo: a password is required\n")
    root = targets(parse_cluster(dev_stack()))[0]
    assert "sudo" not in preflight_command(root)


def test_san_entries_are_compared_as_openssl_prints_them() -> None:
    from kube_ha.preflight import openssl_san
    assert openssl_san("fd00::a:1") == "IP Address:FD00:0:0:0:0:0:A:1"
    assert openssl_san("10.0.0.1") == "IP Address:10.0.0.1"
    assert openssl_san("api.example") == "DNS:api.example"


def test_targets_name_each_host_by_its_stack_key_and_role() -> None:
    from kube_ha.preflight import targets
    got = [(t.key, t.host.name, t.role) for t in targets(cluster_of())]
    assert got == [("controlPlane[0]", "ubuntu-73", "control-plane"),
                   ("controlPlane[1]", "ubuntu-70", "control-plane"),
                   ("controlPlane[2]", "ubuntu-72", "control-plane"), ("workers[0]", "ubuntu-74", "worker"),
                   ("workers[1]", "ubuntu-75", "worker"), ("loadBalancers[0]", "haproxy-101", "lb")]


def test_the_elastic_paths_are_etcd_from_pool_workers_and_elastic_ports_from_lbs(node: Node) -> None:
    from kube_ha.preflight import elastic_paths, reach_check
    cluster = cluster_of()
    by = {h.name: h for h in (*cluster.nodes, *cluster.load_balancers)}
    assert [(p.name, port) for p, port, _ in elastic_paths(cluster, by["haproxy-101"])] == [
        ("ubuntu-74", 7443), ("ubuntu-75", 7443)]
    assert [(p.name, port, what) for p, port, what in elastic_paths(cluster, by["ubuntu-74"])] == [
        (h.name, 2379, "etcd client port") for h in cluster.control_plane]
    assert elastic_paths(cluster, by["ubuntu-73"]) == []
    raw = dev_stack()
    raw["elasticApiserver"]["enabled"] = False
    assert elastic_paths(parse_cluster(raw), by["haproxy-101"]) == []
    check = reach_check(cluster, by["haproxy-101"], elastic_paths(cluster, by["haproxy-101"]))
    rc, problems, _ = node.run(check, REACH="10.21.22.75:7443=drop")
    assert (rc, problems) == (1, ["loadBalancers[0] (haproxy-101): cannot reach the elastic apiserver port of"
                                  " workers[1] (ubuntu-75) at 10.21.22.75:7443 (no answer in 3 s: a firewall"
                                  " dropping it?): open it between these hosts (README, Ports)"])
    assert node.run(check)[:2] == (0, [])


def test_a_joined_worker_is_checked_for_its_node_name_only(node: Node) -> None:
    node.file("/etc/kubernetes/kubelet.conf", "users:\n- user:\n    client-certificate-data: Zm9vCg==\n")
    text = preflight_of(cluster_of(), "ubuntu-75")
    assert node.run(text, NODE="ubuntu-75", LISTEN="10250=kubelet 10256=kube-proxy")[:2] == (0, [])
    rc, problems, err = node.run(text, NODE="ubuntu-74")
    assert (rc, problems) == (1, ["workers[1] (ubuntu-75): this host joined as Node ubuntu-74, not ubuntu-75: the"
                                  " address belongs to another node (fix the name or the address)"]), err


def run_os_check(node: Node) -> tuple[int, list[str], str]:
    """Preflight's OS check alone, its problems printed as the preflight prints them."""
    from kube_ha.preflight import HELPERS, _os
    from kube_ha.shell import script
    return node.run(script("t", "where=x", HELPERS, _os(),
                           'for p in "${problems[@]}"; do echo "  $p" >&2; done'))


@pytest.mark.parametrize("os_id", ["ID=debian", "ID=ubuntu\nID_LIKE=debian", "ID=rhel", "ID=centos",
                                   "ID=rocky\nID_LIKE=\"rhel centos fedora\"", "ID=almalinux", "ID=fedora",
                                   "ID=linuxmint\nID_LIKE=\"ubuntu debian\""])
def test_every_supported_os_passes(os_id: str, node: Node) -> None:
    node.file("/etc/os-release", os_id + "\n")
    rc, problems, err = run_os_check(node)
    assert (rc, problems) == (0, []), err


@pytest.mark.parametrize(("os_release", "named"), [
    ("ID=arch\n", "arch"), ("ID=opensuse-leap\nID_LIKE=\"suse opensuse\"\n", "opensuse-leap suse opensuse"),
    ("NAME=Unknown\n", "no ID in /etc/os-release")])
def test_an_unsupported_os_is_named_as_os_release_gives_it(os_release: str, named: str, node: Node) -> None:
    """The words of ID and ID_LIKE, one space apart; a file without ID says so rather than `()`."""
    node.file("/etc/os-release", os_release)
    _, problems, err = run_os_check(node)
    assert problems == [f"x: the OS ({named}) is not one this program supports (Debian, Ubuntu or the RHEL"
                        " family)"], err


def test_a_single_control_plane_node_dials_no_peer_and_passes(node: Node) -> None:
    raw = dev_stack()
    raw["controlPlane"] = raw["controlPlane"][:1]
    raw["elasticApiserver"]["enabled"] = False
    raw["controllerManager"]["replicas"] = 0
    rc, problems, err = node.run(preflight_of(parse_cluster(raw), "ubuntu-73"))
    assert (rc, problems) == (0, []), err


def test_without_in_cluster_pods_neither_the_metrics_api_nor_the_static_pods_are_asked(node: Node) -> None:
    """No elastic apiservers: no HPA to feed; no in-cluster control plane: nothing to carry."""
    raw = dev_stack()
    raw["elasticApiserver"]["enabled"] = False
    raw["controllerManager"]["replicas"] = 0
    node.joined_control_plane(image="registry.k8s.io/kube-apiserver:v1.32.1", flags=("x-file=/etc/nowhere.pem",))
    rc, problems, err = node.run(preflight_of(parse_cluster(raw), "ubuntu-73"), METRICS_RC="1")
    assert (rc, problems) == (0, []), err


def test_an_ip_only_endpoint_asks_no_resolver(node: Node) -> None:
    raw = dev_stack()
    raw["endpoint"].pop("dnsName")
    rc, problems, err = node.run(preflight_of(parse_cluster(raw), "ubuntu-75"), RESOLVED="")
    assert (rc, problems) == (0, []), err


def test_tools_answer_in_english_whatever_the_hosts_language(node: Node) -> None:
    """sshd passes LANG through: a translated "Connection refused" would read as a blocked port."""
    (node.bin / "timeout").write_text(
        '#!/bin/bash\nif [ "${LC_ALL:-}" = C ]; then echo "bash: connect: Connection refused" >&2;'
        ' else echo "bash: connect: Verbindung verweigert" >&2; fi; exit 1\n')
    rc, problems, err = node.run(preflight_of(cluster_of(), "ubuntu-75"), LANG="de_DE.UTF-8")
    assert (rc, problems) == (0, []), err
    from kube_ha.preflight import elastic_paths, reach_check
    cluster = cluster_of()
    lb = cluster.load_balancers[0]
    rc, problems, err = node.run(reach_check(cluster, lb, elastic_paths(cluster, lb)), LANG="de_DE.UTF-8")
    assert (rc, problems) == (0, []), err


def test_the_switcher_is_written_enabled_and_run_and_reloads_systemd_only_for_new_units(
        switcher: tuple[Path, Path]) -> None:
    from kube_ha.endpoint_switch import SWITCH, TIMER, UNIT, switch_install_lines
    from kube_ha.shell import script
    tmp, hosts = switcher
    (tmp / "systemctl").write_text('#!/bin/sh\necho "systemctl $*" >> "$CALLS"\n')
    (tmp / "systemctl").chmod(0o755)
    text = script("node", *switch_install_lines(parse_cluster(example_stack("service"))))
    for path in (SWITCH, UNIT, TIMER):
        text = text.replace(path, f"{tmp}{path}")
        (tmp / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)

    def install() -> list[str]:
        (tmp / "calls").write_text("")
        ran = subprocess.run(["bash", "-c", text], capture_output=True, text=True, timeout=30, env={
            "PATH": f"{tmp}:/usr/bin:/bin", "KUBE_HA_HOSTS_FILE": str(hosts), "KUBE_HA_CA": "none",
            "ANSWER": "10.96.0.50:6443", "CALLS": str(tmp / "calls")})
        assert ran.returncode == 0, ran.stderr
        return (tmp / "calls").read_text().splitlines()

    calls = [c for c in install() if c.startswith("systemctl")]
    assert calls == ["systemctl daemon-reload",
                     "systemctl enable --quiet kube-ha-endpoint-switch.service kube-ha-endpoint-switch.timer",
                     "systemctl start kube-ha-endpoint-switch.timer"]
    assert oct((tmp / SWITCH.lstrip("/")).stat().st_mode & 0o777) == "0o755"
    assert hosts.read_text().endswith(" # kube-ha\n")  # run once at once: the name maps before anything dials
    assert "systemctl daemon-reload" not in install()
    for path in (SWITCH, UNIT, TIMER):  # any one of them changed: systemd reads them again
        (tmp / path.lstrip("/")).write_text("edited\n")
        assert "systemctl daemon-reload" in install(), path


def test_a_retired_node_loses_the_switcher_and_its_units(tmp_path: Path) -> None:
    from kube_ha.endpoint_switch import SWITCH, TIMER, UNIT, retire_lines
    from kube_ha.shell import script
    text = script("retire", retire_lines())
    for path in (SWITCH, UNIT, TIMER):
        text = text.replace(path, f"{tmp_path}{path}")
        (tmp_path / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path.lstrip("/")).write_text("x\n")
    (tmp_path / "systemctl").write_text('#!/bin/sh\necho "systemctl $*" >> "$CALLS"\n')
    (tmp_path / "systemctl").chmod(0o755)
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n10.96.0.50 {SVC_NAME} # kube-ha\n")
    ran = subprocess.run(["bash", "-c", text], capture_output=True, text=True, timeout=30, env={
        "PATH": f"{tmp_path}:/usr/bin:/bin", "KUBE_HA_HOSTS_FILE": str(hosts), "CALLS": str(tmp_path / "calls")})
    assert ran.returncode == 0, ran.stderr
    assert not [p for p in (SWITCH, UNIT, TIMER) if (tmp_path / p.lstrip("/")).exists()]
    assert (tmp_path / "calls").read_text().splitlines() == [
        "systemctl disable --now kube-ha-endpoint-switch.timer kube-ha-endpoint-switch.service",
        "systemctl daemon-reload"]
    assert "kube-ha[retire]: the endpoint switcher removed" in ran.stderr
    assert "the endpoint's line of kube-ha removed from" in ran.stderr
    assert hosts.read_text() == "127.0.0.1 localhost\n"


def test_with_three_lb_hosts_each_lists_both_others_as_peers() -> None:
    from kube_ha.loadbalancer.keepalived import render_keepalived_conf
    raw = vip_stack()
    raw["loadBalancers"] = [*raw["loadBalancers"], host("haproxy-103", "10.21.22.103")]
    cluster = parse_cluster(raw)
    conf = keepalived_blocks(render_keepalived_conf(cluster, cluster.load_balancers[2]))
    assert conf["unicast_peer"] == ["10.21.22.101", "10.21.22.102"]
    assert "priority 130" in conf["vrrp_instance kube_ha_apiserver"]


def test_a_stats_bind_without_a_port_opens_no_extra_port() -> None:
    """stats_port is None for a malformed statsBind (the reader reports it): nothing to open."""
    from kube_ha.loadbalancer.scripts import firewall_ports
    cluster = cluster_of()
    odd = replace(cluster, load_balancer=replace(cluster.load_balancer, stats_bind="*:stats"))
    assert odd.load_balancer.stats_port is None
    assert firewall_ports(odd) == [6443]


def test_only_pool_workers_dial_etcd() -> None:
    from kube_ha.preflight import elastic_paths
    raw = dev_stack()
    raw["elasticApiserver"].update(poolNodes=["ubuntu-74"], maxReplicas=1)
    cluster = parse_cluster(raw)
    assert elastic_paths(cluster, cluster.node("ubuntu-75")) == []
    assert len(elastic_paths(cluster, cluster.node("ubuntu-74"))) == 3


def test_the_apiserver_version_is_read_from_its_own_image(node: Node) -> None:
    """Not from the kubelet's answer just before: an older apiserver under a current kubelet."""
    node.joined_control_plane(image="registry.k8s.io/kube-apiserver:v1.31.4",
                              flags=("service-account-signing-key-file=/etc/kubernetes/pki/sa.key",))
    rc, problems, err = node.run(preflight_of(cluster_of(), "ubuntu-73"))
    assert (rc, problems) == (1, ["controlPlane[0] (ubuntu-73): kube-apiserver runs v1.31.4 here but"
                                  " kubernetesVersion is v1.32.3: set kubernetesVersion to the cluster's version"
                                  " (this program does not upgrade)"]), err


def test_production_haproxy_chroots_and_keeps_server_state_in_the_packaged_directory() -> None:
    """Debian's and RHEL's haproxy packages create /var/lib/haproxy for the chroot; the
    server-state file there is what keeps a DOWN server DOWN across a reload."""
    lines = render_haproxy_cfg(cluster_of()).splitlines()
    assert "    chroot /var/lib/haproxy" in lines
    assert "    server-state-file /var/lib/haproxy/server-state" in lines


def test_keepalived_config_goes_live_where_keepalived_reads_it() -> None:
    """keepalived reads /etc/keepalived/keepalived.conf unless -f says otherwise (keepalived(8)),
    and the packaged unit passes no -f."""
    cluster = parse_cluster(vip_stack())
    text = configure(cluster, render_haproxy_cfg(cluster), vip=True)
    assert any(line.startswith("if cmp -s") and 'else mv -f "$tmp" /etc/keepalived/keepalived.conf;' in line
               for line in text.splitlines())



# sudo(8): `-n` (non-interactive) fails at once where a password would be asked; otherwise it
# runs the command with its arguments. This stand-in is sudo for a user allowed NOPASSWD.
SUDO = '#!/bin/sh\n[ "$1" = -n ] || { echo "sudo: a password is required" >&2; exit 1; }\nshift\nexec "$@"\n'


def test_a_non_root_user_runs_the_preflight_itself_under_sudo(tmp_path: Path) -> None:
    """After asking `sudo -n true`, the script on stdin runs under `sudo -n bash -s`."""
    from kube_ha.preflight import Target, preflight_command
    cluster = cluster_of(sshUser="admin")
    assert cluster.bootstrap.user == "admin"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sudo").write_text(SUDO)
    (bin_dir / "sudo").chmod(0o755)
    command = preflight_command(Target(cluster.bootstrap, "controlPlane[0]", "control-plane"))
    ran = subprocess.run(["bash", "-c", command], input='echo "ran as $0 with $#"\n', capture_output=True,
                         text=True, timeout=60, env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert (ran.returncode, ran.stdout) == (0, "ran as bash with 0\n"), ran.stderr
