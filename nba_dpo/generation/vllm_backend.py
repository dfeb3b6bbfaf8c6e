"""vLLM engines as Ray Data actors through `ray.data.llm`: the generate stage's candidates (`generate=vllm`) and the
evaluate stage's answers (`eval=vllm`), with the engine settings both take from conf/vllm_engine/.

Each row is one request with its own seed (ray.data.llm returns the first output of each request), so samples are
reproducible row by row and vLLM's prefix cache shares the prompt among a prompt's samples. A model folder on an
object store is fetched by ray.data.llm itself, on each engine's node (boto3, the standard AWS variables).
"""
from __future__ import annotations

import os

from omegaconf import DictConfig, OmegaConf

from nba_dpo.preflight import local_ray_cpus


def engine_settings(engine: DictConfig, cluster: DictConfig, concurrency: int, seed: int) -> tuple[dict, dict]:
    """vLLM's engine kwargs for `concurrency` engine replicas, and the engine process's environment variables (CPUs
    only)."""
    engine_kwargs = {"tensor_parallel_size": engine.tensor_parallel_size, "max_model_len": engine.max_model_len,
                     "seed": seed, **OmegaConf.to_container(engine.engine_kwargs)}
    env = {}
    if not cluster.use_gpu:
        # the engine's worker takes every core: vLLM keeps one back for its front end, which mostly waits on the worker
        env = {"VLLM_CPU_KVCACHE_SPACE": str(engine.cpu_kv_cache_gib), "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
        cpus = local_ray_cpus(cluster)
        if cpus:
            cpus = min(cpus, os.cpu_count() or 1)  # threads for the cores, not Ray's logical CPUs
            # run the worker inside the engine-core process (the "uni" executor ray.data.llm asks for) rather than in
            # a third spawned process that imports torch and vLLM again: a shorter start, same tokens. vLLM's CPU
            # platform keeps "uni" only with V1 multiprocessing off, as it then binds no OpenMP threads: the thread
            # count is set here instead (else Ray's 1 per actor CPU), the cores of the local Ray shared by the engines
            env |= {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": str(max(1, cpus // concurrency))}
        # `gpu_memory_utilization` is the share of *host* memory vLLM reserves on CPUs (0.92 by default), so keep it
        # small and size the KV cache in GiB instead
        engine_kwargs.setdefault("gpu_memory_utilization", 0.15)
        # a prefill split over steps makes vLLM rewind the request's seeded generator, which a CPU generator cannot
        # ("CPU Generator does not use offset"): the engine dies once a step's prompts exceed max_num_batched_tokens
        engine_kwargs.setdefault("enable_chunked_prefill", False)
    return engine_kwargs, env


def sampling_params(max_new_tokens: int, temperature: float, top_p: float, top_k: int) -> dict:
    """vLLM's sampling parameters of a request, but its seed: one request per sample, each with its own seed."""
    return {"n": 1, "max_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "top_k": top_k,
            "skip_special_tokens": True}


def build_vllm_processor(engine: DictConfig, cluster: DictConfig, *, model_path: str, batch_size: int,
                         concurrency: int, seed: int, max_new_tokens: int, temperature: float, top_p: float,
                         top_k: int, passthrough: tuple[str, ...], dtype: str | None = None):
    """A function ds -> ds: each row's `prompt` answered by one request seeded with the row's `seed` (and sampled at
    its `temperature`, when the row has one: 0 is greedy). Out come the `passthrough` columns and `completion`,
    `n_tokens`, `error`. `dtype` runs the engine in that precision unless engine_kwargs names one; without either,
    vLLM's "auto" runs a float32 model in a 16-bit type."""
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    engine_kwargs, env = engine_settings(engine, cluster, concurrency, seed)
    if dtype:
        engine_kwargs.setdefault("dtype", dtype)
    extra = {}
    if not cluster.use_gpu or cluster.resources:  # on CPUs the engine must not ask for a GPU
        bundle = {"CPU": 1, **({"GPU": 1} if cluster.use_gpu else {}), **(cluster.resources or {})}
        extra["placement_group_config"] = {"bundles": [bundle] * engine.tensor_parallel_size}
    if not cluster.use_gpu:
        extra["runtime_env"] = {"env_vars": env}
    config = vLLMEngineProcessorConfig(
        model_source=model_path, engine_kwargs=engine_kwargs, batch_size=batch_size, concurrency=concurrency,
        chat_template_stage=False, tokenize_stage=engine.tokenizer_stages, detokenize_stage=engine.tokenizer_stages,
        should_continue_on_error=True, log_engine_metrics=False, **extra)
    params = sampling_params(max_new_tokens, temperature, top_p, top_k)  # plain values for the closures Ray ships
    return build_processor(
        config,
        preprocess=lambda row: {**row, "sampling_params": {
            **params, "seed": int(row["seed"]), "temperature": float(row.get("temperature", params["temperature"]))}},
        postprocess=lambda row: {
            **{k: row[k] for k in passthrough},
            "completion": row.get("generated_text") or "", "n_tokens": int(row.get("num_generated_tokens") or 0),
            "error": (f"generation failed: {row['__inference_error__']}" if row.get("__inference_error__")
                      else None)})
