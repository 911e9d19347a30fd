"""A virtual-IP endpoint for real: two LB hosts (network namespaces on one switch) run our
haproxy.cfg and keepalived.conf; a client host dials the VIP while the master's haproxy dies."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kube_ha.config import parse_cluster
from kube_ha.loadbalancer.haproxy import render_haproxy_cfg
from kube_ha.loadbalancer.keepalived import (
    check_script,
    detect_interface,
    fill_interface,
    render_keepalived_conf,
)
from kube_ha.model import Host
from tests.harness import pki
from tests.harness.lab import ROOT, haproxy_paths_under
from tests.harness.netns import Segment
from tests.harness.wait import wait_until
from tests.program import (
    SEGMENT_CP,
    SEGMENT_LBS,
    SEGMENT_VIP,
    segment_colocated_stack,
    segment_vip_stack,
)

pytestmark = pytest.mark.slow
VIP, CP, LBS, CLIENT = SEGMENT_VIP, SEGMENT_CP, SEGMENT_LBS, "192.0.2.50"
# keepalived runs only scripts on secure paths (every directory root-owned, not writable by
# others); /tmp is not, so each LB gets a private tmpfs on /etc/keepalived for script and conf.
KEEPALIVED = """
mount -t tmpfs tmpfs /etc/keepalived
install -m 0755 "$1/check.sh" /etc/keepalived/check.sh
install -m 0644 "$1/keepalived.conf" /etc/keepalived/keepalived.conf
exec keepalived -n -l -D -P -f /etc/keepalived/keepalived.conf -p "$1/k.pid" -r "$1/v.pid"
"""


def vip_holder(seg: Segment, lbs: Iterable[str] = LBS) -> list[str]:
    return [h for h in lbs if VIP in seg.addresses(h)]


def on_host(seg: Segment, name: str, lb: Host, conf: str) -> str:
    """keepalived.conf as the configure step writes it on that LB host: the VRRP interface
    found from the host's address, in its network namespace."""
    filled = subprocess.run(seg.cmd(name, ["bash", "-c", "log() { echo \"$*\" >&2; }\n"
                                           + detect_interface(lb) + "\n" + fill_interface()]),
                            input=conf, capture_output=True, text=True, check=True)
    assert "VRRP on eth0" in filled.stderr, filled.stderr
    return filled.stdout


