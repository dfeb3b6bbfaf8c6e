"""DPO recipe: Ray Train workers each running TRL's DPOTrainer on their Ray Data shard of the pairs Parquet.

Reference handling: pairs that carry `ref_chosen_logps`/`ref_rejected_logps` (the generate stage stores them) train
with no reference model in memory; otherwise they are computed once before training (`reference=precompute`: Ray
Data actors, tokenised as TRL does, written beside the run's checkpoints and reused by a rerun) or TRL keeps a
reference copy (`reference=model`). LoRA uses the base with adapters disabled as the reference. TRL's own
precompute cannot run here: it gathers every rank's log-probs into one table, where each rank holds other pairs.
"""
from __future__ import annotations

import time

from omegaconf import DictConfig
from trl import DPOTrainer

from nba_dpo import storage
from nba_dpo.errors import UserError
from nba_dpo.training.common import (ShardDataloaders, export_final_model, fit_and_report, hf_args, init_worker,
                                     load_model_for_training, lora_config, ray_run_name, run_trainer, scratch_dir,
                                     shard_dataset, stop_on_mistake, too_long_examples)

REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")
PAIR_COLUMNS = ["prompt", "chosen", "rejected"]


class StoredReferenceDPOTrainer(ShardDataloaders, DPOTrainer):
    """DPOTrainer on this worker's shard that trusts reference log-probs already in the dataset instead of
    recomputing them."""

    def _precompute_ref_logps(self, dataset, name, batch_size):
        if all(c in dataset.column_names for c in REF_COLUMNS):
            return dataset
        return super()._precompute_ref_logps(dataset, name, batch_size)


def score_completion_tokens_only() -> None:
    """On CPU, let TRL's fused LM head score the completion tokens only, as it does where Triton runs.

    Without Triton it scores every position, padding and prompt included, so that compiling devices (Neuron) see one
    tile shape; nothing compiles on CPU, and a DPO step here runs faster with the same loss (a test compares
    them). `trl.trainer.utils` reads `_use_triton` for that choice only (TRL is pinned)."""
    import trl.trainer.utils as trl_utils
    from trl.kernels.chunked_logprob import _use_triton

    trl_utils._use_triton = lambda device: device.type == "cpu" or _use_triton(device)


def stored_reference(meta) -> bool:
    """Whether every pair of a Parquet file carries reference log-probs, from its footer (`storage.parquet_metadata`:
    the null counts)."""
    names = meta.schema.names
    if meta.num_rows == 0 or not all(c in names for c in REF_COLUMNS):
        return False
    for g in range(meta.num_row_groups):
        for c in REF_COLUMNS:
            stats = meta.row_group(g).column(names.index(c)).statistics
            if stats is None or not stats.has_null_count or stats.null_count:
                return False
    return True


def reference_mode(cfg: DictConfig, stored: bool) -> str:
    if cfg.train.reference == "auto":
        return "stored" if stored else "precompute"
    if cfg.train.reference == "stored" and not stored:
        raise UserError("train.reference=stored but the pairs carry no ref_chosen_logps/ref_rejected_logps; "
                        "run jobs.generate with generate.ref_logprobs=true, or use train.reference=precompute")
    return cfg.train.reference


def _dpo_loop(config: dict) -> None:
    from transformers import AutoTokenizer
    from trl import DPOConfig

    cfg = init_worker(config)
    if not cfg.cluster.use_gpu:
        score_completion_tokens_only()
    train = cfg.train
    model_path = storage.local_copy(config["model_path"])
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    train_shard, held_out = shard_dataset(config, "train"), shard_dataset(config, "eval")
    stored = config["reference"] != "model"  # precomputed ones are in the rows by now
    scratch = scratch_dir(config["run_name"])
    args = DPOConfig(**hf_args(cfg, str(scratch / "hf")), beta=train.beta, loss_type=list(train.loss_type),
                     loss_weights=list(train.loss_weights) if train.loss_weights else None,
                     label_smoothing=train.label_smoothing,
                     max_length=cfg.model.max_length, precompute_ref_log_probs=stored,
                     dataset_num_proc=None, eval_strategy="epoch" if held_out is not None else "no",
                     per_device_eval_batch_size=train.per_device_batch_size)
    model = load_model_for_training(cfg, model_path, args)
    trainer = StoredReferenceDPOTrainer(model=model, ref_model=None, args=args, train_dataset=train_shard,
                                        eval_dataset=held_out, processing_class=tokenizer,
                                        peft_config=lora_config(cfg))
    if stop_on_mistake(too_long_examples(trainer, len(train_shard), cfg.model.max_length, model_path), config):
        return
    fit_and_report(trainer, cfg, tokenizer, config["tensorboard"])


