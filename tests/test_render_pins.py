"""What the offline render (kube_ha.render) means, pinned fact by fact: how it reads a stack file
(as the Pulumi CLI does, secrets masked), which artifacts it writes for which topology, and how
its command line behaves. Functions are called directly: no subprocess, so each test is fast."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import graphviz
import pytest
import yaml

from kube_ha import render
from kube_ha.config import ConfigError, parse_cluster
from kube_ha.elastic.manifests import all_manifests
from kube_ha.endpoint_switch import apiserver_service, switch_install_lines
from kube_ha.model import Cluster
from kube_ha.render import StackFileError, artifacts, main, stack_config
from kube_ha.topology import all_sans, backend_registrations
from tests.program import ROOT, cluster_of, dev_stack, example_stack

DEV_FILE = ROOT / "Pulumi.dev.yaml"


def _file(tmp_path: Path, text: str, name: str = "Pulumi.t.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(StackFileError) as err:
        stack_config(_file(tmp_path, text))
    return str(err.value)


def _example(name: str) -> Cluster:
    return parse_cluster(example_stack(name))


# --- Reading the stack file as the Pulumi CLI does ---------------------------------------------


def test_yaml_1_1_booleans_stay_strings_and_real_booleans_and_numbers_are_typed(tmp_path: Path) -> None:
    """The CLI's loader is YAML 1.2: `yes`/`on`/`no` are strings (which the program then refuses),
    only true/false spellings are booleans, and numbers stay numbers."""
    raw, _ = stack_config(_file(tmp_path, (
        "config:\n"
        "  kube-ha:a: yes\n  kube-ha:b: on\n  kube-ha:c: no\n  kube-ha:d: off\n  kube-ha:e: y\n"
        "  kube-ha:f: true\n  kube-ha:g: True\n  kube-ha:h: FALSE\n  kube-ha:i: false\n"
        "  kube-ha:j: 6443\n  kube-ha:k: test\n  kube-ha:l: fast\n  kube-ha:m: 1.5\n")))
    assert raw["a"] == "yes" and raw["b"] == "on" and raw["c"] == "no" and raw["d"] == "off"
    assert raw["e"] == "y"
    assert raw["f"] is True and raw["g"] is True and raw["h"] is False and raw["i"] is False
    assert raw["j"] == 6443 and isinstance(raw["j"], int)
    assert raw["k"] == "test" and raw["l"] == "fast"
    assert raw["m"] == 1.5


def test_a_yaml_1_1_boolean_is_refused_by_the_program_naming_the_key(tmp_path: Path) -> None:
    """`nodeLocalProxy: yes` would be True under PyYAML's default loader; the CLI hands the program
    the string "yes", so the render must refuse it as `pulumi up` would."""
    raw = dev_stack()
    raw.pop("sshPrivateKey")
    raw["nodeLocalProxy"] = "PLACEHOLDER"
    text = yaml.safe_dump({"config": {f"kube-ha:{k}": v for k, v in raw.items()}})
    text = text.replace("'PLACEHOLDER'", "yes").replace("PLACEHOLDER", "yes")
    assert "kube-ha:nodeLocalProxy: yes\n" in text
    with pytest.raises(ConfigError) as err:
        parse_cluster(*stack_config(_file(tmp_path, text)))
    assert "nodeLocalProxy" in str(err.value)


def test_a_key_given_twice_is_refused_naming_file_line_and_the_first_one(tmp_path: Path) -> None:
    """go-yaml v3 refuses a duplicate key; PyYAML would let the last one win silently."""
    msg = _refusal(tmp_path, "config:\n  kube-ha:clusterName: a\n  kube-ha:sshUser: root\n"
                             "  kube-ha:clusterName: b\n")
    assert msg.startswith("Pulumi.t.yaml:4:3: not valid YAML (")
    assert 'mapping key "kube-ha:clusterName" already defined at line 2' in msg


def test_a_duplicate_inside_a_nested_mapping_is_refused_too(tmp_path: Path) -> None:
    """Duplicates are found in every mapping, not only the top one."""
    msg = _refusal(tmp_path, "config:\n  kube-ha:endpoint:\n    port: 1\n    port: 2\n")
    assert msg.startswith("Pulumi.t.yaml:4:5: ")
    assert 'mapping key "port" already defined at line 3' in msg


def test_keys_that_type_alike_but_are_written_differently_do_not_clash(tmp_path: Path) -> None:
    """go-yaml compares keys as written: `true` and `True` are two keys, and a merge key (`<<`)
    is no duplicate of anything."""
    raw, _ = stack_config(_file(tmp_path, (
        "config:\n  kube-ha:x:\n    true: 1\n    True: 2\n"
        "  kube-ha:base: &b {p: 1}\n  kube-ha:y:\n    <<: *b\n    q: 2\n")))
    assert raw["y"] == {"p": 1, "q": 2}
    assert raw["x"] == {True: 2}


def test_a_second_merge_key_in_one_mapping_is_refused_as_the_cli_does(tmp_path: Path) -> None:
    """go-yaml v3 compares every pair of keys as written before merging (decode.go, mapping:
    "mapping key ... already defined"), `<<` included: `pulumi up` refuses two merges in one
    mapping, so the offline render must not read them."""
    msg = _refusal(tmp_path, "config:\n  kube-ha:a: &a {p: 1}\n  kube-ha:b: &b {q: 2}\n"
                             "  kube-ha:c:\n    <<: *a\n    <<: *b\n")
    assert msg.startswith("Pulumi.t.yaml:6:5: ")
    assert 'mapping key "<<" already defined at line 5' in msg


def test_an_unhashable_key_is_a_stack_file_error_with_its_place(tmp_path: Path) -> None:
    """A sequence used as a key is refused as invalid YAML naming file, line and column, not a
    crash with a traceback."""
    msg = _refusal(tmp_path, "config:\n  ? [a, b]\n  : 1\n")
    assert msg.startswith("Pulumi.t.yaml:2:5: not valid YAML (")
    assert "unhashable key" in msg


def test_broken_yaml_is_refused_naming_file_line_and_column(tmp_path: Path) -> None:
    """The user must find the broken line: file, line and column, and what the parser says."""
    msg = _refusal(tmp_path, "config:\n  kube-ha:clusterName: [a\n")
    assert msg.startswith("Pulumi.t.yaml:3:1: not valid YAML (")
    assert msg.endswith(")")


def test_an_error_without_a_position_still_names_the_file(tmp_path: Path) -> None:
    """A reader error (a control character) has no line: the file alone is named."""
    msg = _refusal(tmp_path, "config:\n  kube-ha:clusterName: a\x07\n")
    assert msg.startswith("Pulumi.t.yaml: not valid YAML (unacceptable character #x0007")


def test_a_document_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    """A list at the top is no stack file."""
    assert _refusal(tmp_path, "- a\n- b\n") == "Pulumi.t.yaml: not a mapping with a `config:` section"


def test_a_key_outside_config_is_refused_listing_what_a_stack_file_holds(tmp_path: Path) -> None:
    """A key indented too little leaves `config:`: the CLI would never pass it on."""
    msg = _refusal(tmp_path, "config:\n  kube-ha:sshUser: root\nkube-ha:clusterName: k\nzz: 1\n")
    assert msg == ("Pulumi.t.yaml: kube-ha:clusterName, zz outside `config:` (indented too little?); a "
                   "stack file holds only config, encryptedkey, encryptionsalt, environment, secretsprovider")


def test_every_top_level_key_of_a_stack_file_is_accepted(tmp_path: Path) -> None:
    """A stack file written by `pulumi config set --secret` carries these beside `config:`."""
    raw, unreadable = stack_config(_file(tmp_path, (
        "secretsprovider: passphrase\nencryptedkey: abc\nencryptionsalt: v1:xyz\n"
        "environment: [env]\nconfig:\n  kube-ha:clusterName: k\n")))
    assert raw["clusterName"] == "k" and unreadable == {}


def test_an_empty_file_or_empty_config_reads_as_no_keys(tmp_path: Path) -> None:
    """A fresh stack (no keys yet) still reads: only the secret marker is there."""
    for text in ("", "config:\n"):
        raw, unreadable = stack_config(_file(tmp_path, text))
        assert raw == {"sshPrivateKey": "[secret: set at deploy time]"} and unreadable == {}


def test_a_config_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    """`config:` must map keys to values."""
    assert _refusal(tmp_path, "config:\n  - a\n") == \
        "Pulumi.t.yaml: `config:` is not a mapping of keys to values"


def test_only_this_programs_namespace_is_read(tmp_path: Path) -> None:
    """Another project's keys (`aws:region`) are not this program's: they are left out."""
    raw, unreadable = stack_config(_file(tmp_path, "config:\n  aws:region: eu\n  kube-ha:clusterName: k\n"))
    assert raw == {"clusterName": "k", "sshPrivateKey": "[secret: set at deploy time]"}
    assert unreadable == {}


def test_a_null_object_key_is_unreadable_and_a_null_scalar_is_passed_on(tmp_path: Path) -> None:
    """The CLI refuses a null for a declared object (every entry commented out); a null scalar
    is the program's to judge."""
    raw, unreadable = stack_config(_file(tmp_path, (
        "config:\n  kube-ha:workers:\n  kube-ha:clusterName:\n  kube-ha:endpoint: {port: 1}\n")))
    assert unreadable == {"workers": "is empty (null), which the Pulumi CLI refuses for this key. Fix: give "
                                     "its entries, or remove the key to take the default."}
    assert "workers" not in raw
    assert raw["clusterName"] is None
    assert raw["endpoint"] == {"port": 1}


