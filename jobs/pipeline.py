"""The whole job: build_data -> sft -> evaluate(sft) -> [generate -> train_dpo -> evaluate(dpo)] x rounds -> report.

Each stage runs as its own `python -m jobs.<stage>` (its own config; one Ray cluster for all of them) and is skipped
when its outputs are complete, so a stopped run resumes where it ended.

    python -m jobs.pipeline experiment=demo paths.artifacts=artifacts/demo
    python -m jobs.pipeline pipeline.rounds=2 'pipeline.train_dpo=[train.beta=0.3]'
"""
import hydra
from omegaconf import DictConfig

from nba_dpo.errors import exit_on_user_error
from nba_dpo.pipeline import run_pipeline


@hydra.main(version_base="1.3", config_path="../conf", config_name="pipeline")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    summary = run_pipeline(cfg)
    return summary["dpo"]["ex_spider"]


if __name__ == "__main__":
    main()
