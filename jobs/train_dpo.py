"""DPO on Ray Train: TRL's DPOTrainer per worker, DDP or DeepSpeed ZeRO-2/3 (+offload), full, LoRA or QLoRA.

    python -m jobs.train_dpo paths.artifacts=artifacts/demo
    python -m jobs.train_dpo train=dpo_lora deepspeed=zero3 train.beta=0.3 train.loss_type=[ipo]
    python -m jobs.train_dpo -m train.beta=0.05,0.1,0.3 train.loss_type=[sigmoid],[ipo]   # Hydra sweep
"""
import hydra
from omegaconf import DictConfig

from nba_dpo.config import validate
from nba_dpo.errors import exit_on_user_error
from nba_dpo.sweep import objective, per_sweep_point


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_dpo")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    cfg = validate(per_sweep_point(cfg, "train.output_dir"))
    from nba_dpo.training.dpo import train_dpo  # after validation: --help and config errors skip importing TRL

    out = train_dpo(cfg)
    resumed = f" (resumed at step {out['resumed_from_step']})" if out["resumed_from_step"] else ""
    print(f"[train_dpo] done in {out['seconds']}s, {out['steps']} steps{resumed}, reference {out['reference']}, "
          "final reward "
          f"accuracy {out['final_reward_accuracy']}, margin {out['final_margin']} (held-out pairs: "
          f"{out['heldout_reward_accuracy']}, {out['heldout_margin']}); model in {out['output_dir']}")
    return objective(cfg, out)


if __name__ == "__main__":
    main()
