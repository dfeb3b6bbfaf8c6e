"""Preference data: sample candidates with the policy (Ray Data; hf or vLLM actors), score, pair, add reference
log-probs.

    python -m jobs.generate paths.artifacts=artifacts/demo                  # hf backend, execution verifier
    python -m jobs.generate generate=vllm                                   # vLLM engines through ray.data.llm
    python -m jobs.generate score=armorm pairs=margin cluster=gpu           # + ArmoRM rewards on a GPU cluster
"""
import hydra
from omegaconf import DictConfig

from nba_dpo.config import validate
from nba_dpo.errors import exit_on_user_error
from nba_dpo.prefs.run import generate_preferences
from nba_dpo.sweep import objective, per_sweep_point


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    cfg = validate(per_sweep_point(cfg, "generate.output_dir"))
    s = generate_preferences(cfg)
    speed = (f"{s['tokens_per_s']:.0f} tokens/s" if s["tokens_per_s"]
             else f"{s['resumed_candidates']} candidates resumed")
    pass_rate = "unknown (no gold SQL)" if s["pass_rate"] is None else f"{s['pass_rate']:.3f}"
    chosen_right = s["pairs"]["chosen_correct"]
    right = "" if chosen_right is None else f", {chosen_right:.1%} of them with a right chosen answer"
    print(f"[generate] {s['prompts']} prompts, {s['candidates']} candidates ({s['errors']} errors), pass rate "
          f"{pass_rate}; {s['pairs']['n']} pairs ({s['pairs']['per_prompt']:.2f} per prompt{right}), no pair: "
          f"{s['no_pair_reasons']}; {speed}; {s['seconds']}s; outputs in "
          f"{cfg.generate.output_dir}")
    return objective(cfg, {**s, "pairs_per_prompt": s["pairs"]["per_prompt"]})


if __name__ == "__main__":
    main()
