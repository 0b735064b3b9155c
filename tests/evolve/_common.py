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

#: the same tiny evolution as the head of an evolution file (up to its ``[fitness]`` keys);
#: the CLI tests append the sections they need
TINY_TOML = """
name = "tiny"
seed = 8
[evolution]
population = 8
generations = 2
elite = 3
seeds = ["abs_snr", "l1", "symdiv"]
seed_copies = 1
hall_of_fame = 4
[fitness]
tasks = ["digits"]
network = { encoder = [12, 4] }
pretrain_epochs = 15
finetune_epochs = 1
batch_size = 50
calibration_rows = 100
"""
