"""What the kubeadm scripts and their pure helpers mean, pinned fast enough to run per mutant.

The pure parts (kubeadm's documents, the membership record and the edits it refuses, the ssh
options of a retire step) are checked by reading them the way their consumer does: YAML for
kubeadm's documents, `ssh -G` (the real OpenSSH client's resolved configuration) for the
options. The scripts run under bash in one ScriptHost world (tests/harness/script_host.py:
stand-ins for kubeadm, kubectl, crictl and systemctl that behave as the real tools, each
citing its source), with `real_etcd=False`; where a script reaches etcd, a host etcdctl that
answers in etcdctl's own formats (see ETCDCTL below) is put first on the script's PATH, so no
real member has to start (about 3 s each, and 5 s per health check of a dead member).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_ha import hosts_entry, membership, retire
from kube_ha.config import parse_cluster
from kube_ha.kubeadm import admin, etcd
from kube_ha.kubeadm import config as kconfig
from kube_ha.kubeadm import scripts as ks
from kube_ha.loadbalancer.haproxy import NODE_LOCAL_MARK
from kube_ha.model import Cluster, Host
from kube_ha.paths import NODE_STATE
from kube_ha.topology import apiserver_sans
from tests.harness import pki
from tests.harness.script_host import ScriptHost, StepResult, seed_cluster
from tests.program import cluster_of, dev_stack


def host(name: str, address: str, **kw: Any) -> Host:
    return Host(name=name, address=ip_address(address), user=kw.pop("user", "root"),
                port=kw.pop("port", 22), **kw)


# --- kubeadm's documents (config.py) ------------------------------------------------------

@pytest.mark.parametrize("value", ["[fd00::10]:6443", "{a}", "&a", "*a", "!a", "|a", ">a", "'a", '"a',
                                   "%a", "@a", "`a", "#a", "a: b", ""])
def test_a_value_yaml_would_misread_is_json_quoted_and_reads_back(value: str) -> None:
    """Each of these, written plain after `key: `, is not the string to YAML (a flow
    sequence, an anchor, a tag, a comment...): it is JSON-quoted and reads back as itself."""
    written = kconfig.yaml_str(value)
    assert written == json.dumps(value)
    assert yaml.safe_load(f"key: {written}")["key"] == value


@pytest.mark.parametrize("value", ["api.k8s.lab.internal:6443", "10.0.0.1:6443", "a#b", "a:b"])
def test_a_plain_value_stays_plain_as_kubeadm_writes_it(value: str) -> None:
    assert kconfig.yaml_str(value) == value
    assert yaml.safe_load(f"key: {value}")["key"] == value


@pytest.mark.parametrize(("version", "api"), [("v1.31.0", "kubeadm.k8s.io/v1beta4"),
                                              ("v1.32.3", "kubeadm.k8s.io/v1beta4"),
                                              ("v1.30.9", "kubeadm.k8s.io/v1beta3"),
                                              ("v1.29.0", "kubeadm.k8s.io/v1beta3")])
def test_kubeadm_api_version_follows_the_kubernetes_minor(version: str, api: str) -> None:
    """v1beta4 arrived with kubeadm 1.31; an older kubeadm refuses it."""
    c = cluster_of(kubernetesVersion=version)
    assert kconfig.api_version(c) == api
    docs = list(yaml.safe_load_all(kconfig.kubeadm_config(c)))
    assert [d["apiVersion"] for d in docs] == [api, api]
    join = yaml.safe_load(kconfig.join_configuration(c, c.workers[0], CREDS, False))
    assert join["apiVersion"] == api


CREDS = {"token": "abcdef.0123456789abcdef", "caCertHash": "sha256:" + "a" * 64,
         "certificateKey": "f" * 64}


def test_init_configuration_is_kubeadms_with_our_token_endpoint_and_sans() -> None:
    c = cluster_of()
    init, cc = yaml.safe_load_all(kconfig.kubeadm_config(c))
    assert init["kind"] == "InitConfiguration" and cc["kind"] == "ClusterConfiguration"
    assert init["bootstrapTokens"] == [{"description": kconfig.JOIN_TOKEN_DESCRIPTION, "ttl": "1h0m0s"}]
    assert init["localAPIEndpoint"] == {"advertiseAddress": "10.21.22.73", "bindPort": 6443}
    assert init["nodeRegistration"] == {"name": "ubuntu-73"}
    assert cc["clusterName"] == c.name and cc["kubernetesVersion"] == "v1.32.3"
    assert cc["controlPlaneEndpoint"] == "api.k8s.lab.internal:6443"
    assert cc["networking"] == {"serviceSubnet": str(c.networking.service_subnet),
                                "podSubnet": str(c.networking.pod_subnet),
                                "dnsDomain": c.networking.cluster_domain}
    assert cc["apiServer"]["certSANs"] == [json.loads(s) for s in kconfig.cert_sans_items(c)]
    assert "ubuntu-73" not in cc["apiServer"]["certSANs"]
    assert "10.21.22.73" not in cc["apiServer"]["certSANs"]


@pytest.mark.parametrize("control_plane", [True, False])
def test_join_configuration_has_a_control_plane_part_only_for_a_control_plane_join(
        control_plane: bool) -> None:
    """kubeadm joins a control-plane node when JoinConfiguration has `controlPlane`, a worker
    otherwise; the certificate key only a control-plane join needs."""
    c = cluster_of()
    node = c.node("ubuntu-70")
    doc = yaml.safe_load(kconfig.join_configuration(c, node, CREDS, control_plane))
    assert doc["kind"] == "JoinConfiguration"
    assert doc["discovery"]["bootstrapToken"] == {
        "apiServerEndpoint": "api.k8s.lab.internal:6443", "token": CREDS["token"],
        "caCertHashes": [CREDS["caCertHash"]]}
    assert doc["nodeRegistration"] == {"name": "ubuntu-70"}
    if control_plane:
        assert doc["controlPlane"] == {"certificateKey": CREDS["certificateKey"], "localAPIEndpoint": {
            "advertiseAddress": "10.21.22.70", "bindPort": 6443}}
    else:
        assert "controlPlane" not in doc


# --- the membership record and the edits it refuses (membership.py) ----------------------

def test_the_record_lists_each_node_by_address_with_how_to_reach_it() -> None:
    raw = copy.deepcopy(dev_stack())
    raw["workers"][0].update(user="core", port=2222)
    c = parse_cluster(raw)
    rec = membership.membership_record(c)
    assert rec["clusterName"] == "kubernetes" and rec["perNodeDeletes"] == "retained"
    assert rec["nodes"]["10.21.22.74"] == {"name": "ubuntu-74", "role": "workers", "user": "core",
                                           "port": 2222, "hostKey": raw["workers"][0]["hostKey"]}
    assert rec["nodes"]["10.21.22.73"]["role"] == "controlPlane"
    assert set(rec["nodes"]) == {str(h.address) for h in c.nodes}


def test_departed_are_the_recorded_nodes_whose_address_left_with_what_reaches_them() -> None:
    c = cluster_of()
    previous = membership.membership_record(c)
    previous["nodes"]["10.21.22.80"] = {"name": "gone", "role": "controlPlane", "user": "core",
                                        "port": 2200, "hostKey": "ssh-ed25519 K"}
    previous["nodes"]["10.21.22.81"] = {}
    previous["nodes"]["not-an-ip"] = {"name": "x", "role": "workers"}
    found = dict((h.name, (role, h)) for role, h in membership.departed(previous, c))
    assert set(found) == {"gone", "10.21.22.81"}
    role, gone = found["gone"]
    assert role == "controlPlane"
    assert (str(gone.address), gone.user, gone.port, gone.host_key) == ("10.21.22.80", "core", 2200,
                                                                        "ssh-ed25519 K")
    role, bare = found["10.21.22.81"]  # an entry without details: a worker reached as root on 22
    assert (role, bare.user, bare.port, bare.host_key) == ("workers", "root", 22, None)
    assert membership.departed(None, c) == [] and membership.departed({}, c) == []
    assert membership.departed({"nodes": None}, c) == []


def test_since_last_run_takes_out_the_departed() -> None:
    c = cluster_of()
    previous = membership.membership_record(c)
    previous["nodes"]["10.21.22.80"] = {"name": "gone", "role": "workers"}
    assert [h.name for _, h in membership.since_last_run(previous, c).departed] == ["gone"]


def edits(previous: dict[str, Any], c: Cluster) -> dict[str, str]:
    return dict(membership.destructive_edits(previous, c))


def test_no_record_or_the_same_cluster_is_no_destructive_edit() -> None:
    c = cluster_of()
    assert membership.destructive_edits(None, c) == []
    assert membership.destructive_edits({}, c) == []
    assert edits(membership.membership_record(c), c) == {}


def test_a_new_cluster_name_is_refused_naming_the_old_one() -> None:
    previous = membership.membership_record(cluster_of())
    found = edits(previous, cluster_of(clusterName="other"))
    assert list(found) == ["clusterName"]
    assert "was 'kubernetes'" in found["clusterName"] and "set it back to 'kubernetes'" in found["clusterName"]
    previous["clusterName"] = None  # a record without a name compares nothing
    assert edits(previous, cluster_of(clusterName="other")) == {}


def test_a_removal_against_an_earlier_kube_has_record_is_refused_per_departed_node() -> None:
    c = cluster_of()
    previous = membership.membership_record(c)
    del previous["perNodeDeletes"]
    assert edits(previous, c) == {}  # nothing left the list: nothing to refuse
    previous["nodes"]["10.21.22.80"] = {"name": "gone", "role": "workers"}
    found = membership.destructive_edits(previous, c)
    assert [k for k, _ in found] == ["workers"]
    assert "gone (10.21.22.80) left the list" in found[0][1]
    previous["perNodeDeletes"] = "other"
    assert [k for k, _ in membership.destructive_edits(previous, c)] == ["workers"]
    previous["perNodeDeletes"] = "retained"
    assert membership.destructive_edits(previous, c) == []


def test_a_bootstrap_node_the_last_up_did_not_deploy_is_refused() -> None:
    """It would run `kubeadm init`: a second cluster."""
    raw = copy.deepcopy(dev_stack())
    previous = membership.membership_record(parse_cluster(raw))
    del previous["nodes"]["10.21.22.72"]
    raw["controlPlane"][0].pop("bootstrap")
    raw["controlPlane"][2]["bootstrap"] = True
    found = edits(previous, parse_cluster(raw))
    assert list(found) == ["controlPlane[2].bootstrap"]
    assert "ubuntu-72 (10.21.22.72) would be the bootstrap node" in found["controlPlane[2].bootstrap"]
    # The last `up` deployed it as a worker: a bootstrap that is no member either.
    previous["nodes"]["10.21.22.72"] = {"name": "ubuntu-72", "role": "workers"}
    assert "controlPlane[2].bootstrap" in edits(previous, parse_cluster(raw))
    # No control-plane node on record: nothing to compare with.
    bare = {"nodes": {a: v for a, v in previous["nodes"].items() if v["role"] != "controlPlane"},
            "perNodeDeletes": "retained"}
    assert "controlPlane[2].bootstrap" not in edits(bare, parse_cluster(raw))


def test_moving_a_node_between_roles_is_refused_by_address_or_by_name() -> None:
    raw = copy.deepcopy(dev_stack())
    previous = membership.membership_record(parse_cluster(raw))
    moved = copy.deepcopy(raw)
    moved["allowEvenControlPlane"] = True
    moved["controlPlane"].append(moved["workers"].pop(0))
    found = edits(previous, parse_cluster(moved))
    assert list(found) == ["controlPlane[3]"]
    assert found["controlPlane[3]"].startswith("ubuntu-74 (10.21.22.74) was in workers")
    # At the same address under a new name and in the other role: the move is what is said.
    renamed = copy.deepcopy(moved)
    renamed["controlPlane"][3]["name"] = "renamed"
    renamed["elasticApiserver"]["poolNodes"] = ["ubuntu-75", "renamed"]
    assert list(edits(previous, parse_cluster(renamed))) == ["controlPlane[3]"]
    # The same name at a new address, in the other role: found by its name.
    moved["controlPlane"][3]["address"] = "10.21.22.90"
    found = edits(previous, parse_cluster(moved))
    assert "controlPlane[3]" in found and "was in workers" in found["controlPlane[3]"]


def test_a_known_name_at_a_new_address_is_refused() -> None:
    raw = copy.deepcopy(dev_stack())
    previous = membership.membership_record(parse_cluster(raw))
    raw["workers"][1]["address"] = "10.21.22.90"
    found = edits(previous, parse_cluster(raw))
    assert list(found) == ["workers[1].address"]
    assert found["workers[1].address"].startswith("ubuntu-75 was at 10.21.22.75")


def test_a_new_name_at_a_known_address_is_refused() -> None:
    raw = copy.deepcopy(dev_stack())
    previous = membership.membership_record(parse_cluster(raw))
    raw["workers"][1]["name"] = "renamed"
    pool = raw["elasticApiserver"]["poolNodes"]
    pool[pool.index("ubuntu-75")] = "renamed"
    found = edits(previous, parse_cluster(raw))
    assert list(found) == ["workers[1].name"]
    assert found["workers[1].name"].startswith("10.21.22.75 was 'ubuntu-75'")
    # A new node at a new address and a new name is no edit of anything recorded.
    raw["workers"][1].update(name="ubuntu-75", address="10.21.22.75")
    pool[pool.index("renamed")] = "ubuntu-75"
    raw["workers"].append({"name": "fresh", "address": "10.21.22.91", "hostKey": raw["workers"][0]["hostKey"]})
    assert edits(previous, parse_cluster(raw)) == {}


# --- the retire step's ssh client (retire.py) ---------------------------------------------

def ssh_config(opts: list[str], address: str = "10.0.0.9") -> dict[str, str]:
    """OpenSSH's own reading of the options (`ssh -G`: the resolved configuration, no
    connection), lower-case keys as it prints them."""
    out = subprocess.run(["ssh", "-G", *opts, "--", address], capture_output=True, text=True,
                         check=True, env={**os.environ, "HOME": "/nonexistent"}).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        found[key] = f"{found[key]} {value}" if key in found else value
    return found


def test_ssh_pins_the_recorded_host_key_and_uses_only_our_key(tmp_path: Path) -> None:
    node = host("n", "10.0.0.9", user="core", port=2222, host_key="ssh-ed25519 AAAA")
    (tmp_path / "key").write_text("k\n")  # ssh -G lists only an identity file it can read
    w = str(tmp_path)
    opts = retire.ssh_options(node, w)
    got = ssh_config(opts)
    assert got["user"] == "core" and got["port"] == "2222"
    assert got["identityfile"] == f"{w}/key" and got["identitiesonly"] == "yes"
    assert got["batchmode"] == "yes" and got["connecttimeout"] == "10"
    assert got["connectionattempts"] == "3"
    assert got["serveraliveinterval"] == "15" and got["serveralivecountmax"] == "4"
    assert got["hostkeyalias"] == retire.HOST_ALIAS == "kube-ha-retired-node"
    assert got["stricthostkeychecking"] == "true"
    assert got["userknownhostsfile"] == f"{w}/known_hosts"
    assert got["globalknownhostsfile"] == "/dev/null"
    assert opts[:3] == ["-F", "/dev/null", "-n"]  # no user ssh_config; stdin never read


def test_ssh_without_a_recorded_host_key_verifies_nothing() -> None:
    got = ssh_config(retire.ssh_options(host("n", "10.0.0.9"), "/w"))
    assert got["stricthostkeychecking"] == "false"
    assert got["userknownhostsfile"] == "/dev/null"
    assert "hostkeyalias" not in got
    assert got["user"] == "root" and got["port"] == "22"


def test_a_node_without_an_ssh_session_is_skipped_and_says_so(tmp_path: Path) -> None:
    """The probe cannot connect (nothing listens on 127.0.0.1:1): exit 0, the reset skipped,
    named on stderr, and no second ssh runs; the pinned key and our private key (0600, with its
    trailing newline) were what ssh got."""
    node = host("gone-node", "127.0.0.1", port=1, host_key="ssh-ed25519 AAAAPIN")
    text = retire.retire_command(node, "kubeadm reset --force")
    assert text.startswith("set -u\numask 077\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "ssh.log"
    (bindir / "ssh").write_text(
        "#!/bin/sh\n"
        f'printf "argv %s\\n" "$*" >> {log}\n'
        f'for a in "$@"; do case "$a" in *=*/known_hosts) f=${{a#*=}}; cat "$f" >> {log};; '
        f'*/key) cat "$a" >> {log}; echo "mode $(stat -c %a "$a")" >> {log};; esac; done\n'
        'exec /usr/bin/ssh "$@"\n')
    (bindir / "ssh").chmod(0o755)
    res = subprocess.run(["sh", "-c", text], input="PRIVATE-KEY", capture_output=True, text=True,
                         timeout=60, env={"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    assert "kube-ha: gone-node (127.0.0.1) gave no SSH session" in res.stderr
    assert "its kubeadm reset was skipped" in res.stderr
    lines = log.read_text().splitlines()
    argv = [line for line in lines if line.startswith("argv ")]
    assert len(argv) == 1 and argv[0].endswith("-- 127.0.0.1 true")
    assert "PRIVATE-KEY" in lines and "mode 600" in lines
    assert "kube-ha-retired-node ssh-ed25519 AAAAPIN" in lines


LOCAL_SSH = """#!/bin/sh
# ssh to a node that answers: the remote command runs in a local shell, as ssh hands it to
# the login shell; it records its argv and the files of the step's directory (from -i).
printf 'argv %s\\n' "$*" >> "$LOG"
for a in "$@"; do case "$a" in */key) d=${a%/key}; echo "dir $d" >> "$LOG"; ls "$d" >> "$LOG";; esac; done
while [ "$1" != "--" ]; do shift; done; shift 2
case "${SIGNAL:-}:$*" in
  probe:true) kill -TERM "$PPID"; sleep 0.3 ;;
  remote:true) ;;
  remote:*) (sleep 0.3; kill -TERM "$PPID") & ;;
