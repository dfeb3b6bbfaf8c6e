"""The seed's entry point, as its testing strategy named it: set up, then run the pipeline and return the summary.

    from implement_rec_047 import ImplementCreateAndFinetuneWithPreferenceDatasets
    job = ImplementCreateAndFinetuneWithPreferenceDatasets(artifacts="artifacts/rec047")
    job.setup()            # validated configuration of every stage (raises UserError with one sentence)
    result = job.execute() # {"success": True, "summary": {...}} (tiny settings unless configured otherwise)
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from nba_dpo.config import compose, validate
from nba_dpo.errors import UserError

# Tiny end-to-end settings: seconds of compute per stage, real components throughout.
TINY_OVERRIDES = {
    "build_data": ["data.sizes.train=400", "data.sizes.val=40", "data.sizes.test=60", "data.sizes.pref=60",
                   "data.params_per_intent=40"],
    "model": ["model.build.hidden_size=64", "model.build.num_layers=2", "model.build.num_heads=2",
              "model.build.intermediate_size=128", "model.build.vocab_size=600"],
    "sft": ["train.max_steps=6", "train.save_steps=3"],
    "generate": ["generate.limit=24", "generate.num_samples=4", "generate.max_new_tokens=48"],
    "train_dpo": ["train.max_steps=4", "train.save_steps=2", "train.per_device_batch_size=4"],
    "evaluate": ["eval.max_new_tokens=48"],
}


class ImplementCreateAndFinetuneWithPreferenceDatasets:
    """Create a preference dataset and fine-tune with DPO: build_data -> sft -> generate -> train_dpo -> evaluate."""

    def __init__(self, artifacts: str = "artifacts/rec047", tiny: bool = True, overrides: list[str] | None = None):
        self.artifacts, self.tiny, self.overrides = str(artifacts), tiny, list(overrides or [])
        self.config, self.pipeline_overrides = None, None

    def _stage_overrides(self) -> dict[str, list[str]]:
        if not self.tiny:
            return {k: [] for k in TINY_OVERRIDES}
        data, model = TINY_OVERRIDES["build_data"], TINY_OVERRIDES["model"]
        return {"build_data": data, "sft": data + model + TINY_OVERRIDES["sft"],
                "generate": data + model + TINY_OVERRIDES["generate"],
                "train_dpo": model + TINY_OVERRIDES["train_dpo"], "evaluate": data + model + TINY_OVERRIDES["evaluate"]}

    def setup(self):
        """Validate the environment and every stage's configuration; return the pipeline config."""
        for module in ("torch", "transformers", "trl", "ray", "deepspeed", "peft", "sqlglot"):
            if importlib.util.find_spec(module) is None:
                raise UserError(f"{module} is not installed: run scripts/setup_env.sh")
        if shutil.which("gcc") is None and shutil.which("cc") is None:
            raise UserError("no C compiler: DeepSpeed builds its CPU ops with gcc")
        stages = self._stage_overrides()
        base = [f"paths.artifacts={self.artifacts}", *self.overrides]
        for name, config_name in (("build_data", "config"), ("sft", "sft"), ("generate", "generate"),
                                  ("train_dpo", "train_dpo"), ("evaluate", "evaluate")):
            validate(compose(config_name, base + stages[name]))
        as_list = lambda items: "[" + ",".join(f"'{x}'" for x in items) + "]"  # noqa: E731  (quoted for Hydra)
        # the same run from a shell: python -m jobs.pipeline <pipeline_overrides>
        self.pipeline_overrides = base + [f"pipeline.{k}={as_list(v)}" for k, v in stages.items()] \
            + ["pipeline.eval_samples=4" if self.tiny else "pipeline.eval_samples=8"]
        self.config = compose("pipeline", self.pipeline_overrides)
        return self.config

    def execute(self) -> dict:
        """Run the pipeline; {"success": bool, "summary": dict | None, "error": str | None}."""
        from nba_dpo.pipeline import run_pipeline

        cfg = self.config or self.setup()
        try:
            summary = run_pipeline(cfg)
        except UserError as e:
            return {"success": False, "summary": None, "error": str(e)}
        return {"success": True, "summary": summary, "error": None}


if __name__ == "__main__":
    job = ImplementCreateAndFinetuneWithPreferenceDatasets(*(sys.argv[1:2] or []))
    job.setup()
    print(job.execute())
    os._exit(0)
