"""Supervised fine-tuning recipe: Ray Train workers each running TRL's SFTTrainer (loss on the completion only)."""
from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf
from transformers import Trainer
from trl import SFTTrainer

from nba_dpo.data.dataset import completion_text
from nba_dpo.models.prompts import build_prompt
from nba_dpo.training.common import (export_final_model, fit_and_report, hf_args, init_worker,
                                     load_model_for_training, lora_config, ray_run_name, run_trainer, scratch_dir,
                                     worker_path)


def ensure_base_model(cfg: DictConfig) -> str:
    """The model to fine-tune: a hub/local folder, or the tiny model, built here from the train split if missing."""
    path = Path(cfg.model.path)
    if cfg.model.build is None or (path / "config.json").exists():
        return str(path)
    from nba_dpo.models.tiny import build_tiny_model

    rows = pq.read_table(Path(cfg.paths.data) / "sft" / "train.parquet").to_pylist()
    corpus = [f"{r['question']}\n{completion_text(r['reasoning'], r['sql'])}" for r in rows]
    print(f"[sft] building {cfg.model.name} from scratch: tokenizer on {len(corpus)} training rows")
    build_tiny_model(corpus, path, seed=cfg.seed, **OmegaConf.to_container(cfg.model.build))
    return str(path)


def prompt_completion_rows(rows: list[dict], tokenizer, include_schema: bool) -> list[dict]:
    return [{"prompt": build_prompt(tokenizer, r["question"], r["schema"], include_schema),
             "completion": completion_text(r["reasoning"], r["sql"])} for r in rows]


class CPUSFTTrainer(SFTTrainer):
    """SFTTrainer with the model's own loss in place of TRL's fused LM head, for CPU workers.

    Without Triton (CUDA/XPU only) the fused head scores every position in per-tile torch ops, which makes a small
    model's CPU step 1.5x slower; the model's own loss is the same completion-only NLL (labels are -100 elsewhere).
    """

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)


def _sft_loop(config: dict) -> None:
    import datasets
    from transformers import AutoTokenizer
    from trl import SFTConfig

    cfg = OmegaConf.create(config["cfg"])
    init_worker(cfg)
    tokenizer = AutoTokenizer.from_pretrained(config["model_path"])
    model = load_model_for_training(cfg, config["model_path"])
    scratch = scratch_dir(config["run_name"])
    args = SFTConfig(**hf_args(cfg, str(scratch / "hf")), max_length=cfg.model.max_length,
                     completion_only_loss=True, packing=False, dataset_num_proc=None)
    trainer = (SFTTrainer if cfg.cluster.use_gpu else CPUSFTTrainer)(
        model=model, args=args, train_dataset=datasets.Dataset.from_list(config["rows"]), processing_class=tokenizer,
        peft_config=lora_config(cfg))
    fit_and_report(trainer, cfg, tokenizer, scratch)


def train_sft(cfg: DictConfig) -> dict:
    """Fine-tune `model` on <data>/sft/train.parquet into train.output_dir. Returns the final training metrics."""
    from transformers import AutoTokenizer

    from nba_dpo.cluster import start_ray

    start = time.perf_counter()
    base = ensure_base_model(cfg)
    tokenizer = AutoTokenizer.from_pretrained(base)
    rows = pq.read_table(Path(cfg.paths.data) / "sft" / "train.parquet").to_pylist()
    examples = prompt_completion_rows(rows, tokenizer, cfg.model.include_schema)
    start_ray(cfg.cluster)
    run_name = ray_run_name("sft", cfg)
    print(f"[sft] {len(examples)} examples, {cfg.train.method} fine-tuning of {base} on {cfg.cluster.num_workers} "
          f"Ray Train workers, deepspeed stage {cfg.deepspeed.stage}")
    result = run_trainer(_sft_loop, {"rows": examples, "model_path": worker_path(base), "run_name": run_name}, cfg,
                         run_name, max_failures=cfg.get("max_failures", 0))
    exported = export_final_model(result, cfg, base)
    losses = [h["loss"] for h in exported["log_history"] if "loss" in h]
    return {"final_loss": losses[-1] if losses else None, "first_loss": losses[0] if losses else None,
            "steps": exported["metrics"].get("global_step"), "step_s": exported["metrics"].get("step_s"),
            "seconds": round(time.perf_counter() - start, 1),
            "output_dir": cfg.train.output_dir}
