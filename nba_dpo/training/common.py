"""What the SFT and DPO recipes share: model loading for training, HF arguments, Ray Train plumbing, and each
worker's Ray Data shard turned into the map-style dataset TRL prepares."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from omegaconf import DictConfig, OmegaConf
from transformers import TrainerCallback, set_seed

from nba_dpo import storage
from nba_dpo.errors import UserError
from nba_dpo.models.device import torch_dtype
from nba_dpo.training.deepspeed_config import deepspeed_config

FINAL_MODEL_DIR = "model"  # inside the last Ray checkpoint; HF checkpoints live in "checkpoint"


def lora_config(cfg: DictConfig):
    if cfg.train.method == "full":
        return None
    from peft import LoraConfig

    lora = cfg.model.lora
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=list(lora.target_modules), task_type="CAUSAL_LM")


def load_model_for_training(cfg: DictConfig, path: str, args, auto_class=None, **kwargs):
    """The model to train (`auto_class`, by default a causal LM), built after its trainer's arguments `args`: while
    they live, a ZeRO-3 DeepSpeed config in them makes `from_pretrained` construct the model partitioned
    (transformers' HfDeepSpeedConfig), so no rank ever holds all of its weights."""
    from transformers import AutoModelForCausalLM

    auto_class = auto_class or AutoModelForCausalLM
    kwargs.update(dtype=torch_dtype(cfg.model.dtype), trust_remote_code=cfg.model.trust_remote_code)
    if cfg.train.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
    model = auto_class.from_pretrained(path, **kwargs)
    if cfg.train.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, args.gradient_checkpointing)
    return model


def scratch_dir(run_name: str) -> Path:
    """Per-run local folder of a worker loop: HF checkpoints (under hf/) and the failure hook's markers."""
    return Path(tempfile.gettempdir(), "nba_dpo", run_name)


def hf_args(cfg: DictConfig, output_dir: str) -> dict:
    """Keyword arguments shared by SFTConfig and DPOConfig."""
    train = cfg.train
    use_cpu = not cfg.cluster.use_gpu
    return dict(
        output_dir=output_dir, num_train_epochs=train.epochs, max_steps=train.max_steps,
        learning_rate=train.learning_rate, lr_scheduler_type=train.lr_scheduler, warmup_steps=train.warmup_ratio,
        weight_decay=train.weight_decay, per_device_train_batch_size=train.per_device_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        gradient_checkpointing=train.gradient_checkpointing, bf16=train.bf16, use_cpu=use_cpu,
        ddp_backend="gloo" if use_cpu else None, ddp_find_unused_parameters=False, logging_steps=train.logging_steps,
        save_strategy="steps", save_steps=train.save_steps, save_total_limit=2, report_to=["tensorboard"],
        seed=cfg.seed, data_seed=cfg.seed, deepspeed=deepspeed_config(cfg.deepspeed, cfg.cluster.use_gpu),
        dataloader_num_workers=0, disable_tqdm=True, remove_unused_columns=True,
    )


def init_worker(config: dict) -> DictConfig:
    """Per-worker setup before the trainer's arguments and the model are built; returns the job's config."""
    cfg = OmegaConf.create(config["cfg"])
    torch.set_num_threads(max(1, cfg.cluster.cpus_per_worker))
    # the trainer seeds itself, but only once built, after the model: a reward model's value head, which
    # from_pretrained draws afresh, would start from whatever the process had drawn before
    set_seed(cfg.seed)
    # transformers' TensorBoardCallback reads this when the trainer is built (rank 0 writes); its default is the
    # node-local HF output folder, which nobody looks in and which is deleted after the run. On a disk or shared
    # mount the events go straight to the run's folder; for an object store, here first (TensorBoardUpload)
    tensorboard = config["tensorboard"]
    os.environ["TENSORBOARD_LOGGING_DIR"] = tensorboard if not storage.is_uri(tensorboard) \
        else str(scratch_dir(config["run_name"]) / "tensorboard")
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # one line per report is noise next to HF's logs
    if cfg.deepspeed.stage == 3:
        import deepspeed

        deepspeed.init_distributed(dist_backend="nccl" if cfg.cluster.use_gpu else "gloo")
    return cfg


def enough_rows_to_shard(uri: str | None, num_workers: int) -> bool:
    """Whether the Parquet file `uri` exists with a row for each of `num_workers` Ray Train workers, as an optional
    held-out set must to be split over them (its footer only is read)."""
    return bool(uri) and storage.exists(uri) and storage.parquet_metadata(uri).num_rows >= num_workers


