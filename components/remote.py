"""Running rendered scripts on hosts over SSH (pulumi_command), the one way this program does.

The script travels on stdin to `bash -s`: file contents and secrets never sit in the command
string, which the engine logs and shows in errors. A change to the script is an in-place update
(update = create), never a replacement: pulumi-command's `triggers` always replace.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_command as command

from kube_ha.model import Host
from kube_ha.retire import retire_command
from kube_ha.shell import inline, shell_for


class Ssh:
    """How every host is reached: its address and user, one secret private key."""

    def __init__(self, private_key: pulumi.Output[str]):
        self.private_key: pulumi.Output[str] = pulumi.Output.secret(private_key)  # type: ignore[arg-type]

    def connection(self, host: Host) -> command.remote.ConnectionArgs:
        return command.remote.ConnectionArgs(
            host=str(host.address),
            user=host.user,
            port=host.port,
            private_key=self.private_key,
            # The provider pins this key (ssh.FixedHostKey) and negotiates only its type; without
            # it, it accepts any host key (pulumi-command 1.2.1 remote/connection.go).
            host_key=host.host_key,
            # Hosts may still be booting; the provider retries dials without delay (#1238).
            dial_error_limit=30,
            per_dial_timeout=10,
        )


def run_script(
    name: str,
    host: Host,
    ssh: Ssh,
    script: pulumi.Input[str],
    *,
    parent: pulumi.Resource,
    secret: bool = False,
    secret_stdout: bool = False,
    delete_script: str | None = None,
    retain_on_delete: bool = False,
    depends_on: Sequence[pulumi.Resource] = (),
    aliases: Sequence[pulumi.Alias] = (),
    read_once: bool = False,
    run: str | None = None,
) -> command.remote.Command:
    """One idempotent script on one host. `secret` marks the script (it carries a key or
    token); `secret_stdout` hides what it prints (kubeconfigs, tokens) from state and logs.
    `read_once`: a read whose answer does not change by itself. It runs when created, never
    again: a new host or script changes nothing, so its stdout stays known in preview. To
    read again, register it under a new name (a replacement would not do: the engine builds
    it from the ignored inputs' old values, step_generator.go processIgnoreChanges).
    `run`: the command that runs the script on stdin, if not `shell_for(host)`."""
    run = run or shell_for(host)
    return command.remote.Command(
        name,
        connection=ssh.connection(host),
        create=run,
        update=run,
        stdin=pulumi.Output.secret(script) if secret else script,
        delete=inline(host, delete_script) if delete_script else None,
        logging=command.remote.Logging.NONE if secret_stdout else command.remote.Logging.STDERR,
        # The provider otherwise hands the previous stdout to the next run as the SSH
        # environment variable PULUMI_COMMAND_STDOUT (sshd may accept it): not for secrets.
        add_previous_output_in_env=False if secret_stdout else None,
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=list(depends_on),
            additional_secret_outputs=["stdout"] if secret_stdout else None,
            aliases=list(aliases) or None,
            retain_on_delete=retain_on_delete or None,
            ignore_changes=list(READ_ONCE_IGNORES) if read_once else None,
        ),
    )


# Every input of a read-once step: the engine keeps their stored values (a moved bootstrap
# node, a new script) and runs nothing.
READ_ONCE_IGNORES = ("connection", "create", "update", "stdin", "logging",
                     "add_previous_output_in_env")


def retire(name: str, host: Host, ssh: Ssh, remote_script: str, *, parent: pulumi.Resource,
           depends_on: Sequence[pulumi.Resource]) -> command.local.Command:
    """`remote_script` on a node removed from the config, from the machine that runs
    `pulumi up` (kube_ha.retire): an unreachable node is skipped, and said so, instead of
    failing the `up`. The key travels on stdin; nothing runs on delete."""
    return command.local.Command(
        name,
        create=retire_command(host, remote_script),
        interpreter=["/bin/sh", "-c"],
        stdin=ssh.private_key,
        logging=command.local.Logging.STDERR,
        add_previous_output_in_env=False,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
