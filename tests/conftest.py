"""Shared fixtures: the dev stack's raw config (a fresh copy per test, to break), and the
program's run on it (one per session, to read)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.program import Run, dev_stack, run_program


@pytest.fixture()
def raw() -> dict[str, Any]:
    return copy.deepcopy(dev_stack())


@pytest.fixture(scope="session")
def dev() -> Run:
    """The program run on the dev stack under the engine mocks. Shared by every test that asks
    for it: read it, never change it (its mocks, registrations or scope); a test that needs a
    different run makes its own with run_program."""
    return run_program(dev_stack())