def shard_dataset(config: dict, name: str):
    """This worker's share of the Ray Dataset `name` as a map-style `datasets.Dataset` for TRL to prepare as usual;
    None when the trainer was given no such dataset (`run_trainer` lists their names in the loop's config). Ray Train
    splits a dataset equally over the workers (the same way on every run: `run_trainer` keeps Ray Data's order), so
    each worker reads only its share, and the driver none. The share is spooled to a node-local Arrow file and
    memory-mapped: the worker's memory holds the pages in use, not the share."""
    import datasets
    import pyarrow as pa
    import ray.train

    if name not in config["datasets"]:
        return None
    shard = ray.train.get_dataset_shard(name)
    folder = scratch_dir(config["run_name"]) / "data" / f"rank{ray.train.get_context().get_world_rank()}"
    shutil.rmtree(folder, ignore_errors=True)  # TRL caches its tokenised copy here: never an earlier attempt's
    folder.mkdir(parents=True)
    path = folder / f"{name}.arrow"
    writer = None
    with pa.OSFile(str(path), "wb") as sink:
        for batch in shard.iter_batches(batch_size=4096, batch_format="pyarrow"):
            writer = writer or pa.ipc.new_stream(sink, batch.schema)
            writer.write_table(batch)
        if writer is None:
            raise RuntimeError(f"this worker's share of the {name} dataset is empty")
        writer.close()
    return datasets.Dataset.from_file(str(path))


def too_long_examples(trainer, shard_rows: int, max_length: int, model_path: str) -> str | None:
    """The sentence that stops the job when an example of this worker's shard, as TRL tokenised it, is longer than
    model.max_length tokens (TRL would cut it short, and drop a DPO pair whose prompt alone fills it, without a word);
    None when all fit."""
    import pyarrow.compute as pc

    from nba_dpo.models.prompts import model_context

    table = trainer.train_dataset.data
    if "input_ids" in table.column_names:  # SFT: prompt and completion in one sequence
        lengths = pc.list_value_length(table.column("input_ids"))
    else:  # DPO (the prompt apart) and reward models (the prompt in each): the longer of the two answers
        lengths = pc.max_element_wise(pc.list_value_length(table.column("chosen_ids")),
                                      pc.list_value_length(table.column("rejected_ids")))
        if "prompt_ids" in table.column_names:
            lengths = pc.add(pc.list_value_length(table.column("prompt_ids")), lengths)
    # TRL's filter of the pairs whose prompt fills max_length may leave them in `.data` behind an indices mapping
    # (then they are measured here) or drop them from it (then they are counted as dropped): each counts once
    dropped = shard_rows - len(lengths)
    over = dropped + pc.sum(pc.greater(lengths, max_length)).as_py()
    if not over:
        return None
    context = model_context(model_path)
    return (f"{over} of the {shard_rows} training examples of worker {trainer.args.process_index} are longer than "
            f"model.max_length={max_length} tokens (the longest has {pc.max(lengths).as_py()}): raise "
            f"model.max_length{f' (the model takes up to {context})' if context else ''}, or shorten the data")


def stop_on_mistake(mistake: str | None, config: dict) -> bool:
    """Whether any worker found a mistake in its data (a sentence, else None). If one did, rank 0 writes the first
    such sentence to the run's mistake file, every worker ends without training, and `run_trainer` raises it in the
    driver. Raising it here instead would make Ray Train restart the workers max_failures times (each loading the model
    again) for a mistake that no restart fixes."""
    import ray.train

    mistakes = [mistake]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        mistakes = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(mistakes, mistake)
    first = next((m for m in mistakes if m), None)
    if first and ray.train.get_context().get_world_rank() == 0:
        storage.write_text(first, config["mistake_file"])
    return first is not None


class ShardDataloaders:
    """Trainer mixin for datasets that are this worker's Ray Data shard: accelerate must not split them over the
    ranks a second time. Its BatchSamplerShard wrapper becomes a passthrough, as transformers makes it for its own
    rank-aware BatchRebalanceSampler, so the Trainer's sampling, epochs and resume are unchanged. With no rank padding
    its batches, every gathered row is real: `_drop_last` leaves the loader's remainder unset, which makes
    `gather_for_metrics` keep all of them instead of cutting the last batch to one rank's remainder."""

    def get_train_dataloader(self):
        return _whole_shard(super().get_train_dataloader())

    def get_eval_dataloader(self, eval_dataset=None):
        return _whole_shard(super().get_eval_dataloader(eval_dataset))


