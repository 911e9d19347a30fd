"""Retiring a node the config no longer lists: its `kubeadm reset`, over SSH from the machine
that runs `pulumi up`, best effort. Pure: no Pulumi import.

Its etcd member and Node are taken out first, from a surviving member (the removals step),
because the node itself may be dead: the usual reason to remove one. A step that reaches the
node through pulumi-command would then fail the whole `up` (a delete or create fails when its
host does not answer, pulumi-command #104), so the reset runs under the local `ssh` client
instead: no SSH session means it is skipped, and the output says so.
"""

from __future__ import annotations

from kube_ha.model import Host
from kube_ha.shell import inline, quote

# ssh(1), EXIT STATUS: "ssh exits with the exit status of the remote command or with 255 if an
# error occurred" (refused, timed out, a host key that is not the recorded one, a session lost
# half-way): 255 cannot tell "never reached" from "lost during the reset", so a probe (`true`)
# decides whether the node is skipped, and the reset's own status, 255 included, is the step's.
# The name the pinned host key is filed under in the step's own known_hosts, whatever the
# address (IPv6 and port forms need no special cases).
HOST_ALIAS = "kube-ha-retired-node"


def ssh_options(host: Host, workdir: str) -> list[str]:
    """OpenSSH client options: only our key, no prompt, no user ssh_config, and the recorded
    host key pinned (without one, insecureSkipHostKeyCheck was on: nothing is verified)."""
    opts = ["-F", "/dev/null", "-n", "-i", f"{workdir}/key", "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ConnectionAttempts=3",
            "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
            "-p", str(host.port), "-l", host.user]
    if host.host_key:
        opts += ["-o", f"HostKeyAlias={HOST_ALIAS}", "-o", "StrictHostKeyChecking=yes",
                 "-o", f"UserKnownHostsFile={workdir}/known_hosts",
                 "-o", "GlobalKnownHostsFile=/dev/null"]
    else:
        opts += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    return opts


def retire_command(host: Host, remote_script: str) -> str:
    """A POSIX sh script for the local machine: the SSH private key arrives on stdin (never
    on a command line or in the environment) into a private temporary directory removed on
    exit; `remote_script` runs on `host` as every step's script does (bounded, sudo). Exit 0
    when it ran, or when no SSH session could be had (said on stderr); the remote script's
    own failure fails the step, so the next `up` runs it again."""
    # Options naming the temporary directory are double-quoted for the shell to expand it;
    # they hold nothing else a shell would read.
    argv = " ".join(f'"{o}"' if "$dir" in o else quote(o) for o in ssh_options(host, "$dir"))
    ssh = f"ssh {argv} -- {quote(str(host.address))}"
    pin = (f"printf '%s\\n' {quote(f'{HOST_ALIAS} {host.host_key}')} > \"$dir/known_hosts\""
           if host.host_key else ":")
    skipped = (f"kube-ha: {host.name} ({host.address}) gave no SSH session (down, unreachable,"
               " or not the host key on record): its kubeadm reset was skipped. Its etcd member"
               " and Node are already gone; before using this host again, run kubeadm reset"
               " --force on it.")
    return "\n".join([
        "set -u",
        "umask 077",
        'dir=$(mktemp -d) || exit 1',
        "trap 'rm -rf \"$dir\"' EXIT",
        # dash runs no EXIT trap when a signal ends it: turn them into an exit.
        "trap 'exit 1' INT TERM HUP",
        # Exactly one trailing newline: OpenSSH will not load a key file without it. printf
        # is a builtin: the key is in no process's argv.
        'key=$(cat) && printf \'%s\\n\' "$key" > "$dir/key" || exit 1',
        pin,
        # A session first: only its absence skips the node. Once one was had, any failure
        # (the reset's, or a session lost half-way: 255 too) fails the step, run again next up.
        f"if ! {ssh} true; then",
        f"  echo {quote(skipped)} >&2",
        "  exit 0",
        "fi",
        # In the background, waited for: a shell runs a trap only once its foreground command
        # ends, and a signal must not leave the key behind for the length of a reset.
        f"{ssh} {quote(inline(host, remote_script))} &",
        "pid=$!",
        "trap 'kill \"$pid\" 2>/dev/null; exit 1' INT TERM HUP",
        'wait "$pid"',
        'exit "$?"  # through the EXIT trap: the key is removed',
    ]) + "\n"
