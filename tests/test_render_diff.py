"""tools/render_diff.py: the offline render of base and head, diffed for a PR comment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tools.render_diff import render_diff

ROOT = Path(__file__).resolve().parents[1]


def _render(tmp: Path, name: str, stack: dict[str, object]) -> Path:
    d = tmp / name
    d.mkdir()
    (d / "Pulumi.dev.yaml").write_text(yaml.safe_dump(stack))
    subprocess.run([sys.executable, "-m", "kube_ha.render", "--stack", "dev", "--dir", str(d),
                    "--out", str(d / "out")], cwd=ROOT, check=True, capture_output=True)
    return d / "out"


def test_adding_a_worker_shows_its_scripts_and_the_changed_lb_config(tmp_path: Path) -> None:
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    base = _render(tmp_path, "base", stack)
    stack["config"]["kube-ha:workers"].append(
        {**stack["config"]["kube-ha:workers"][0], "name": "ubuntu-76", "address": "10.21.22.76"})
    head = _render(tmp_path, "head", stack)
    text = render_diff(base, head)
    assert text.startswith("<!-- kube-ha render diff -->\n**Offline render**: ")
    assert "<code>kubeadm/worker-ubuntu-76.sh</code>" in text
    assert "<code>preflight/worker-ubuntu-76.sh</code>" in text
    assert "--- /dev/null\n+++ head/kubeadm/worker-ubuntu-76.sh" in text
    assert "<code>lb/haproxy.cfg</code>" not in text  # workers are not LB backends
    assert "BEGIN RSA PRIVATE KEY" not in text and "secure:" not in text


def test_no_change_says_so_and_a_long_diff_is_cut_with_a_count(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
    (a / "same.sh").write_text("x\n")
    (b / "same.sh").write_text("x\n")
    assert render_diff(a, b).endswith(
        "\n**Offline render**: this change sends nothing new to any host.\n")
    for i in range(30):
        (b / f"f{i:02}.sh").write_text("line\n" * 200)
    text = render_diff(a, b, limit=5_000)
    assert len(text) < 5_300
    assert "30 added" in text
    assert "more files changed" in text
    kept = text.count("<details>")
    assert 0 < kept < 30 and f"… {30 - kept} more files changed" in text


def test_the_picture_is_reviewed_through_its_dot_source(tmp_path: Path) -> None:
    """A new control-plane node changes the topology: its Graphviz source is diffed; the SVG
    laid out from it (uploaded by the workflow) is left out of the comment."""
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    base = _render(tmp_path, "base", stack)
    stack["config"]["kube-ha:controlPlane"].append(
        {**stack["config"]["kube-ha:controlPlane"][-1], "name": "ubuntu-76",
         "address": "10.21.22.76"})
    stack["config"]["kube-ha:allowEvenControlPlane"] = True
    head = _render(tmp_path, "head", stack)
    assert (head / "topology.svg").exists() and (base / "topology.svg").exists()
    text = render_diff(base, head)
    assert "<code>topology.dot</code>" in text and "ubuntu-76" in text
    assert "topology.svg" not in text
