"""DPO recipe: Ray Train workers each running TRL's DPOTrainer on the pairs Parquet.

Reference handling: pairs that carry `ref_chosen_logps`/`ref_rejected_logps` (the generate stage stores them) train
with no reference model in memory; otherwise TRL precomputes them before training (`reference=precompute`) or keeps a
reference copy (`reference=model`). LoRA uses the base with adapters disabled as the reference.
"""
from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
from omegaconf import DictConfig
from trl import DPOTrainer

from nba_dpo.errors import UserError
from nba_dpo.training.common import (export_final_model, fit_and_report, hf_args, init_worker,
                                     load_model_for_training, lora_config, ray_run_name, run_trainer, scratch_dir,
                                     worker_path)

REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")


class StoredReferenceDPOTrainer(DPOTrainer):
    """DPOTrainer that trusts reference log-probs already in the dataset instead of recomputing them."""

    def _precompute_ref_logps(self, dataset, name, batch_size):
        if all(c in dataset.column_names for c in REF_COLUMNS):
            return dataset
        return super()._precompute_ref_logps(dataset, name, batch_size)


def score_completion_tokens_only() -> None:
    """On CPU, let TRL's fused LM head score the completion tokens only, as it does where Triton runs.

    Without Triton it scores every position, padding and prompt included, so that compiling devices (Neuron) see one
    tile shape; nothing compiles on CPU, and a DPO step here runs 1.4x faster with the same loss (a test compares
    them). `trl.trainer.utils` reads `_use_triton` for that choice only (TRL is pinned)."""
    import trl.trainer.utils as trl_utils
    from trl.kernels.chunked_logprob import _use_triton

    trl_utils._use_triton = lambda device: device.type == "cpu" or _use_triton(device)


def has_ref(rows: list[dict]) -> bool:
    return bool(rows) and all(rows[0].get(c) is not None for c in REF_COLUMNS)


def reference_mode(cfg: DictConfig, rows: list[dict]) -> str:
    stored = has_ref(rows)
    if cfg.train.reference == "auto":
        return "stored" if stored else "precompute"
    if cfg.train.reference == "stored" and not stored:
        raise UserError("train.reference=stored but the pairs carry no ref_chosen_logps/ref_rejected_logps; "
                        "run jobs.generate with generate.ref_logprobs=true, or use train.reference=precompute")
    return cfg.train.reference


def _dpo_loop(config: dict) -> None:
    import datasets
    from transformers import AutoTokenizer
    from trl import DPOConfig

    cfg = init_worker(config)
    if not cfg.cluster.use_gpu:
        score_completion_tokens_only()
    t = cfg.train
    tokenizer = AutoTokenizer.from_pretrained(config["model_path"])
    model = load_model_for_training(cfg, config["model_path"])
    mode = config["reference"]

    def dataset(rows: list[dict]):  # stored reference log-probs are kept where the rows carry them
        columns = ["prompt", "chosen", "rejected"] + [c for c in REF_COLUMNS if mode == "stored" and has_ref(rows)]
        return datasets.Dataset.from_list([{c: r[c] for c in columns} for r in rows])

    held_out = dataset(config["eval_rows"]) if config["eval_rows"] else None
    scratch = scratch_dir(config["run_name"])
    args = DPOConfig(**hf_args(cfg, str(scratch / "hf")), beta=t.beta, loss_type=list(t.loss_type),
                     loss_weights=list(t.loss_weights) if t.loss_weights else None, label_smoothing=t.label_smoothing,
                     max_length=cfg.model.max_length, precompute_ref_log_probs=mode in ("stored", "precompute"),
                     dataset_num_proc=None, eval_strategy="epoch" if held_out is not None else "no",
                     per_device_eval_batch_size=t.per_device_batch_size)
    # held-out pairs missing stored log-probs get them precomputed here, before training, from the untrained policy
    trainer = StoredReferenceDPOTrainer(model=model, ref_model=None, args=args, train_dataset=dataset(config["rows"]),
                                        eval_dataset=held_out, processing_class=tokenizer,
                                        peft_config=lora_config(cfg))
    fit_and_report(trainer, cfg, tokenizer, scratch)


def train_dpo(cfg: DictConfig) -> dict:
    """DPO of train.base_model on train.pairs into train.output_dir. Returns the final training metrics."""
    from nba_dpo.cluster import start_ray

    t = cfg.train
    start = time.perf_counter()
    for path, what in ((t.pairs, "pairs"), (Path(t.base_model) / "config.json", "base model")):
        if not Path(path).exists():
            raise UserError(f"{what} not found at {path}: run the earlier stages (sft, generate) first")
    rows = pq.read_table(t.pairs).to_pylist()
    if not rows:
        raise UserError(f"{t.pairs} holds no pairs: see prefs/summary.json for why prompts gave none")
    mode = reference_mode(cfg, rows)
    eval_rows = pq.read_table(t.eval_pairs).to_pylist() if t.eval_pairs and Path(t.eval_pairs).exists() else []
    if t.eval_pairs and not eval_rows:
        print(f"[train_dpo] no held-out pairs at {t.eval_pairs}: no eval_rewards/* metrics")
    start_ray(cfg.cluster)
    run_name = ray_run_name("dpo", cfg)
    print(f"[train_dpo] {len(rows)} pairs, {t.method} DPO of {t.base_model} on {cfg.cluster.num_workers} Ray Train "
          f"workers, deepspeed stage {cfg.deepspeed.stage}, loss {list(t.loss_type)}, beta {t.beta}, reference {mode}")
    result = run_trainer(_dpo_loop, {"rows": rows, "eval_rows": eval_rows, "model_path": worker_path(t.base_model),
                                     "run_name": run_name, "reference": mode}, cfg, run_name,
                         max_failures=cfg.get("max_failures", 0))
    exported = export_final_model(result, cfg, t.base_model)
    history = exported["log_history"]
    last = {k: v for h in history for k, v in h.items() if k.startswith(("rewards/", "loss", "eval_rewards/"))}
    metrics = exported["metrics"]
    return {"reference": mode, "steps": metrics.get("global_step"), "seconds": round(time.perf_counter() - start, 1),
            "train_runtime": metrics.get("train_runtime"), "step_s": metrics.get("step_s"),
            "peak_rss_mb": metrics.get("peak_rss_mb"),
            "output_dir": t.output_dir,
            "final_reward_accuracy": last.get("rewards/accuracies"), "final_loss": last.get("loss"),
            "final_margin": last.get("rewards/margins"),
            "heldout_reward_accuracy": last.get("eval_rewards/accuracies"),
            "heldout_margin": last.get("eval_rewards/margins"), "log_history": history}