esac
# Killed, ssh ends the session (and says so here).
sh -c "$*" &
child=$!
trap 'echo "ssh got TERM" >> "$LOG"; kill "$child" 2>/dev/null; exit 255' TERM
wait "$child"
"""


def run_answering(tmp_path: Path, node: Host, remote: str, signal: str = ""
                  ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ssh").write_text(LOCAL_SSH)
    (bindir / "ssh").chmod(0o755)
    log = tmp_path / "ssh.log"
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path), "LOG": str(log),
           "SIGNAL": signal}
    res = subprocess.run(["sh", "-c", retire.retire_command(node, remote)], input="KEY", capture_output=True,
                         text=True, timeout=60, env=env)
    return res, log.read_text().splitlines()


def test_a_node_that_answers_runs_the_remote_script_and_its_status_is_the_steps(tmp_path: Path) -> None:
    """A session probe that succeeds, then the remote script; its exit status is the step's,
    and the step's directory (our key) is gone afterwards. Without a recorded host key no
    known_hosts is written."""
    res, lines = run_answering(tmp_path, host("n", "10.0.0.9"), "echo remote-ran; exit 3")
    argv = [line for line in lines if line.startswith("argv ")]
    assert len(argv) == 2 and argv[0].endswith("-- 10.0.0.9 true")
    assert res.returncode == 3 and "remote-ran" in res.stdout
    assert "gave no SSH session" not in res.stderr
    (workdir,) = {line[4:] for line in lines if line.startswith("dir ")}
    assert "key" in lines and "known_hosts" not in lines
    assert not Path(workdir).exists()


def test_a_signal_during_the_probe_still_removes_the_key(tmp_path: Path) -> None:
    """dash runs no EXIT trap when a signal ends it: the step turns the signal into an exit."""
    res, lines = run_answering(tmp_path, host("n", "10.0.0.9"), "echo remote-ran", signal="probe")
    (workdir,) = {line[4:] for line in lines if line.startswith("dir ")}
    assert res.returncode == 1 and "remote-ran" not in res.stdout
    assert not Path(workdir).exists()



def test_a_signal_during_the_reset_stops_it_and_still_removes_the_key(tmp_path: Path) -> None:
    """Once the remote script runs, a signal ends its ssh session too: no reset goes on
    unwatched, and the key is removed."""
    res, lines = run_answering(tmp_path, host("n", "10.0.0.9"), "sleep 1", signal="remote")
    (workdir,) = {line[4:] for line in lines if line.startswith("dir ")}
    assert res.returncode == 1 and not Path(workdir).exists()
    assert "ssh got TERM" in lines

# --- the endpoint's name in /etc/hosts (hosts_entry.py) -----------------------------------

def test_hosts_entry_lines_only_when_the_program_keeps_the_name(tmp_path: Path) -> None:
    raw = copy.deepcopy(dev_stack())
    assert hosts_entry.hosts_entry_lines(parse_cluster(raw)) == []
    raw["endpoint"]["manageHostsEntry"] = True
    lines = hosts_entry.hosts_entry_lines(parse_cluster(raw))
    assert lines[1] == "hosts_entry api.k8s.lab.internal 10.21.22.101"
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n10.9.9.9 api.k8s.lab.internal # kube-ha\n")
    text = "\n".join(["set -euo pipefail", "log() { echo \"$*\" >&2; }", *lines])
    for _ in range(2):
        res = subprocess.run(["bash", "-c", text], capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "KUBE_HA_HOSTS_FILE": str(hosts)})
        assert res.returncode == 0, res.stderr
    assert hosts.read_text() == "127.0.0.1 localhost\n10.21.22.101 api.k8s.lab.internal # kube-ha\n"
    assert hosts_entry.HOSTS == "${KUBE_HA_HOSTS_FILE:-/etc/hosts}"
    assert hosts_entry.HOSTS_FILE == "/etc/hosts" and hosts_entry.MARK == "# kube-ha"


# --- etcd (etcd.py): a host etcdctl answering in etcdctl's formats --------------------------

ETCDCTL = r'''#!@PYTHON@ -S
"""etcdctl for the etcd.py scripts, answering as etcdctl 3.x does (etcd-io/etcd etcdctl/ctlv3):
- member list (simple): "ID, STATUS, NAME, PEER ADDRS, CLIENT ADDRS, IS LEARNER" rows
  (command/printer.go makeMemberListTable, printer_simple.go joins with ", ").
