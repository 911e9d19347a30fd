"""The LB configure script, run for real: haproxy, socat and coreutils in a private mount and
network namespace (so /etc/haproxy, /run and port 6443 are the test's own), with a small
stand-in for systemd that drives haproxy the way its unit file does."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kube_ha.config import parse_cluster
from kube_ha.loadbalancer.haproxy import render_haproxy_cfg
from kube_ha.loadbalancer.scripts import configure_script, install_script, package_steps
from kube_ha.shell import script
from tests.harness import pki
from tests.program import SEGMENT_LBS, SEGMENT_VIP, grown_stack, segment_vip_stack, vip_stack

SHIM = Path(__file__).parent / "harness" / "bin"
pytestmark = pytest.mark.slow

DRIVER = """
set -u
ip link set lo up
mount -t tmpfs tmpfs /run
mount --bind "$T/etc-haproxy" /etc/haproxy
mount -t tmpfs tmpfs /var/lib/haproxy
export PATH="$SHIM:$PATH"
trap 'if [ -s /run/haproxy.pid ]; then kill "$(cat /run/haproxy.pid)"; fi' EXIT
for step in 0 00 1 2 3 4; do
  bash "$T/step$step.sh" 2> "$T/err$step"; echo "RC$step=$?"
  echo "PID$step=$(cat /run/haproxy.pid 2>/dev/null)"
  cp /etc/haproxy/haproxy.cfg "$T/live$step.cfg"
  sleep 0.5
done
echo "show servers state" | socat stdio UNIX-CONNECT:/run/haproxy/admin.sock > "$T/state.txt"
[ -s /var/lib/haproxy/server-state ] && echo SAVED_STATE=1
"""


def in_private_namespaces(driver: str, workdir: Path
                          ) -> tuple[dict[str, str], subprocess.CompletedProcess[str]]:
    """Run a driver script in fresh mount and network namespaces; its KEY=value lines."""
    result = subprocess.run(["unshare", "--mount", "--net", "--propagation", "private", "bash",
                             "-c", driver], env={"T": str(workdir), "SHIM": str(SHIM),
                                                 "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                            capture_output=True, text=True, timeout=120)
    return dict(re.findall(r"^(\w+)=(.*)$", result.stdout, re.M)), result


def test_configure_runs_twice_rejects_bad_config_and_reloads_in_place(
        raw: dict[str, Any], tmp_path: Path) -> None:
    ca = pki.make_ca()
    client = pki.issue(ca, "kube-ha:lb-health-check", client=True)
    bundle = client.cert_pem + client.key_pem
    # This sandbox's hard FD limit (20000) is below what maxconn 20000 needs; an LB host's
    # systemd allows far more.
    raw["loadBalancer"]["maxConn"] = 4000
    cluster = parse_cluster(raw)
    grown = grown_stack()
    grown["loadBalancer"]["maxConn"] = 4000
    bigger = parse_cluster(grown)
    cfg = render_haproxy_cfg(cluster)
    steps: dict[object, str] = {
        0: install_script(cluster),   # haproxy and socat already here: nothing to do
        "00": install_script(cluster),
        1: configure_script(cluster, cfg, ca.cert_pem, bundle),
        2: configure_script(cluster, cfg, ca.cert_pem, bundle),  # the same again: a no-op
        3: configure_script(cluster, cfg.replace("balance leastconn", "balance nonsense"),
                            ca.cert_pem, bundle),
        4: configure_script(bigger, render_haproxy_cfg(bigger), ca.cert_pem, bundle),
    }
    for n, text in steps.items():
        (tmp_path / f"step{n}.sh").write_text(text)
    (tmp_path / "etc-haproxy").mkdir()
    out, _ = in_private_namespaces(DRIVER, tmp_path)
    err = {n: (tmp_path / f"err{n}").read_text() for n in steps}
    for n in (0, "00"):
        assert out[f"RC{n}"] == "0", err[n]
        assert "haproxy socat already installed" in err[n]
        assert "SELinux" not in err[n] and "firewalld" not in err[n]  # neither runs here
    assert out.get("RC1") == "0", err[1]
    assert "wrote /etc/haproxy/haproxy.cfg" in err[1] and "starting haproxy" in err[1]
    assert (tmp_path / "live1.cfg").read_text() == cfg
    assert out["PID1"]

    assert out["RC2"] == "0", err[2]
    assert "unchanged" in err[2] and "haproxy running with this config already" in err[2]
    assert out["PID2"] == out["PID1"]

    assert out["RC3"] == "1"
    assert "rendered /etc/haproxy/haproxy.cfg rejected" in err[3]
    assert (tmp_path / "live3.cfg").read_text() == cfg  # the live file never saw the bad one
    assert out["PID3"] == out["PID1"]

    assert out["RC4"] == "0", err[4]
    assert "reloading haproxy" in err[4]
    assert out["PID4"] == out["PID1"]  # a reload of the same master, not a restart
    assert "ubuntu-77" in (tmp_path / "live4.cfg").read_text()
    assert out.get("SAVED_STATE") == "1"
    servers = (tmp_path / "state.txt").read_text()
    assert "ubuntu-76" in servers and "ubuntu-77" in servers, servers
    assert not list((tmp_path / "etc-haproxy").glob("*.kube-ha.*"))  # no candidate left over


# lb1 of segment_vip_stack(), alone on its segment, its address on ens5 (no eth0 here): the
# configure step finds the interface by the address. Step 3 is the same script on a host whose
# address is gone: it stops before writing keepalived.conf.
VIP_DRIVER = f"""
set -u
ip link add ens5 type veth peer name ens5p && ip link set ens5p up
ip addr add {SEGMENT_LBS["lb1"]}/24 dev ens5 && ip link set ens5 up
ip link set lo up
mount -t tmpfs tmpfs /run
mount --bind "$T/etc-haproxy" /etc/haproxy
mount --bind "$T/etc-keepalived" /etc/keepalived
mount -t tmpfs tmpfs /var/lib/haproxy
mount -t tmpfs tmpfs /usr/libexec
export PATH="$SHIM:$PATH"
trap 'for p in /run/haproxy.pid /run/keepalived.pid; do [ -s $p ] && kill "$(cat $p)"; done' EXIT
for step in 1 2; do
  bash "$T/step$step.sh" 2> "$T/err$step"; echo "RC$step=$?"
  echo "KPID$step=$(cat /run/keepalived.pid 2>/dev/null)"
