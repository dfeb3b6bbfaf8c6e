"""Connecting to Ray (an embedded cluster on this machine, or the one a job was submitted to), the storage preflight
of a multi-node cluster, and the resources every Train worker and Ray Data actor asks for."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import ray
from omegaconf import DictConfig

from nba_dpo import storage
from nba_dpo.preflight import local_ray_cpus
from nba_dpo.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def worker_env() -> dict[str, str]:
    """Environment every Ray worker gets: offline hub, one op cache for DeepSpeed's JIT builds. Node-specific
    settings (NBA_DPO_CACHE_DIR, AWS credentials) are not copied: each node's own environment holds them."""
    keys = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM",
            "VLLM_RPC_BASE_PATH", "TMPDIR", "RAY_TRAIN_ENABLE_PRINT_PATCH")
    env = {k: os.environ[k] for k in keys if k in os.environ}
    env["TORCH_EXTENSIONS_DIR"] = os.environ.get("TORCH_EXTENSIONS_DIR", str(ROOT / ".cache" / "torch_extensions"))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Ray Train's print patch logs every print() a second time, even one that a library captures by swapping
    # sys.stdout: TRL's dataset maps then flooded the console with dill's bytecode listings, and metrics came twice
    env.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    # pyarrow's jemalloc pool keeps the pages of every block a worker has decoded: a Ray Data read worker grew from
    # 240 to 455 MB between 1k and 100k prompts, and to 303 MB on the system allocator
    env.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    return env


def joins_cluster(cluster: DictConfig) -> bool:
    """Whether the job runs on a Ray cluster it did not start (ray job submit, RAY_ADDRESS, cluster.address)."""
    return cluster.address != "local" or bool(os.environ.get("RAY_ADDRESS"))


def start_ray(cfg: DictConfig, log_to_driver: bool = True) -> None:
    """`cluster.address=local` starts an embedded Ray unless RAY_ADDRESS points at a running one (ray job submit).
    Then, before any work, every alive node must be able to read the storage root (`check_storage_root`).
    `log_to_driver=False` keeps the workers' output away from a driver that only hands Ray to its subprocesses."""
    if ray.is_initialized():
        return
    cluster = cfg.cluster
    runtime_env = {"env_vars": worker_env()}
    if not joins_cluster(cluster):
        # address="local" ignores a stale ray_current_cluster file left by an earlier `ray stop`
        # the dashboard serves the state API that Ray Train's placement-group cleaner polls
        ray.init(address="local", num_cpus=local_ray_cpus(cluster), include_dashboard=True, dashboard_host="127.0.0.1",
                 runtime_env=runtime_env,
                 log_to_driver=log_to_driver, configure_logging=True, logging_level="WARNING")
    else:
        # under `ray job submit` the job's runtime env (scripts/submit.sh) names some of the same variables: Ray
        # refuses the overlap unless told to combine the two, this driver's values winning
        os.environ.setdefault("RAY_OVERRIDE_JOB_RUNTIME_ENV", "1")
        ray.init(address=None if cluster.address == "local" else cluster.address, runtime_env=runtime_env,
                 log_to_driver=log_to_driver, logging_level="WARNING")
    check_storage_root(cfg.paths.artifacts)
    bound_ray_data(cluster)


def bound_ray_data(cluster: DictConfig) -> None:
    """Ray Data's blocks and read-ahead, bounded so that no process's memory grows with the rows a stage streams: a
    Parquet file is read in blocks of `cluster.data_block_mib` (Ray's 128 MiB default read 100k prompts as one
    block), and a stage's blocks in flight share `cluster.data_memory_mib` of the object store (by default, half
    the store: the pool was read far ahead of the generators)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.target_max_block_size = cluster.data_block_mib << 20
    options = ctx.execution_options
    options.resource_limits = options.resource_limits.copy(object_store_memory=cluster.data_memory_mib << 20)


@ray.remote(num_cpus=0)
def _read_token(uri: str) -> str | None:
    try:
        return storage.read_text(uri)
    except UserError:
        return None


def check_storage_root(root: str, timeout_s: float = 120) -> None:
    """On a cluster of several alive nodes, a token the driver writes under the storage root must be read back by a
    task on every one of them; else the stage stops here, before any work, with nothing left behind. One node (the
    embedded cluster) needs no check."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n["Alive"]]
    if len(nodes) < 2:
        return
    created = None  # the outermost folder this check creates for a local root that does not exist yet
    if not storage.is_uri(root):
        created = next((p for p in [Path(root), *Path(root).parents][::-1] if not p.exists()), None)
    token = uuid.uuid4().hex
    uri = f"{root}/.preflight-{token}"
    storage.write_text(token, uri)
    try:
        seen = ray.get([_read_token.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                        .remote(uri) for n in nodes], timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        seen = [None] * len(nodes)
    finally:
        storage.delete(uri)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
    blind = sorted(f"{n['NodeManagerAddress']}, node {n['NodeID'][:8]}" for n, text in zip(nodes, seen)
                   if text != token)
    if blind:
        raise UserError(f"paths.artifacts={root} cannot be read from {len(blind)} of the {len(nodes)} Ray nodes "
                        f"({'; '.join(blind)}): on a multi-node cluster use a shared filesystem mounted at the same "
                        "path on every node, or an object store (paths.artifacts=s3://bucket/run)")


def actor_resources(cluster: DictConfig, num_cpus: float, num_gpus: float = 0) -> dict:
    """Ray resource arguments of one Ray Data actor: its CPUs and GPUs plus `cluster.resources`, the custom resources
    that keep every worker and actor on the nodes that carry them."""
    extra = {"resources": dict(cluster.resources)} if cluster.resources else {}  # None or {}: no custom resource
    return {"num_cpus": num_cpus, "num_gpus": num_gpus, **extra}


def one_call_per_actor(size: int) -> "ray.data.ActorPoolStrategy":
    """A pool of `size` actors that each hold one call at a time. A generator's call runs for seconds to minutes; with
    Ray Data's default of two per actor, a second call queued behind a busy actor waited there while another actor
    sat idle: at the end of every run, and for the whole run when there were fewer calls than two per actor."""
    from ray.data import ActorPoolStrategy

    return ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=1)
