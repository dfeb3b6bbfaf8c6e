"""SFT step time by sampler, in one run: `train.sampler=batch_rebalance` (the default: each step's random batch split
across the workers by length) vs `random` (each worker pads a random batch to its longest row), the same tiny model,
data, steps and 2 Ray Train workers.

    python benchmarks/bench_sft.py --artifacts artifacts/demo [--steps 120]

Needs <artifacts>/data and <artifacts>/models/tiny_nba (run the demo, or jobs.build_data and jobs.sft, first). Also
reports the padded share of the tokens each sampler feeds the model. Writes benchmarks/results/sft.json.
"""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import ray
from transformers import AutoTokenizer

from nba_dpo.config import compose, validate
from nba_dpo.training.sft import prompt_completion_rows, train_sft


def padded_share(lengths: np.ndarray, per_worker: int, workers: int, rebalance: bool, seed: int = 0) -> float:
    """Padding / all tokens over one epoch: random batches of per_worker x workers rows; sorted by length and split
    into equal halves when rebalancing (BatchRebalanceSampler also varies the halves' sizes to even their cost)."""
    order = np.random.default_rng(seed).permutation(len(lengths))
    step = per_worker * workers
    batches = lengths[order[:len(order) // step * step]].reshape(-1, step)
    if rebalance:
        batches = np.sort(batches, axis=1)
    groups = batches.reshape(-1, per_worker)
    return float(1 - groups.sum() / (groups.max(axis=1) * per_worker).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", required=True, help="a folder with data/ and models/tiny_nba from the demo")
    ap.add_argument("--steps", type=int, default=120)
    args = ap.parse_args()
    artifacts = Path(args.artifacts).resolve()
    work = Path(tempfile.mkdtemp(prefix="bench_sft_"))
    results = {}
    for sampler in ("random", "batch_rebalance"):
        cfg = validate(compose("sft", [
            f"paths.artifacts={work / sampler}", f"paths.data={artifacts / 'data'}",
            f"model.path={artifacts / 'models' / 'tiny_nba'}", f"run_name=bench-{sampler}",
            f"train.sampler={sampler}", f"train.max_steps={args.steps}", "train.save_steps=100000",
            "train.logging_steps=1000"]))
        ray.shutdown()
        out = train_sft(cfg)
        results[sampler] = {"steps": out["steps"], "step_s": round(out["step_s"], 3)}
        print(f"{sampler:>16}: {results[sampler]}", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.path)
    rows = prompt_completion_rows(pq.read_table(artifacts / "data" / "sft" / "train.parquet").to_pylist(),
                                  tokenizer, cfg.model.include_schema)
    lengths = np.array([len(tokenizer(r["prompt"] + r["completion"], add_special_tokens=False).input_ids)
                        for r in rows])
    for sampler in results:
        results[sampler]["padded_share"] = round(padded_share(
            lengths, cfg.train.per_device_batch_size, cfg.cluster.num_workers, sampler == "batch_rebalance"), 3)
    ratios = {"batch_rebalance_vs_random_speed": round(results["random"]["step_s"]
                                                       / results["batch_rebalance"]["step_s"], 2)}
    print("padded share of tokens:", {k: v["padded_share"] for k, v in results.items()})
    print("ratios:", ratios)
    out = Path(__file__).parent / "results" / "sft.json"
    out.write_text(json.dumps({**results, "ratios": ratios, "setup": {
        "steps": args.steps, "per_device_batch_size": cfg.train.per_device_batch_size,
        "workers": cfg.cluster.num_workers, "model": cfg.model.path}}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