@contextlib.contextmanager
def vip_pair(tmp_path: Path, extra_hosts: dict[str, str] | None = None,
             stack: Callable[[], dict[str, Any]] = segment_vip_stack,
             ) -> Iterator[tuple[Segment, dict[str, subprocess.Popen[str]]]]:
    """The LB hosts of `stack` (two) running our haproxy.cfg and keepalived.conf in front of
    its control-plane nodes (fake apiservers), a client host, and `extra_hosts` on the same
    switch; yields once a host holds the VIP. An LB host that is also a control-plane node
    runs both, as that node would (its apiserver on apiserverPort, haproxy on endpoint.port)."""
    cluster = parse_cluster(stack())
    assert cluster.uses_vip
    lbs = {lb.name: str(lb.address) for lb in cluster.load_balancers}
    ca = pki.make_ca()
    (tmp_path / "ca.crt").write_text(ca.cert_pem)  # for the client host
    client = pki.issue(ca, "kube-ha:lb-health-check", client=True)

    with Segment() as seg:
        cps = {cp.name: str(cp.address) for cp in cluster.control_plane}
        hosts = {**{n: a for n, a in cps.items() if a not in lbs.values()}, "client": CLIENT,
                 **lbs, **(extra_hosts or {})}
        for name, address in hosts.items():
            seg.add_host(name, address)
        for name, address in cps.items():
            crt, key = pki.issue(ca, name, dns=[name], ips=[address, VIP]).write(tmp_path, name)
            on = next(h for h, a in hosts.items() if a == address)
            seg.start(on, [sys.executable, "-m", "tests.harness.fake_apiserver", "--bind", address,
                           "--port", str(cluster.apiserver_port), "--cert", str(crt), "--key",
                           str(key), "--name", name], tmp_path / f"{name}-apiserver.log", cwd=ROOT)
        haproxy: dict[str, subprocess.Popen[str]] = {}
        for i, name in enumerate(lbs):
            d = tmp_path / name
            d.mkdir()
            paths = haproxy_paths_under(d, ca, client, cluster.health_check, log_level="err")
            (d / "haproxy.cfg").write_text(render_haproxy_cfg(cluster, paths))
            haproxy[name] = seg.start(name, ["haproxy", "-W", "-db", "-f", str(d / "haproxy.cfg")],
                                      d / "haproxy.log")
            (d / "check.sh").write_text(check_script(cluster))
            lb = cluster.load_balancers[i]
            (d / "keepalived.conf").write_text(on_host(seg, name, lb, render_keepalived_conf(
                cluster, lb, check_path="/etc/keepalived/check.sh")))
            (d / "check.sh").chmod(0o755)
            (d / "validate.conf").write_text(on_host(seg, name, lb, render_keepalived_conf(
                cluster, lb, check_path=str(d / "check.sh"))))
            check = subprocess.run(seg.cmd(name, ["keepalived", "-t", "-f",
                                                  str(d / "validate.conf")]),
                                   capture_output=True, text=True)
            assert check.returncode == 0, check.stderr
            seg.start(name, ["unshare", "--mount", "--propagation", "private", "bash", "-c",
                             KEEPALIVED, "keepalived", str(d)], d / "keepalived.log")

        wait_until(lambda: len(vip_holder(seg, lbs)) == 1, 15, "a VIP holder", interval=0.1)
        yield seg, haproxy


def test_vip_moves_to_the_other_lb_when_haproxy_dies(tmp_path: Path) -> None:
    with vip_pair(tmp_path) as (seg, haproxy):
        first = vip_holder(seg)[0]
        other = next(h for h in LBS if h != first)

        load = subprocess.Popen(seg.cmd("client", [
            sys.executable, "-m", "tests.harness.load_client", "--address", VIP, "--port", "6443",
            "--server-name", VIP, "--ca", str(tmp_path / "ca.crt"), "--duration", "12",
            "--rate", "20", "--timeout", "2"]), cwd=ROOT, stdout=subprocess.PIPE, text=True)
        seg.procs.append(load)  # type: ignore[arg-type]
        time.sleep(3)
        fault_at = time.time()
        os.kill(haproxy[first].pid, signal.SIGKILL)  # the master's haproxy dies
        moved = wait_until(lambda: vip_holder(seg) == [other], 10, f"the VIP to move to {other}",
                           interval=0.1)
        out, _ = load.communicate(timeout=60)

    results = [json.loads(line) for line in out.splitlines() if line.strip()]
    failed = [r for r in results if not r["ok"]]
    late = [r for r in failed if r["start"] - fault_at > 5]
    assert len(results) >= 200
    assert moved < 5, f"VIP moved after {moved:.1f}s"
    assert late == [], f"{len(late)} requests failed more than 5 s after the fault"
    # 12 s of load from 3 s before the fault: the last 4 s (80 requests) all after failover.
    assert sum(r["ok"] for r in results if r["start"] > fault_at + 5) >= 70
    window = max((r["start"] - fault_at for r in failed), default=0.0)
    print(f"VIP moved in {moved:.2f}s; {len(failed)} of {len(results)} failed; "
          f"window {window:.2f}s")


ROGUE = "192.0.2.66"
ROGUE_CONF = f"""
vrrp_instance rogue {{
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 254
    advert_int 1
    unicast_src_ip {ROGUE}
    unicast_peer {{
        {LBS["lb1"]}
        {LBS["lb2"]}
    }}
    virtual_ipaddress {{
        {VIP}/32 dev eth0
    }}
}}
"""


