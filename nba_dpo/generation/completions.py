"""Completions for a Ray Dataset of prompts, the path the generate and evaluate stages share: a pool of hf generator
actors, then the execution verifier and, when one is configured, the reward model."""
from __future__ import annotations

from omegaconf import DictConfig

from nba_dpo.cluster import actor_resources, one_call_per_actor


def hf_completions(ds, actor_class: type, cluster: DictConfig, *, batch_size: int, concurrency: int, **generator):
    """Rows with a `prompt` column -> the same rows with completions from `concurrency` actors of `actor_class`
    (HFGenerator, HFCandidates or a subclass; `generator` are its arguments), one call per actor at a time, each on a
    GPU of its own on a GPU cluster."""
    return ds.map_batches(actor_class, batch_size=batch_size, compute=one_call_per_actor(concurrency),
                          **actor_resources(cluster, num_cpus=1, num_gpus=1 if cluster.use_gpu else 0),
                          fn_constructor_kwargs=dict(generator, use_gpu=cluster.use_gpu))


def verified(ds, db_path: str, timeout_s: float, cluster: DictConfig, reward_model: DictConfig | None = None,
             batch_size: int = 256, verifiers: int = 1):
    """Rows with a completion and the gold `sql` -> exec_ok / correct_* / error (ExecutionVerifier) and, with a
    reward model, `reward`. The verifiers reserve no CPU: SQLite checks are light, and one that waited for a core
    would start only once the generator actors holding every core (hf on CPU) had finished, instead of checking
    their output as it comes."""
    import ray

    from nba_dpo.scoring.execution import ExecutionVerifier

    ds = ds.map_batches(ExecutionVerifier, batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=verifiers),
                        **actor_resources(cluster, num_cpus=0),
                        fn_constructor_kwargs=dict(db_path=db_path, timeout_s=timeout_s))
    if reward_model:
        from nba_dpo.scoring.reward import with_rewards  # torch: only with a reward model

        ds = with_rewards(ds, reward_model, cluster, db_path)
    return ds
