"""A pytest plugin (`-p tools.mutation.trace`) that records which lines of kube_ha/ each test
runs, and how long it takes: the mutation runner then runs, for each mutant, only the tests
that reach its line, the most targeted first.

Lines run outside any test (imports: module constants, dataclass defaults, def lines) are
credited to no test; the runner gives a mutant there the tests that read what it defines.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = str(ROOT / "kube_ha") + os.sep
OUT_ENV = "KUBE_HA_TRACE_OUT"

Lines = set[tuple[str, int]]
_outside: Lines = set()  # lines run between tests: credited to none
_tests: dict[str, tuple[float, Lines]] = {}
# A session- or module-scoped fixture (the dev stack's program run) runs once, inside the first
# test that asks for it: its lines are kept by name and given to every test that uses it.
_fixtures: dict[str, Lines] = {}
_fixture_cost: dict[str, float] = {}
_uses: dict[str, list[str]] = {}
_sinks: list[Lines] = [_outside]


def _local(frame: FrameType, event: str, arg: Any) -> Any:
    if event == "line":
        here = (frame.f_code.co_filename, frame.f_lineno)
        for sink in _sinks:
            sink.add(here)
    return _local


def _global(frame: FrameType, event: str, arg: Any) -> Any:
    if event == "call" and frame.f_code.co_filename.startswith(CORE):
        _local(frame, "line", arg)
        return _local
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Generator[None]:
    if fixturedef.scope == "function":
        yield
        return
    lines = _fixtures.setdefault(fixturedef.argname, set())
    _sinks.append(lines)
    began = time.monotonic()
    try:
        yield
    finally:
        _sinks.remove(lines)
        _fixture_cost[fixturedef.argname] = max(_fixture_cost.get(fixturedef.argname, 0.0),
                                                time.monotonic() - began)


def pytest_configure(config: pytest.Config) -> None:
    sys.settrace(_global)
    threading.settrace(_global)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    lines: Lines = set()
    _sinks[0] = lines
    began = time.monotonic()
    yield
    _uses[item.nodeid] = [name for name in getattr(item, "fixturenames", ()) if name in _fixtures]
    for name in _uses[item.nodeid]:
        lines |= _fixtures[name]
    _tests[item.nodeid] = (time.monotonic() - began, lines)
    _sinks[0] = _outside


def pytest_unconfigure(config: pytest.Config) -> None:
    sys.settrace(None)
    threading.settrace(None)  # type: ignore[arg-type]
    out = os.environ.get(OUT_ENV)
    if not out:
        return
    names = list(_tests)
    index = {name: i for i, name in enumerate(names)}
    by_line: dict[str, dict[int, list[int]]] = {}
    for name, (_, lines) in _tests.items():
        for filename, line in lines:
            rel = str(Path(filename).relative_to(ROOT))
            by_line.setdefault(rel, {}).setdefault(line, []).append(index[name])
    Path(out).write_text(json.dumps({
        "tests": [[name, round(_tests[name][0], 3)] for name in names],
        "fixtures": {name: round(cost, 3) for name, cost in _fixture_cost.items()},
        "uses": _uses,
        "lines": {f: {str(k): v for k, v in ls.items()} for f, ls in by_line.items()},
    }))
