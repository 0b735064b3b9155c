"""What the evolve tests share: the small digits fitness task they evolve on."""

from __future__ import annotations

from typing import Any

#: ``[fitness]`` of a tiny digits evolution (a 12-4 encoder, short pre-training, one epoch of
#: fine-tuning); tests add their own keys on top.
TINY_FITNESS: dict[str, Any] = {
    "tasks": ["digits"],
    "network": {"encoder": [12, 4]},
    "pretrain_epochs": 15,
    "finetune_epochs": 1,
    "batch_size": 50,
    "calibration_rows": 100,
}
