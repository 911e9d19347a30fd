"""The project as users and CI meet it: pinned dependencies, Pulumi project files, PR workflow."""

from __future__ import annotations

import hashlib
import io
import platform
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.program import ROOT


def _locked(text: str) -> dict[str, list[str]]:
    """A pip-compile lock file: package==version -> its --hash lines."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        line = line.split("#")[0].strip().rstrip("\\").strip()
        if not line:
            continue
        if line.startswith("--hash=sha256:"):
            assert re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", line), line
            out[current].append(line)
        else:
            assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", line), line
            current = line.lower()
            out[current] = []
    return out


def test_every_dependency_is_pinned_with_hashes() -> None:
    """Security review M3: the whole graph (30+ packages, not just the 5 named), each file by
    SHA-256; installs use --require-hashes, so a re-uploaded file fails the install."""
    for stem in ("requirements", "requirements-dev", "policy/requirements"):
        direct = [line.split("#")[0].strip() for line in
                  (ROOT / f"{stem}.in").read_text().splitlines()]
        locked = _locked((ROOT / f"{stem}.txt").read_text())
        assert all(hashes for hashes in locked.values()), stem
        for pin in direct:
            if pin and not pin.startswith("-r "):
                assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", pin), (stem, pin)
                assert pin.lower() in locked, (stem, pin)  # the lock is current
    program = _locked((ROOT / "requirements.txt").read_text())
    assert len(program) > 20  # transitive dependencies are locked too
    for package in ("pulumi", "pulumi-command", "pulumi-tls", "pulumi-kubernetes", "pyyaml",
                    "grpcio", "protobuf"):
        assert any(p.startswith(f"{package}==") for p in program), package
    for installer in (".ci/run", "scripts/dev-up", ".github/workflows/preview.yml"):
        for line in (ROOT / installer).read_text().splitlines():
            if "pip install" in line and "-r " in line:
                assert "--require-hashes" in line, (installer, line)


def test_pulumi_project_files() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "kube-ha"
    assert project["runtime"] == {"name": "python",
                                  "options": {"toolchain": "pip", "virtualenv": "venv"}}
    pack = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["name"] == "python"
    main = (ROOT / "__main__.py").read_text()
    assert len(main.splitlines()) < 25  # load config, build the top component, export


def test_pull_requests_run_the_tests_and_preview_with_the_policy_pack() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "preview.yml").read_text())
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the `on:` key as True
    assert "pull_request_target" not in workflow[True]  # would hand secrets to fork code
    test_steps = workflow["jobs"]["test"]["steps"]
    assert any(s.get("run") == "bash .ci/run" for s in test_steps)
    preview = workflow["jobs"]["preview"]
    assert preview["needs"] == "test"
    assert preview["permissions"] == {"contents": "read", "pull-requests": "write",
                                      "id-token": "write"}
    assert preview["environment"] == "pr-preview"  # secrets only after a reviewer approves
    action = next(s for s in preview["steps"] if str(s.get("uses", "")).startswith("pulumi/actions"))
    assert action["with"]["command"] == "preview"
    assert action["with"]["policyPacks"] == "policy"
    assert action["with"]["comment-on-pr"] is True
    assert (ROOT / action["with"]["policyPacks"] / "PulumiPolicy.yaml").exists()


def test_workflow_least_privilege_and_pinned_actions() -> None:
    """Security review M3/L10: no workflow-wide permissions, secrets only in the step that needs
    them, actions pinned by commit, no token left in .git for later steps."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "preview.yml").read_text())
    assert workflow["permissions"] == {}
    assert workflow["jobs"]["test"]["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        assert "env" not in job, name
        assert job["timeout-minutes"] <= 60, name
        for step in job["steps"]:
            uses = step.get("uses")
            if uses:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), uses
            if str(uses).startswith("actions/checkout"):
                assert step["with"]["persist-credentials"] is False
            secrets = re.findall(r"secrets\.(\w+)", yaml.safe_dump(step))
            if set(secrets) - {"GITHUB_TOKEN"}:
                assert str(uses).startswith("pulumi/actions") or step.get("name") == (
                    "Destructive-change gate"), (name, step)


