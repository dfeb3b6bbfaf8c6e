"""The whole job: build_data -> sft -> [generate -> (evaluate sft) -> train_dpo -> evaluate dpo] x rounds ->
[controls] -> report. Every model is evaluated on the test split (EX, win rates, reasoning, verbosity, likelihood of
the held-out pairs); with more than one round, also on the validation split, which chooses the round to report.

Each stage runs as its own `python -m jobs.<stage>` (its own config; one Ray cluster for all of them) and is skipped
when its outputs are complete, so a stopped run resumes where it ended, and more rounds reuse the finished ones.

    python -m jobs.pipeline experiment=demo paths.artifacts=artifacts/demo
    python -m jobs.pipeline experiment=demo paths.artifacts=artifacts/demo pipeline.rounds=2
    python -m jobs.pipeline experiment=demo 'pipeline.controls=[nll_only]'     # + DPO without the preference term
    python -m jobs.pipeline -m 'pipeline.train_dpo=["train.beta=0.3"],["train.beta=1.0"]'   # a folder per point
"""
import hydra
from omegaconf import DictConfig

from nba_dpo.errors import exit_on_user_error
from nba_dpo.pipeline import run_pipeline, validate_stages
from nba_dpo.sweep import objective, per_sweep_point


@hydra.main(version_base="1.3", config_path="../conf", config_name="pipeline")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    point = per_sweep_point(cfg, "paths.artifacts")
    validate_stages(point)
    summary = run_pipeline(point)
    dpo_prefs = summary["preferences"][summary["chosen"]["eval"]] or {}
    return objective(cfg, {"dpo_ex_spider": summary["dpo"]["ex_spider"], "sft_ex_spider": summary["sft"]["ex_spider"],
                           "dpo_win_rate": summary["win_rate"][next(iter(summary["win_rate"]))]["wins"]["rate"],
                           "dpo_reward_accuracy": dpo_prefs.get("implicit_reward_accuracy")})


if __name__ == "__main__":
    main()
