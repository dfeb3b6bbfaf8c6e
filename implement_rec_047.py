"""The seed's entry point, as its testing strategy named it: set up, then run the pipeline and return the summary.

    from implement_rec_047 import ImplementCreateAndFinetuneWithPreferenceDatasets
    job = ImplementCreateAndFinetuneWithPreferenceDatasets(artifacts="artifacts/rec047")
    job.setup()            # validated configuration of every stage (raises UserError with one sentence)
    result = job.execute() # {"success": True, "summary": {...}} (conf/experiment/tiny.yaml unless tiny=False)
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys

from nba_dpo.config import compose
from nba_dpo.errors import UserError


class ImplementCreateAndFinetuneWithPreferenceDatasets:
    """Create a preference dataset and fine-tune with DPO: build_data -> sft -> generate -> train_dpo -> evaluate."""

    def __init__(self, artifacts: str = "artifacts/rec047", tiny: bool = True, overrides: list[str] | None = None):
        """`overrides`: of the pipeline's config, as `python -m jobs.pipeline` takes them; what every stage should get
        goes in `pipeline.common=[...]`, what one stage should get in `pipeline.<stage>=[...]`."""
        self.artifacts, self.tiny, self.overrides = str(artifacts), tiny, list(overrides or [])
        self.config, self.pipeline_overrides = None, None

    def setup(self):
        """Validate the environment and every stage's configuration; return the pipeline config."""
        for module in ("torch", "transformers", "trl", "ray", "deepspeed", "peft", "sqlglot"):
            if importlib.util.find_spec(module) is None:
                raise UserError(f"{module} is not installed: run scripts/setup_env.sh")
        if shutil.which("gcc") is None and shutil.which("cc") is None:
            raise UserError("no C compiler: DeepSpeed builds its CPU ops with gcc")
        from nba_dpo.pipeline import validate_stages

        # the same run from a shell: python -m jobs.pipeline <pipeline_overrides>
        self.pipeline_overrides = [*(["experiment=tiny"] if self.tiny else []), f"paths.artifacts={self.artifacts}",
                                   *self.overrides]
        self.config = compose("pipeline", self.pipeline_overrides)
        validate_stages(self.config)
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