- endpoint health [--cluster]: per endpoint "<url> is healthy: successfully committed proposal:
  took = <d>" or "<url> is unhealthy: failed to commit proposal: <err>", then on any unhealthy
  "Error: unhealthy cluster", exit 1 (command/ep_command.go; the lines as this machine's real
  etcdctl printed them against three real members, one killed).
- member remove <hex id>: "Member <id> removed from cluster <cid>" (member_command.go,
  printer_simple.go MemberRemove); an unknown id "Error: etcdserver: member not found", and
  while the cluster is not ready to reconfigure "Error: etcdserver: unhealthy cluster", exit 1.
Every call is recorded (argv and ETCDCTL_API) in calls.jsonl beside the state."""
import json, os, sys
state_path = "@STATE@"
st = json.load(open(state_path))
argv = sys.argv[1:]
with open(os.path.join(os.path.dirname(state_path), "calls.jsonl"), "a") as f:
    f.write(json.dumps({"argv": argv, "api": os.environ.get("ETCDCTL_API")}) + "\n")
words = [a for a in argv if not a.startswith("-")]
def rows():
    return [", ".join([m["id"], m.get("status", "started"), m["name"], m["peer"], m["client"],
                       "true" if m.get("learner") else "false"]) for m in st["members"]]
if words[:2] == ["member", "list"]:
    print("\n".join(rows()))
    sys.exit(0)
if words[:2] == ["endpoint", "health"]:
    targets = [(m["client"], m.get("healthy", True)) for m in st["members"]] if "--cluster" in argv \
        else [("https://127.0.0.1:2379", st.get("local_healthy", True))]
    bad = False
    for url, ok in targets:
        if ok:
            print(f"{url} is healthy: successfully committed proposal: took = 1.2ms", file=sys.stderr)
        else:
            bad = True
            print(f"{url} is unhealthy: failed to commit proposal: context deadline exceeded", file=sys.stderr)
    if bad:
        print("Error: unhealthy cluster", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
if words[:2] == ["member", "remove"]:
    if st.get("not_ready", 0) > 0:
        st["not_ready"] -= 1
        json.dump(st, open(state_path, "w"))
        print("Error: etcdserver: unhealthy cluster", file=sys.stderr)
        sys.exit(1)
    if st.get("remove_error"):
        print(st["remove_error"], file=sys.stderr)
        sys.exit(1)
    left = [m for m in st["members"] if m["id"] != words[2]]
    if len(left) == len(st["members"]):
        print("Error: etcdserver: member not found", file=sys.stderr)
        sys.exit(1)
    st["members"] = left
    json.dump(st, open(state_path, "w"))
    print(f"Member {words[2]} removed from cluster cdf818194e3a8c32")
    sys.exit(0)
print("unsupported", argv, file=sys.stderr)
sys.exit(2)
'''

# `sleep` as the scripts call it between retries, recorded and not waited out (only the
# count and the length matter here).
SLEEP = "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/sleeps\"\n"


def member(n: int, name: str | None = None, **kw: Any) -> dict[str, Any]:
    return {"id": f"{n:016x}", "name": f"m{n}" if name is None else name,
            "peer": f"https://10.0.0.{n}:2380", "client": f"https://10.0.0.{n}:2379", **kw}


@dataclass
class FakeEtcd:
    bindir: Path

    def set(self, members: list[dict[str, Any]], **extra: Any) -> None:
        (self.bindir / "state.json").write_text(json.dumps({"members": members, **extra}))
        for f in ("calls.jsonl", "sleeps"):
            (self.bindir / f).unlink(missing_ok=True)

    def names(self) -> list[str]:
        return [m["name"] for m in json.loads((self.bindir / "state.json").read_text())["members"]]

    def calls(self) -> list[dict[str, Any]]:
        path = self.bindir / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def removes(self) -> list[str]:
        return [c["argv"][-1] for c in self.calls() if "remove" in c["argv"]]

    def sleeps(self) -> list[str]:
        path = self.bindir / "sleeps"
        return path.read_text().split() if path.exists() else []

    def first_on_path(self, text: str) -> str:
        """`text` with this bin directory (etcdctl, and sleep when recorded) first on PATH."""
        return f"PATH={self.bindir}:$PATH\n{text}"

    def run(self, text: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-s"], input=text, capture_output=True, text=True, timeout=60,
                              env={"PATH": f"{self.bindir}:/usr/bin:/bin"})


def make_fake_etcd(bindir: Path, sleep: bool) -> FakeEtcd:
    bindir.mkdir(parents=True, exist_ok=True)
    tool = bindir / "etcdctl"
    tool.write_text(ETCDCTL.replace("@PYTHON@", sys.executable).replace("@STATE@", str(bindir / "state.json")))
    tool.chmod(0o755)
    if sleep:
        (bindir / "sleep").write_text(SLEEP)
        (bindir / "sleep").chmod(0o755)
    fake = FakeEtcd(bindir)
    fake.set([])
    return fake


@pytest.fixture()
def fake_etcd(tmp_path: Path) -> FakeEtcd:
    return make_fake_etcd(tmp_path / "etcdbin", sleep=True)


def remove(fake: FakeEtcd, name: str, address: str) -> subprocess.CompletedProcess[str]:
    return fake.run(etcd.member_removal_script(name, address))


def test_a_healthy_majority_lets_a_member_go_once(fake_etcd: FakeEtcd) -> None:
    fake_etcd.set([member(1), member(2), member(3)])
    first = remove(fake_etcd, "m3", "10.0.0.3")
    assert first.returncode == 0, first.stderr
    assert fake_etcd.removes() == [f"{3:016x}"] and fake_etcd.names() == ["m1", "m2"]
    assert f"kube-ha[remove-etcd-member m3]: removed etcd member m3 ({3:016x}); 2 members remain" in first.stderr
    call = fake_etcd.calls()[0]
    assert call["api"] == "3"
    assert call["argv"][:4] == ["--endpoints=https://127.0.0.1:2379",
                                "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
                                "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
                                "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key"]
    assert "--command-timeout=10s" in call["argv"]
    second = remove(fake_etcd, "m3", "10.0.0.3")
    assert second.returncode == 0 and "m3 is not an etcd member: nothing to remove" in second.stderr
    assert fake_etcd.removes() == [f"{3:016x}"]  # no second remove


def test_a_member_is_found_by_its_address_and_not_by_a_longer_one(fake_etcd: FakeEtcd) -> None:
    """A node renamed since its join still has its member at its address; 10.0.0.1 is not
    10.0.0.11."""
    fake_etcd.set([member(11), member(2), member(3, name="old-name")])
    assert remove(fake_etcd, "m1", "10.0.0.1").returncode == 0
    assert fake_etcd.removes() == []
    assert remove(fake_etcd, "new-name", "10.0.0.3").returncode == 0
    assert fake_etcd.removes() == [f"{3:016x}"]


@pytest.mark.parametrize(("healthy", "target", "allowed", "why"), [
    ([True, False, True], "m3", False, "1 healthy members would remain, 2 of 2 needed for quorum"),
    ([True, False, True], "m2", True, ""),            # the dead one: the other two remain
    ([True, True, True, False, False], "m1", False, "2 healthy members would remain, 3 of 4 needed"),
    ([True, True, True, True, False], "m1", True, ""),  # 3 healthy of 4: a majority
    ([True, True, True, False, True], "m4", True, ""),
    ([True, True, False, False, True], "m3", True, ""),  # 3 healthy of 4 after removing a dead one
])
def test_removal_keeps_a_healthy_majority_of_the_members_left(
        fake_etcd: FakeEtcd, healthy: list[bool], target: str, allowed: bool, why: str) -> None:
    members = [member(i + 1, healthy=h) for i, h in enumerate(healthy)]
    fake_etcd.set(members)
    index = int(target[1:])
    res = remove(fake_etcd, target, f"10.0.0.{index}")
    if allowed:
        assert res.returncode == 0, res.stderr
        assert fake_etcd.removes() == [f"{index:016x}"]
    else:
        assert res.returncode == 1
        assert f"refusing to remove {target}: {why}" in res.stderr
        assert fake_etcd.removes() == [] and len(fake_etcd.names()) == len(healthy)


def test_the_last_member_is_never_removed(fake_etcd: FakeEtcd) -> None:
    fake_etcd.set([member(1)])
    res = remove(fake_etcd, "m1", "10.0.0.1")
    assert res.returncode == 1 and "refusing: m1 is the last etcd member" in res.stderr
    assert fake_etcd.removes() == []
    assert [c["argv"][-2:] for c in fake_etcd.calls()] == [["member", "list"]]  # refused at once
    fake_etcd.set([member(1), member(2)])  # two healthy: one remains, a majority of one
    assert remove(fake_etcd, "m1", "10.0.0.1").returncode == 0
    assert fake_etcd.names() == ["m2"]


def test_a_not_yet_ready_cluster_is_waited_out_then_the_member_goes(fake_etcd: FakeEtcd) -> None:
    fake_etcd.set([member(1), member(2), member(3)], not_ready=2)
    res = remove(fake_etcd, "m3", "10.0.0.3")
    assert res.returncode == 0, res.stderr
    assert fake_etcd.sleeps() == ["2", "2"]
    assert "etcd not ready to reconfigure (attempt 2): retrying in 2 s" in res.stderr
    assert fake_etcd.names() == ["m1", "m2"]


def test_a_cluster_never_ready_fails_after_fifteen_attempts(fake_etcd: FakeEtcd) -> None:
    fake_etcd.set([member(1), member(2), member(3)], not_ready=15)
    res = remove(fake_etcd, "m3", "10.0.0.3")
    assert res.returncode == 1
    assert len(fake_etcd.removes()) == 15 and len(fake_etcd.sleeps()) == 14
    assert res.stderr.rstrip().endswith("Error: etcdserver: unhealthy cluster")
    fake_etcd.set([member(1), member(2), member(3)], not_ready=14)
    assert remove(fake_etcd, "m3", "10.0.0.3").returncode == 0


def test_any_other_removal_error_fails_at_once(fake_etcd: FakeEtcd) -> None:
    fake_etcd.set([member(1), member(2), member(3)], remove_error="Error: permission denied")
    res = remove(fake_etcd, "m3", "10.0.0.3")
    assert res.returncode == 1 and "Error: permission denied" in res.stderr
    assert len(fake_etcd.removes()) == 1 and fake_etcd.sleeps() == []


def test_an_ipv6_member_is_found_and_its_healthy_peers_count(fake_etcd: FakeEtcd) -> None:
    """etcdctl prints an IPv6 client URL with its brackets, in `member list` as in `endpoint
    health --cluster` (this machine's etcd on [::1]: "http://[::1]:23791 is healthy: ...")."""
    members = [member(i) for i in (1, 2, 3)]
    for i, m in enumerate(members, 1):
        m.update(peer=f"https://[fd00::{i}]:2380", client=f"https://[fd00::{i}]:2379")
    fake_etcd.set(members)
    res = remove(fake_etcd, "m3", "fd00::3")
    assert res.returncode == 0, res.stderr
    assert fake_etcd.removes() == [f"{3:016x}"]


def test_departing_control_plane_nodes_go_in_turn_each_as_its_kubelet_allows(tmp_path: Path) -> None:
    """Three control-plane nodes leave at once, each taken out in list order: the live one
    drained, the one whose kubelet is gone only cordoned (a drain would wait out its timeout
    for pods only a live kubelet confirms gone, then fail), the one whose Node never
    registered neither; every member and Node goes. The list is split on blanks, never
    globbed: `ubuntu-71,[fd00::71]` is a glob bracket expression, and a file in the step's
    directory that it matches must not replace the address the member is found by."""
    cluster = cluster_of()
    n = {h.name: h for h in cluster.nodes}
    ipv6 = host("ubuntu-71", "fd00::71")
    fake = make_fake_etcd(tmp_path / "etcdbin", sleep=False)
    members = [member(73, "ubuntu-73"), member(72, "ubuntu-72"), member(71, "etcd-71"), member(70, "ubuntu-70")]
    members[2].update(peer="https://[fd00::71]:2380", client="https://[fd00::71]:2379")
    fake.set(members)
    step_dir = tmp_path / "cwd"
    step_dir.mkdir()
    (step_dir / "ubuntu-71,f").touch()
    with ScriptHost(tmp_path / "world", cluster, real_etcd=False) as sh:
        seed_cluster(sh, control_plane=[n["ubuntu-73"], n["ubuntu-72"], n["ubuntu-70"]],
                     endpoint=cluster.endpoint.host_port)
        sh.stop_kubelet("ubuntu-72")
        text = etcd.control_plane_removals_script((n["ubuntu-72"], ipv6, n["ubuntu-70"]))
        res = sh.run("ubuntu-73", fake.first_on_path(f"cd {step_dir}\n{text}"))
        nodes = sh.state()["nodes"]
    assert res.rc == 0, res.explain()
    assert fake.removes() == [f"{i:016x}" for i in (72, 71, 70)]
    acted = [(c.verb, c.argv[c.argv.index(c.verb.split()[-1]) + 1]) for c in res.calls
             if c.verb in ("kubectl drain", "kubectl cordon", "kubectl delete node")]
    assert acted == [("kubectl cordon", "ubuntu-72"), ("kubectl delete node", "ubuntu-72"),
                     ("kubectl delete node", "ubuntu-71"),
                     ("kubectl drain", "ubuntu-70"), ("kubectl delete node", "ubuntu-70")]
    assert set(nodes) == {"ubuntu-73"}
    log = "kube-ha[control-plane-removals]: "
    for name in ("ubuntu-72", "ubuntu-71", "ubuntu-70"):
        assert f"{log}{name} left the control plane: removing it from here" in res.stderr
    assert (f"{log}ubuntu-72 is NotReady (its kubelet is gone): cordoned, not drained; deleting its Node "
            "frees its pods") in res.stderr


@pytest.mark.parametrize(("row", "voting"), [
    ({}, True), ({"learner": True}, False), ({"status": "unstarted"}, False)])
def test_membership_is_a_started_voting_member_of_that_name(fake_etcd: FakeEtcd, row: dict[str, Any],
                                                            voting: bool) -> None:
    """kubeadm adds a member as a learner and promotes it later (EtcdLearnerMode); a learner
    or an unstarted member does not count."""
    fake_etcd.set([member(1), member(2, name="node-b", **row)])
    res = fake_etcd.run(etcd.membership_check_script(host("node-b", "10.0.0.2")))
    assert res.returncode == (0 if voting else 1)
    said = "is a started, voting etcd member" if voting else "is not a started, voting etcd member"
    assert f"kube-ha[membership node-b]: node-b {said}" in res.stderr
    assert fake_etcd.run(etcd.membership_check_script(host("node", "10.0.0.2"))).returncode == 1


def test_etcdctl_in_the_etcd_container_when_the_host_has_none() -> None:
    """A kubeadm node ships no etcdctl: the function runs it in the etcd container, with the
    same endpoints and client pair."""
    fn = etcd.EtcdAccess().function()
    # crictl as a shell function that says how it was called (what matters is the argv the
    # function builds); `ps -q` prints one container ID, as the real one does.
    res = subprocess.run(["/bin/bash", "-c", fn + '\nlog() { echo "$*" >&2; }\n'
                          'crictl() { echo "crictl $*" >&2; [ "$1" != ps ] || echo c0ffee; }\n'
                          'head() { command /usr/bin/head "$@"; }\netcdctl_ member list'],
                         capture_output=True, text=True, env={"PATH": "/nonexistent"})
    lines = res.stderr.splitlines()
    assert lines[0] == "crictl ps -q --name ^etcd$"
    assert lines[1] == ("crictl exec c0ffee etcdctl --endpoints=https://127.0.0.1:2379 "
                        "--cacert=/etc/kubernetes/pki/etcd/ca.crt "
                        "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt "
                        "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key "
                        "--command-timeout=10s member list")
    bare = etcd.EtcdAccess(endpoints="http://e:1", cacert=None, cert=None, key=None).function()
    assert "--cacert" not in bare and "--endpoints=http://e:1" in bare


# --- the scripts, run on fake nodes ---------------------------------------------------------

@dataclass
class World:
    host: ScriptHost
    cluster: Cluster
    etcd: FakeEtcd
    ca: pki.KeyPair
    serving: pki.KeyPair
    steps: dict[str, StepResult]

    def run(self, node: str, text: str, etcdctl: bool = False, **kw: Any) -> StepResult:
        return self.host.run(node, self.etcd.first_on_path(text) if etcdctl else text, **kw)


def configmap(world: World, namespace: str, name: str) -> dict[str, str]:
    found = world.host.configmap(namespace, name)
    assert found is not None, f"configmap {namespace}/{name} missing"
    return found


def issue(ca: pki.KeyPair, cluster: Cluster, node: Host) -> pki.KeyPair:
    sans = apiserver_sans(cluster, node)
    return pki.issue(ca, "kube-apiserver", dns=list(sans.dns_names), ips=list(sans.ip_addresses))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A new cluster as the program builds it: install-ca (again, then with another CA),
    bootstrap twice, a worker's credentials and join (twice)."""
    cluster = cluster_of()
    boot = cluster.bootstrap
    ca = pki.make_ca()
    mine = issue(ca, cluster, boot)
    tmp = tmp_path_factory.mktemp("kubeadm-pins")
    fake = make_fake_etcd(tmp / "etcdbin", sleep=False)
    with ScriptHost(tmp / "world", cluster, real_etcd=False, cni=True) as sh:
        w = World(sh, cluster, fake, ca, mine, {})
        s = w.steps
        s["install"] = sh.run(boot.name, ks.install_ca_script(ca.cert_pem, ca.key_pem))
        s["install-again"] = sh.run(boot.name, ks.install_ca_script(ca.cert_pem, ca.key_pem))
        other = pki.make_ca()
        s["install-other"] = sh.run(boot.name, ks.install_ca_script(other.cert_pem, other.key_pem))
        text = ks.bootstrap_script(cluster, mine.cert_pem, mine.key_pem)
        s["bootstrap"] = sh.run(boot.name, text)
        s["bootstrap-again"] = sh.run(boot.name, text)
        s["creds"] = sh.run(boot.name, ks.join_credentials_script(cluster, False))
        creds = json.loads(s["creds"].stdout)
        worker = cluster.node("ubuntu-74")
        s["worker"] = sh.run(worker.name, ks.worker_join_script(cluster, worker, creds))
        yield w


def test_install_ca_places_the_ca_once_and_never_replaces_another(world: World) -> None:
    s, boot = world.steps, world.cluster.bootstrap.name
    assert s["install"].rc == 0, s["install"].explain()
    assert world.host.file(boot, "/etc/kubernetes/pki/ca.crt").read_text() == world.ca.cert_pem
    key = world.host.file(boot, "/etc/kubernetes/pki/ca.key")
    assert key.read_text() == world.ca.key_pem and oct(key.stat().st_mode & 0o777) == "0o600"
    assert s["install-again"].rc == 0 and "cluster CA already installed" in s["install-again"].stderr
    assert s["install-other"].rc == 1
    assert ("/etc/kubernetes/pki/ca.crt holds another CA: refusing to replace it (use caSource: import)"
            in s["install-other"].stderr)


def test_bootstrap_inits_once_with_our_config_then_only_checks(world: World) -> None:
    first, again = world.steps["bootstrap"], world.steps["bootstrap-again"]
    assert first.rc == 0, first.explain()
    (init,) = first.of("kubeadm init")
    assert first.calls[0] == init
    assert init.argv == ("init", "--config=/etc/kubernetes/kube-ha/kubeadm.yaml", "--upload-certs",
                         "--skip-token-print", "--skip-certificate-key-print")
    assert yaml.safe_load_all(init.config or "") is not None
    boot = world.cluster.bootstrap.name
    assert world.host.file(boot, admin.MANAGED_MARKER).read_text() == "kubeadm init/join run by kube-ha\n"
    assert not world.host.file(boot, ks.INIT_MARKER).exists()
    assert world.host.state()["nodes"][boot]["annotations"]["kube-ha.io/joined-by"] == "kube-ha"
    assert again.rc == 0, again.explain()
    assert "cluster already initialised" in again.stderr
    assert not [c for c in again.calls if c.tool in ("kubeadm", "systemctl")]
    assert not again.of("kubectl apply")
    asked = again.calls[0]
    assert asked.verb == "kubectl get configmap" and "--kubeconfig=/etc/kubernetes/super-admin.conf" in asked.argv
    assert "configmap kube-system/kubeadm-config already up to date" in again.stderr
    assert "configmap kube-public/cluster-info already up to date" in again.stderr
    cc = yaml.safe_load(configmap(world, "kube-system", "kubeadm-config")["ClusterConfiguration"])
    assert cc["controlPlaneEndpoint"] == "api.k8s.lab.internal:6443"


def test_worker_joins_once_as_a_worker_with_a_configuration_file(world: World) -> None:
    res = world.steps["worker"]
    assert world.steps["creds"].rc == 0, world.steps["creds"].explain()
    creds = json.loads(world.steps["creds"].stdout)
    assert creds["certificateKey"] == "" and creds["caCertHash"].startswith("sha256:")
    (token,) = world.steps["creds"].of("kubeadm token create")
    assert "--ttl=1h" in token.argv and "--description=kube-ha join" in token.argv
    assert res.rc == 0, res.explain()
    (join,) = res.of("kubeadm join")
    assert join.argv == ("join", "--config=/etc/kubernetes/kube-ha/join.yaml")
    doc = yaml.safe_load(join.config or "")
    assert "controlPlane" not in doc and doc["discovery"]["bootstrapToken"]["token"] == creds["token"]
    assert not world.host.file("ubuntu-74", "/etc/kubernetes/kube-ha/join.yaml").exists()
    assert world.host.file("ubuntu-74", admin.MANAGED_MARKER).exists()
    assert "ubuntu-74 joined" in res.stderr
    again = world.host.run("ubuntu-74", ks.worker_join_script(world.cluster, world.cluster.node("ubuntu-74"),
                                                              creds))
    assert again.rc == 0 and not again.calls and "ubuntu-74 already joined" in again.stderr


def test_a_node_local_proxy_left_on_a_worker_is_stopped_after_its_kubelet_is_repointed(world: World) -> None:
    """nodeLocalProxy off: kube-ha's own node-local haproxy is disabled and its config set
    aside; anyone else's haproxy is left alone."""
    cfg = world.host.file("ubuntu-74", "/etc/haproxy/haproxy.cfg")
    text = ks.worker_join_script(world.cluster, world.cluster.node("ubuntu-74"), CREDS)
    cfg.write_text("global\n")
    res = world.host.run("ubuntu-74", text)
    assert res.rc == 0 and not res.calls and cfg.read_text() == "global\n"
    cfg.write_text(f"{NODE_LOCAL_MARK}\nglobal\n")
    res = world.host.run("ubuntu-74", text)
    assert res.rc == 0, res.explain()
    assert [c.line for c in res.calls] == ["systemctl disable --now haproxy"]
    assert not cfg.exists()
    assert [p.name.startswith("haproxy.cfg.kube-ha-off-") for p in cfg.parent.iterdir()] == [True]
    assert "nodeLocalProxy is off" in res.stderr


def test_control_plane_join_joins_once_then_checks_node_and_etcd(world: World) -> None:
    c = world.cluster
    creds_res = world.host.run(c.bootstrap.name, ks.join_credentials_script(c, True))
    assert creds_res.rc == 0, creds_res.explain()
    creds = json.loads(creds_res.stdout)
    assert len(creds["certificateKey"]) == 64
    (upload,) = creds_res.of("kubeadm init phase upload-certs")
    assert upload.argv[:4] == ("init", "phase", "upload-certs", "--upload-certs")
    assert creds["certificateKey"] not in " ".join(upload.argv)
    assert creds["certificateKey"] in (upload.config or "")
    node = c.node("ubuntu-70")
    pair = issue(world.ca, c, node)
    world.etcd.set([member(1, "ubuntu-73"), member(2, "ubuntu-70")])
    text = ks.control_plane_join_script(c, node, pair.cert_pem, pair.key_pem, creds)
    res = world.run(node.name, text, etcdctl=True)
    assert res.rc == 0, res.explain()
    (join,) = res.of("kubeadm join")
    assert yaml.safe_load(join.config or "")["controlPlane"]["certificateKey"] == creds["certificateKey"]
    assert world.host.file(node.name, "/etc/kubernetes/pki/apiserver.crt").read_text() == pair.cert_pem
    (wait,) = res.of("kubectl wait")
    assert {"--for=condition=Ready", "node/ubuntu-70", "--timeout=600s"} <= set(wait.argv)
    assert not any(a.startswith("--request-timeout") for a in wait.argv)  # a watch outlives one request
    assert res.of("kubectl annotate")
    assert [c["argv"][-2:] for c in world.etcd.calls()] == [["endpoint", "health"]]
    assert ("kube-ha[join-control-plane ubuntu-70]: ubuntu-70 is a control-plane node with a healthy etcd"
            " member") in res.stderr
    assert "no Node is Ready" not in res.stderr  # a Node is Ready: the pod network is there
    # Second run: already a member; nothing joined, nothing restarted, etcd checked again.
    again = world.run(node.name, text, etcdctl=True)
    assert again.rc == 0, again.explain()
    assert "already a control-plane node" in again.stderr
    assert not again.of("kubeadm join") and not again.of("systemctl restart")
    # etcd unhealthy: the join step fails, naming the node.
    world.etcd.set([member(1, "ubuntu-73"), member(2, "ubuntu-70")], local_healthy=False)
    bad = world.run(node.name, text, etcdctl=True)
    assert bad.rc == 1 and "etcd on ubuntu-70 unhealthy" in bad.stderr


def test_a_control_plane_node_that_left_is_drained_its_member_removed_then_its_node_deleted(
        world: World) -> None:
    """Guard first, then drain, etcd member, Node; a refused removal touches nothing."""
    node = world.cluster.node("ubuntu-70")
    text = etcd.control_plane_removals_script((node,))
    members = [member(1, "ubuntu-73"), member(70, "ubuntu-70"), member(3, "ubuntu-72")]
    members[1]["peer"] = "https://10.21.22.70:2380"
    members[2]["healthy"] = False
    world.etcd.set(copy.deepcopy(members))
    refused = world.run(world.cluster.bootstrap.name, text, etcdctl=True)
    assert refused.rc == 1 and "refusing to remove ubuntu-70" in refused.stderr
    assert not refused.of("kubectl drain") and not refused.of("kubectl delete node")
    members[2]["healthy"] = True
    world.etcd.set(members)
    res = world.run(world.cluster.bootstrap.name, text, etcdctl=True)
    assert res.rc == 0, res.explain()
    verbs = [c.verb for c in res.calls if c.verb in ("kubectl drain", "kubectl delete node")]
    assert verbs == ["kubectl drain", "kubectl delete node"]
    (drain,) = res.of("kubectl drain")
    assert {"ubuntu-70", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=300s"} <= set(drain.argv)
    assert world.etcd.removes() == [f"{70:016x}"]
    assert "ubuntu-70" not in world.host.state()["nodes"]
    assert "kube-ha[control-plane-removals]: ubuntu-70 left the control plane: removing it from here" in res.stderr
    assert "ubuntu-70 removed from the control plane" in res.stderr
    # A node whose Node never registered: nothing to drain or cordon; its member still goes.
    never = world.cluster.node("ubuntu-72")
    world.etcd.set([member(1, "ubuntu-73"), member(2, "ubuntu-70"), member(72, "ubuntu-72")])
    gone = world.run(world.cluster.bootstrap.name, etcd.control_plane_removals_script((never,)), etcdctl=True)
    assert gone.rc == 0, gone.explain()
    assert not gone.of("kubectl drain") and not gone.of("kubectl cordon")
    assert world.etcd.removes() == [f"{72:016x}"]
    none = world.run(world.cluster.bootstrap.name, etcd.control_plane_removals_script(), etcdctl=True)
    assert none.rc == 0 and not none.calls and "no control-plane node left the list" in none.stderr


def test_workers_that_left_are_drained_and_deleted_and_listed_ones_never(world: World) -> None:
    c = world.cluster
    worker = c.node("ubuntu-74")
    kept = world.host.run(c.bootstrap.name, ks.workers_reconcile_script(c, (worker,)))
    assert kept.rc == 0 and not kept.calls  # still listed by name: never removed
    raw = copy.deepcopy(dev_stack())
    raw["workers"] = raw["workers"][1:]
    raw["elasticApiserver"]["poolNodes"] = ["ubuntu-75", "ubuntu-70"]
    smaller = parse_cluster(raw)
    res = world.host.run(c.bootstrap.name, ks.workers_reconcile_script(smaller, (worker,)))
    assert res.rc == 0, res.explain()
    assert [x.verb for x in res.calls if x.verb != "kubectl get node"] == ["kubectl drain", "kubectl delete node"]
    (delete,) = res.of("kubectl delete node")
    assert {"ubuntu-74", "--ignore-not-found", "--wait=false"} <= set(delete.argv)
    assert "worker ubuntu-74 left the config: draining it and deleting its Node" in res.stderr
    again = world.host.run(c.bootstrap.name, ks.workers_reconcile_script(smaller, (worker,)))
    assert again.rc == 0 and not again.of("kubectl drain") and not again.of("kubectl delete node")
    none = world.host.run(c.bootstrap.name, ks.workers_reconcile_script(smaller))
    assert "no worker left the list" in none.stderr and not none.calls


def test_retire_resets_once_and_reset_spares_what_kube_ha_did_not_join(world: World) -> None:
    first = world.host.run("ubuntu-74", ks.retire_script())
    assert first.rc == 0, first.explain()
    assert [c.line for c in first.calls] == ["kubeadm reset --force"]
    assert not world.host.file("ubuntu-74", admin.MANAGED_MARKER).exists()
    assert "kube-ha[retire]: kubeadm state wiped" in first.stderr
    again = world.host.run("ubuntu-74", ks.retire_script())
    assert again.rc == 0 and not again.calls and "nothing to reset" in again.stderr
    # reset: a node with kubeadm state but no marker is left as it is.
    boot = world.cluster.bootstrap.name
    marker = world.host.file(boot, admin.MANAGED_MARKER)
    saved = marker.read_text()
    marker.unlink()
    spared = world.host.run(boot, ks.reset_script())
    assert spared.rc == 0 and not spared.calls and "not joined by kube-ha" in spared.stderr
    marker.write_text(saved)
    nothing = world.host.run("ubuntu-75", ks.reset_script())
    assert nothing.rc == 0 and not nothing.calls and "nothing to reset" in nothing.stderr


def test_revocation_deletes_only_our_tokens_and_the_uploaded_certificates(world: World) -> None:
    boot = world.cluster.bootstrap.name
    theirs = world.host.run(boot, "kubeadm token create --description=theirs\n")
    assert theirs.rc == 0, theirs.explain()
    res = world.host.run(boot, ks.revoke_join_credentials_script(world.cluster))
    assert res.rc == 0, res.explain()
    left = world.host.state()["tokens"]
    assert [t.get("description") for t in left.values()] == ["theirs"]
    assert res.of("kubectl delete secret") and "kubeadm-certs" in res.of("kubectl delete secret")[0].argv
    assert f"revoked {len(res.of('kubeadm token delete'))} bootstrap tokens" in res.stderr
    assert len(res.of("kubeadm token delete")) >= 2


def test_kube_proxy_is_repointed_at_the_node_local_proxy_and_restarted_once(world: World) -> None:
    boot = world.cluster.bootstrap.name
    same = world.host.run(boot, ks.kube_proxy_script(world.cluster))
    assert same.rc == 0 and not same.of("kubectl apply") and not same.of("kubectl rollout restart")
    local = cluster_of(nodeLocalProxy=True)
    first = world.host.run(boot, ks.kube_proxy_script(local))
    assert first.rc == 0, first.explain()
    assert first.of("kubectl apply") and first.of("kubectl rollout restart")
    conf = configmap(world, "kube-system", "kube-proxy")["kubeconfig.conf"]
    assert "server: https://127.0.0.1:6443" in conf
    second = world.host.run(boot, ks.kube_proxy_script(local))
    assert second.rc == 0 and not second.of("kubectl apply") and not second.of("kubectl rollout restart")


def test_a_new_serving_certificate_is_backed_up_installed_and_served_without_a_restart(world: World) -> None:
    c, boot = world.cluster, world.cluster.bootstrap
    fresh = issue(world.ca, c, boot)
    res = world.host.run(boot.name, ks.serving_certificate_script(c, boot, fresh.cert_pem, fresh.key_pem))
    assert res.rc == 0, res.explain()
    pki_dir = world.host.file(boot.name, "/etc/kubernetes/pki")
    assert (pki_dir / "apiserver.crt").read_text() == fresh.cert_pem
    backups = sorted(p.name.split(".kube-ha-")[0] for p in pki_dir.glob("apiserver.*.kube-ha-*"))
    assert backups == ["apiserver.crt", "apiserver.key"]
    assert not res.of("crictl stop")
    assert "kube-ha[serving-certificate ubuntu-73]: kube-apiserver serves the new certificate (" in res.stderr
    assert "apiserver on ubuntu-73 is ready" in res.stderr
    absent = world.host.run("ubuntu-75", ks.serving_certificate_script(c, c.node("ubuntu-75"), "C", "K"))
    assert absent.rc == 0 and "ubuntu-75 runs no apiserver yet" in absent.stderr
    assert not world.host.file("ubuntu-75", "/etc/kubernetes/pki/apiserver.crt").exists()


@pytest.mark.parametrize("read", [
    lambda g: ks.read_files_script({"ca.crt": "/etc/kubernetes/pki/ca.crt"}, g),
    lambda g: ks.read_static_pod_script("kube-apiserver", g),
    ks.read_admin_kubeconfig_script], ids=["files", "static-pod", "admin-kubeconfig"])
def test_a_new_generation_changes_the_read_step_so_it_runs_again(read: Callable[[str], str]) -> None:
    """A read step's text is its trigger: the copies are read again (renewed certificates, a
    bumped staticPodsRevision) exactly when the generation changes, and not otherwise."""
    assert read("2") != read("3")
    assert read("2") == read("2")


def test_the_read_scripts_print_the_files_only_once_all_are_there(world: World) -> None:
    boot = world.cluster.bootstrap.name
    ca = world.host.run(boot, ks.read_ca_script())
    assert ca.rc == 0 and ca.stdout == world.ca.cert_pem + world.ca.key_pem
    conf = world.host.run(boot, ks.read_admin_kubeconfig_script(0))
    assert conf.rc == 0 and conf.stdout == world.host.file(boot, "/etc/kubernetes/admin.conf").read_text()
    assert "# generation" not in ks.read_admin_kubeconfig_script(0)
    assert "# generation 3" in ks.read_admin_kubeconfig_script(3)
    files = {"ca.crt": "/etc/kubernetes/pki/ca.crt", "sa.pub": "/etc/kubernetes/pki/sa.pub"}
    out = world.host.run(boot, ks.read_files_script(files, 0))
    assert out.rc == 0, out.explain()
    got = {k: base64.b64decode(v).decode() for k, v in json.loads(out.stdout).items()}
    assert got["ca.crt"] == world.ca.cert_pem
    assert got["sa.pub"] == world.host.file(boot, "/etc/kubernetes/pki/sa.pub").read_text()
    missing = world.host.run(boot, ks.read_files_script({**files, "x": "/etc/kubernetes/nope"}, 0))
    assert missing.rc == 1 and missing.stdout == "" and "/etc/kubernetes/nope missing" in missing.stderr
    assert "No such file" not in missing.stderr  # refused before reading any file
    pod = world.host.run(boot, ks.read_static_pod_script("kube-apiserver", "1"))
    assert pod.rc == 0, pod.explain()
    first, *rest = pod.stdout.splitlines()
    kind, b64 = first.split(" ")
    manifest = world.host.file(boot, "/etc/kubernetes/manifests/kube-apiserver.yaml").read_text()
    assert kind == "manifest" and base64.b64decode(b64).decode() == manifest
    carried = {base64.b64decode(p).decode(): base64.b64decode(c).decode()
               for kind, p, c in (line.split(" ") for line in rest) if kind == "file"}
    assert len(carried) == len(rest)
    assert carried["/etc/kubernetes/pki/ca.crt"] == world.ca.cert_pem  # --client-ca-file
    assert carried["/etc/kubernetes/pki/sa.pub"] == got["sa.pub"]  # --service-account-key-file
    sa = world.host.file(boot, "/etc/kubernetes/pki/sa.pub")
    sa.rename(sa.with_name("sa.pub.away"))
    try:
        gone = world.host.run(boot, ks.read_static_pod_script("kube-apiserver", "1"))
    finally:
        sa.with_name("sa.pub.away").rename(sa)
    assert gone.rc == 1 and gone.stdout == ""
    assert "/etc/kubernetes/pki/sa.pub, which the static pod names, is missing" in gone.stderr
    scheduler = world.host.run(boot, ks.read_static_pod_script("kube-scheduler", "1"))
    assert scheduler.rc == 0, scheduler.explain()  # kubeadm's scheduler names no carried file
    assert [line.split(" ")[0] for line in scheduler.stdout.splitlines()] == ["manifest"]
    worker_pod = world.host.run("ubuntu-75", ks.read_static_pod_script("kube-apiserver", "1"))
    assert worker_pod.rc == 1 and worker_pod.stdout == ""
    assert "kube-apiserver.yaml missing: is this a control-plane node?" in worker_pod.stderr
    none = world.host.run("ubuntu-75", ks.read_ca_script())
    assert none.rc == 1 and none.stdout == "" and "is this the bootstrap control-plane node?" in none.stderr
    no_conf = world.host.run("ubuntu-75", ks.read_admin_kubeconfig_script(0))
    assert no_conf.rc == 1 and no_conf.stdout == "" and "is the cluster initialised?" in no_conf.stderr


def test_the_endpoint_check_passes_when_it_answers_and_before_a_cluster_exists(world: World) -> None:
    ok = world.host.run(world.cluster.bootstrap.name, ks.endpoint_check_script(world.cluster))
    assert ok.rc == 0, ok.explain()
    (probe,) = ok.of("kubectl get")
    assert "--server=https://api.k8s.lab.internal:6443" in probe.argv and "--raw=/readyz" in probe.argv
    assert "answers /readyz with a certificate the cluster CA verifies" in ok.stderr
    early = world.host.run("ubuntu-75", ks.endpoint_check_script(world.cluster))
    assert early.rc == 0 and not early.calls and "no cluster here yet" in early.stderr


def unanswering_endpoint() -> Cluster:
    """The dev stack with its endpoint at an address nothing in the world answers on."""
    raw = copy.deepcopy(dev_stack())
    raw["endpoint"] = {"address": "10.21.22.102", "port": 6443}
    raw["loadBalancers"][0]["address"] = "10.21.22.102"
    return parse_cluster(raw)


def test_an_endpoint_that_does_not_answer_fails_the_check_with_the_fix(world: World) -> None:
    """Your own load balancer not yet routing to the control plane: the step fails, saying
    which port to register, rather than re-pointing every kubeconfig at a dead address."""
    res = world.host.run(world.cluster.bootstrap.name,
                         ks.endpoint_check_script(unanswering_endpoint(), attempts=1))
    assert res.rc == 1
    assert len(res.of("kubectl get")) == 1
    assert ("endpoint.address: https://10.21.22.102:6443 does not answer /readyz with a certificate the"
            " cluster CA verifies") in res.stderr
    assert "register every control-plane node on port 6443" in res.stderr


@dataclass
class Adopted:
    host: ScriptHost
    cluster: Cluster
    etcd: FakeEtcd


@pytest.fixture(scope="module")
def adopted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adopted]:
    """The seed's cluster: `kubeadm init` by hand (no kube-proxy, as under Cilium), two workers
    joined by hand, no pod network yet. Each test below passes run alone."""
    cluster = cluster_of()
    tmp = tmp_path_factory.mktemp("adopted")
    fake = make_fake_etcd(tmp / "etcdbin", sleep=False)
    with ScriptHost(tmp / "world", cluster, real_etcd=False, cni=False) as sh:
        seed_cluster(sh, control_plane=[cluster.bootstrap], workers=cluster.workers,
                     endpoint=cluster.endpoint.host_port, kube_proxy=False)
        yield Adopted(sh, cluster, fake)


def test_an_adopted_cluster_without_a_pod_network_joins_without_waiting_for_ready(adopted: Adopted) -> None:
    """The credentials step makes kube-ha's state directory itself (0700, as it holds the
    certificate key's config while kubeadm reads it) and leaves nothing in it; the join
    registers the Node but does not wait for Ready, which no Node reaches before a pod network
    (the kubelet's NetworkReady=false); revocation, run again with nothing left to revoke, is
    a no-op that succeeds."""
    sh, cluster, fake = adopted.host, adopted.cluster, adopted.etcd
    boot, joining = cluster.bootstrap, cluster.node("ubuntu-70")
    state = sh.file(boot.name, NODE_STATE)
    assert not state.exists()
    creds_res = sh.run(boot.name, ks.join_credentials_script(cluster, True))
    assert creds_res.rc == 0, creds_res.explain()
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    assert list(state.iterdir()) == []  # the --config file with the key went on exit
    ca = pki.KeyPair(sh.file(boot.name, "/etc/kubernetes/pki/ca.crt").read_text(),
                     sh.file(boot.name, "/etc/kubernetes/pki/ca.key").read_text())
    pair = issue(ca, cluster, joining)
    fake.set([member(1, boot.name), member(2, joining.name)])
    text = ks.control_plane_join_script(cluster, joining, pair.cert_pem, pair.key_pem,
                                        json.loads(creds_res.stdout))
    res = sh.run(joining.name, fake.first_on_path(text))
    assert res.rc == 0, res.explain()
    assert res.of("kubeadm join") and not res.of("kubectl wait")
    assert [c.argv[-1] for c in res.of("kubectl get node")] == ["ubuntu-70"]
    assert ("kube-ha[join-control-plane ubuntu-70]: no Node is Ready (no pod network yet): not waiting for"
            " ubuntu-70 to turn Ready; apply a pod network (README, Prerequisites)") in res.stderr
    # A member whose kubelet dials another address (joined before the endpoint existed) is
    # re-pointed and its kubelet restarted, once.
    kubelet_conf = sh.file(joining.name, "/etc/kubernetes/kubelet.conf")
    kubelet_conf.write_text(kubelet_conf.read_text().replace(cluster.node_url, "https://10.21.22.70:6443"))
    moved = sh.run(joining.name, fake.first_on_path(text))
    assert moved.rc == 0, moved.explain()
    assert [c.line for c in moved.calls if c.tool == "systemctl"] == ["systemctl restart kubelet"]
    assert f"server: {cluster.node_url}" in kubelet_conf.read_text()
    still = sh.run(joining.name, fake.first_on_path(text))
    assert still.rc == 0 and not [c for c in still.calls if c.tool == "systemctl"], still.explain()
    revoked = sh.run(boot.name, ks.revoke_join_credentials_script(cluster))
    assert revoked.rc == 0 and len(revoked.of("kubeadm token delete")) >= 1, revoked.explain()
    again = sh.run(boot.name, ks.revoke_join_credentials_script(cluster))
    assert again.rc == 0, again.explain()
    assert not again.of("kubeadm token delete")
    assert "kube-ha[revoke-join-credentials]: revoked 0 bootstrap tokens" in again.stderr


def test_kube_proxy_absent_is_nothing_to_repoint(adopted: Adopted) -> None:
    """kube-proxy is an add-on (Cilium replaces it): its ConfigMap absent, the step says so."""
    res = adopted.host.run(adopted.cluster.bootstrap.name, ks.kube_proxy_script(cluster_of(nodeLocalProxy=True)))
    assert res.rc == 0, res.explain()
    assert not res.of("kubectl apply") and not res.of("kubectl rollout restart")
    assert ("kube-ha[kube-proxy]: configmap kube-system/kube-proxy absent (add-on not installed): nothing to"
            " re-point") in res.stderr


def test_workers_that_left_go_each_by_name(adopted: Adopted) -> None:
    """Two workers leave at once: each is named, drained and deleted, in list order."""
    c = adopted.cluster
    raw = copy.deepcopy(dev_stack())
    raw["workers"] = []
    raw["elasticApiserver"]["poolNodes"] = ["ubuntu-70", "ubuntu-72"]
    smaller = parse_cluster(raw)
    res = adopted.host.run(c.bootstrap.name, ks.workers_reconcile_script(smaller, c.workers))
    assert res.rc == 0, res.explain()
    names = [w.name for w in c.workers]
    # NotReady (no pod network yet): cordoned, not drained (a drain would wait out its timeout).
    acted = [(x.verb, x.argv[x.argv.index(x.verb.split()[-1]) + 1]) for x in res.calls
             if x.verb in ("kubectl drain", "kubectl cordon", "kubectl delete node")]
    assert acted == [(v, n) for n in names for v in ("kubectl cordon", "kubectl delete node")]
    for n in names:
        assert f"kube-ha[workers]: worker {n} left the config: draining it and deleting its Node" in res.stderr
    assert not set(names) & set(adopted.host.state()["nodes"])
    assert c.bootstrap.name in adopted.host.state()["nodes"]


def test_reset_undoes_a_kube_ha_join_once(adopted: Adopted) -> None:
    """The join step's delete on a node kube-ha joined (its marker, as the join writes it):
    `kubeadm reset --force`, the marker gone with it, and a second run finds nothing to reset."""
    marker = adopted.host.file("ubuntu-75", admin.MANAGED_MARKER)
    marker.parent.mkdir(mode=0o700, exist_ok=True)
    marker.write_text("kubeadm init/join run by kube-ha\n")
    first = adopted.host.run("ubuntu-75", ks.reset_script())
    assert first.rc == 0, first.explain()
    assert [c.line for c in first.calls] == ["kubeadm reset --force"]
    assert not marker.exists()
    again = adopted.host.run("ubuntu-75", ks.reset_script())
    assert again.rc == 0 and not again.calls
    assert "kube-ha[reset]: nothing to reset" in again.stderr


def test_the_endpoint_check_tries_fifteen_times_two_seconds_apart(adopted: Adopted, tmp_path: Path) -> None:
    """About 30 s for a load balancer that is still picking up its backends; `sleep` recorded,
    not slept."""
    recorder = make_fake_etcd(tmp_path / "bin", sleep=True)
    res = adopted.host.run(adopted.cluster.bootstrap.name,
                           recorder.first_on_path(ks.endpoint_check_script(unanswering_endpoint())))
    assert res.rc == 1, res.explain()
    assert len(res.of("kubectl get")) == 15
    assert recorder.sleeps() == ["2"] * 15
