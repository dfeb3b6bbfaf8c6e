"""Evaluation throughput: 1 vs 2 Ray Data shards on the same model and questions, in one run.

    python benchmarks/bench_eval_shards.py --artifacts artifacts/demo [--limit 1000] [--samples 8]

--samples 8 samples 8 answers per question besides the greedy one (pass@k), as the demo's evaluations do: 9x the
decoding. Prints the wall-clock times and their ratio, and writes benchmarks/results/eval_shards.json
(eval_shards_samples8.json with --samples 8).
"""
import argparse
import json
import time
from pathlib import Path

import ray

from nba_dpo.config import compose, validate
from nba_dpo.evaluation.run import evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", required=True, help="a folder with data/ and models/sft from the demo")
    ap.add_argument("--model", default=None, help="model folder (default: <artifacts>/models/sft)")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=1, help="eval.num_samples (1: greedy only)")
    args = ap.parse_args()
    model = args.model or f"{args.artifacts}/models/sft"
    times, metrics = {}, {}
    for shards in (1, 2):
        cfg = validate(compose("evaluate", [f"paths.artifacts={args.artifacts}", f"eval.model_path={model}",
                                                f"eval.num_shards={shards}", f"eval.limit={args.limit}",
                                                f"eval.num_samples={args.samples}",
                                                f"eval.name=bench_shards_{shards}"]))
        ray.shutdown()  # each measurement starts its own Ray, as a job would
        start = time.perf_counter()
        metrics[shards] = evaluate(cfg)
        times[shards] = time.perf_counter() - start
        print(f"{shards} shard(s): {times[shards]:.1f}s for {metrics[shards]['n']} questions "
              f"(ex_spider {metrics[shards]['ex_spider']:.3f})")
    result = {"questions": metrics[1]["n"], "samples": args.samples, "seconds_1_shard": round(times[1], 1),
              "seconds_2_shards": round(times[2], 1), "speedup_2_vs_1": round(times[1] / times[2], 2),
              "same_metrics": metrics[1]["ex_spider"] == metrics[2]["ex_spider"], "goal": ">= 1.5x"}
    print(f"speedup 2 vs 1 shards: {result['speedup_2_vs_1']}x (goal {result['goal']})")
    name = f"eval_shards_samples{args.samples}" if args.samples > 1 else "eval_shards"
    out = Path(__file__).parent / "results" / f"{name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
