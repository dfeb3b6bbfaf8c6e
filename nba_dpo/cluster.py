"""Connecting to Ray: an embedded cluster on this machine, or the one a job was submitted to."""
from __future__ import annotations

import os
from pathlib import Path

import ray
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]


def worker_env() -> dict[str, str]:
    """Environment every Ray worker gets: offline hub, one op cache for DeepSpeed's JIT builds."""
    keys = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM",
            "VLLM_RPC_BASE_PATH", "TMPDIR", "NBA_DPO_FAIL_AT_STEP",
            "RAY_TRAIN_ENABLE_PRINT_PATCH")
    env = {k: os.environ[k] for k in keys if k in os.environ}
    env["TORCH_EXTENSIONS_DIR"] = os.environ.get("TORCH_EXTENSIONS_DIR", str(ROOT / ".cache" / "torch_extensions"))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Ray Train's print patch logs every print() a second time, even one that a library captures by swapping
    # sys.stdout: TRL's dataset maps then flooded the console with dill's bytecode listings, and metrics came twice
    env.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    return env


def start_ray(cluster: DictConfig) -> None:
    """`cluster.address=local` starts an embedded Ray unless RAY_ADDRESS points at a running one (ray job submit)."""
    if ray.is_initialized():
        return
    runtime_env = {"env_vars": worker_env()}
    if cluster.address == "local" and not os.environ.get("RAY_ADDRESS"):
        # address="local" ignores a stale ray_current_cluster file left by an earlier `ray stop`
        # the dashboard serves the state API that Ray Train's placement-group cleaner polls
        ray.init(address="local", num_cpus=cluster.num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
                 runtime_env=runtime_env,
                 log_to_driver=True, configure_logging=True, logging_level="WARNING")
    else:
        ray.init(address=None if cluster.address == "local" else cluster.address, runtime_env=runtime_env,
                 logging_level="WARNING")


def one_call_per_actor(size: int) -> "ray.data.ActorPoolStrategy":
    """A pool of `size` actors that each hold one call at a time. A generator's call runs for seconds to minutes; with
    Ray Data's default of two per actor, a second call queued behind a busy actor waited there while another actor
    sat idle: at the end of every run, and for the whole run when there were fewer calls than two per actor."""
    from ray.data import ActorPoolStrategy

    return ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=1)