def test_a_secure_value_is_masked_and_never_decrypted(tmp_path: Path) -> None:
    """Secrets never reach the render: a `secure:` value is a marker; other objects and strings
    that merely mention "secure" are read as they are."""
    raw, _ = stack_config(_file(tmp_path, (
        "config:\n  kube-ha:sshPrivateKey:\n    secure: v1:AAAACIPHERTEXT\n"
        "  kube-ha:clusterName: insecure\n  kube-ha:endpoint: {address: 10.0.0.1}\n")))
    assert raw["sshPrivateKey"] == "[secret]"
    assert raw["clusterName"] == "insecure"
    assert raw["endpoint"] == {"address": "10.0.0.1"}
    assert "CIPHERTEXT" not in repr(raw)


def test_an_absent_secret_gets_a_marker_so_the_stack_still_renders() -> None:
    """A review needs no secret: the committed dev stack has no SSH key and still renders."""
    raw, unreadable = stack_config(DEV_FILE)
    assert raw["sshPrivateKey"] == "[secret: set at deploy time]"
    assert unreadable == {}
    assert parse_cluster(raw).name == "kubernetes"


def test_the_old_key_form_is_read_as_the_cli_reads_it(tmp_path: Path) -> None:
    """`kube-ha:config:name` is the CLI's old spelling of `kube-ha:name` (ParseKey); any other
    three-part key is not, and is reported as unreadable."""
    raw, unreadable = stack_config(_file(tmp_path, (
        "config:\n  kube-ha:config:clusterName: k\n  kube-ha:foo:bar: 1\n  config:config:sshUser: x\n")))
    assert raw["clusterName"] == "k"
    assert "config:clusterName" not in raw and "sshUser" not in raw
    assert raw["foo:bar"] == 1
    assert set(unreadable) == {"kube-ha:foo:bar"}
    assert "is not a key the Pulumi CLI reads" in unreadable["kube-ha:foo:bar"]


