"""Small builders for the bash scripts sent to hosts. Pure.

Every script: `set -euo pipefail`, says what it does on stderr, and checks its own
postcondition first so a second run does nothing. Scripts travel on stdin (`bash -s`), so file
contents and secrets inside them never appear on a command line or in `ps`.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

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
               flag: str | None = "changed", check: str | None = None) -> str:
    """Write `path` atomically (temp file beside it, then mv). No-op when it already matches.

    `check` (a command on "$tmp", e.g. `haproxy -c -f "$tmp"`) must pass before the file can go
    live; a rejected file is removed and the script stops. With `flag`, sets `<flag>=1` when the
    file was replaced, so a caller can reload only then.
    """
    q = quote(path)
    mark = f" {flag}=1;" if flag else ""
    lines = [
        f"tmp=$(mktemp {quote(path + '.kube-ha.XXXXXX')})",
        heredoc('cat > "$tmp"', content),
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
