"""Sharded text-to-SQL evaluation of any model folder, or scoring of given predictions with no model at all.

    python -m jobs.evaluate paths.artifacts=artifacts/demo eval.name=sft eval.model_path=artifacts/demo/models/sft
    python -m jobs.evaluate eval.num_samples=8 eval.pass_k=[1,8]           # + pass@k by sampling
    python -m jobs.evaluate data=byo data.db_path=DB data.questions=Q.jsonl eval.predictions=P.jsonl \\
        eval.name=NAME paths.artifacts=OUT                                  # score an outside system's SQL
"""
import hydra
from omegaconf import DictConfig

from nba_dpo.config import validate
from nba_dpo.errors import exit_on_user_error
from nba_dpo.sweep import objective, per_sweep_point
from nba_dpo.evaluation.run import evaluate


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    cfg = validate(per_sweep_point(cfg, "eval.name"))
    m = evaluate(cfg)
    extra = "".join(f", pass@{k} {v:.3f}" for k, v in m.get("pass_at_k", {}).items())
    print(f"[evaluate] {cfg.eval.name}: n={m['n']} ex_spider={m['ex_spider']:.3f} ex_bird={m['ex_bird']:.3f} "
          f"valid_sql={m['valid_sql']:.3f}{extra} ({m['seconds']}s); outputs in {cfg.paths.artifacts}/eval/{cfg.eval.name}")
    return objective(cfg, m)


if __name__ == "__main__":
    main()