def _whole_shard(loader):
    from accelerate.data_loader import BatchSamplerShard

    batches = getattr(loader, "batch_sampler", None)
    if isinstance(batches, BatchSamplerShard):
        batches.num_processes, batches.process_index = 1, 0
        loader._drop_last = True
    return loader


def resume_dir(local: str) -> str | None:
    """The HF checkpoint inside Ray Train's latest checkpoint, copied into `local`, when this run is a restart."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    checkpoint.to_directory(local)
    hf = Path(local, "checkpoint")
    return str(hf) if hf.is_dir() else None


def fit_and_report(trainer, cfg: DictConfig, tokenizer, tensorboard: str) -> None:
    """The tail of every worker loop: Ray checkpoint reporting, the configured callbacks (train.callbacks), resume,
    train, final model, and the node's HF checkpoints deleted."""
    from hydra.utils import instantiate
    from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer

    timer = StepTimer()
    for callback in (SaveBarrier(), RayTrainReportCallback(), timer, TensorBoardUpload(tensorboard),
                     *(instantiate(c) for c in cfg.train.callbacks)):
        trainer.add_callback(callback)
    trainer = prepare_trainer(trainer)
    with tempfile.TemporaryDirectory(prefix="nba_dpo_resume_") as local:
        resume = resume_dir(local)
        if resume is None:  # a fresh start: HF checkpoints another run left here must not be reported as this run's
            shutil.rmtree(trainer.args.output_dir, ignore_errors=True)
        start_step = json.loads(Path(resume, "trainer_state.json").read_text())["global_step"] if resume else 0
        trainer.train(resume_from_checkpoint=resume)
    report_final_model(trainer, cfg, tokenizer, timer.step_s(), start_step)
    # every HF checkpoint is in Ray Train's storage now (a restart resumes from there): free the node's disk of them,
    # a model and its optimizer states twice over
    shutil.rmtree(trainer.args.output_dir, ignore_errors=True)


class SaveBarrier(TrainerCallback):
    """At each save, every rank waits until all have written their part of the checkpoint before any reports it.
    The workers of one machine share the HF output folder and each copies it for Ray Train: without the wait, rank 1
    (which writes no model files under DDP) copied rank 0's config.json while it was still empty, and that empty file
    is what a restart then failed to load."""

    def on_save(self, args, state, control, **kwargs):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()


class TensorBoardUpload(TrainerCallback):
    """For an object-store root: rank 0's TensorBoard events, written locally, are copied to the run's folder at
    every checkpoint and at the end, so they can be read while the run trains and after its nodes are gone."""

    def __init__(self, uri: str):
        self.uri = uri

    def _upload(self, state) -> None:
        events = os.environ["TENSORBOARD_LOGGING_DIR"]
        if storage.is_uri(self.uri) and state.is_world_process_zero and os.path.isdir(events):
            storage.upload_dir(events, self.uri)

    def on_save(self, args, state, control, **kwargs):
        self._upload(state)

    def on_train_end(self, args, state, control, **kwargs):
        self._upload(state)


class StepTimer(TrainerCallback):
    """Steady-state seconds per optimizer step: the first `skip` steps (engine set-up, first allocations) left out."""

    def __init__(self, skip: int = 3):
        self.skip, self.ends = skip, []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())

    def step_s(self) -> float | None:
        timed = len(self.ends) - self.skip
        return (self.ends[-1] - self.ends[self.skip - 1]) / timed if timed > 0 else None


def report_final_model(trainer, cfg: DictConfig, tokenizer, step_s: float | None, start_step: int) -> None:
    """Save the trained model (or LoRA adapter) and report it as the last Ray Train checkpoint, with the step this
    attempt started from (0, or the checkpoint it resumed)."""
    import ray.train
    from ray.train import Checkpoint

    metrics = {k: v for log in trainer.state.log_history for k, v in log.items() if isinstance(v, (int, float))}
    metrics["global_step"] = trainer.state.global_step
    metrics["resumed_from_step"] = start_step
    metrics["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this worker's process
    if step_s is not None:
        metrics["step_s"] = step_s
    with tempfile.TemporaryDirectory(prefix="nba_dpo_final_") as out:  # report uploads it to storage before returning
        final = Path(out, FINAL_MODEL_DIR)
        trainer.save_model(str(final))  # a collective under ZeRO-3: every rank calls it, rank 0 writes
        if ray.train.get_context().get_world_rank() != 0:
            ray.train.report(metrics, checkpoint=None)
            return
        tokenizer.save_pretrained(final)
        Path(out, "log_history.json").write_text(json.dumps(trainer.state.log_history))
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(out))


