"""The project as users and CI meet it: pinned dependencies, Pulumi project files, PR workflow."""

from __future__ import annotations

import re

import yaml

from tests.program import ROOT


def test_every_dependency_is_pinned() -> None:
    for name in ("requirements.txt", "requirements-dev.txt", "policy/requirements.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r "):
                assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", line), (name, line)
    program = (ROOT / "requirements.txt").read_text()
    for package in ("pulumi", "pulumi-command", "pulumi-tls", "pulumi-kubernetes", "pyyaml"):
        assert re.search(rf"^{package}==", program, re.M), package


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
    assert workflow["permissions"]["pull-requests"] == "write"
    test_steps = workflow["jobs"]["test"]["steps"]
    assert any(s.get("run") == "bash .ci/run" for s in test_steps)
    preview = workflow["jobs"]["preview"]
    assert preview["needs"] == "test"
    action = next(s for s in preview["steps"] if str(s.get("uses", "")).startswith("pulumi/actions"))
    assert action["with"]["command"] == "preview"
    assert action["with"]["policyPacks"] == "policy"
    assert action["with"]["comment-on-pr"] is True
    assert (ROOT / action["with"]["policyPacks"] / "PulumiPolicy.yaml").exists()