def pairs_dataset(cfg: DictConfig, uri: str, mode: str, run_name: str, name: str):
    """The pairs of `uri` as a Ray Dataset, with reference log-probs when they are needed: the stored ones, or (mode
    precompute) computed by Ray Data actors from the base model into the run's folder first, once per run."""
    import ray

    from nba_dpo.cluster import actor_resources
    from nba_dpo.prefs.ref_logprobs import RefLogProbs

    if mode == "precompute":
        reference = f"{cfg.paths.artifacts}/ray_results/{run_name}/reference/{name}.parquet"
        if not storage.exists(reference):
            print(f"[train_dpo] reference log-probs of {uri} from {cfg.train.base_model}")
            ds = storage.read_dataset(uri, columns=PAIR_COLUMNS)
            ds = ds.map_batches(RefLogProbs, batch_size=64,
                                compute=ray.data.ActorPoolStrategy(size=cfg.cluster.num_workers),
                                **actor_resources(cfg.cluster, num_cpus=cfg.cluster.cpus_per_worker,
                                                  num_gpus=cfg.cluster.gpus_per_worker if cfg.cluster.use_gpu else 0),
                                fn_constructor_kwargs=dict(model_path=storage.absolute(cfg.train.base_model),
                                                           max_length=cfg.model.max_length, dtype=cfg.model.dtype,
                                                           use_gpu=cfg.cluster.use_gpu))
            storage.write_dataset(ds, reference)
        uri = reference
    return storage.read_dataset(uri, columns=PAIR_COLUMNS + (list(REF_COLUMNS) if mode != "model" else []))


def train_dpo(cfg: DictConfig) -> dict:
    """DPO of train.base_model on train.pairs into train.output_dir. Returns the final training metrics. The pairs
    reach the workers as Ray Data shards: the driver reads the files' footers only."""
    from nba_dpo.cluster import start_ray

    train = cfg.train
    start = time.perf_counter()
    start_ray(cfg)
    storage.require({"pairs": train.pairs, "base model": f"{train.base_model}/config.json"},
                    "run the earlier stages (sft, generate) first")
    meta = storage.parquet_metadata(train.pairs)
    n = meta.num_rows
    if n < cfg.cluster.num_workers:
        raise UserError(f"{train.pairs} holds {n} pairs, fewer than the {cfg.cluster.num_workers} Ray Train workers: "
                        "see prefs/summary.json for why prompts gave none")
    mode = reference_mode(cfg, stored_reference(meta))
    run_name = ray_run_name("dpo", cfg)
    datasets = {"train": pairs_dataset(cfg, train.pairs, mode, run_name, "train")}
    has_eval = train.eval_pairs and storage.exists(train.eval_pairs)
    eval_meta = storage.parquet_metadata(train.eval_pairs) if has_eval else None
    n_eval = eval_meta.num_rows if eval_meta else 0
    if n_eval >= cfg.cluster.num_workers:
        eval_mode = "model" if mode == "model" else reference_mode(cfg, stored_reference(eval_meta))
        datasets["eval"] = pairs_dataset(cfg, train.eval_pairs, eval_mode, run_name, "eval")
    elif train.eval_pairs:
        print(f"[train_dpo] {n_eval} held-out pairs at {train.eval_pairs}, fewer than the workers: no eval_rewards/*")
    print(f"[train_dpo] {n} pairs, {train.method} DPO of {train.base_model} on {cfg.cluster.num_workers} Ray Train "
          f"workers, deepspeed stage {cfg.deepspeed.stage}, loss {list(train.loss_type)}, beta {train.beta}, "
          f"reference {mode}")
    result = run_trainer(_dpo_loop, {"model_path": storage.absolute(train.base_model), "reference": mode}, datasets,
                         cfg, run_name, max_failures=cfg.get("max_failures", 0))
    exported = export_final_model(result, cfg, train.base_model)
    history = exported["log_history"]
    last = {k: v for h in history for k, v in h.items() if k.startswith(("rewards/", "loss", "eval_rewards/"))}
    metrics = exported["metrics"]
    return {"reference": mode, "steps": metrics.get("global_step"), "seconds": round(time.perf_counter() - start, 1),
            "train_runtime": metrics.get("train_runtime"), "step_s": metrics.get("step_s"),
            "resumed_from_step": metrics.get("resumed_from_step"),
            "peak_rss_mb": metrics.get("peak_rss_mb"),
            "output_dir": train.output_dir,
            "final_reward_accuracy": last.get("rewards/accuracies"), "final_loss": last.get("loss"),
            "final_margin": last.get("rewards/margins"),
            "heldout_reward_accuracy": last.get("eval_rewards/accuracies"),
            "heldout_margin": last.get("eval_rewards/margins"), "log_history": history}
