"""Supervised fine-tuning on Ray Train (TRL SFTTrainer per worker; DDP or DeepSpeed ZeRO; full, LoRA or QLoRA).

    python -m jobs.sft paths.artifacts=artifacts/demo                     # tiny model, full fine-tuning
    python -m jobs.sft train=sft_lora deepspeed=zero2 cluster.num_workers=2
    python -m jobs.sft model=qwen2_5_coder_7b train=sft_lora deepspeed=zero3 cluster=gpu   # on a GPU cluster
"""
import hydra
from omegaconf import DictConfig

from nba_dpo.config import validate
from nba_dpo.errors import exit_on_user_error
from nba_dpo.sweep import objective, per_sweep_point


@hydra.main(version_base="1.3", config_path="../conf", config_name="sft")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    cfg = validate(per_sweep_point(cfg, "train.output_dir"))
    from nba_dpo.training.sft import train_sft  # after validation: --help and config errors skip importing TRL

    out = train_sft(cfg)
    resumed = f" (resumed at step {out['resumed_from_step']})" if out["resumed_from_step"] else ""
    print(f"[sft] done in {out['seconds']}s, {out['steps']} steps{resumed}, loss {out['first_loss']} -> "
          f"{out['final_loss']}, validation loss {out['val_loss']}; model in {out['output_dir']}")
    return objective(cfg, out)


if __name__ == "__main__":
    main()
