"""Reads stack config through Pulumi into the pure model; the only Pulumi-aware config code."""

from __future__ import annotations

import json
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from components.previous_run import previous_outputs
from kube_ha.config import OBJECT_KEYS, SECRET_KEYS, ConfigError, misplaced_config_keys, parse_cluster
from kube_ha.membership import SinceLastRun, destructive_edits, since_last_run
from kube_ha.model import PROJECT, Cluster

# The stack output recording what was deployed (model.membership_record).
MEMBERSHIP_OUTPUT = "membership"


class InvalidConfig(pulumi.RunError):
    """Raised before any resource exists: the CLI prints the message, no traceback."""


def stack_values() -> tuple[dict[str, Any], dict[str, str]]:
    """Every `kube-ha:` key the stack sets, objects decoded; secrets only marked as present.
    Keys that do not decode are returned apart, with why, to be reported with the rest."""
    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    raw: dict[str, Any] = {}
    unreadable: dict[str, str] = misplaced_config_keys(merged)
    prefix = PROJECT + ":"
    for full_key, value in merged.items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix):]
        if key in SECRET_KEYS:
            raw[key] = "[secret]" if value not in (None, "") else None
        elif key in OBJECT_KEYS and isinstance(value, str):
            try:
                raw[key] = json.loads(value)
            except json.JSONDecodeError as err:
                unreadable[key] = f"is not valid YAML/JSON ({err}). Fix: correct its syntax."
        else:
            raw[key] = value
    return raw, unreadable


def load_cluster() -> tuple[Cluster, pulumi.Output[str], SinceLastRun]:
    """The validated cluster, the SSH private key (always a secret Output), and what this run
    does about what the last `up` left (nodes to take out, taints and firewall rules)."""
    try:
        cluster = parse_cluster(*stack_values())
        record = previous_outputs().get(MEMBERSHIP_OUTPUT)
        refused = destructive_edits(record, cluster)
        if refused:
            raise ConfigError(refused)
    except ConfigError as err:
        raise InvalidConfig(str(err)) from err
    key = pulumi.Config(PROJECT).require_secret("sshPrivateKey")
    unverified = [h.name for h in (*cluster.load_balancers, *cluster.nodes) if h.host_key is None]
    if unverified:
        pulumi.log.warn(
            f"{PROJECT}:insecureSkipHostKeyCheck is on: the SSH host keys of {', '.join(unverified)} "
            "are not verified. Whoever answers on those addresses receives root scripts with the "
            "cluster's keys and join tokens. Give each host a hostKey before using this stack for "
            "anything you care about.")
    return cluster, key, since_last_run(record, cluster)
