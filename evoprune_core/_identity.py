"""Content identity: a canonical hash of what determines a study or an evolution, and the
one-line account of what changed between two contents."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["changes", "content_hash"]

_ABSENT = "(absent)"
_SHOWN = 6  # changed keys named in one line; the rest are counted


def content_hash(content: dict[str, Any]) -> str:
    """16 hex digits of SHA-256 over ``content`` as canonical JSON (sorted keys)."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _shown(value: Any) -> str:
    return _ABSENT if value is _MISSING else json.dumps(value, default=str)


_MISSING = object()


def changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``key: old -> new`` for every key whose value differs, sorted, ``; ``-separated; at
    most six named, then ``and N more``; ``""`` when nothing differs."""
    keys = sorted(k for k in set(old) | set(new) if old.get(k, _MISSING) != new.get(k, _MISSING))
    parts = [
        f"{k}: {_shown(old.get(k, _MISSING))} -> {_shown(new.get(k, _MISSING))}"
        for k in keys[:_SHOWN]
    ]
    if len(keys) > _SHOWN:
        parts.append(f"and {len(keys) - _SHOWN} more")
    return "; ".join(parts)
