"""Typed schemas for the config groups in conf/, and validation that runs before any Ray work starts.

The YAML files under conf/ are the only place defaults live: every schema field here is MISSING, so a key the
YAML leaves out is reported, never silently filled (tests/test_models.py::test_schemas_carry_no_defaults). The
schemas give every value a type and its allowed values (Enums, or the library that owns them), and `validate` turns
a wrong type, a missing value or a bad combination into one sentence (a UserError). Checks of the machine (GPUs,
CPUs, vLLM, model folders) live in `nba_dpo.preflight`.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nba_dpo import preflight, storage
from nba_dpo.errors import UserError


class Method(StrEnum):
    full = "full"
    lora = "lora"
    qlora = "qlora"     # 4-bit base weights (bitsandbytes, CUDA only) + LoRA


class Reference(StrEnum):
    auto = "auto"              # stored log-probs when the pairs carry them, else precompute
    stored = "stored"
    precompute = "precompute"
    model = "model"


class Dtype(StrEnum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class Direction(StrEnum):
    maximize = "maximize"
    minimize = "minimize"


class PairStrategy(StrEnum):
    best_worst = "best_worst"
    margin = "margin"
    all_pairs = "all_pairs"


class OnTie(StrEnum):
    skip = "skip"
    hard_negative = "hard_negative"


class Chosen(StrEnum):
    gold = "gold"
    best = "best"
    consensus = "consensus"


class RewardKind(StrEnum):
    sequence_classification = "sequence_classification"
    armorm = "armorm"


@dataclass
class Paths:
    artifacts: str = MISSING
    data: str = MISSING


@dataclass
class SyntheticData:
    name: str = MISSING
    db_path: str = MISSING
    n_seasons: int = MISSING
    first_season: int = MISSING
    heldout_fraction: float = MISSING
    params_per_intent: int = MISSING
    sizes: dict[str, int] = MISSING
    pref_gold: bool = MISSING


@dataclass
class ByoData:
    name: str = MISSING
    db_path: str = MISSING
    questions: str = MISSING
    split_fractions: dict[str, float] = MISSING
    pref_gold: bool = MISSING


DATA_SCHEMAS = {"nba_synthetic": SyntheticData, "byo": ByoData}


@dataclass
class TinyBuild:
    vocab_size: int = MISSING
    hidden_size: int = MISSING
    num_layers: int = MISSING
    num_heads: int = MISSING
    intermediate_size: int = MISSING
    max_position_embeddings: int = MISSING


@dataclass
class Lora:
    r: int = MISSING
    alpha: int = MISSING
    dropout: float = MISSING
    target_modules: list[str] = MISSING


@dataclass
class Model:
    name: str = MISSING
    path: str = MISSING
    build: Optional[TinyBuild] = MISSING
    dtype: Dtype = MISSING
    trust_remote_code: bool = MISSING
    include_schema: bool = MISSING
    max_length: int = MISSING
    lora: Lora = MISSING


@dataclass
class Train:
    """What every training recipe shares; `kind` picks the schema (SFTTrain, DPOTrain, RewardTrain)."""
    kind: str = MISSING
    method: Method = MISSING
    epochs: float = MISSING
    max_steps: int = MISSING
    learning_rate: float = MISSING
    lr_scheduler: str = MISSING
    warmup_ratio: float = MISSING
    weight_decay: float = MISSING
    per_device_batch_size: int = MISSING
    gradient_accumulation_steps: int = MISSING
    gradient_checkpointing: bool = MISSING
    bf16: bool = MISSING
    logging_steps: int = MISSING
    save_steps: int = MISSING
    merge_lora: bool = MISSING
    callbacks: list[Any] = MISSING
    output_dir: str = MISSING


@dataclass
class SFTTrain(Train):
    pack_batches: bool = MISSING


@dataclass
class DPOTrain(Train):
    base_model: str = MISSING
    pairs: str = MISSING
    eval_pairs: Optional[str] = MISSING
    reference: Reference = MISSING
    beta: float = MISSING
    loss_type: list[str] = MISSING
    loss_weights: Optional[list[float]] = MISSING
    label_smoothing: float = MISSING


@dataclass
class RewardTrain(Train):
    base_model: str = MISSING
    pairs: str = MISSING
    eval_pairs: Optional[str] = MISSING
    center_rewards_coefficient: Optional[float] = MISSING


TRAIN_SCHEMAS = {"sft": SFTTrain, "dpo": DPOTrain, "reward": RewardTrain}


@dataclass
class DeepSpeed:
    stage: int = MISSING
    offload_optimizer: bool = MISSING
    offload_param: bool = MISSING
    max_live_parameters: Optional[int] = MISSING


@dataclass
class Cluster:
    address: str = MISSING
    num_cpus: Optional[int] = MISSING
    num_workers: int = MISSING
    use_gpu: bool = MISSING
    cpus_per_worker: int = MISSING
    gpus_per_worker: int = MISSING
    data_block_mib: int = MISSING
    data_memory_mib: int = MISSING
    resources: Optional[dict[str, float]] = MISSING


@dataclass
class RewardModel:
    path: str = MISSING
    kind: RewardKind = MISSING
    trust_remote_code: bool = MISSING
    dtype: Dtype = MISSING
    max_length: int = MISSING
    concurrency: int = MISSING
    num_gpus: float = MISSING
    batch_size: int = MISSING
    include_schema: bool = MISSING


@dataclass
class VLLMEngine:
    """The engine settings generate=vllm and eval=vllm share (conf/vllm_engine/)."""
    tensor_parallel_size: int = MISSING
    max_model_len: int = MISSING
    engine_kwargs: dict[str, Any] = MISSING
    tokenizer_stages: bool = MISSING
    cpu_kv_cache_gib: int = MISSING


@dataclass
class Eval:
    """What both backends share; `backend` picks the schema (Eval, VLLMEval)."""
    backend: str = MISSING
    name: str = MISSING
    model_path: str = MISSING
    split: str = MISSING
    limit: Optional[int] = MISSING
    num_shards: int = MISSING
    batch_size: int = MISSING
    max_new_tokens: int = MISSING
    num_samples: int = MISSING
    pass_k: list[int] = MISSING
    temperature: float = MISSING
    top_p: float = MISSING
    top_k: int = MISSING
    sql_timeout_s: float = MISSING
    predictions: Optional[str] = MISSING
    pairs: Optional[str] = MISSING
    reward_model: Optional[RewardModel] = MISSING


@dataclass
class VLLMEval(Eval, VLLMEngine):
    pass


EVAL_SCHEMAS = {"hf": Eval, "vllm": VLLMEval}


@dataclass
class Generate:
    """What both backends share; `backend` picks the schema (HFGenerate, VLLMGenerate)."""
    backend: str = MISSING
    model_path: str = MISSING
    ref_model_path: str = MISSING
    prompts: str = MISSING
    limit: Optional[int] = MISSING
    offset: int = MISSING
    num_samples: int = MISSING
    temperature: float = MISSING
    top_p: float = MISSING
    top_k: int = MISSING
    max_new_tokens: int = MISSING
    seed: int = MISSING
    batch_size: int = MISSING
    concurrency: int = MISSING
    chunk_prompts: int = MISSING
    retries: int = MISSING
    ref_logprobs: bool = MISSING
    output_dir: str = MISSING


@dataclass
class HFGenerate(Generate):
    actor_class: str = MISSING


@dataclass
class VLLMGenerate(Generate, VLLMEngine):
    pass


GENERATE_SCHEMAS = {"hf": HFGenerate, "vllm": VLLMGenerate}


@dataclass
class ScoreWeights:
    correct: float = MISSING
    exec_ok: float = MISSING
    reward: float = MISSING
    brevity: float = MISSING


@dataclass
class Score:
    reward_model: Optional[RewardModel] = MISSING
    weights: ScoreWeights = MISSING
    sql_timeout_s: float = MISSING


@dataclass
class Pairs:
    strategy: PairStrategy = MISSING
    min_margin: float = MISSING
    max_pairs_per_prompt: int = MISSING
    on_tie: OnTie = MISSING
    chosen: Chosen = MISSING
    hard_negative_score: float = MISSING
    gold_score: float = MISSING
    test_fraction: float = MISSING
    min_votes: int = MISSING
    min_token_edits: int = MISSING


@dataclass
class Objective:
    metric: str = MISSING          # the result a job returns to Hydra (and a sweep ranks by)
    direction: Direction = MISSING


# the groups with one schema; data, train, generate and eval pick theirs by a key (name, kind, backend)
GROUP_SCHEMAS = {"objective": Objective, "model": Model, "deepspeed": DeepSpeed, "cluster": Cluster,
                 "score": Score, "pairs": Pairs}
SCHEMAS_BY_KEY = {"data": ("name", DATA_SCHEMAS), "train": ("kind", TRAIN_SCHEMAS),
                  "generate": ("backend", GENERATE_SCHEMAS), "eval": ("backend", EVAL_SCHEMAS)}


# `--help` opens with the running job's docstring (what it does, example commands): conf/config.yaml's help header
OmegaConf.register_new_resolver("job_doc", lambda: (sys.modules["__main__"].__doc__ or "").strip() + "\n",
                                replace=True)
# Hydra's own outputs (logs, the composed config) need a local folder: beside the artifacts on a disk, under
# outputs/<scheme>/<bucket>/... for an object-store root
OmegaConf.register_new_resolver("local_dir", lambda path: os.path.join("outputs", path.replace("://", "/", 1))
                                if storage.is_uri(path) else path, replace=True)


def _typed(node: Any, schema: type, where: str) -> DictConfig:
    """Merge `node` over `schema`: unknown keys, wrong types, values outside an Enum and missing values become a
    UserError."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise UserError(f"{where} needs a value for {', '.join(f'{where}.{k}' for k in missing)} "
                            f"(add {missing[0]}=... on the command line)")
        OmegaConf.resolve(merged)
        return merged
    except OmegaConfBaseException as e:
        choice = re.match(r"Invalid value '(.*)', expected one of \[(.*)\]", str(e))
        if choice:
            allowed = choice.group(2).split(", ")
            raise UserError(f"{where}.{e.full_key} must be {', '.join(allowed[:-1])} or {allowed[-1]}, not "
                            f"{choice.group(1)!r}") from None
        raise UserError(f"invalid {where} config: {str(e).splitlines()[0]}") from None


