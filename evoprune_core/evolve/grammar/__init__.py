"""Formula text: a tokenizer and recursive-descent parser over the typed primitive set."""

from __future__ import annotations

from .parse import FormulaError, parse, to_text

__all__ = ["FormulaError", "parse", "to_text"]
