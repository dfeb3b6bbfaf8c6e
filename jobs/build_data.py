"""Build the NBA database, the instruction splits and the preference prompt pool.

    python -m jobs.build_data paths.artifacts=artifacts/demo            # embedded simulated NBA data
    python -m jobs.build_data data=byo data.db_path=my.sqlite data.questions=my.jsonl
"""
import hydra
from omegaconf import DictConfig

from nba_dpo.config import validate
from nba_dpo.data.build import build_data, format_counts
from nba_dpo.errors import exit_on_user_error
from nba_dpo.sweep import objective


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@exit_on_user_error
def main(cfg: DictConfig) -> int:
    cfg = validate(cfg)
    manifest = build_data(cfg)
    print(format_counts(manifest["counts"]))
    print(f"[build_data] done in {manifest['seconds']}s; outputs in {cfg.paths.data}")
    return objective(cfg, {"rows": sum(sum(c.values()) for c in manifest["counts"].values())})


if __name__ == "__main__":
    main()