def test_a_host_that_is_not_a_peer_cannot_take_the_vip(tmp_path: Path) -> None:
    """A stranger on the LBs' network sends higher-priority unicast adverts for our router id.
    keepalived accepts them unless `check_unicast_src` is set (keepalived.conf(5); without it the
    security review saw the master drop to BACKUP); with it the LBs log the stranger and keep
    the VIP among themselves."""
    (tmp_path / "rogue").mkdir()
    (tmp_path / "rogue" / "keepalived.conf").write_text(ROGUE_CONF)
    with vip_pair(tmp_path, {"rogue": ROGUE}) as (seg, _):
        seg.start("rogue", ["unshare", "--mount", "--propagation", "private", "bash", "-c",
                            "mount -t tmpfs tmpfs /etc/keepalived && exec keepalived -n -l -D -P "
                            f"-f {tmp_path}/rogue/keepalived.conf -p {tmp_path}/rogue/k.pid "
                            f"-r {tmp_path}/rogue/v.pid"], tmp_path / "rogue" / "keepalived.log")
        wait_until(lambda: VIP in seg.addresses("rogue"), 10, "the rogue to claim the VIP",
                   interval=0.1)
        time.sleep(5)  # five of its adverts at priority 254
        # Without check_unicast_src both LBs drop to BACKUP and neither holds it; with it, one
        # LB keeps it (which one may change if a loaded machine makes a check fail: that is the
        # LBs' own failover, not the stranger's doing).
        assert len(vip_holder(seg)) == 1, "a non-peer's adverts took the VIP from the LBs"
    logs = "".join((tmp_path / lb / "keepalived.log").read_text() for lb in LBS)
    assert "not a unicast peer" in logs, logs[-2000:]


def test_haproxy_and_keepalived_on_the_control_plane_nodes(tmp_path: Path) -> None:
    """Seed 002's data-centre setup: the two control-plane nodes are the LB hosts, their
    apiservers on 6443 and haproxy on the endpoint port 8443 (the config refuses the same
    port: tests/test_config.py). keepalived's check probes haproxy, not the apiserver beside
    it: when the VIP holder's haproxy dies while its apiserver still answers, the VIP moves,
    and a client dialling VIP:8443 is served again through the other node's haproxy."""
    cluster = parse_cluster(segment_colocated_stack())
    assert {str(h.address) for h in cluster.load_balancers} == {
        str(h.address) for h in cluster.control_plane}
    with vip_pair(tmp_path, stack=segment_colocated_stack) as (seg, haproxy):
        lbs = [lb.name for lb in cluster.load_balancers]
        first = vip_holder(seg, lbs)[0]
        other = next(h for h in lbs if h != first)
        os.kill(haproxy[first].pid, signal.SIGKILL)
        moved = wait_until(lambda: vip_holder(seg, lbs) == [other], 10,
                           f"the VIP to move to {other}", interval=0.1)
        served = subprocess.run(seg.cmd("client", [
            sys.executable, "-m", "tests.harness.load_client", "--address", VIP, "--port",
            str(cluster.endpoint.port), "--server-name", VIP, "--ca", str(tmp_path / "ca.crt"),
            "--duration", "2", "--rate", "10", "--timeout", "2"]), cwd=ROOT,
            capture_output=True, text=True, timeout=60)
        # The first node's apiserver kept answering on 6443 the whole time.
        address = {lb.name: str(lb.address) for lb in cluster.load_balancers}[first]
        beside = subprocess.run(seg.cmd(first, ["bash", "-c", f"exec 3<>/dev/tcp/{address}/6443"]),
                                capture_output=True, text=True, timeout=10)
    results = [json.loads(line) for line in served.stdout.splitlines() if line.strip()]
    assert moved < 5, f"VIP moved after {moved:.1f}s"
    assert beside.returncode == 0, beside.stderr
    assert results and all(r["ok"] for r in results), results[:3]
