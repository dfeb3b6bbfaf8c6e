"""A reward model on Ray Train: TRL's RewardTrainer per worker, on execution-verified pairs (a right answer over a
wrong one), for ranking the candidates of prompts without gold SQL (`score=learned`).

    python -m jobs.train_reward paths.artifacts=artifacts/demo
    python -m jobs.train_reward train.pairs=s3://bucket/run/prefs_labelled/pairs/train.parquet train.epochs=1
"""
import hydra
from omegaconf import DictConfig

from nba_dpo.config import validate
from nba_dpo.errors import exit_on_user_error
from nba_dpo.sweep import objective, per_sweep_point


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_reward")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    cfg = validate(per_sweep_point(cfg, "train.output_dir"))
    from nba_dpo.training.reward import train_reward  # after validation: --help and config errors skip importing TRL

    out = train_reward(cfg)
    print(f"[train_reward] done in {out['seconds']}s, {out['steps']} steps, final accuracy {out['final_accuracy']} "
          f"(held-out pairs: {out['heldout_accuracy']}, margin {out['heldout_margin']}); model in {out['output_dir']}")
    return objective(cfg, out)


if __name__ == "__main__":
    main()