# --- Which artifacts, for which topology ---------------------------------------------------------


def _expected_names(c: Cluster) -> set[str]:
    names = {"lb/haproxy.cfg", "lb/install.sh", "sans.json", "topology.dot", "backends.json",
             "kubeadm/kubeadm.yaml", "kubeadm/read-ca.sh", "kubeadm/bootstrap.sh",
             "kubeadm/join-credentials.sh", "kubeadm/reset.sh", "kubeadm/retire.sh",
             "kubeadm/revoke-join-credentials.sh", "kubeadm/workers.sh", "kubeadm/kube-proxy.sh"}
    for n in c.control_plane:
        names |= {f"preflight/control-plane-{n.name}.sh", f"kubeadm/serving-certificate-{n.name}.sh",
                  f"kubeadm/membership-{n.name}.sh"}
    for n in c.joining_control_plane:
        names |= {f"kubeadm/join-{n.name}.sh", f"kubeadm/remove-{n.name}.sh"}
    for n in c.workers:
        names |= {f"preflight/worker-{n.name}.sh", f"kubeadm/worker-{n.name}.sh"}
    for lb in c.load_balancers:
        names |= {f"lb/configure-{lb.name}.sh"}
    return names


def test_dev_stack_artifacts_are_the_common_ones_plus_its_lb_and_elastic_pool() -> None:
    """One LB host, elastic apiservers on two workers: no keepalived, no node-local proxy, no
    endpoint check or switch."""
    c = _example("dev")
    got = set(artifacts(c))
    lb_and_elastic = {"preflight/lb-haproxy-101.sh", "kubeadm/elastic-pool.sh", "elastic/reach-haproxy-101.sh",
                      *(f"elastic/firewall-{n}.sh" for n in ("ubuntu-70", "ubuntu-72", "ubuntu-73", "ubuntu-74",
                                                             "ubuntu-75")),
                      *(f"manifests/{name}" for name in all_manifests(c))}
    assert got == _expected_names(c) | lb_and_elastic
    assert "kubeadm/join-ubuntu-73.sh" not in got  # the bootstrap node does not join