done
for _ in $(seq 50); do ip -o addr show dev ens5 | grep -q {SEGMENT_VIP} && break; sleep 0.1; done
ip -o addr show dev ens5 | grep -q {SEGMENT_VIP} && echo VIP=1
cp /run/keepalived.log "$T/keepalived.log" 2>/dev/null
cp /etc/keepalived/keepalived.conf "$T/keepalived.conf"
ip addr del {SEGMENT_LBS["lb1"]}/24 dev ens5
bash "$T/step1.sh" 2> "$T/err3"; echo "RC3=$?"
cmp -s /etc/keepalived/keepalived.conf "$T/keepalived.conf" && echo KEPT3=1
# Step 4: the address is back, but an earlier kube-ha ran VRRP on eth9 here (its default was
# eth0; the address may sit on a management NIC): not moved by default.
ip addr add {SEGMENT_LBS["lb1"]}/24 dev ens5
sed -i 's/ens5/eth9/g' /etc/keepalived/keepalived.conf
cp /etc/keepalived/keepalived.conf "$T/eth9.conf"
bash "$T/step1.sh" 2> "$T/err4"; echo "RC4=$?"
cmp -s /etc/keepalived/keepalived.conf "$T/eth9.conf" && echo KEPT4=1
"""


def test_vip_configure_starts_keepalived_once_and_takes_the_vip(tmp_path: Path) -> None:
    cluster = parse_cluster(segment_vip_stack())
    ca = pki.make_ca()
    client = pki.issue(ca, "kube-ha:lb-health-check", client=True)
    text = configure_script(cluster, render_haproxy_cfg(cluster), ca.cert_pem,
                            client.cert_pem + client.key_pem, vip_host=cluster.load_balancers[0])
    for n in (1, 2):
        (tmp_path / f"step{n}.sh").write_text(text)
    (tmp_path / "etc-haproxy").mkdir()
    (tmp_path / "etc-keepalived").mkdir()
    out, result = in_private_namespaces(VIP_DRIVER, tmp_path)
    err = {n: (tmp_path / f"err{n}").read_text() for n in (1, 2)}
    assert out.get("RC1") == "0", err[1]
    assert "wrote /etc/keepalived/keepalived.conf" in err[1] and "starting keepalived" in err[1]
    assert out.get("RC2") == "0", err[2]
    assert "/etc/keepalived/keepalived.conf unchanged" in err[2]
    assert "keepalived running with this config already" in err[2]
    assert out["KPID1"] and out["KPID1"] == out["KPID2"]
    assert f"VRRP on ens5 (it holds {SEGMENT_LBS['lb1']})" in err[1]
    conf = (tmp_path / "keepalived.conf").read_text()
    assert "interface ens5\n" in conf and f"{SEGMENT_VIP}/32 dev ens5\n" in conf
    # No interface holds the address: refused naming the keys, the live config untouched.
    assert out.get("RC3") == "1" and out.get("KEPT3") == "1"
    assert (f"no interface here holds {SEGMENT_LBS['lb1']}" in (tmp_path / "err3").read_text()
            and "loadBalancer.vrrpInterface" in (tmp_path / "err3").read_text())
    assert out.get("RC4") == "1" and out.get("KEPT4") == "1"
    assert ("loadBalancer.vrrpInterface: keepalived here runs VRRP on eth9, but the interface"
            f" holding {SEGMENT_LBS['lb1']} is ens5: set loadBalancer.vrrpInterface to eth9 to"
            " keep it there, or to ens5 to move it") in (tmp_path / "err4").read_text()
    for d in ("etc-haproxy", "etc-keepalived"):  # unchanged candidates are removed too
        assert not list((tmp_path / d).glob("*.kube-ha.*")), d
    # Alone on its segment, the LB whose haproxy answers takes the VIP.
    assert out.get("VIP") == "1", (result.stdout, result.stderr)


FIREWALLD = Path(__file__).parent / "harness" / "firewalld"
FIREWALL_DRIVER = """
set -u
mount --bind "$T/etc-haproxy" /etc/haproxy
export PATH="$FW:$SHIM:$PATH" FIREWALLD_STATE="$T/firewalld.json"
bash "$T/install.sh" 2> "$T/err1"; echo "RC1=$?"
bash "$T/install.sh" 2> "$T/err2"; echo "RC2=$?"
"""


def _firewalld_after_install(cluster_raw: dict[str, Any], tmp_path: Path,
                             before: dict[str, list[str]] | None = None
                             ) -> tuple[dict[str, list[str]], list[list[str]]]:
    """Run the LB install script twice on a host where firewalld runs (stand-in firewall-cmd);
    the permanent ports and rich rules it leaves, and every firewall-cmd call."""
    (tmp_path / "etc-haproxy").mkdir()
    (tmp_path / "install.sh").write_text(install_script(parse_cluster(cluster_raw)))
    if before is not None:
        (tmp_path / "firewalld.json").write_text(json.dumps(before))
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c",
                             FIREWALL_DRIVER],
                            env={"T": str(tmp_path), "SHIM": str(SHIM), "FW": str(FIREWALLD),
                                 "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                            capture_output=True, text=True, timeout=120)
    assert "RC1=0" in result.stdout and "RC2=0" in result.stdout, (
        result, (tmp_path / "err1").read_text())
    calls = [json.loads(line) for line in (tmp_path / "firewalld.json.calls").read_text().splitlines()]
    return json.loads((tmp_path / "firewalld.json").read_text()), calls


def test_firewalld_opens_the_endpoint_but_not_a_loopback_stats_port(
        raw: dict[str, Any], tmp_path: Path) -> None:
    assert raw["loadBalancer"]["statsBind"] == "127.0.0.1:8404"
    state, calls = _firewalld_after_install(raw, tmp_path)
    assert state == {"ports": ["6443/tcp"], "rich_rules": []}
    adds = [c for c in calls if any(a.startswith("--add-") for a in c)]
    assert len(adds) == 1  # the second run finds the port open and adds nothing


def test_firewalld_admits_vrrp_from_the_peer_lbs_only(tmp_path: Path) -> None:
    raw = vip_stack()
    raw["loadBalancer"]["statsBind"] = "*:8404"  # beyond loopback: opened
    old_open_rule = 'rule protocol value="vrrp" accept'
    state, _ = _firewalld_after_install(raw, tmp_path, {"ports": [], "rich_rules": [old_open_rule]})
    assert sorted(state["ports"]) == ["6443/tcp", "8404/tcp"]
    assert sorted(state["rich_rules"]) == [
        f'rule family="ipv4" source address="{a}" protocol value="vrrp" accept'
        for a in ("10.21.22.101", "10.21.22.102")]  # and the open rule of older versions is gone


@pytest.mark.parametrize(("banner", "refused"), [
    # haproxy.c display_version: "HA-Proxy version" up to 2.3, "HAProxy version" since.
    ("HA-Proxy version 2.2.9-2+deb11u6 2023/12/17 - https://haproxy.org/", True),
    ("HAProxy version 2.3.21 2022/07/27 - https://haproxy.org/", True),
    ("HAProxy version 2.4.22-0ubuntu0.22.04.3 2023/08/14 - https://haproxy.org/", False),
])
def test_the_install_step_refuses_an_haproxy_older_than_2_4(banner: str, refused: bool,
                                                             tmp_path: Path) -> None:
    """The package part of the install step, with haproxy (and socat) already there."""
    for tool, body in (("haproxy", f"echo '{banner}'"), ("socat", "exit 0")):
        (tmp_path / tool).write_text(f"#!/bin/sh\n{body}\n")
        (tmp_path / tool).chmod(0o755)
    ran = subprocess.run(["bash", "-c", script("t", *package_steps(["haproxy", "socat"]))],
                         capture_output=True, text=True, timeout=30,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert ran.returncode == (1 if refused else 0), ran.stderr
    assert ("is too old: 2.4 or later is needed" in ran.stderr) == refused
