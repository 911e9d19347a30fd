"""Scripts whose stdout is a secret print nothing until everything has worked.

pulumi-command puts a failed step's stdout and stderr into the error message, whatever its
logging settings (security review H1: `commandOutputs.go` returns `stdouterrbuf` in the error),
so each such script is made to fail at every step it has, on a fake node, and its combined
output must hold no key material.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator

import pytest

from kube_ha.config import parse_cluster
from kube_ha.elastic.manifests import CONTROLLER_MANAGER_PKI, ELASTIC_PKI
from kube_ha.kubeadm import scripts as ks
from tests.harness import pki
from tests.harness.script_host import ScriptHost, StepResult
from tests.program import dev_stack

pytestmark = pytest.mark.slow
NODE = "ubuntu-73"
SECRET = "-----BEGIN PRIVATE KEY-----\nS3CR3T-KEY-MATERIAL\n-----END PRIVATE KEY-----\n"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptHost]:
    with ScriptHost(tmp_path_factory.mktemp("secret-output"), parse_cluster(dev_stack()),
                    real_etcd=False) as h:
        yield h


def _place(host: ScriptHost, files: dict[str, str]) -> None:
    """Every file the scripts read, the keys holding SECRET."""
    pki_dir = host.file(NODE, "/etc/kubernetes/pki")
    if pki_dir.exists():
        shutil.rmtree(pki_dir)
    for path in _all_paths():
        target = host.file(NODE, path)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for path, text in files.items():
        target = host.file(NODE, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def _all_paths() -> list[str]:
    return ["/etc/kubernetes/admin.conf", *CONTROLLER_MANAGER_PKI.files.values()]


def _all_files() -> dict[str, str]:
    ca = pki.make_ca()
    files = {"/etc/kubernetes/pki/ca.crt": ca.cert_pem, "/etc/kubernetes/pki/ca.key": SECRET,
             "/etc/kubernetes/admin.conf": "apiVersion: v1\nclient-key-data: " + SECRET}
    for spec in (ELASTIC_PKI, CONTROLLER_MANAGER_PKI):
        for name, path in spec.files.items():
            files.setdefault(path, SECRET if name.endswith((".key", ".conf")) else ca.cert_pem)
    return files


def _leaks(res: StepResult) -> bool:
    text = res.stdout + res.stderr
    return "S3CR3T" in text or base64.b64encode(SECRET.encode()).decode()[:40] in text


def _break(host: ScriptHost, path: str, how: str) -> None:
    target = host.file(NODE, path)
    target.unlink()
    if how == "directory":  # exists and is non-empty to `[ -s ]`, but `cat`/`base64` fail
        target.mkdir()
        (target / "x").write_text("x")


SCRIPTS = {
    "read-ca": (ks.read_ca_script(), ["/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/ca.key"]),
    "read-admin-kubeconfig": (ks.read_admin_kubeconfig_script(0), ["/etc/kubernetes/admin.conf"]),
    "read-control-plane-files": (
        ks.read_files_script({**ELASTIC_PKI.files, **CONTROLLER_MANAGER_PKI.files}, 0),
        sorted(set(ELASTIC_PKI.files.values()) | set(CONTROLLER_MANAGER_PKI.files.values()))),
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_secret_printing_script_that_fails_anywhere_prints_nothing(host: ScriptHost,
                                                                    name: str) -> None:
    script, paths = SCRIPTS[name]
    _place(host, _all_files())
    ok = host.run(NODE, script)
    assert ok.rc == 0 and _leaks(ok), ok.explain()  # the check below can see a leak
    failures = 0
    for path in paths:
        for how in ("missing", "directory"):
            _place(host, _all_files())
            _break(host, path, how)
            res = host.run(NODE, script)
            assert res.rc != 0, (path, how, res.explain())
            assert res.stdout == "", (path, how, res.stdout[:200])
            assert not _leaks(res), (path, how)
            failures += 1
    assert failures == 2 * len(paths)


@pytest.mark.parametrize("fail", ["kubeadm token create", "kubeadm certs certificate-key",
                                  "kubeadm init phase upload-certs", "ca-missing"])
def test_join_credentials_print_nothing_when_any_step_fails(host: ScriptHost, fail: str) -> None:
    """The token (printed by `kubeadm token create`) and the certificate key stay in the
    script's variables until the last line."""
    files = _all_files()
    if fail == "ca-missing":
        files.pop("/etc/kubernetes/pki/ca.crt")
    _place(host, files)
    res = host.run(NODE, ks.join_credentials_script(parse_cluster(dev_stack()), control_plane=True),
                   fail=() if fail == "ca-missing" else (fail,))
    assert res.rc != 0, res.explain()
    assert res.stdout == "", res.stdout
