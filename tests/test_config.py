"""Stack config: the dev stack loads; each broken input is refused, naming its key."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
import yaml

from kube_ha.config import OBJECT_KEYS, SCALAR_KEYS, ConfigError, misplaced_config_keys, parse_cluster
from tests.harness.hosts import host
from tests.mocks import ClusterMocks
from tests.program import ROOT, run_program, segment_colocated_stack, vip_stack


def problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        parse_cluster(raw)
    return dict(err.value.problems)


def test_dev_stack_loads(raw: dict[str, Any]) -> None:
    c = parse_cluster(raw)
    assert c.bootstrap.name == "ubuntu-73"
    assert [h.name for h in c.joining_control_plane] == ["ubuntu-70", "ubuntu-72"]
    assert str(c.endpoint.address) == "10.21.22.101"
    assert c.endpoint.url == "https://api.k8s.lab.internal:6443"


@pytest.mark.parametrize("mutate, key, words", [
    (lambda r: r["controlPlane"][1].update(address="10.21.22.300"),
     "controlPlane[1].address", "not an IP address"),
    (lambda r: r.update(serviceSubnet="10.96.0.0/33"), "serviceSubnet", "not a network CIDR"),
    (lambda r: r.update(podSubnet="10.96.0.0/16"), "podSubnet", "overlaps serviceSubnet"),
    (lambda r: r["workers"][0].update(name="ubuntu-73"), "workers[0].name", "also controlPlane[0]"),
    (lambda r: r["workers"][1].update(address="10.21.22.70"), "workers[1].address",
     "also controlPlane[1]"),
    (lambda r: r.update(controlPlane=[]), "controlPlane", "no control-plane nodes"),
    (lambda r: r["controlPlane"].pop(), "controlPlane", "even etcd member count"),
    (lambda r: r["endpoint"].update(port=70000), "endpoint.port", "out of range"),
    (lambda r: r.update(sshPort=0), "sshPort", "out of range"),
    (lambda r: r["endpoint"].update(address="10.21.22.70"), "endpoint.address",
     "controlPlane node"),
    (lambda r: r.update(clusterNmae="x"), "clusterNmae", "Did you mean 'clusterName'"),
    (lambda r: r["healthCheck"].update(intervalMs=5), "healthCheck.intervalMs", "unknown key"),
    (lambda r: r["controlPlane"][0].update(adress="1.2.3.4"), "controlPlane[0].adress",
     "Did you mean 'address'"),
    (lambda r: r.pop("sshPrivateKey"), "sshPrivateKey", "config set --secret"),
    (lambda r: r["controlPlane"][1].update(bootstrap=True), "controlPlane", "exactly one"),
    (lambda r: r.update(loadBalancers=[]), "loadBalancers", "no load-balancer hosts"),
    (lambda r: r["healthCheck"].update(timeoutMs=1500), "healthCheck.timeoutMs", "below"),
    (lambda r: r["controlPlane"][2].update(name="Ubuntu_72"), "controlPlane[2].name",
     "not a valid node name"),
    (lambda r: r.update(kubernetesVersion="latest"), "kubernetesVersion", "not a version"),
    (lambda r: r["certificates"].update(caSource="vault"), "certificates.caSource", "import"),
    (lambda r: r["loadBalancer"].update(statsBind="8404"), "loadBalancer.statsBind",
     "ADDRESS:PORT"),
    (lambda r: r.update(elasticApiserver={"enabled": True, "poolNodes": ["ubuntu-74"],
                                          "maxReplicas": 2}),
     "elasticApiserver.maxReplicas", "exceeds the pool"),
    (lambda r: r.update(elasticApiserver={"enabled": True, "poolNodes": ["nope"]}),
     "elasticApiserver.poolNodes[0]", "not a node"),
    (lambda r: r.update(controllerManager={"replicas": 2, "port": 10257}),
     "controllerManager.port", "static kube-controller-manager"),
    (lambda r: r["loadBalancers"].append(host("haproxy-102", "10.21.22.102")),
     "endpoint.address", "virtual IP"),
    (lambda r: (r.update(vip_stack()), r["loadBalancer"].update(bindAddress="10.21.22.100")),
     "loadBalancer.bindAddress", "leave it '*'"),
    (lambda r: r["loadBalancer"].update(virtualRouterId=300), "loadBalancer.virtualRouterId",
     "out of range"),
    # haproxy on a control-plane node cannot take the apiserver's port (seed 002's co-located
    # setup works on another: tests/test_keepalived.py); nor share a worker with its
    # node-local proxy's haproxy.cfg.
    (lambda r: (r.update(segment_colocated_stack()), r["endpoint"].update(port=6443)),
     "loadBalancers[0].address", "where endpoint.port 6443 is the apiserver's port"),
    (lambda r: (r["loadBalancers"].append(host("ubuntu-74", "10.21.22.74")),
                r["endpoint"].update(address="10.21.22.100", virtualIp=True),
                r.update(nodeLocalProxy=True)),
     "loadBalancers[1].address", "node-local proxy is haproxy with its own haproxy.cfg"),
])
def test_bad_input_names_key_and_fix(raw: dict[str, Any], mutate: Any, key: str,
                                     words: str) -> None:
    mutate(raw)
    found = problems(raw)
    assert key in found, found
    assert words in found[key]
    assert "Fix:" in found[key]


def test_even_control_plane_allowed_explicitly(raw: dict[str, Any]) -> None:
    raw["controlPlane"].pop()
    raw["allowEvenControlPlane"] = True
    assert len(parse_cluster(raw).control_plane) == 2


def test_all_problems_reported_at_once(raw: dict[str, Any]) -> None:
    raw["sshPort"] = 0
    raw["endpoint"]["port"] = 0
    assert {"sshPort", "endpoint.port"} <= set(problems(raw))


def test_first_node_is_bootstrap_unless_marked(raw: dict[str, Any]) -> None:
    for node in raw["controlPlane"]:
        node.pop("bootstrap", None)
    raw["controlPlane"].reverse()
    assert parse_cluster(raw).bootstrap.name == "ubuntu-72"


def test_program_refuses_bad_config_before_any_resource(raw: dict[str, Any]) -> None:
    raw["controlPlane"][1]["address"] = "not-an-ip"
    raw["endpoint"]["port"] = 0
    mocks = ClusterMocks()
    with pytest.raises(pulumi.RunError) as err:
        run_program(raw, mocks=mocks)
    assert "kube-ha:controlPlane[1].address" in str(err.value)
    assert "kube-ha:endpoint.port" in str(err.value)
    assert mocks.resources == [], "resources were registered before the config was checked"


def test_program_accepts_dev_stack(raw: dict[str, Any]) -> None:
    mocks = ClusterMocks()
    run_program(raw, mocks=mocks)
    assert mocks.by_type("command:remote:Command")


def test_pulumi_yaml_declares_every_key_with_model_defaults() -> None:
    """Types as the pinned CLI's project schema has them (pulumi sdk/go/common/workspace/
    project.json simpleConfigType: string, integer, boolean, array, object; an array needs
    `items`; ValidateConfigValue checks each item). A key without a default is one the CLI
    requires (pkg/workspace/config.go mergeConfig: "is missing configuration value")."""
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    types = {str: "string", int: "integer", bool: "boolean", dict: "object", list: "array"}
    assert set(declared) == set(SCALAR_KEYS) | set(OBJECT_KEYS)
    for key, (kind, default, _) in {**SCALAR_KEYS, **OBJECT_KEYS}.items():
        assert declared[key]["type"] == types[kind], key
        assert declared[key].get("default") == default, key
        assert declared[key]["description"]
        if kind is list:  # every list is of objects: hosts
            assert declared[key]["items"] == {"type": "object"}, key
    assert declared["sshPrivateKey"]["secret"] is True
    # Only the secret has no default: the program names every other unset key itself.
    assert {k for k, spec in declared.items() if "default" not in spec} == {"sshPrivateKey"}


@pytest.mark.parametrize("written", ["kube_ha:endpoint", "endpoint"])
def test_a_misplaced_key_is_said_once(raw: dict[str, Any], written: str) -> None:
    """The key the user meant is not also reported as unset: one line, the misplaced key as
    written, and what it should be."""
    raw.pop("endpoint")
    with pytest.raises(ConfigError) as err:
        parse_cluster(raw, misplaced_config_keys([written, "kube-ha:clusterName"]))
    assert err.value.keys == [written]
    assert str(err.value).endswith(f"\n  {written}: " + err.value.problems[0][1])
    assert "kube-ha:endpoint" in err.value.problems[0][1]
    # Set as well, the misplaced one is still refused and the real one still checked.
    raw["endpoint"] = {"address": "10.0.0.300"}
    with pytest.raises(ConfigError) as err:
        parse_cluster(raw, misplaced_config_keys([written]))
    assert err.value.keys == [written, "endpoint.address"]


@pytest.mark.parametrize("written, first", [
    ("workers", "has no namespace, which the Pulumi CLI refuses"),
    ("kube_ha:workers", "is in namespace 'kube_ha', which nothing reads"),
    # A dot inside the sentence ("key.go") does not end it.
    ("kube-ha:x:workers", "is not a key the Pulumi CLI reads (config/key.go ParseKey: "
                          "`<namespace>:<name>`)"),
])
def test_a_misplaced_key_beside_the_real_one_says_so(raw: dict[str, Any], written: str,
                                                      first: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_cluster(raw, misplaced_config_keys([written]))
    assert err.value.problems == [(written, f"{first}, and kube-ha:workers is set as well. Fix: "
                                            "remove this one, or merge what it holds into that key.")]


def test_the_defaults_the_cli_fills_in_read_as_unset(raw: dict[str, Any]) -> None:
    """The CLI hands a declared default to the program as if the stack set it (mergeConfig):
    an empty object or list must mean what leaving the key out means."""
    needed = {"endpoint", "controlPlane", "loadBalancers"}  # the dev stack's LB topology
    optional = {k: df for k, (_, df, _) in OBJECT_KEYS.items() if k not in needed}
    left_out = {k: v for k, v in raw.items() if k not in optional}
    assert set(raw) - set(left_out), "the dev stack sets no optional key: nothing is tested"
    assert parse_cluster({**optional, **left_out}) == parse_cluster(left_out)
    # Unset required keys read the same whether absent or filled with the CLI's default.
    for key in needed:
        bare = {k: v for k, v in left_out.items() if k != key}
        with pytest.raises(ConfigError) as absent:
            parse_cluster(bare)
        with pytest.raises(ConfigError) as filled:
            parse_cluster({**bare, key: OBJECT_KEYS[key][1]})
        assert absent.value.problems == filled.value.problems, key


def test_readme_error_example_is_the_real_output(raw: dict[str, Any]) -> None:
    """The README shows what `pulumi up` prints for a stack with three mistakes: keep it true."""
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("```\ninvalid stack config:\n", 1)[1].split("```", 1)[0]
    raw["controlPlane"][1]["address"] = "10.21.22.300"
    raw["controlPlane"].pop()
    raw["healthCheck"]["intervalMs"] = 800
    with pytest.raises(ConfigError) as err:
        parse_cluster(raw)
    assert str(err.value) == "invalid stack config:\n" + shown.rstrip("\n")


def test_an_undecodable_key_is_reported_with_every_other_problem(raw: dict[str, Any]) -> None:
    """A YAML/JSON syntax error in one structured key does not hide the others' problems."""
    raw["endpoint"] = "{address: [}"
    raw["sshPort"] = 0
    mocks = ClusterMocks()
    with pytest.raises(pulumi.RunError) as err:
        run_program(raw, mocks=mocks)
    text = str(err.value)
    assert "kube-ha:endpoint: is not valid YAML/JSON" in text and "kube-ha:sshPort:" in text
    assert "kube-ha:endpoint: is not set" not in text
    assert mocks.resources == []
