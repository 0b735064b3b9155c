"""``python -m evoprune_core.cli``: the ``evoprune`` command (used to start study workers)."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
