"""The mutation command's own parts (tools/mutation): which mutants it makes, that their keys
survive edits elsewhere, and that the reviewed list of equivalent mutants names only mutants
that exist, each with its reason."""

from __future__ import annotations

from pathlib import Path

import yaml

from tools.mutation.__main__ import EQUIVALENT, ROOT, Selection, _modules
from tools.mutation.mutants import Mutant, mutants_of

SAMPLE = '''"""Module docstring: never mutated."""
LIMIT: "int" = 3


def check(port: int, names: list[str]) -> str:
    """Docstring."""
    if port < 1 or port > 65535:
        raise ValueError(f"port {port}")
    if "x" not in names and not names:
        names.append("y")
    while port > LIMIT:
        port -= 1
    return "ok" if port == 2 else ""
'''


def _made(tmp_path: Path, text: str) -> dict[str, list[str]]:
    (tmp_path / "m.py").write_text(text)
    made: dict[str, list[str]] = {}
    for mutant in mutants_of(tmp_path, "m.py"):
        made.setdefault(mutant.operator, []).append(f"{mutant.original}->{mutant.replacement}")
    return made


def test_each_operator_makes_its_mutants(tmp_path: Path) -> None:
    made = _made(tmp_path, SAMPLE)
    assert sorted(made["CMP"]) == sorted(["<-><=", ">->>=", "not in->in", ">->>=", "==->!="])
    assert made["BOOL"] == ["or->and", "and->or"]
    assert made["NOT"] == ["not ->"]
    assert sorted(made["NUM"]) == sorted(["3->4", "3->2", "1->2", "1->0", "65535->65536", "65535->65534",
                                          "1->2", "1->0", "2->3", "2->1"])
    assert made["RAISE"] == ['raise ValueError(f"port {port}")->pass']
    assert made["CALL"] == ['names.append("y")->pass']
    assert made["ARITH"] == ["-=->+="]
    # Strings: never the docstrings or the annotation; a whole f-string; "" becomes "X".
    assert sorted(made["STR"]) == sorted(['f"port {port}"->""', '"x"->""', '"y"->""', '"ok"->""', '""->"X"'])
    # Conditions: if/ternary to True and False, a while only to False (True would never end).
    assert made["IF"].count("port > LIMIT->False") == 1 and "port > LIMIT->True" not in made["IF"]
    assert "port == 2->True" in made["IF"] and "port == 2->False" in made["IF"]


def test_every_mutant_compiles_and_changes_the_source(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(SAMPLE)
    source = SAMPLE.encode()
    for mutant in mutants_of(tmp_path, "m.py"):
        changed = mutant.apply(source)
        assert changed != source
        compile(changed, "m.py", "exec")


def test_keys_do_not_move_with_lines_added_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(SAMPLE)
    before = [m.key for m in mutants_of(tmp_path, "m.py")]
    (tmp_path / "m.py").write_text(SAMPLE.replace("LIMIT: ", "OTHER = 0\n\n\nLIMIT: ", 1))
    after = [m.key for m in mutants_of(tmp_path, "m.py")]
    assert set(before) < set(after) and len(after) == len(before) + 2  # OTHER = 0: to 1, to -1


def test_the_equivalent_list_names_live_mutants_with_reasons() -> None:
    entries = yaml.safe_load(EQUIVALENT.read_text()) or []
    live = {m.key for module in _modules([]) for m in mutants_of(ROOT, module)}
    keys = [entry["key"] for entry in entries]
    assert len(keys) == len(set(keys))
    assert [k for k in keys if k not in live] == []
    assert [entry for entry in entries if len(str(entry.get("reason", "")).strip()) < 10] == []



def test_selection_runs_unit_tests_then_the_most_targeted_within_the_budget() -> None:
    """A module's own pin (few lines of the core) goes before a run of the whole program that
    passes through the line, however cheap that run is; then the budget stops the list."""
    trace = {
        "tests": [["t.py::unit", 0.01], ["t.py::program", 1.0], ["t.py::pin", 3.0], ["t.py::other", 4.0]],
        "lines": {"kube_ha/shell.py": {"20": [0, 1, 2, 3], **{str(n): [1, 3] for n in range(30, 90)}}},
        "uses": {"t.py::pin": ["world"]}, "fixtures": {"world": 2.0}}
    mutant = Mutant("kube_ha/shell.py", 20, 20, "STR", 0, 0, "'a'", "''", "k")
    tests, _ = Selection(trace, 6.0, []).tests(mutant)
    assert [t for t in tests if t.startswith("t.py")] == ["t.py::unit", "t.py::pin"]  # then 6.01 s > 6



def test_a_table_the_core_only_defines_is_tried_by_the_tests_that_read_it_themselves() -> None:
    """SCALAR_KEYS' descriptions are read by no line of the core, only by a test comparing
    them with Pulumi.yaml: that test (and not one that never names the table) is chosen."""
    reader = "tests/test_config_rules.py::test_pulumi_yaml_describes_each_key_as_the_table_does"
    other = "tests/test_config_rules.py::test_a_value_past_a_bound_is_told_the_bound[apiserverPort]"
    trace = {"tests": [[other, 0.01], [reader, 0.01]], "lines": {}, "uses": {}, "fixtures": {}}
    line = next(n for n, text in enumerate((ROOT / "kube_ha/config.py").read_text().splitlines(), 1)
                if '"apiserverPort": (int' in text)
    mutant = Mutant("kube_ha/config.py", line, line, "STR", 0, 0, "'a'", "''", "k")
    tests, _ = Selection(trace, 6.0, []).tests(mutant)
    assert [t for t in tests if t.startswith("tests/test_config")] == [reader]


def test_a_constant_another_is_built_from_is_tried_where_that_one_is_read() -> None:
    """REACH_S only goes into _REACH, at import: the tests reaching a line that reads _REACH
    are the ones that can tell 3 s from 2 s."""
    text = (ROOT / "kube_ha/preflight.py").read_text().splitlines()
    constant = next(n for n, t in enumerate(text, 1) if t.startswith("REACH_S ="))
    reads = next(n for n, t in enumerate(text, 1) if "[_REACH," in t)
    trace = {"tests": [["t.py::reach", 0.01], ["t.py::elsewhere", 0.01]],
             "lines": {"kube_ha/preflight.py": {str(reads): [0], str(reads + 1000): [1]}},
             "uses": {}, "fixtures": {}}
    mutant = Mutant("kube_ha/preflight.py", constant, constant, "NUM", 0, 0, "3", "2", "k")
    tests, _ = Selection(trace, 6.0, []).tests(mutant)
    assert [t for t in tests if t.startswith("t.py")] == ["t.py::reach"]
