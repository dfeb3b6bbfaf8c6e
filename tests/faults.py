"""Failures the tests inject through config, so that the restart and resume paths run for real: a Train callback
(`train.callbacks`) and a generator actor (`generate.actor_class`). Ray workers import this module as `tests.faults`
(Ray puts the driver's working directory, the repository root, on their path)."""
from __future__ import annotations

import os
import time
from pathlib import Path

from transformers import TrainerCallback

from nba_dpo.generation.hf import HFCandidates


class KillRank0Once(TrainerCallback):
    """Kills rank 0's process once, at the end of the first step after `step` (so that the checkpoint reported at
    `step` is registered first). `folder` gets `attempts` (the step each attempt started from) and `fired` (the step
    it killed at, which also keeps it from firing again)."""

    def __init__(self, step: int, folder: str):
        self.step, self.folder = step, Path(folder)

    @staticmethod
    def _rank0() -> bool:
        import ray.train

        return ray.train.get_context().get_world_rank() == 0

    def on_train_begin(self, args, state, control, **kwargs):
        if self._rank0():
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.folder / "attempts", "a") as f:
                f.write(f"{state.global_step}\n")

    def on_step_end(self, args, state, control, **kwargs):
        fired = self.folder / "fired"
        if self._rank0() and state.global_step > self.step and not fired.exists():
            fired.write_text(str(state.global_step))
            time.sleep(2)  # let the controller finish registering the last reported checkpoint
            os._exit(1)


class FailOnceCandidates(HFCandidates):
    """The hf generator actor, whose first call kills its process once: the marker file named by
    NBA_DPO_TEST_FAIL_MARKER (the actors inherit the test's environment) keeps it from firing again."""

    def __call__(self, batch):
        marker = os.environ["NBA_DPO_TEST_FAIL_MARKER"]
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return super().__call__(batch)