def test_vip_stack_writes_keepalived_per_lb_host_and_only_there() -> None:
    """keepalived configs exist only where a virtual IP is held, one per LB host."""
    vip = set(artifacts(_example("vip")))
    assert {"lb/keepalived-haproxy-101.conf", "lb/keepalived-haproxy-102.conf"} <= vip
    assert not any("keepalived" in name for name in artifacts(_example("dev")))


def test_the_lb_configure_script_installs_keepalived_only_with_a_vip() -> None:
    """Without a VIP the LB host gets no keepalived; with one, its configure script checks and
    installs the host's own keepalived.conf."""
    dev = artifacts(_example("dev"))["lb/configure-haproxy-101.sh"]
    vip = artifacts(_example("vip"))
    assert "keepalived" not in dev
    assert 'keepalived -t -f "$tmp"' in vip["lb/configure-haproxy-102.sh"]
    assert "keepalived" in vip["lb/install.sh"] and "keepalived" not in artifacts(_example("dev"))["lb/install.sh"]


def test_external_endpoint_gets_the_endpoint_check_and_only_it() -> None:
    """With the user's own load balancer the program checks it answers; otherwise no such script."""
    ext = artifacts(_example("external"))
    assert "# kube-ha: endpoint check\n" in ext["kubeadm/endpoint-check.sh"]
    assert not any(n.startswith("lb/configure-") for n in ext)
    for name in ("dev", "service"):
        assert "kubeadm/endpoint-check.sh" not in artifacts(_example(name))


def test_service_endpoint_gets_the_service_manifest_and_the_switch(tmp_path: Path) -> None:
    """`endpoint.type: service`: the Service manifest in the program's key order (as kubectl
    shows it) and the switcher's install lines, one per line, newline-terminated."""
    c = _example("service")
    out = artifacts(c)
    svc = out["manifests/apiserver-service.yaml"]
    loaded = yaml.safe_load(svc)
    want = apiserver_service(c)
    assert loaded == want
    assert list(loaded) == list(want) and list(loaded["spec"]) == list(want["spec"])
    assert list(loaded["metadata"]) == list(want["metadata"])
    switch = out["endpoint/switch.sh"]
    lines = switch_install_lines(c)
    assert len(lines) > 1 and switch == "".join(f"{line}\n" for line in lines)
    assert not any(n.startswith("elastic/") for n in out) and "kubeadm/elastic-pool.sh" not in out
    dev = artifacts(_example("dev"))
    assert "manifests/apiserver-service.yaml" not in dev and "endpoint/switch.sh" not in dev


def test_node_local_proxy_artifacts_exist_only_when_enabled_and_open_no_port() -> None:
    """A worker's proxy on 127.0.0.1 opens no firewall port, unlike the LB host's; its files exist
    only with nodeLocalProxy, and each worker's join script installs it."""
    c = _example("node-local")
    out = artifacts(c)
    assert {"node-local/haproxy.cfg", "node-local/install.sh", "node-local/configure.sh"} <= set(out)
    opened = re.compile(r"^\s*open_port \d+$", re.M)
    assert not opened.search(out["node-local/install.sh"])
    assert f"  open_port {c.endpoint.port}\n" in out["lb/install.sh"]
    assert "127.0.0.1" in out["node-local/haproxy.cfg"]
    assert out["node-local/haproxy.cfg"] != out["lb/haproxy.cfg"]
    for w in c.workers:
        assert "127.0.0.1" in out[f"kubeadm/worker-{w.name}.sh"]
    assert not any(n.startswith("node-local/") for n in artifacts(_example("dev")))


def test_control_plane_lb_writes_reach_and_configure_per_control_plane_lb() -> None:
    """Each control-plane node that is also an LB host gets its configure, keepalived and reach
    scripts."""
    out = artifacts(_example("control-plane-lb"))
    for name in ("ubuntu-70", "ubuntu-72", "ubuntu-73"):
        assert {f"lb/configure-{name}.sh", f"lb/keepalived-{name}.conf", f"elastic/reach-{name}.sh",
                f"preflight/lb-{name}.sh"} <= set(out)