def _schema_for(group: str, node: DictConfig) -> type:
    if group in GROUP_SCHEMAS:
        return GROUP_SCHEMAS[group]
    key, schemas = SCHEMAS_BY_KEY[group]
    value = node.get(key)
    if value not in schemas:
        raise UserError(f"{group}.{key} must be {' or '.join(schemas)}, not {value!r}")
    return schemas[value]


def validate(cfg: DictConfig) -> DictConfig:
    """Type-check and sanity-check the groups present in `cfg`, then check the machine can run it
    (`preflight.check`); returns the resolved config."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    try:
        root = out.paths.artifacts
        # every process of the cluster names it the same way: Ray Train workers run in folders of their own
        out.paths.artifacts = root if storage.is_uri(root) else os.path.abspath(root)
        OmegaConf.resolve(out)
    except OmegaConfBaseException as e:
        raise UserError(f"cannot resolve the config: {str(e).splitlines()[0]}") from None
    out.paths = _typed(out.paths, Paths, "paths")
    for group in [*GROUP_SCHEMAS, *SCHEMAS_BY_KEY]:
        if group in out:
            out[group] = _typed(out[group], _schema_for(group, out[group]), group)
    _check_ranges(out)
    _check_combinations(out)
    preflight.check(out)
    return out


_POSITIVE = "greater than 0"
_COUNT = "a whole number of at least 1"
# values a setting cannot take: (group, key, test, what the value must be); None (unset) always passes
RANGES = [
    ("train", "learning_rate", lambda v: v > 0, _POSITIVE), ("train", "epochs", lambda v: v > 0, _POSITIVE),
    ("train", "per_device_batch_size", lambda v: v >= 1, _COUNT),
    ("train", "gradient_accumulation_steps", lambda v: v >= 1, _COUNT),
    ("train", "max_steps", lambda v: v == -1 or v >= 1, "-1 (no limit) or at least 1"),
    ("train", "logging_steps", lambda v: v >= 1, _COUNT), ("train", "save_steps", lambda v: v >= 1, _COUNT),
    ("train", "warmup_ratio", lambda v: 0 <= v < 1, "at least 0 and below 1"),
    ("train", "weight_decay", lambda v: v >= 0, "at least 0"), ("train", "beta", lambda v: v > 0, _POSITIVE),
    ("train", "label_smoothing", lambda v: 0 <= v < 0.5, "at least 0 and below 0.5"),
    ("eval", "batch_size", lambda v: v >= 1, _COUNT), ("eval", "num_shards", lambda v: v >= 1, _COUNT),
    ("eval", "max_new_tokens", lambda v: v >= 1, _COUNT), ("eval", "num_samples", lambda v: v >= 1, _COUNT),
    ("eval", "limit", lambda v: v >= 1, _COUNT), ("eval", "temperature", lambda v: v > 0, _POSITIVE),
    ("eval", "top_p", lambda v: 0 < v <= 1, "above 0 and at most 1"), ("eval", "top_k", lambda v: v >= 0, "at least 0"),
    ("eval", "sql_timeout_s", lambda v: v > 0, _POSITIVE),
    ("generate", "batch_size", lambda v: v >= 1, _COUNT), ("generate", "concurrency", lambda v: v >= 1, _COUNT),
    ("generate", "chunk_prompts", lambda v: v >= 1, _COUNT), ("generate", "max_new_tokens", lambda v: v >= 1, _COUNT),
    ("generate", "limit", lambda v: v >= 1, _COUNT), ("generate", "offset", lambda v: v >= 0, "at least 0"),
    ("generate", "retries", lambda v: v >= 0, "at least 0"), ("generate", "temperature", lambda v: v > 0, _POSITIVE),
    ("generate", "top_p", lambda v: 0 < v <= 1, "above 0 and at most 1"),
    ("generate", "num_samples", lambda v: v >= 2, "at least 2 to form pairs"),
    *((group, "cpu_kv_cache_gib", lambda v: v >= 1, "at least 1 (GiB of host memory for vLLM's KV cache on CPUs)")
      for group in ("generate", "eval")),
    *((group, key, lambda v: v >= 1, _COUNT) for group in ("generate", "eval")
      for key in ("max_model_len", "tensor_parallel_size")),
    ("cluster", "num_workers", lambda v: v >= 1, _COUNT), ("cluster", "cpus_per_worker", lambda v: v >= 1, _COUNT),
    ("cluster", "data_block_mib", lambda v: v >= 1, _COUNT), ("cluster", "data_memory_mib", lambda v: v >= 1, _COUNT),
    ("deepspeed", "stage", lambda v: v in (0, 2, 3), "0, 2 or 3"),
    ("deepspeed", "max_live_parameters", lambda v: v >= 1, _COUNT),
    ("pairs", "test_fraction", lambda v: 0 <= v < 1, "at least 0 and below 1"),
    ("pairs", "max_pairs_per_prompt", lambda v: v >= 1, _COUNT),
    ("pairs", "min_votes", lambda v: v >= 2, "at least 2: one sample is no consensus"),
    ("pairs", "min_token_edits", lambda v: v >= 0, "at least 0"),
    ("data", "heldout_fraction", lambda v: 0 < v < 0.5, "between 0 and 0.5"),
]


def _check_ranges(cfg: DictConfig) -> None:
    for group, key, ok, must in RANGES:
        value = cfg[group].get(key) if group in cfg else None
        if value is not None and not ok(value):
            raise UserError(f"{group}.{key}={value} is not allowed: it must be {must}")


def dpo_loss_types() -> set[str]:
    """The loss types TRL's DPOTrainer knows, as its DPOConfig documents them."""
    from trl import DPOConfig

    help_text = next(f for f in fields(DPOConfig) if f.name == "loss_type").metadata["help"]
    return set(re.findall(r"`'(\w+)'`", help_text))


