"""What the small pure-core helpers mean, pinned where a wrong answer would reach a host
unnoticed: the URLs kubelets and clients dial, the etcd servers the elastic apiservers use,
what an external LB must register, and the shell builders run for real under bash."""

from __future__ import annotations

import copy
import ipaddress
import subprocess
from pathlib import Path

import pytest

from kube_ha import shell
from kube_ha.config import parse_cluster
from kube_ha.model import Host, host_port, is_dns_name, parse_ip, url_host
from kube_ha.topology import (
    all_sans,
    backend_registrations,
    elastic_apiserver_sans,
    elastic_san_marker,
    etcd_endpoints,
    lb_backends,
)
from tests.program import cluster_of, dev_stack, example_stack


def bash(text: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", text], cwd=cwd, capture_output=True, text=True, timeout=20)


# --- model: addresses and URLs --------------------------------------------------------------

def test_ipv6_is_bracketed_in_urls_and_host_port_and_ipv4_is_not() -> None:
    v6 = ipaddress.ip_address("fd00::1")
    assert url_host(v6) == "[fd00::1]" and host_port(v6, 6443) == "[fd00::1]:6443"
    assert url_host("10.0.0.1") == "10.0.0.1" and host_port("10.0.0.1", 1) == "10.0.0.1:1"


@pytest.mark.parametrize(("text", "ok"), [
    ("10.0.0.1", True), ("fd00::1", True), (" 10.0.0.1", False), ("10.0.0.1\n", False),
    ("fe80::1%eth0", False), ("١٠.0.0.1", False), (10, False), ("10.0.0", False)])
def test_an_address_is_taken_exactly_as_written(text: object, ok: bool) -> None:
    assert (parse_ip(text) is not None) is ok


@pytest.mark.parametrize(("name", "ok"), [
    ("a", True), ("a-b.c", True), ("a" * 63, True), ("a" * 64, False),
    (".".join(["a" * 63] * 3) + "." + "a" * 61, True),  # 253 characters
    (".".join(["a" * 63] * 3) + "." + "a" * 62, False),  # 254
    ("", False), ("A", False), ("-a", False), ("a-", False), ("a..b", False), (7, False)])
def test_dns_names_follow_dns_1123(name: object, ok: bool) -> None:
    assert is_dns_name(name) is ok


def test_without_node_local_proxies_every_kubelet_dials_the_endpoint() -> None:
    """Without `nodeLocalProxy` nothing listens on a worker's 127.0.0.1:6443: its kubelet and
    kube-proxy must dial the endpoint, by name when there is one."""
    plain = cluster_of(nodeLocalProxy=False)
    assert plain.node_url == plain.endpoint.url == "https://api.k8s.lab.internal:6443"
    local = cluster_of(nodeLocalProxy=True)
    assert local.node_url == "https://127.0.0.1:6443"


def test_the_endpoint_is_dialled_by_address_when_it_has_no_name() -> None:
    raw = copy.deepcopy(dev_stack())
    del raw["endpoint"]["dnsName"]
    c = parse_cluster(raw)
    assert (c.endpoint.host, c.endpoint.url) == ("10.21.22.101", "https://10.21.22.101:6443")


def test_the_service_topology_is_reached_from_outside_through_the_bootstrap_node() -> None:
    """A ClusterIP answers only inside the cluster: `pulumi up` dials the bootstrap node, the
    in-cluster Deployments the ClusterIP itself (cluster DNS does not read /etc/hosts)."""
    c = parse_cluster(example_stack("service"))
    assert c.endpoint.service and not c.endpoint.external
    assert c.access_url == f"https://{host_port(c.bootstrap.address, c.apiserver_port)}"
    assert c.in_cluster_url == f"https://{host_port(c.endpoint.address, c.endpoint.port)}"
    dev = cluster_of()
    assert dev.access_url == dev.in_cluster_url == dev.endpoint.url
    assert parse_cluster(example_stack("external")).endpoint.external


def test_join_order_is_config_order_without_the_bootstrap_node() -> None:
    c = cluster_of()
    assert [h.name for h in c.joining_control_plane] == ["ubuntu-70", "ubuntu-72"]
    assert c.bootstrap.name == "ubuntu-73" and c.minor_version == (1, 32)
    assert [h.name for h in c.nodes] == ["ubuntu-73", "ubuntu-70", "ubuntu-72", "ubuntu-74", "ubuntu-75"]


# --- topology -------------------------------------------------------------------------------

def test_elastic_apiservers_are_given_every_control_plane_etcd_member() -> None:
    assert etcd_endpoints(cluster_of()) == ["https://10.21.22.73:2379", "https://10.21.22.70:2379",
                                         "https://10.21.22.72:2379"]


def test_sans_json_lists_each_node_and_the_elastic_certificate_only_when_enabled() -> None:
    on = all_sans(cluster_of())
    assert set(on) == {"ubuntu-73", "ubuntu-70", "ubuntu-72", "elastic-apiserver"}
    assert "ubuntu-70" in on["ubuntu-70"]["dnsNames"] and "10.21.22.70" in on["ubuntu-70"]["ipAddresses"]
    elastic = elastic_apiserver_sans(cluster_of())
    assert on["elastic-apiserver"] == {"dnsNames": list(elastic.dns_names),
                                       "ipAddresses": list(elastic.ip_addresses)}
    raw = copy.deepcopy(dev_stack())
    raw["elasticApiserver"]["enabled"] = False
    assert "elastic-apiserver" not in all_sans(parse_cluster(raw))


def test_an_external_lb_is_told_every_backend_and_the_name_its_check_asks_for() -> None:
    c = cluster_of()
    regs = backend_registrations(c)
    assert [(r["name"], r["address"], r["port"]) for r in regs] == [
        (b.name, b.address, b.port) for b in lb_backends(c)]
    assert regs[0] == {"name": "ubuntu-73", "address": "10.21.22.73", "port": 6443,
                       "check": "GET /readyz", "serverName": "api.k8s.lab.internal"}
    assert regs[-1]["serverName"] == elastic_san_marker(c) and regs[-1]["port"] == 7443
    raw = copy.deepcopy(dev_stack())
    del raw["endpoint"]["dnsName"]
    assert backend_registrations(parse_cluster(raw))[0]["serverName"] == "10.21.22.101"


# --- shell builders, run under bash ---------------------------------------------------------

def test_a_script_stops_at_the_first_failure_and_logs_with_its_purpose(tmp_path: Path) -> None:
    text = shell.script("demo step", 'log "hello"', "false", "echo after")
    ran = bash(text, tmp_path)
    assert ran.returncode == 1 and "after" not in ran.stdout
    assert ran.stderr == "kube-ha[demo step]: hello\n"
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail\n" in text
    assert bash(shell.script("p", "echo $UNSET_VAR"), tmp_path).returncode != 0  # nounset
    assert bash(shell.script("p", "false | true", "echo ok"), tmp_path).returncode != 0  # pipefail
    assert bash(shell.script("p", "umask"), tmp_path).stdout.strip() == "0022"


def test_indent_nests_each_line_and_leaves_blank_lines_empty() -> None:
    assert shell.indent(["a\n\nb", "c"]) == ["  a", "", "  b", "  c"]
    assert shell.indent(["x"], by="\t") == ["\tx"]


def test_heredoc_content_is_verbatim_even_when_it_holds_the_delimiter(tmp_path: Path) -> None:
    content = "$HOME `id` KUBE_HA_EOF\nKUBE_HA_EOF_1\nlast"
    out = bash(shell.heredoc("cat", content), tmp_path)
    assert out.returncode == 0 and out.stdout == content + "\n"
    assert shell.heredoc("cat", "x\n") == "cat <<'KUBE_HA_EOF'\nx\nKUBE_HA_EOF"


def test_a_held_delimiter_gives_the_first_free_numbered_one() -> None:
    """The delimiter is part of the step's text, which is its trigger: the same content must
    give the same script from one release to the next, or the step runs again."""
    assert shell.heredoc("cat", "KUBE_HA_EOF_0\n").splitlines()[-1] == "KUBE_HA_EOF_1"
    assert shell.heredoc("cat", "KUBE_HA_EOF KUBE_HA_EOF_1\n").splitlines()[-1] == "KUBE_HA_EOF_2"


def test_a_script_ends_its_last_line() -> None:
    """Same reason: the text is the step's trigger (and a file without its final newline is
    not a text file to the tools that print it)."""
    assert shell.script("p", "true").endswith("\ntrue\n")


def test_write_file_replaces_once_flags_the_change_and_keeps_a_rejected_file_out(tmp_path: Path) -> None:
    target = tmp_path / "conf"
    me = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    owner = f"{me}:{subprocess.run(['id', '-gn'], capture_output=True, text=True).stdout.strip()}"

    def run(content: str, check: str | None = None) -> subprocess.CompletedProcess[str]:
        body = shell.write_file(str(target), content, mode="0600", owner=owner, check=check)
        return bash(shell.script("w", "changed=0", body, 'echo "changed=$changed"'), tmp_path)

    first = run("one\n")
    assert first.returncode == 0 and first.stdout == "changed=1\n" and target.read_text() == "one\n"
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    again = run("one\n")
    assert again.stdout == "changed=0\n" and "unchanged" in again.stderr
    refused = run("two\n", check='grep -q three "$tmp"')
    assert refused.returncode == 1 and target.read_text() == "one\n"
    assert "rejected; the live file is untouched" in refused.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["conf"]  # no temp file left behind
    accepted = run("three\n", check='grep -q three "$tmp"')
    assert accepted.stdout == "changed=1\n" and target.read_text() == "three\n"


def test_write_file_without_a_flag_sets_none(tmp_path: Path) -> None:
    path = str(tmp_path / "f")
    body = shell.write_file(path, "x", flag=None, owner="root:root")
    assert "changed=1" not in body and body.count(shell.GOES_LIVE.format(path=shell.quote(path))) == 1


def test_tcp_probe_tells_an_open_port_from_a_closed_one(tmp_path: Path) -> None:
    import socket
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        assert bash(shell.tcp_probe(port), tmp_path).returncode == 0
    assert bash(shell.tcp_probe(port), tmp_path).returncode != 0


def _host(user: str) -> Host:
    return Host("n", ipaddress.ip_address("10.0.0.1"), user, 22)


def test_a_step_runs_under_sudo_only_for_a_non_root_user() -> None:
    assert "sudo -n timeout" in shell.shell_for(_host("ubuntu"))
    assert "sudo" not in shell.shell_for(_host("root"))
    assert f"timeout -k 30 {shell.STEP_TIMEOUT_S} bash -s" in shell.shell_for(_host("root"))


def test_a_step_that_times_out_says_so_and_keeps_its_exit_code(tmp_path: Path) -> None:
    timed = bash(shell.bounded(_host("root"), "sleep 5", seconds=1), tmp_path)
    assert timed.returncode == 124 and "timed out after 1 s" in timed.stderr
    failed = bash(shell.bounded(_host("root"), "false", seconds=5), tmp_path)
    assert failed.returncode == 1 and failed.stderr == ""
    gate = bash(shell.bounded(_host("root"), "echo ran", seconds=5, first="echo first; "), tmp_path)
    assert gate.stdout == "first\nran\n"


def test_an_inline_script_runs_as_one_argument(tmp_path: Path) -> None:
    out = bash(shell.inline(_host("root"), "echo 'a b'; echo $((1 + 1))"), tmp_path)
    assert out.returncode == 0 and out.stdout == "a b\n2\n"