def test_without_elastic_apiservers_no_elastic_artifacts() -> None:
    """No pool, no firewall or reach scripts, no elastic manifests when the feature is off."""
    raw = dev_stack()
    out = artifacts(cluster_of(raw, elasticApiserver={**raw["elasticApiserver"], "enabled": False}))
    assert not any(n.startswith("elastic/") or "elastic-" in n for n in out)
    assert "kubeadm/elastic-pool.sh" not in out


def test_every_artifact_has_content_and_scripts_end_with_a_newline() -> None:
    """No empty file is written for review (an empty reach or pool script would run nothing)."""
    for name in ("dev", "vip", "service", "node-local"):
        for rel, content in artifacts(_example(name)).items():
            assert rel and content.strip(), rel
            assert content.endswith("\n"), rel


def test_json_artifacts_are_two_space_indented_and_newline_terminated() -> None:
    """sans.json and backends.json are for review diffs: stable two-space indentation, final newline,
    and the same data the program uses."""
    c = _example("dev")
    out = artifacts(c)
    assert json.loads(out["sans.json"]) == all_sans(c)
    assert json.loads(out["backends.json"]) == backend_registrations(c)
    for rel in ("sans.json", "backends.json"):
        lines = out[rel].splitlines()
        assert out[rel].endswith("}\n") or out[rel].endswith("]\n"), rel
        assert lines[1].startswith('  "') or lines[1].startswith("  {"), (rel, lines[1])
        assert not lines[1].startswith("   "), (rel, lines[1])


def test_manifests_keep_the_programs_key_order() -> None:
    """Each manifest reads as the program builds it (apiVersion, kind, metadata, spec...), not
    sorted alphabetically."""
    c = _example("dev")
    out = artifacts(c)
    for name, manifest in all_manifests(c).items():
        loaded = yaml.safe_load(out[f"manifests/{name}"])
        assert loaded == manifest
        assert list(loaded) == list(manifest), name
        if isinstance(manifest.get("metadata"), dict):
            assert list(loaded["metadata"]) == list(manifest["metadata"]), name


def test_placeholders_stand_where_deploy_time_values_go() -> None:
    """Certificates, keys, the cluster CA and join credentials are only known at deploy time: the
    render shows a placeholder in their place, never a real value and never nothing."""
    out = artifacts(_example("node-local"))
    for rel in ("kubeadm/bootstrap.sh", "kubeadm/join-ubuntu-70.sh", "kubeadm/serving-certificate-ubuntu-73.sh",
                "lb/configure-haproxy-101.sh", "node-local/configure.sh", "kubeadm/worker-ubuntu-74.sh"):
        assert "# <certificate issued at deploy time by pulumi_tls>\n" in out[rel], rel
        assert "# <private key: a Pulumi secret, not rendered>\n" in out[rel], rel
    for rel in ("lb/configure-haproxy-101.sh", "node-local/configure.sh", "kubeadm/worker-ubuntu-74.sh"):
        assert "# <cluster CA certificate, read from the bootstrap node at deploy time>\n" in out[rel], rel
    join = out["kubeadm/join-ubuntu-70.sh"]
    assert "token: <token>\n" in join and "- sha256:<hash>\n" in join
    assert "certificateKey: <certificate-key>\n" in join
    worker = out["kubeadm/worker-ubuntu-74.sh"]
    assert "token: <token>\n" in worker and "- sha256:<hash>\n" in worker


def test_join_credentials_shown_are_the_control_plane_ones() -> None:
    """The bootstrap node makes a certificate key for control-plane joins: the rendered credentials
    script is that one."""
    creds = artifacts(_example("dev"))["kubeadm/join-credentials.sh"]
    assert "kubeadm certs certificate-key" in creds


def test_remove_script_names_only_its_node() -> None:
    """remove-<node>.sh is what would run if that one node left the list."""
    out = artifacts(_example("dev"))
    assert "ubuntu-70" in out["kubeadm/remove-ubuntu-70.sh"]
    assert "ubuntu-72" not in out["kubeadm/remove-ubuntu-70.sh"]


# --- The command line ------------------------------------------------------------------------------


def _svg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "topology_svg", lambda cluster: "<svg>picture</svg>\n")


