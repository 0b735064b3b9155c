"""``python -m evoprune_core.cli``: the ``evoprune`` command (used to start study workers)."""

from __future__ import annotations

import sys

from .._parent import parent_gone

if parent_gone():  # a study worker whose study died while it started: nothing to do
    print("evoprune: worker: the study process is gone; exiting", file=sys.stderr)
    sys.exit(1)

from . import main  # noqa: E402 - the check above comes before the command's imports

sys.exit(main())
