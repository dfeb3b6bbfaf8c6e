"""Supervised fine-tuning recipe: Ray Train workers each running TRL's SFTTrainer (loss on the completion only)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from omegaconf import DictConfig, OmegaConf
from transformers import Trainer
from trl import SFTTrainer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from nba_dpo import storage
from nba_dpo.data.dataset import completion_text
from nba_dpo.errors import UserError
from nba_dpo.models.prompts import build_prompt
from nba_dpo.training.common import (ShardDataloaders, enough_rows_to_shard, export_final_model, fit_and_report,
                                     hf_args, init_worker, load_model_for_training, lora_config, ray_run_name,
                                     run_trainer, scratch_dir, shard_dataset, stop_on_mistake, too_long_examples)

COLUMNS = ["question", "schema", "reasoning", "sql"]  # what an instruction row contributes to an example


def ensure_base_model(cfg: DictConfig) -> str:
    """The model to fine-tune: a hub/local/object-store folder, or the tiny model, built here from the train split
    if missing (its tokenizer learns from the questions and answers)."""
    path = cfg.model.path
    if cfg.model.build is None or storage.exists(f"{path}/config.json"):
        return path
    from nba_dpo.models.tiny import build_tiny_model

    rows = storage.read_table(f"{cfg.paths.data}/sft/train.parquet", columns=["question", "reasoning", "sql"])
    corpus = [f"{r['question']}\n{completion_text(r['reasoning'], r['sql'])}" for r in rows.to_pylist()]
    print(f"[sft] building {cfg.model.name} from scratch: tokenizer on {len(corpus)} training rows")
    with storage.publishing(path) as out:
        build_tiny_model(corpus, out, seed=cfg.seed, **OmegaConf.to_container(cfg.model.build))
    return path


def prompt_completion(row: dict, tokenizer, include_schema: bool) -> dict:
    """An instruction row as TRL's prompt/completion example, in the model's own chat format."""
    return {"prompt": build_prompt(tokenizer, row["question"], row["schema"], include_schema),
            "completion": completion_text(row["reasoning"], row["sql"])}


class ShardSFTTrainer(ShardDataloaders, SFTTrainer):
    """SFTTrainer on this worker's Ray Data shard."""


class CPUSFTTrainer(ShardSFTTrainer):
    """SFTTrainer with the model's own loss in place of TRL's fused LM head, for CPU workers.

    Without Triton (CUDA/XPU only) the fused head scores every position in per-tile torch ops, which makes a small
    model's CPU step much slower; the model's own loss is the same completion-only NLL (labels are -100 elsewhere).
    """

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)


@dataclass
class PackedRowsCollator(DataCollatorForLanguageModeling):
    """TRL's collator, with each batch's examples first packed into rows of at most `max_length` tokens (first fit,
    longest first) instead of each padded to the batch's longest: the same examples and loss per step, about a
    third fewer tokens through the model here. Position ids restart at each example and no attention mask is
    passed, so transformers masks attention block-diagonally, one block per example (sdpa and eager included).
    TRL's `padding_free` flattens a whole batch into one row instead, whose attention on CPU costs as much as the
    padding it removes."""

    max_length: int = 2048

    def __post_init__(self):
        self.return_position_ids = True

    def torch_call(self, examples: list[dict]) -> dict:
        rows: list[list[dict]] = []
        for example in sorted(examples, key=lambda e: -len(e["input_ids"])):
            n = len(example["input_ids"])
            row = next((r for r in rows if sum(len(e["input_ids"]) for e in r) + n <= self.max_length), None)
            if row is None:
                rows.append(row := [])
            row.append(example)
        packed = [{"input_ids": [t for e in row for t in e["input_ids"]],
                   "labels": [t for e in row for t in e["labels"]],
                   "seq_lengths": [len(e["input_ids"]) for e in row]} for row in rows]
        out = super().torch_call(packed)
        del out["attention_mask"]
        out["labels"][out["position_ids"] == 0] = -100  # an example's first token is no target of the one before
        return out


