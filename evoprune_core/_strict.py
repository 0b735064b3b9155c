"""The strict pydantic base of every table of a run configuration: ``config`` (the schema) and
the engines' own sections (``[coevolution]``: ``engines.coevolution.CoevolutionConfig``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel"]


class StrictModel(BaseModel):
    """Strict: a quoted number or a boolean is refused where a number is expected (an
    integer is still a valid float); lists are read as the tuples below, items strictly."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