def test_a_state_bucket_is_reached_with_oidc_when_configured() -> None:
    """A self-managed backend works out of the box: each cloud login runs only when the
    environment names a role (vars, not secrets: they are identifiers), and before every step
    that reads the state."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "preview.yml").read_text())
    steps = workflow["jobs"]["preview"]["steps"]
    uses = [str(s.get("uses", "")).split("@")[0] for s in steps]
    logins = {"aws-actions/configure-aws-credentials": "vars.AWS_ROLE_ARN != ''",
              "google-github-actions/auth": "vars.GCP_WORKLOAD_IDENTITY_PROVIDER != ''"}
    first_state_read = uses.index("pulumi/actions")
    for action, condition in logins.items():
        step = steps[uses.index(action)]
        assert step["if"] == condition
        assert uses.index(action) < first_state_read
        assert "secrets." not in yaml.safe_dump(step)


def test_pull_requests_pass_the_destructive_change_gate() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "preview.yml").read_text())
    steps = workflow["jobs"]["preview"]["steps"]
    gate = next(s for s in steps if s.get("name") == "Destructive-change gate")
    assert 'pulumi preview --stack "$STACK" --json > preview.json' in gate["run"]
    # One stack name for the render, the preview and the gate.
    assert workflow["env"]["STACK"] == "dev"
    preview = next(s for s in steps if str(s.get("uses", "")).startswith("pulumi/actions"))
    assert preview["with"]["stack-name"] == "${{ env.STACK }}"
    assert "python -m tools.destructive_gate preview.json" in gate["run"]
    assert "approve-destructive" in gate["env"]["APPROVED"]


def _fake_release(root: Path, version: str, tamper: bool) -> None:
    """A release laid out as pulumi/pulumi's goreleaser publishes it (.goreleaser.yml:
    archive `pulumi-v<ver>-linux-x64.tar.gz` wrapping a `pulumi/` directory, checksum file
    `pulumi-<ver>-checksums.txt` in sha256sum format)."""
    arch = {"x86_64": "x64", "aarch64": "arm64"}[platform.machine()]
    rel = root / f"v{version}"
    rel.mkdir(parents=True)
    archive = f"pulumi-v{version}-linux-{arch}.tar.gz"
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        body = b"#!/bin/sh\necho v" + version.encode() + b"\n"
        info = tarfile.TarInfo("pulumi/pulumi")
        info.size, info.mode = len(body), 0o755
        tar.addfile(info, io.BytesIO(body))
    (rel / archive).write_bytes(data.getvalue())
    digest = hashlib.sha256(data.getvalue()).hexdigest()
    if tamper:
        (rel / archive).write_bytes(data.getvalue() + b"\0")
    (rel / f"pulumi-{version}-checksums.txt").write_text(
        f"{'0' * 64}  pulumi-v{version}-darwin-arm64.tar.gz\n{digest}  {archive}\n")


@pytest.mark.parametrize("tamper", [False, True])
def test_the_cli_installer_verifies_the_release_checksum(tmp_path: Path, tamper: bool) -> None:
    _fake_release(tmp_path / "releases", "3.272.0", tamper)
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-pulumi-cli"), "3.272.0"],
        env={"PATH": "/usr/bin:/bin", "PULUMI_RELEASES_URL": f"file://{tmp_path}/releases",
             "PULUMI_HOME": str(tmp_path / "home")}, capture_output=True, text=True, timeout=60)
    installed = tmp_path / "home" / "bin" / "pulumi"
    if tamper:
        assert result.returncode == 1 and "does not match" in result.stderr
        assert not installed.exists()
    else:
        assert result.returncode == 0, result.stderr
        assert subprocess.run([str(installed)], capture_output=True, text=True).stdout == "v3.272.0\n"


def test_dev_up_never_defaults_to_a_personal_ssh_key() -> None:
    text = (ROOT / "scripts" / "dev-up").read_text()
    assert "id_ed25519" not in text and "id_rsa" not in text
    assert "unset SSH_AUTH_SOCK" in text
    assert "scripts/install-pulumi-cli" in text and "get.pulumi.com | sh" not in text
