"""Small builders for the bash scripts sent to hosts. Pure.

Every script: `set -euo pipefail`, says what it does on stderr, and checks its own
postcondition first so a second run does nothing. Scripts travel on stdin (`bash -s`), so file
contents and secrets inside them never appear on a command line or in `ps`.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from kube_ha.model import Host

quote = shlex.quote


def script(purpose: str, *parts: str) -> str:
    """A complete script: header, a `log` helper that prefixes the purpose, then the parts."""
    header = (
        "#!/usr/bin/env bash\n"
        f"# kube-ha: {purpose}\n"
        "set -euo pipefail\n"
        "umask 022\n"
        f"log() {{ printf 'kube-ha[%s]: %s\\n' {quote(purpose)} \"$*\" >&2; }}\n"
    )
    return header + "\n".join(p.rstrip("\n") for p in parts if p) + "\n"


def indent(lines: Iterable[str], by: str = "  ") -> list[str]:
    """Lines nested one level (inside an `if`, a loop or a subshell); a multi-line fragment
    is indented line by line, blank lines left empty."""
    return [by + line if line else line for chunk in lines for line in chunk.split("\n")]


def heredoc(command: str, content: str) -> str:
    """`command <<'DELIM'` with content verbatim; the quoted delimiter stops all expansion."""
    delim = "KUBE_HA_EOF"
    n = 0
    while delim in content:
        n += 1
        delim = f"KUBE_HA_EOF_{n}"
    body = content if content.endswith("\n") else content + "\n"
    return f"{command} <<'{delim}'\n{body}{delim}"


# The moment a written file replaces the live one (the policy pack checks what precedes it).
GOES_LIVE = 'mv -f "$tmp" {path}'


def write_file(path: str, content: str, mode: str = "0644", owner: str = "root:root",
               flag: str | None = "changed", check: str | None = None,
               through: str = "cat") -> str:
    """Write `path` atomically (temp file beside it, then mv). No-op when it already matches.

    `check` (a command on "$tmp", e.g. `haproxy -c -f "$tmp"`) must pass before the file can go
    live; a rejected file is removed and the script stops. With `flag`, sets `<flag>=1` when the
    file was replaced, so a caller can reload only then. `through` filters the content on its
    way (a `sed` filling in what only the host knows).
    """
    q = quote(path)
    mark = f" {flag}=1;" if flag else ""
    lines = [
        f"tmp=$(mktemp {quote(path + '.kube-ha.XXXXXX')})",
        heredoc(f'{through} > "$tmp"', content),
        f'chmod {mode} "$tmp"; chown {owner} "$tmp"',
    ]
    if check:
        lines.append(f'if ! {check}; then rm -f "$tmp"; '
                     f'log "rendered {path} rejected; the live file is untouched"; exit 1; fi')
    lines.append(f'if cmp -s "$tmp" {q}; then rm -f "$tmp"; log "{path} unchanged"; '
                 f'else {GOES_LIVE.format(path=q)};{mark} log "wrote {path}"; fi')
    return "\n".join(lines)


def tcp_probe(port: int) -> str:
    """True when something on this host accepts TCP on 127.0.0.1:`port` within a second."""
    return f"timeout 1 bash -c '</dev/tcp/127.0.0.1/{port}' 2>/dev/null"


# --- how a script reaches a host over SSH -------------------------------------------------

def _sudo(host: Host) -> str:
    return "" if host.user == "root" else "sudo -n "


# pulumi-command has no timeout of its own (its session.Run takes no context): a hung script
# would hang `pulumi up` for good. Every step is bounded here; the longest legitimate one (a
# control-plane join: kubeadm, then up to 600 s for Ready) stays well inside.
STEP_TIMEOUT_S = 1800


def bounded(host: Host, command: str, seconds: int = STEP_TIMEOUT_S, first: str = "") -> str:
    """`command` under `timeout` (SIGTERM, then SIGKILL 30 s later), saying so when it fires.
    The whole line runs under `sh -c`, so the user's login shell (fish, tcsh...) never parses
    it; the message part runs without sudo. `first`: a check before it, that may end it."""
    return "sh -c " + quote(
        f"{first}{_sudo(host)}timeout -k 30 {seconds} {command} || {{ rc=$?; "
        f'[ "$rc" != 124 ] || echo "kube-ha: this step timed out after {seconds} s and '
        "was stopped; the host is as the script left it and every step is idempotent: fix "
        'what it was waiting for (see the log above), then run pulumi up again" >&2; '
        'exit "$rc"; }')


def shell_for(host: Host) -> str:
    return bounded(host, "bash -s")


def inline(host: Host, script: str) -> str:
    """A script as a command string, for `delete` (which gets no stdin). Never put secrets here."""
    return bounded(host, f"bash -c {quote(script)}")