def pack_rows(trainer: SFTTrainer, max_length: int) -> None:
    """Give `trainer` a PackedRowsCollator with the settings of the collator SFTTrainer built: building it there (no
    collator passed in) keeps TRL's pad-token set-up of tokenizer and model config, which it skips for a given one."""
    trainer.data_collator = PackedRowsCollator(**asdict(trainer.data_collator), max_length=max_length)


def _sft_loop(config: dict) -> None:
    from transformers import AutoTokenizer
    from trl import SFTConfig

    cfg = init_worker(config)
    model_path = storage.local_copy(config["model_path"])
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    render = lambda rows: rows and rows.map(  # noqa: E731
        prompt_completion, fn_kwargs={"tokenizer": tokenizer, "include_schema": cfg.model.include_schema},
        remove_columns=rows.column_names, desc="rendering prompts")
    examples, val = render(shard_dataset(config, "train")), render(shard_dataset(config, "val"))
    scratch = scratch_dir(config["run_name"])
    args = SFTConfig(**hf_args(cfg, str(scratch / "hf")), max_length=cfg.model.max_length,
                     completion_only_loss=True, packing=False, dataset_num_proc=None,
                     eval_strategy="epoch" if val is not None else "no",
                     per_device_eval_batch_size=cfg.train.per_device_batch_size)
    model = load_model_for_training(cfg, model_path, args)
    trainer = (ShardSFTTrainer if cfg.cluster.use_gpu else CPUSFTTrainer)(
        model=model, args=args, train_dataset=examples, eval_dataset=val, processing_class=tokenizer,
        peft_config=lora_config(cfg))
    if stop_on_mistake(too_long_examples(trainer, len(examples), cfg.model.max_length, model_path), config):
        return
    if cfg.train.pack_batches:
        pack_rows(trainer, cfg.model.max_length)
    fit_and_report(trainer, cfg, tokenizer, config["tensorboard"])


def train_sft(cfg: DictConfig) -> dict:
    """Fine-tune `model` on <data>/sft/train.parquet into train.output_dir. Returns the final training metrics. The
    rows reach the workers as Ray Data shards: the driver reads the file's footer only. The validation split's loss
    (val_loss) is measured at the end of each epoch."""
    from nba_dpo.cluster import start_ray

    start = time.perf_counter()
    start_ray(cfg)
    train = f"{cfg.paths.data}/sft/train.parquet"
    if not storage.exists(train):
        raise UserError(f"{train} does not exist: run `python -m jobs.build_data paths.artifacts="
                        f"{cfg.paths.artifacts}` first")
    base = ensure_base_model(cfg)
    n = storage.parquet_metadata(train).num_rows
    if n < cfg.cluster.num_workers:
        raise UserError(f"{train} holds {n} rows, fewer than the {cfg.cluster.num_workers} Ray Train workers")
    datasets = {"train": storage.read_dataset(train, columns=COLUMNS)}
    val = f"{cfg.paths.data}/sft/val.parquet"  # the validation loss: what an SFT sweep ranks by
    if enough_rows_to_shard(val, cfg.cluster.num_workers):
        datasets["val"] = storage.read_dataset(val, columns=COLUMNS)
    run_name = ray_run_name("sft", cfg)
    print(f"[sft] {n} examples, {cfg.train.method} fine-tuning of {base} on {cfg.cluster.num_workers} "
          f"Ray Train workers, deepspeed stage {cfg.deepspeed.stage}")
    result = run_trainer(_sft_loop, {"model_path": storage.absolute(base)}, datasets, cfg, run_name,
                         max_failures=cfg.get("max_failures", 0))
    exported = export_final_model(result, cfg, base)
    losses = [h["loss"] for h in exported["log_history"] if "loss" in h]
    val_losses = [h["eval_loss"] for h in exported["log_history"] if "eval_loss" in h]
    return {"final_loss": losses[-1] if losses else None, "first_loss": losses[0] if losses else None,
            "val_loss": val_losses[-1] if val_losses else None,
            "steps": exported["metrics"].get("global_step"), "step_s": exported["metrics"].get("step_s"),
            "resumed_from_step": exported["metrics"].get("resumed_from_step"),
            "seconds": round(time.perf_counter() - start, 1),
            "output_dir": cfg.train.output_dir}
