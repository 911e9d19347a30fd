"""The layout is the architecture: `kube_ha/` is the pure core, `components/` the Pulumi layer.

Checked over every file of both packages by reading their imports (not only what one entry point
happens to import), so a new module cannot cross the line unseen.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.program import ROOT

CORE = ROOT / "kube_ha"
COMPONENTS = ROOT / "components"


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth of the file (function-level imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def _modules(package: Path) -> list[Path]:
    return sorted(package.rglob("*.py"))


def test_the_core_imports_neither_pulumi_nor_the_components() -> None:
    crossing = {
        str(path.relative_to(ROOT)): sorted(
            m for m in _imports(path)
            if m.split(".")[0] in {"components", "tests", "bench", "tools"}
            or m.split(".")[0].startswith("pulumi"))
        for path in _modules(CORE)}
    assert len(crossing) >= 15, "the walk found the core's modules"
    assert not {k: v for k, v in crossing.items() if v}, crossing


def test_every_components_module_is_part_of_the_pulumi_layer() -> None:
    """A pure module belongs in kube_ha/: each module here uses Pulumi itself."""
    pure = [str(p.relative_to(ROOT)) for p in _modules(COMPONENTS)
            if p.name != "__init__.py"
            and not any(m.split(".")[0] == "pulumi" for m in _imports(p))]
    assert not pure, f"pure modules in components/ (move them to kube_ha/): {pure}"


def test_the_walk_sees_a_function_level_import(tmp_path: Path) -> None:
    """The check can fail: an import hidden inside a function is found."""
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def f():\n    import pulumi_command.remote\n    from components import x\n")
    assert _imports(sneaky) == {"pulumi_command.remote", "components"}
