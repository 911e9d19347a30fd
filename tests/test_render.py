"""The offline render: every artifact from the stack file alone, without importing Pulumi."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pulumi
import pytest

from components.config import stack_values
from kube_ha.config import ConfigError, parse_cluster
from kube_ha.loadbalancer import keepalived
from kube_ha.loadbalancer.haproxy import render_haproxy_cfg
from kube_ha.render import stack_config
from tests.program import ROOT, Run, dev_stack, stack_file, vip_stack


def test_render_writes_every_artifact_and_imports_no_pulumi(tmp_path: Path) -> None:
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['render', '--stack', 'dev', '--dir', sys.argv[1], '--out', sys.argv[2]]\n"
        "try:\n"
        "    runpy.run_module('kube_ha.render', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0].startswith('pulumi'))\n"
        "print('PULUMI_MODULES', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(ROOT), str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "PULUMI_MODULES []" in out, out
    files = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert {"lb/haproxy.cfg", "lb/install.sh", "lb/configure-haproxy-101.sh", "sans.json",
            "kubeadm/bootstrap.sh", "kubeadm/join-ubuntu-70.sh", "kubeadm/remove-ubuntu-72.sh",
            "kubeadm/retire.sh",
            "kubeadm/worker-ubuntu-74.sh", "kubeadm/kubeadm.yaml"} <= files
    sans = json.loads((tmp_path / "sans.json").read_text())
    assert "10.21.22.101" in sans["ubuntu-70"]["ipAddresses"]
    assert "secure" not in (tmp_path / "lb/configure-haproxy-101.sh").read_text()


def test_render_rejects_bad_stack_naming_the_key(tmp_path: Path) -> None:
    raw = dev_stack()
    raw["controlPlane"][1]["address"] = "10.21.22.700"
    (tmp_path / "Pulumi.bad.yaml").write_text(stack_file(raw))
    result = subprocess.run([sys.executable, "-m", "kube_ha.render", "--stack", "bad", "--dir",
                             str(tmp_path), "--out", str(tmp_path / "out")], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "kube-ha:controlPlane[1].address" in result.stderr
    assert not (tmp_path / "out").exists()


def test_render_same_cfg_as_program(dev: Run) -> None:
    offline = render_haproxy_cfg(parse_cluster(*stack_config(ROOT / "Pulumi.dev.yaml")))
    assert dev.scope["ha"].load_balancer.haproxy_cfg == offline


def test_render_vip_topology_writes_keepalived_per_lb(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.vip.yaml").write_text(stack_file(vip_stack()))
    subprocess.run([sys.executable, "-m", "kube_ha.render", "--stack", "vip", "--dir",
                    str(tmp_path), "--out", str(tmp_path / "out")], cwd=ROOT, check=True,
                   capture_output=True)
    out = tmp_path / "out" / "lb"
    one, two = (out / "keepalived-haproxy-101.conf").read_text(), (
        out / "keepalived-haproxy-102.conf").read_text()
    assert "priority 150" in one and "priority 140" in two
    assert "unicast_src_ip 10.21.22.101" in one and "10.21.22.102" in one
    # The VRRP interface is the one holding the host's address, known only on the host.
    assert f"10.21.22.100/32 dev {keepalived.DETECTED}" in two
    configure = (out / "configure-haproxy-102.sh").read_text()
    assert 'keepalived -t -f "$tmp"' in configure
    assert "keepalived" in (out / "install.sh").read_text()
    for conf in (out / "keepalived-haproxy-101.conf", out / "keepalived-haproxy-102.conf"):
        assert_keepalived_accepts(conf)


def assert_keepalived_accepts(conf: Path) -> None:
    """`keepalived -t` on a rendered keepalived.conf as the configure step writes it on a host
    whose address is on ens5 (keepalived -t refuses an interface the host lacks, so in a
    network namespace that has one)."""
    checked = subprocess.run(
        ["unshare", "--net", "bash", "-c",
         "ip link add ens5 type veth peer name ens5p && vrrp_iface=ens5 && "
         f"{keepalived.fill_interface()} < \"$1\" > \"$1.filled\" && "
         'keepalived -t -f "$1.filled"', "-", str(conf)], capture_output=True, text=True,
        timeout=60)
    # The check script lives on the LB host, not here; everything else must parse.
    assert checked.stderr.strip() in ("", "Disabling track script kube_ha_haproxy since "
                                      "not found/accessible"), (conf.name, checked.stderr)


def _render(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "Pulumi.edited.yaml").write_text(text)
    return subprocess.run([sys.executable, "-m", "kube_ha.render", "--stack", "edited",
                           "--dir", str(tmp_path), "--out", str(tmp_path / "out")], cwd=ROOT,
                          capture_output=True, text=True)


DEV = (ROOT / "Pulumi.dev.yaml").read_text()


def _replacing(old: str, new: str) -> Callable[[str], str]:
    """A text edit of the stack file: the first `old` becomes `new` (which must be there, or
    the edit would silently test the unedited file)."""
    def edit(text: str) -> str:
        assert old in text, f"{old!r} is not in the stack file"
        return text.replace(old, new, 1)
    return edit


def _adding_to_config(line: str) -> Callable[[str], str]:
    """A text edit of the stack file: `line` becomes the first entry of `config:`."""
    return _replacing("config:\n", f"config:\n  {line}\n")


# Edits of the YAML text on purpose (not a dict dumped to YAML): each is text a user might
# type, which the render must read as the CLI does.
@pytest.mark.parametrize("case, edit, said", [
    # A YAML syntax error: the file and line, not a traceback.
    ("syntax", _replacing("  kube-ha:workers:", "  kube-ha:workers: ["),
     "Pulumi.edited.yaml:"),
    # A section dedented out of `config:`: the CLI would not pass it to the program.
    ("dedented", lambda t: t + "kube-ha:nodeLocalProxy: true\n",
     "kube-ha:nodeLocalProxy outside `config:`"),
    # YAML 1.1's `yes` is a string to the CLI (go-yaml v3, YAML 1.2), so no boolean.
    ("yes", _adding_to_config("kube-ha:nodeLocalProxy: yes"),
     "kube-ha:nodeLocalProxy: 'yes' is not a bool"),
    # A misspelled namespace: the CLI hands it to nobody, silently.
    ("namespace", _adding_to_config("kube_ha:nodeLocalProxy: true"),
     "kube_ha:nodeLocalProxy: is in namespace 'kube_ha', which nothing reads. Did you mean "
     "'kube-ha:nodeLocalProxy'?"),
    # No namespace at all: the CLI refuses the file (config.ParseKey wants `<namespace>:<name>`).
    # The key is shown as written, not as the kube-ha:nodeLocalProxy the fix asks for.
    ("no namespace", _adding_to_config("nodeLocalProxy: true"),
     "\n  nodeLocalProxy: has no namespace, which the Pulumi CLI refuses. "
     "Fix: write kube-ha:nodeLocalProxy."),
    # A field of an object dedented to the level of the stack keys: told where it belongs.
    ("dedented field", _replacing("    fall: 2\n", "  fall: 2\n"),
     "\n  fall: has no namespace, and is a field of kube-ha:healthCheck: indented too "
     "little? Fix: indent it under that key."),
    ("near miss", _adding_to_config("nodeLocalPrxy: true"),
     "nodeLocalPrxy: has no namespace, and no stack key has this name. Did you mean "
     "kube-ha:nodeLocalProxy?"),
    # A stack key indented into the one above it: YAML makes it a field of that object.
    ("indented key", _replacing("  kube-ha:loadBalancer:", "    kube-ha:loadBalancer:"),
     "\n  kube-ha:healthCheck.kube-ha:loadBalancer: is a stack key, indented into "
     "kube-ha:healthCheck. Fix: dedent it to the level of kube-ha:healthCheck."),
    # Given twice, once without its namespace: not "write kube-ha:workers" (a duplicate).
    ("set twice", _adding_to_config("workers: []"),
     "\n  workers: has no namespace, which the Pulumi CLI refuses, and kube-ha:workers is set as "
     "well. Fix: remove this one, or merge what it holds into that key."),
    # A stack key indented into a list entry: dedent to the list's own level.
    ("indented into a list", _replacing("Xlog54BG\n", "Xlog54BG\n      kube-ha:nodeLocalProxy: true\n"),
     "kube-ha:loadBalancers[0].kube-ha:nodeLocalProxy: is a stack key, indented into "
     "kube-ha:loadBalancers[0]. Fix: dedent it to the level of kube-ha:loadBalancers."),
    # A declared list with every entry commented out is a null, which the CLI refuses.
    ("null object", _adding_to_config("kube-ha:imageDigests:"),
     "kube-ha:imageDigests: is empty (null), which the Pulumi CLI refuses for this key."),
    # go-yaml v3 (v3.0.1, which the CLI pins) refuses a key given twice in one mapping:
    # decode.go `mapping key %#v already defined at line %d`; PyYAML would keep the last one.
    ("duplicate", _adding_to_config("kube-ha:clusterName: other"),
     'not valid YAML (mapping key "kube-ha:clusterName" already defined at line 7)'),
])
def test_render_reads_the_stack_file_as_the_cli_does(tmp_path: Path, case: str,
                                                     edit: Callable[[str], str], said: str) -> None:
    """Each edit would make `pulumi up` refuse or silently ignore something: the render says
    so, naming the line or key, writes nothing, and shows no traceback."""
    result = _render(tmp_path, edit(DEV))
    assert result.returncode == 1, (case, result.stdout)
    assert said in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_true_written_as_yaml_1_2_allows_renders(tmp_path: Path) -> None:
    result = _render(tmp_path, _adding_to_config("kube-ha:nodeLocalProxy: true")(DEV))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out/node-local/haproxy.cfg").exists()


def test_merge_keys_and_the_old_key_form_render_as_the_cli_reads_them(tmp_path: Path) -> None:
    """go-yaml v3 resolves `<<` merge keys, and the CLI's ParseKey takes
    `<namespace>:config:<name>` as `<namespace>:<name>`: the same artifacts as the plain file."""
    edited = _replacing("    interMs: 800\n", "    <<: {interMs: 800}\n")(
        _replacing("  kube-ha:clusterName:", "  kube-ha:config:clusterName:")(DEV))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain_run, edited_run = _render(tmp_path / "a", DEV), _render(tmp_path / "b", edited)
    assert edited_run.returncode == 0, edited_run.stderr
    assert plain_run.returncode == 0, plain_run.stderr
    files = sorted(p.relative_to(tmp_path / "a/out") for p in (tmp_path / "a/out").rglob("*")
                   if p.is_file())
    assert files and files == sorted(p.relative_to(tmp_path / "b/out")
                                     for p in (tmp_path / "b/out").rglob("*") if p.is_file())
    for f in files:
        assert (tmp_path / "a/out" / f).read_text() == (tmp_path / "b/out" / f).read_text(), f


def test_a_misspelled_key_with_the_clis_default_is_said_once() -> None:
    """Under `pulumi up` the CLI fills the declared key's default (`[]`) in where the stack
    spelled it wrong: the program says the misspelling once, not also "no load-balancer
    hosts", as the render does."""
    config = {f"kube-ha:{k}": v if isinstance(v, str) else json.dumps(v)
              for k, v in dev_stack().items()}
    config["kube_ha:loadBalancers"] = config.pop("kube-ha:loadBalancers")
    config["kube-ha:loadBalancers"] = "[]"  # Pulumi.yaml's default, as mergeConfig sets it
    pulumi.runtime.set_all_config(config)
    with pytest.raises(ConfigError) as err:
        parse_cluster(*stack_values())
    assert err.value.keys == ["kube_ha:loadBalancers"], str(err.value)


def test_the_program_refuses_a_misspelled_namespace() -> None:
    """Under `pulumi up` the same key reaches the program's config (every namespace does):
    refused with the others, before anything is registered."""
    pulumi.runtime.set_all_config({"kube-ha:clusterName": "k", "kube_ha:workers": "[]"})
    raw, unreadable = stack_values()
    assert raw == {"clusterName": "k"}
    assert unreadable == {"kube_ha:workers": "is in namespace 'kube_ha', which nothing reads. "
                                              "Did you mean 'kube-ha:workers'?"}
