"""Fixtures shared by this folder."""

from __future__ import annotations

import pytest

from evoprune_core.plugins import Registry
from tests.study._common import _TestPlugin


@pytest.fixture
def registry() -> Registry:
    return Registry.load(env={"EVOPRUNE_PLUGINS": "none"}, extra=[(_TestPlugin(), "test-ops")])
