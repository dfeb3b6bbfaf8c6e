"""Reward-model recipe: Ray Train workers each running TRL's RewardTrainer on their Ray Data shard of preference pairs
(execution-verified: a right answer over a wrong one, from prompts with gold SQL), starting from a causal LM with a
new one-score head (`AutoModelForSequenceClassification`).

Each pair is scored as the RewardScorer of the generate stage will score a candidate: the question as the user turn
and the answer as the assistant turn, in the model's chat format. The trained model is `score=learned`'s reward
model: it ranks the candidates of prompts that have no gold answer.
"""
from __future__ import annotations

import time

from omegaconf import DictConfig
from trl import RewardTrainer

from nba_dpo import storage
from nba_dpo.errors import UserError
from nba_dpo.training.common import (ShardDataloaders, enough_rows_to_shard, export_final_model, fit_and_report,
                                     hf_args, init_worker, load_model_for_training, ray_run_name, run_trainer,
                                     scratch_dir, shard_dataset, stop_on_mistake, too_long_examples)

PAIR_COLUMNS = ["question", "chosen", "rejected"]


class ShardRewardTrainer(ShardDataloaders, RewardTrainer):
    """RewardTrainer on this worker's Ray Data shard."""


def conversation(row: dict) -> dict:
    """A pair as TRL's conversational preference example: the question, then each answer as the assistant's turn."""
    return {"prompt": [{"role": "user", "content": row["question"]}],
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}]}


def _reward_loop(config: dict) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig

    cfg = init_worker(config)
    model_path = storage.local_copy(config["model_path"])
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    render = lambda rows: rows and rows.map(conversation, remove_columns=rows.column_names)  # noqa: E731
    pairs, held_out = render(shard_dataset(config, "train")), render(shard_dataset(config, "eval"))
    args = RewardConfig(**hf_args(cfg, str(scratch_dir(config["run_name"]) / "hf")), max_length=cfg.model.max_length,
                        center_rewards_coefficient=cfg.train.center_rewards_coefficient, dataset_num_proc=None,
                        eval_strategy="epoch" if held_out is not None else "no",
                        per_device_eval_batch_size=cfg.train.per_device_batch_size)
    model = load_model_for_training(cfg, model_path, args, AutoModelForSequenceClassification, num_labels=1,
                                    pad_token_id=tokenizer.pad_token_id)
    trainer = ShardRewardTrainer(model=model, args=args, train_dataset=pairs, eval_dataset=held_out,
                                 processing_class=tokenizer)
    if stop_on_mistake(too_long_examples(trainer, len(pairs), cfg.model.max_length, model_path), config):
        return
    fit_and_report(trainer, cfg, tokenizer, config["tensorboard"])


def train_reward(cfg: DictConfig) -> dict:
    """A reward model from train.base_model, trained on train.pairs into train.output_dir; returns the final metrics,
    with the held-out pairs' accuracy (the share where the chosen answer scores higher)."""
    from nba_dpo.cluster import start_ray

    train = cfg.train
    start = time.perf_counter()
    start_ray(cfg)
    storage.require({"pairs": train.pairs, "base model": f"{train.base_model}/config.json"},
                    "run jobs.generate on prompts with gold SQL first (see conf/train/reward_full.yaml)")
    n = storage.parquet_metadata(train.pairs).num_rows
    if n < cfg.cluster.num_workers:
        raise UserError(f"{train.pairs} holds {n} pairs, fewer than the {cfg.cluster.num_workers} Ray Train workers")
    datasets = {"train": storage.read_dataset(train.pairs, columns=PAIR_COLUMNS)}
    if enough_rows_to_shard(train.eval_pairs, cfg.cluster.num_workers):
        datasets["eval"] = storage.read_dataset(train.eval_pairs, columns=PAIR_COLUMNS)
    print(f"[train_reward] {n} pairs, reward model from {train.base_model} on {cfg.cluster.num_workers} Ray Train "
          f"workers, deepspeed stage {cfg.deepspeed.stage}")
    result = run_trainer(_reward_loop, {"model_path": storage.absolute(train.base_model)}, datasets, cfg,
                         ray_run_name("reward", cfg), max_failures=cfg.get("max_failures", 0))
    exported = export_final_model(result, cfg, train.base_model)
    history = exported["log_history"]
    last = {k: v for h in history for k, v in h.items()}
    return {"steps": exported["metrics"].get("global_step"), "seconds": round(time.perf_counter() - start, 1),
            "final_loss": last.get("loss"), "final_accuracy": last.get("accuracy"),
            "heldout_accuracy": last.get("eval_accuracy"), "heldout_margin": last.get("eval_margin"),
            "output_dir": train.output_dir}
