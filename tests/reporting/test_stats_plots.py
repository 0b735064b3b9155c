"""The figures of ``report --stats`` (``reporting/_stats_plots.py``)."""

from __future__ import annotations

from pathlib import Path

from evoprune_core.reporting import (
    build_stats,
    write_figures,
)
from tests.reporting._common import TRIALS


def test_figures_are_pngs(tmp_path: Path) -> None:
    r = build_stats(TRIALS, ["val_loss", "remaining_fraction"], "demo")
    paths = write_figures(r, tmp_path / "plots")
    names = [p.name for p in paths]
    assert names == ["box_val_loss.png", "box_remaining_fraction.png", "pareto_front.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    assert write_figures(build_stats([], ["val_loss"]), tmp_path / "none") == []
    assert not (tmp_path / "none").exists()
