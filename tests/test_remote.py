"""How a step runs on a host: bounded in time, its exit status kept, the timeout explained.

pulumi-command 1.2.1 runs the command with `session.Run` and no context or deadline, so only the
command itself can bound a step. Here the rendered command lines run for real under `sh` (what
a login shell may be), with the script on stdin as the provider sends it.
"""

from __future__ import annotations

import ipaddress
import subprocess
import time
from typing import Any

from kube_ha.model import Host
from kube_ha.shell import bounded, inline, shell_for

ROOT_HOST = Host("n1", ipaddress.ip_address("192.0.2.1"), "root", 22)


def _run(command: str, stdin: str = "") -> tuple[int, str, float]:
    start = time.monotonic()
    done = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True, text=True,
                          timeout=60)
    return done.returncode, done.stderr, time.monotonic() - start


def test_a_hung_script_is_stopped_and_says_why() -> None:
    rc, err, took = _run(bounded(ROOT_HOST, "bash -s", seconds=1), "sleep 30\n")
    assert rc == 124 and took < 10
    assert "timed out after 1 s" in err and "pulumi up again" in err


def test_a_failing_script_keeps_its_status_and_no_timeout_message() -> None:
    rc, err, _ = _run(shell_for(ROOT_HOST), "echo boom >&2; exit 3\n")
    assert rc == 3 and "boom" in err and "timed out" not in err


def test_success_passes_through_and_delete_scripts_are_bounded_too() -> None:
    assert _run(shell_for(ROOT_HOST), "true\n")[0] == 0
    assert _run(inline(ROOT_HOST, "echo it ran with 'quotes' and $HOME-free text"))[0] == 0
    assert inline(ROOT_HOST, "true").startswith("sh -c 'timeout -k 30 1800 bash -c ")


def test_a_non_root_user_runs_the_script_through_sudo() -> None:
    user = Host("n1", ipaddress.ip_address("192.0.2.1"), "kube", 22)
    assert shell_for(user).startswith("sh -c 'sudo -n timeout -k 30 1800 bash -s ||")


def test_the_login_shell_never_parses_the_command(tmp_path: Any) -> None:
    """sshd runs the command with the user's login shell; a fish or tcsh user would not parse
    `|| { ...; }`. Run it through a shell that understands nothing but `sh -c <word>`."""
    fake = tmp_path / "loginsh"
    fake.write_text('#!/bin/sh\n[ "$1" = -c ] || exit 99\n'
                    'case "$2" in "sh -c "*) exec /bin/sh -c "$2" ;; esac\nexit 98\n')
    fake.chmod(0o755)
    done = subprocess.run([str(fake), "-c", shell_for(ROOT_HOST)], input="exit 7\n",
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 7