def _check_dpo(train: DictConfig) -> None:
    """TRL's own checks of the DPO settings (DPOConfig), made here so that a bad value stops before Ray starts."""
    known = dpo_loss_types()
    unknown = [x for x in train.loss_type if x not in known]
    if unknown:
        raise UserError(f"unknown DPO loss {unknown[0]!r}; TRL's losses are {', '.join(sorted(known))}")
    from trl import DPOConfig

    with tempfile.TemporaryDirectory() as scratch:
        try:
            DPOConfig(output_dir=scratch, use_cpu=True, report_to=[], beta=train.beta, loss_type=list(train.loss_type),
                      loss_weights=None if train.loss_weights is None else list(train.loss_weights),
                      label_smoothing=train.label_smoothing)
        except ValueError as e:
            raise UserError(f"train: {str(e).splitlines()[0]}") from None


def _check_combinations(cfg: DictConfig) -> None:
    """Combinations of settings that cannot work."""
    if "data" in cfg:
        if cfg.data.name == "nba_synthetic":
            if set(cfg.data.sizes) != {"train", "val", "test", "pref"} or min(cfg.data.sizes.values()) <= 0:
                raise UserError("data.sizes needs positive train, val, test and pref counts")
        else:
            fractions = cfg.data.split_fractions
            if set(fractions) != {"train", "val", "test"} or abs(sum(fractions.values()) - 1) > 1e-6:
                raise UserError("data.split_fractions needs train, val and test fractions summing to 1")
    if "train" in cfg and cfg.train.kind == "dpo":
        _check_dpo(cfg.train)
    if "train" in cfg and cfg.train.kind == "reward" and cfg.train.method != "full":
        raise UserError(f"train.method={cfg.train.method}: a reward model trains all its parameters here (method=full)")
    if "pairs" in cfg and "generate" in cfg and cfg.pairs.chosen == "consensus" \
            and cfg.pairs.min_votes > cfg.generate.num_samples:
        raise UserError(f"pairs.min_votes={cfg.pairs.min_votes} is more than generate.num_samples="
                        f"{cfg.generate.num_samples}: no prompt could reach a consensus")
    if "deepspeed" in cfg and cfg.deepspeed.stage != 3 and cfg.deepspeed.max_live_parameters is not None:
        raise UserError(f"deepspeed.max_live_parameters is a ZeRO-3 setting: set it to null with deepspeed stage "
                        f"{cfg.deepspeed.stage}, or choose deepspeed=zero3")


def compose(config_name: str = "config", overrides: list[str] | None = None) -> DictConfig:
    """Compose a stage's config as the CLI would: from tests and benchmarks, or inside a running job (the pipeline
    reads the generate stage's config), where Hydra is already initialised on the same conf/ folder."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name=config_name, overrides=overrides or [])
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides or [])