def ray_run_name(stage: str, cfg: DictConfig) -> str:
    """`<stage>-<run_name>-<fingerprint>`: a rerun with the same training config resumes from the run's last
    checkpoint, while a changed config (another learning rate, model or output folder) starts its own run."""
    keys = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("train", "model", "deepspeed", "cluster")}
    fingerprint = hashlib.sha1(json.dumps({**keys, "seed": cfg.seed}, sort_keys=True).encode()).hexdigest()[:8]
    return f"{stage}-{cfg.run_name}-{fingerprint}"


def for_training(ds):
    """`ds` as Ray Train will split it over the workers. The split hands out whole blocks, so a worker's rows depend
    on where blocks end: Ray's default block size here (a block per Parquet row group), so that the stages' I/O bound
    (`cluster.data_block_mib`) never changes what a worker trains on."""
    from ray.data.context import DEFAULT_TARGET_MAX_BLOCK_SIZE

    ds.context.enable_progress_bars = False  # a shard's progress is the trainer's steps: Ray Data's would repeat it
    ds.context.target_max_block_size = DEFAULT_TARGET_MAX_BLOCK_SIZE
    return ds


def run_trainer(loop: Callable[[dict], None], loop_config: dict, datasets: dict, cfg: DictConfig, run_name: str,
                max_failures: int = 0):
    """Run `loop` on cluster.num_workers Ray Train workers, each with its shard of `datasets` (Ray Datasets by
    name); checkpoints go to <paths.artifacts>/ray_results, and a rerun with the same run name resumes from there."""
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    cluster = cfg.cluster
    resources = {"CPU": cluster.cpus_per_worker, **({"GPU": cluster.gpus_per_worker} if cluster.use_gpu else {}),
                 **(cluster.resources or {})}
    results = f"{cfg.paths.artifacts}/ray_results"
    mistake_file = f"{results}/{run_name}/mistake.txt"  # written by stop_on_mistake, read here after the run
    fs, path = storage.filesystem(results)
    # the same rows reach the same worker in the same order on every run: the shards are Ray Data's split of an
    # ordered stream, so training is reproducible for a seed
    ingest = DataConfig.default_ingest_options()
    ingest.preserve_order = True
    for ds in datasets.values():
        for_training(ds)
    trainer = TorchTrainer(
        loop, train_loop_config={"cfg": OmegaConf.to_container(cfg, resolve=True), "run_name": run_name,
                                 "tensorboard": f"{results}/{run_name}/tensorboard", "datasets": sorted(datasets),
                                 "mistake_file": mistake_file,
                                 **loop_config},
        datasets=datasets, dataset_config=DataConfig(execution_options=ingest),
        scaling_config=ScalingConfig(num_workers=cluster.num_workers, use_gpu=cluster.use_gpu,
                                     resources_per_worker=resources),
        torch_config=TorchConfig(backend="nccl" if cluster.use_gpu else "gloo"),
        run_config=RunConfig(name=run_name, storage_path=path, storage_filesystem=fs,
                             checkpoint_config=CheckpointConfig(num_to_keep=2),
                             failure_config=FailureConfig(max_failures=max_failures)),
    )
    storage.delete(mistake_file)
    result = trainer.fit()
    if storage.exists(mistake_file):
        raise UserError(storage.read_text(mistake_file))
    return result


def export_final_model(result, cfg: DictConfig, base_path: str) -> dict:
    """Publish the final model of the last Ray checkpoint as train.output_dir (atomically, see storage.publishing),
    merging a LoRA adapter into its base here in the driver, outside DeepSpeed, when train.merge_lora is set."""
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint")
    with result.checkpoint.as_directory() as ckpt, storage.publishing(cfg.train.output_dir) as out:
        model_dir = Path(ckpt) / FINAL_MODEL_DIR
        if (model_dir / "adapter_config.json").exists() and cfg.train.merge_lora:
            from peft import PeftModel
            from transformers import AutoModelForCausalLM, AutoTokenizer

            base = AutoModelForCausalLM.from_pretrained(storage.local_copy(base_path),
                                                        dtype=torch_dtype(cfg.model.dtype),
                                                        trust_remote_code=cfg.model.trust_remote_code)
            PeftModel.from_pretrained(base, str(model_dir)).merge_and_unload().save_pretrained(out)
            AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
        else:
            shutil.copytree(model_dir, out, dirs_exist_ok=True)
        history = json.loads((Path(ckpt) / "log_history.json").read_text())
        (out / "log_history.json").write_text(json.dumps(history))
    return {"log_history": history, "metrics": dict(result.metrics or {})}
