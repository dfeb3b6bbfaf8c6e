"""Sampling throughput of the hf backend (pass@k evaluation): decoder and sampler, in one process, one run.

    python benchmarks/bench_eval_sampling.py --artifacts artifacts/demo [--questions 128] [--samples 8]

Each setting runs HFGenerator (greedy + num_samples sampled completions per question, one thread) on the same test
questions and chunks: transformers' `generate` (static KV cache) with its multinomial sampling is the baseline; then
`generate` with the Gumbel sampler; then the default, the compacting decoder (finished rows leave the batch) with the
Gumbel sampler. Prints tokens/s and the ratios, and writes benchmarks/results/eval_sampling.json.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from transformers import AutoTokenizer

from hf_baselines import GenerateDecoder
from nba_dpo.generation.hf import HFGenerator
from nba_dpo.models.prompts import build_prompt

SETTINGS = {  # name: (generator class, its extra arguments); the baselines first
    "generate_multinomial": (GenerateDecoder, {"multinomial": True}),
    "generate_gumbel": (GenerateDecoder, {}),
    "compact_gumbel": (HFGenerator, {}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", required=True, help="a folder with data/ and models/sft from the demo")
    ap.add_argument("--questions", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64, help="questions per actor call (eval.batch_size)")
    ap.add_argument("--samples", type=int, default=8)
    args = ap.parse_args()
    model = f"{args.artifacts}/models/sft"
    tok = AutoTokenizer.from_pretrained(model)
    rows = pq.read_table(f"{args.artifacts}/data/sft/test.parquet").to_pylist()[:args.questions]
    prompts = np.array([build_prompt(tok, r["question"], None, False) for r in rows], dtype=object)
    ids = np.array([r["id"] for r in rows], dtype=object)
    results = {}
    for name, (generator, extra) in SETTINGS.items():
        gen = generator(model, max_new_tokens=160, greedy=True, num_samples=args.samples, seed=0, **extra)
        start, tokens = time.perf_counter(), 0
        for i in range(0, len(prompts), args.batch_size):
            out = gen({"id": ids[i:i + args.batch_size], "prompt": prompts[i:i + args.batch_size]})
            tokens += int(out["n_tokens"].sum()) + sum(int(np.sum(t)) for t in out["sample_tokens"])
        seconds = time.perf_counter() - start
        results[name] = {"seconds": round(seconds, 1), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1)}
        print(f"{name}: {seconds:.1f}s, {tokens / seconds:.0f} tokens/s", flush=True)
    speed = {name: r["tokens_per_s"] for name, r in results.items()}
    ratios = {"compact_vs_generate": round(speed["compact_gumbel"] / speed["generate_gumbel"], 2),
              "gumbel_vs_multinomial": round(speed["generate_gumbel"] / speed["generate_multinomial"], 2),
              "compact_gumbel_vs_generate_multinomial": round(speed["compact_gumbel"] / speed["generate_multinomial"],
                                                              2)}
    print("ratios:", ratios)
    out = Path(__file__).parent / "results" / "eval_sampling.json"
    out.write_text(json.dumps({**results, "ratios": ratios, "setup": {
        "questions": len(prompts), "batch_size": args.batch_size, "samples": args.samples, "threads": 1,
        "model": model}}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
