"""A removed node's retire step, run for real: the rendered local script under /bin/sh (dash
on Debian, as pulumi-command's local.Command runs it with our interpreter), the OpenSSH
client, and a real sshd on a test host in a network namespace.

What the step must do (kube_ha/retire.py): run the remote script when the node answers with
the host key on record; when it gives no SSH session at all (down, unreachable, another host
key) skip it and say so, exit 0, so a dead node never fails `pulumi up`; fail when the remote
script itself fails, so the next `up` runs it again. ssh(1), EXIT STATUS: "ssh exits with the
exit status of the remote command or with 255 if an error occurred"."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kube_ha.model import Host
from kube_ha.retire import retire_command
from tests.harness.netns import Segment

pytestmark = pytest.mark.slow

NODE, OPERATOR, NOBODY = "192.0.2.50", "192.0.2.10", "192.0.2.99"
SKIPPED = "gave no SSH session"


def _keypair(path: Path) -> str:
    """A new ed25519 key at `path`; its public key as a hostKey is written (type base64)."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
                   check=True, capture_output=True)
    kind, b64 = path.with_suffix(".pub").read_text().split()[:2]
    return f"{kind} {b64}"


@dataclass
class Lab:
    seg: Segment
    tmp: Path
    host_key: str
    client_key: str

    def node(self, address: str = NODE, host_key: str | None = "", port: int = 22) -> Host:
        return Host("ubuntu-72", ipaddress.ip_address(address), "root", port,
                    host_key=self.host_key if host_key == "" else host_key)

    def retire(self, host: Host, remote: str, timeout: float = 90
               ) -> tuple[subprocess.CompletedProcess[str], float]:
        """The step as local.Command runs it: /bin/sh -c <create>, the key on stdin; from the
        operator's own namespace, with a private TMPDIR to see what it leaves behind."""
        started = time.monotonic()
        res = subprocess.run(
            self.seg.cmd("op", ["/usr/bin/env", f"TMPDIR={self.tmp / 'optmp'}", "/bin/sh", "-c",
                                retire_command(host, remote)]),
            input=self.client_key, capture_output=True, text=True, timeout=timeout)
        return res, time.monotonic() - started


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    assert os.access(sshd, os.X_OK), "sshd is needed (openssh-server: .ci/run installs it)"
    tmp = tmp_path_factory.mktemp("retire")
    (tmp / "optmp").mkdir()
    host_key = _keypair(tmp / "host_ed25519")
    _keypair(tmp / "client")
    (tmp / "authorized_keys").write_text((tmp / "client.pub").read_text())
    (tmp / "sshd_config").write_text("\n".join([
        f"ListenAddress {NODE}:22", f"HostKey {tmp / 'host_ed25519'}",
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}", "PermitRootLogin prohibit-password",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        "StrictModes no", f"PidFile {tmp / 'sshd.pid'}", ""]))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation root
    with Segment() as seg:
        seg.add_host("node", NODE)
        seg.add_host("op", OPERATOR)
        seg.start("node", [sshd, "-D", "-e", "-f", str(tmp / "sshd_config")], tmp / "sshd.log")
        deadline = time.monotonic() + 20
        while subprocess.run(seg.cmd("op", ["bash", "-c", f"</dev/tcp/{NODE}/22"]),
                             capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, (tmp / "sshd.log").read_text()
            time.sleep(0.1)
        yield Lab(seg, tmp, host_key, (tmp / "client").read_text())


def _marker(lab: Lab, name: str) -> Path:
    return lab.tmp / f"ran-{name}"


def test_a_node_that_answers_with_its_recorded_key_runs_the_script(lab: Lab) -> None:
    out = _marker(lab, "ok")
    res, _ = lab.retire(lab.node(), f"echo reset >{out}; echo 'kube-ha[retire]: wiped' >&2\n")
    assert res.returncode == 0, res.stderr
    assert out.read_text() == "reset\n"
    assert "kube-ha[retire]: wiped" in res.stderr and SKIPPED not in res.stderr
    # The key went to a private temporary directory, removed on exit.
    assert list((lab.tmp / "optmp").iterdir()) == []


def test_a_key_without_a_trailing_newline_still_loads(lab: Lab) -> None:
    """OpenSSH will not load a private key file that lacks its final newline; a key pasted
    into `pulumi config set --secret` often does."""
    out = _marker(lab, "newline")
    saved, lab.client_key = lab.client_key, lab.client_key.rstrip("\n")
    try:
        res, _ = lab.retire(lab.node(), f"echo reset >{out}\n")
    finally:
        lab.client_key = saved
    assert res.returncode == 0, res.stderr
    assert out.exists()


def test_another_host_key_gets_no_script_and_is_skipped(lab: Lab) -> None:
    """Whoever answers with a key that is not the one on record receives nothing (the step
    sends root scripts); the step is skipped, not failed, and says so."""
    out = _marker(lab, "impostor")
    other = _keypair(lab.tmp / "other")
    res, _ = lab.retire(lab.node(host_key=other), f"echo reset >{out}\n")
    assert res.returncode == 0, res.stderr
    assert not out.exists()
    assert SKIPPED in res.stderr and "kubeadm reset --force" in res.stderr


def test_a_node_whose_sshd_is_down_is_skipped(lab: Lab) -> None:
    """Connection refused (a host up, its sshd not): skipped at once."""
    out = _marker(lab, "refused")
    res, took = lab.retire(lab.node(port=2222), f"echo reset >{out}\n")
    assert res.returncode == 0, res.stderr
    assert not out.exists() and SKIPPED in res.stderr
    assert took < 10, took


def test_a_dead_node_is_skipped_within_its_timeouts(lab: Lab) -> None:
    """Nothing answers ARP for the address: the dial fails (ConnectTimeout 10 s, three
    attempts); the step ends, skipped, and `pulumi up` goes on."""
    res, took = lab.retire(lab.node(address=NOBODY), "true\n", timeout=120)
    assert res.returncode == 0, res.stderr
    assert SKIPPED in res.stderr and "ubuntu-72 (192.0.2.99)" in res.stderr
    assert took < 60, took


def test_a_failing_script_on_a_node_that_answers_fails_the_step(lab: Lab) -> None:
    """The node answered and its reset failed: the step fails (and runs again next `up`)."""
    res, _ = lab.retire(lab.node(), "echo 'kubeadm reset failed' >&2; exit 3\n")
    assert res.returncode == 3
    assert "kubeadm reset failed" in res.stderr and SKIPPED not in res.stderr


def test_without_a_recorded_host_key_it_trusts_whoever_answers(lab: Lab) -> None:
    """insecureSkipHostKeyCheck: the same as every other step then (no key to pin)."""
    out = _marker(lab, "insecure")
    res, _ = lab.retire(lab.node(host_key=None), f"echo reset >{out}\n")
    assert res.returncode == 0, res.stderr
    assert out.exists()


def test_the_step_passes_shellcheck_as_posix_sh(lab: Lab) -> None:
    text = retire_command(lab.node(), "true\n")
    res = subprocess.run(["shellcheck", "-s", "sh", "-"], input=text, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout


def test_a_session_lost_during_the_script_fails_the_step(lab: Lab) -> None:
    """ssh exits 255 for a session lost half-way as for one never had: after a good probe,
    that is a failure (the reset may be half done), not a skip."""
    res, _ = lab.retire(lab.node(), "exit 255\n")
    assert res.returncode == 255
    assert SKIPPED not in res.stderr
    assert list((lab.tmp / "optmp").iterdir()) == []


def test_a_signal_still_removes_the_key(lab: Lab) -> None:
    """dash runs no EXIT trap when a signal ends it; the step turns SIGTERM into an exit."""
    proc = subprocess.Popen(
        lab.seg.cmd("op", ["/usr/bin/env", f"TMPDIR={lab.tmp / 'optmp'}", "/bin/sh", "-c",
                           retire_command(lab.node(), "sleep 30\n")]),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    proc.stdin.write(lab.client_key)
    proc.stdin.close()
    deadline = time.monotonic() + 20
    while not any((lab.tmp / "optmp").glob("*/key")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1)  # the probe done, the remote sleep under way
    os.kill(proc.pid, 15)
    proc.wait(timeout=20)
    assert list((lab.tmp / "optmp").iterdir()) == []
