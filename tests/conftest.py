"""Shared fixtures: the dev stack's raw config, and a fresh copy per test to break."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.program import dev_stack


@pytest.fixture()
def raw() -> dict[str, Any]:
    return copy.deepcopy(dev_stack())