def test_main_writes_every_artifact_with_scripts_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Files land under --out (nested directories made), .sh files mode 0755 and nothing else
    executable; the summary line names the count, the stack and the directory."""
    _svg(monkeypatch)
    out = tmp_path / "a" / "out"
    assert main(["--stack", "vip", "--dir", str(ROOT), "--out", str(out)]) == 0
    want = artifacts(parse_cluster(*stack_config(ROOT / "Pulumi.vip.yaml")))
    files = {str(p.relative_to(out)): p for p in out.rglob("*") if p.is_file()}
    assert set(files) == set(want) | {"topology.svg"}
    assert files["topology.svg"].read_text() == "<svg>picture</svg>\n"
    assert files["lb/haproxy.cfg"].read_text() == want["lb/haproxy.cfg"]
    for rel, path in files.items():
        mode = stat.S_IMODE(path.stat().st_mode)
        if rel.endswith(".sh"):
            assert mode == 0o755, (rel, oct(mode))
        else:
            assert not mode & 0o111, (rel, oct(mode))
    captured = capsys.readouterr()
    assert captured.out == f"rendered {len(want) + 1} artifacts for stack vip into {out}\n"
    assert captured.err == ""


def test_main_reads_the_dev_stack_from_the_current_directory_by_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`--stack` defaults to dev and `--dir` to the current directory."""
    _svg(monkeypatch)
    (tmp_path / "Pulumi.dev.yaml").write_text(DEV_FILE.read_text())
    monkeypatch.chdir(tmp_path)
    assert main(["--out", "out"]) == 0
    assert (tmp_path / "out" / "lb" / "haproxy.cfg").is_file()
    assert capsys.readouterr().out.startswith("rendered ")


def test_main_without_graphviz_notes_it_and_still_renders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """No `dot` installed: a note on stderr says how to get it, topology.dot still holds the
    picture, and the render succeeds."""
    def missing(cluster: Cluster) -> str:
        raise graphviz.ExecutableNotFound(("dot",))
    monkeypatch.setattr(render, "topology_svg", missing)
    assert main(["--dir", str(ROOT), "--out", str(tmp_path)]) == 0
    assert not (tmp_path / "topology.svg").exists() and (tmp_path / "topology.dot").is_file()
    assert capsys.readouterr().err == ("note: Graphviz's dot is not installed (apt install graphviz): "
                                       "topology.svg not drawn; topology.dot holds the same picture\n")


def test_main_with_a_missing_stack_file_exits_2_naming_it(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A typo in --stack is a usage error (2), and the path looked for is named."""
    assert main(["--stack", "nope", "--dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'Pulumi.nope.yaml'} not found\n"
    assert not (tmp_path / "out").exists()


def _main_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str], stack_text: str) -> str:
    """`main` on a stack file holding `stack_text`: exit 1, nothing written; its stderr."""
    _file(tmp_path, stack_text, "Pulumi.bad.yaml")
    assert main(["--stack", "bad", "--dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out").exists()
    return capsys.readouterr().err


def test_main_with_a_broken_stack_file_exits_1_naming_file_and_line(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A stack file the CLI would refuse is refused (1) with its place, and nothing is written."""
    err = _main_refuses(tmp_path, capsys, "config:\n  kube-ha:clusterName: a\n  kube-ha:clusterName: b\n")
    assert err.startswith("error: Pulumi.bad.yaml:3:3: not valid YAML (") and err.count("\n") == 1


def test_main_with_invalid_config_exits_1_naming_the_key(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A config the program refuses is reported with the key, as `pulumi up` would."""
    err = _main_refuses(tmp_path, capsys, "config:\n  kube-ha:workers:\n")
    assert err.startswith("error: ") and "workers" in err and "is empty (null)" in err


def test_out_is_required_and_usage_names_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --out there is nowhere to write: argparse's usage error (exit 2) says so."""
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m kube_ha.render ")
    assert "the following arguments are required: --out" in err


def test_help_describes_each_option(capsys: pytest.CaptureFixture[str]) -> None:
    """--help is the render's manual: the module docstring and what each option means."""
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: python -m kube_ha.render [-h] [--stack STACK] [--dir DIR] --out OUT")
    assert "Offline render: every artifact the program sends to hosts" in text
    assert "--stack STACK stack name: reads Pulumi.<stack>.yaml" in text
    assert "--dir DIR project directory" in text
    assert "--out OUT directory to write artifacts to" in text
