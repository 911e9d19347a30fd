"""No config value reaches a shell or a config file as code.

Every string a user can put in the stack config is fed hostile text (shell metacharacters,
newlines, IPv6 zone ids, non-ASCII digits and lookalikes, very long values). Each must be refused
with its own key named, or, if accepted, be shell-inert and leave every rendered artifact with the
same lines as before: no value can add a command, a directive or a YAML key.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kube_ha.config import ConfigError, parse_cluster
from kube_ha.render import artifacts
from tests.program import dev_stack

Path = tuple[str | int, ...]

# Fields the dev stack leaves at their defaults, set here so they are fuzzed too.
OPTIONAL: dict[Path, Any] = {
    ("controlPlane", 1, "user"): "kube",
    ("workers", 0, "user"): "kube",
    ("loadBalancers", 0, "user"): "kube",
    ("loadBalancer", "bindAddress"): "10.21.22.101",
    ("loadBalancer", "vrrpInterface"): "eth0",
    ("certificates", "extraSans"): ["api.example.com", "10.9.9.9"],
    ("elasticApiserver", "cpuRequest"): "250m",
    ("elasticApiserver", "memoryRequest"): "512Mi",
    ("serviceSubnet",): "10.96.0.0/12",
    ("podSubnet",): "10.244.0.0/16",
    ("clusterDomain",): "cluster.local",
    ("imageRepository",): "registry.k8s.io",
}


def base() -> dict[str, Any]:
    raw = dev_stack()
    for path, value in OPTIONAL.items():
        _set(raw, path, copy.deepcopy(value))
    return raw


def _set(raw: Any, path: Path, value: Any) -> None:
    for part in path[:-1]:
        raw = raw[part]
    raw[path[-1]] = value


def _leaves(node: Any, path: Path = ()) -> Iterator[Path]:
    """Every place a string or number stands in the config (sshPrivateKey never reaches a
    script: it is only the SSH client's key)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k != "sshPrivateKey":
                yield from _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))
    elif isinstance(node, str | int) and not isinstance(node, bool):
        yield path


def key_of(path: Path) -> str:
    """The key a problem names: `controlPlane[1].address`, `certificates.extraSans[0]`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


FIELDS = sorted(_leaves(base()), key=key_of)

HOSTILE = [
    "fe80::70%$(reboot)",          # zone id: ipaddress accepts any text after %
    "fe80::70%eth0",
    "10.21.22.73\n",               # re.match(...$) lets a trailing newline through
    "ubuntu-73\nreboot",
    "$(reboot)",
    "`reboot`",
    "x; reboot",
    "a b",
    " 10.21.22.73",
    "a'b",
    'a"b',
    "a\\b",
    "a|b&c>d",
    "x\x00y",
    "x\ry",
    "１０.21.22.73",               # fullwidth digits: \d and int() accept them
    "v1.32.３",
    "ubuntu\u201073",              # a Unicode hyphen that looks like '-'
    "\u212aube",                   # KELVIN SIGN lowers to ASCII 'k'
    "a" * 300,
    "-rf",
    "",
]

ONE_LINE_SAFE = re.compile(r"[A-Za-z0-9._:/\[\]-]+|\*")


def _inert(value: Any) -> bool:
    return isinstance(value, int) or bool(ONE_LINE_SAFE.fullmatch(value))


def check(raw: dict[str, Any], path: Path, value: Any, baseline: dict[str, str]) -> None:
    """Refused naming `path`, or inert: safe characters and no artifact gains or loses a line."""
    mutated = copy.deepcopy(raw)
    _set(mutated, path, value)
    try:
        cluster = parse_cluster(mutated)
    except ConfigError as err:
        # A refusal names the key, unless the value is inert and only breaks a reference to the
        # old one (a renamed node that poolNodes still lists).
        assert key_of(path) in err.keys or _inert(value), (key_of(path), value, err.keys)
        return
    assert _inert(value), (key_of(path), value)
    if re.fullmatch(r"[0-9]+", str(value)):
        # A number in a number's place is read as that number, which may rightly switch a
        # part on or off (controllerManager.replicas "0"): no injection to look for.
        return
    rendered = artifacts(cluster)
    for name, text in rendered.items():
        if name in baseline:
            assert text.count("\n") == baseline[name].count("\n"), (key_of(path), value, name)


@pytest.fixture(scope="module")
def baseline() -> dict[str, str]:
    return artifacts(parse_cluster(base()))


def test_every_field_is_fuzzed() -> None:
    """The list is complete: addresses, names, users, versions, quantities, paths, SANs."""
    keys = {key_of(p) for p in FIELDS}
    assert {"controlPlane[0].address", "controlPlane[0].name", "controlPlane[1].user",
            "endpoint.dnsName", "endpoint.address", "kubernetesVersion", "clusterName",
            "imageRepository", "certificates.extraSans[0]", "elasticApiserver.cpuRequest",
            "loadBalancer.statsBind", "loadBalancer.bindAddress", "loadBalancer.vrrpInterface",
            "elasticApiserver.poolNodes[0]", "sshUser", "serviceSubnet"} <= keys, keys


@pytest.mark.parametrize("path", FIELDS, ids=key_of)
def test_hostile_strings_are_refused_naming_the_key(path: Path, baseline: dict[str, str]) -> None:
    raw = base()
    for value in HOSTILE:
        check(raw, path, value, baseline)


@pytest.mark.parametrize("value", ["fe80::70%$(reboot)", "fe80::70%eth0"])
@pytest.mark.parametrize("key", ["controlPlane[0].address", "workers[1].address",
                                 "loadBalancers[0].address", "endpoint.address",
                                 "certificates.extraSans[1]", "loadBalancer.bindAddress"])
def test_ipv6_zone_ids_are_refused(key: str, value: str) -> None:
    path = next(p for p in FIELDS if key_of(p) == key)
    raw = base()
    _set(raw, path, value)
    with pytest.raises(ConfigError) as err:
        parse_cluster(raw)
    assert key in err.value.keys


_text = st.text(st.sampled_from(list("aZ09.-_:/[]%$`;'\"\\ \n\t\r*|&<>(){}#~!١٢３\u2010")),
                min_size=0, max_size=24)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), value=_text)
def test_random_text_is_refused_or_inert(field: Path, value: str) -> None:
    raw = base()
    check(raw, field, value, artifacts(parse_cluster(raw)))
