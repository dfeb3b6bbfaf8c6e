"""The hf backend's attention on a grouped-query model: transformers' "sdpa" against `sdpa_grouped_kv`, the backend's
default, in one process, one run.

    python benchmarks/bench_hf_attention.py --artifacts artifacts/demo [--prompts 16] [--samples 8]

The model is bench_models.LLAMA_44M_GQA (10 query heads sharing 2 KV heads, as in Llama 3 and Qwen2.5),
random weights, built on the preference prompts' tokenizer like bench_generate_backends' 51M model; its samples run
to the token limit. Each setting runs `HFCandidates` (one thread, all prompts' samples in one decoding call, as the
generate stage's actors do) on the same prompts, seed and samples, which must come out identical. Prints tokens/s and
the ratio; writes benchmarks/results/hf_attention.json.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from transformers import AutoTokenizer

from bench_generate_backends import build_bench_model, machine
from nba_dpo.generation.hf import HFCandidates
from nba_dpo.models.prompts import build_prompt

ATTENTION = ["sdpa", "sdpa_grouped_kv"]  # the baseline first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", required=True, help="a folder with data/ (python -m jobs.build_data)")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--samples", type=int, default=8)
    args = ap.parse_args()
    model = build_bench_model(args.artifacts, "llama_44m_gqa")
    tok = AutoTokenizer.from_pretrained(model)
    rows = pq.read_table(Path(args.artifacts) / "data" / "pref_prompts.parquet").to_pylist()[:args.prompts]
    batch = {"id": np.array([r["id"] for r in rows], dtype=object),
             "prompt": np.array([build_prompt(tok, r["question"], r["schema"], False) for r in rows], dtype=object)}
    results, completions = {}, {}
    for attention in ATTENTION:
        gen = HFCandidates(model, max_new_tokens=160, greedy=False, num_samples=args.samples, seed=0,
                           sample_chunk=args.prompts)
        gen.model.set_attn_implementation(attention)
        start = time.perf_counter()
        out = gen(batch)
        seconds = time.perf_counter() - start
        tokens = int(out["n_tokens"].sum())
        completions[attention] = list(out["completion"])
        results[attention] = {"seconds": round(seconds, 1), "tokens": tokens,
                              "tokens_per_s": round(tokens / seconds, 1)}
        print(f"{attention}: {seconds:.1f}s, {tokens / seconds:.0f} tokens/s", flush=True)
    if completions["sdpa"] != completions["sdpa_grouped_kv"]:
        raise SystemExit("the two attentions sampled different completions")
    ratio = round(results["sdpa_grouped_kv"]["tokens_per_s"] / results["sdpa"]["tokens_per_s"], 2)
    print(f"sdpa_grouped_kv vs sdpa: {ratio}x")
    out = Path(__file__).parent / "results" / "hf_attention.json"
    out.write_text(json.dumps({**results, "ratios": {"grouped_kv_vs_sdpa": ratio}, "setup": {
        "model": "LLAMA_44M_GQA", "prompts": len(rows), "samples": args.samples, "threads": 1,
        "identical_completions": True, "machine": machine()}}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
