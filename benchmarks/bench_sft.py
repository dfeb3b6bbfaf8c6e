"""SFT step time by batching, in one run: the same tiny model, data, steps and 2 Ray Train workers, with

- `random`: each worker pads a random batch to its longest example (the baseline);
- `random_packed`: random batches, each worker's examples packed into rows of model.max_length tokens
  (`train.pack_batches`, the default).

    python benchmarks/bench_sft.py --artifacts artifacts/demo [--steps 120]

Needs <artifacts>/data and <artifacts>/models/tiny_nba (run the demo, or jobs.build_data and jobs.sft, first). Also
reports the padded share of the tokens each setting feeds the model over one epoch. Writes benchmarks/results/sft.json.
"""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import ray
from transformers import AutoTokenizer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from nba_dpo.config import compose, validate
from nba_dpo.training.sft import PackedRowsCollator, prompt_completion, train_sft

SETTINGS = {"random": False, "random_packed": True}  # name: train.pack_batches


def padded_share(lengths: np.ndarray, per_worker: int, workers: int, collator, seed: int = 0) -> float:
    """Padding / all tokens the model sees over one epoch: random batches of per_worker examples on each of `workers`
    workers, each through `collator`."""
    order = np.random.default_rng(seed).permutation(len(lengths))
    step = per_worker * workers
    batches = lengths[order[:len(order) // step * step]].reshape(-1, step)
    fed = sum(collator([{"input_ids": [1] * n, "labels": [1] * n} for n in group])["input_ids"].numel()
              for group in batches.reshape(-1, per_worker))
    return float(1 - batches.sum() / fed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", required=True, help="a folder with data/ and models/tiny_nba from the demo")
    ap.add_argument("--steps", type=int, default=120)
    args = ap.parse_args()
    artifacts = Path(args.artifacts).resolve()
    work = Path(tempfile.mkdtemp(prefix="bench_sft_"))
    results = {}
    for name, packed in SETTINGS.items():
        cfg = validate(compose("sft", [
            f"paths.artifacts={work / name}", f"paths.data={artifacts / 'data'}",
            f"model.path={artifacts / 'models' / 'tiny_nba'}", f"run_name=bench-{name}",
            f"train.pack_batches={packed}", f"train.max_steps={args.steps}",
            "train.save_steps=100000", "train.logging_steps=1000"]))
        ray.shutdown()
        out = train_sft(cfg)
        results[name] = {"steps": out["steps"], "step_s": round(out["step_s"], 3)}
        print(f"{name:>24}: {results[name]}", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.path)
    rows = [prompt_completion(r, tokenizer, cfg.model.include_schema)
            for r in pq.read_table(artifacts / "data" / "sft" / "train.parquet").to_pylist()]
    lengths = np.array([len(tokenizer(r["prompt"] + r["completion"], add_special_tokens=False).input_ids)
                        for r in rows])
    for name, packed in SETTINGS.items():
        collator = (PackedRowsCollator(pad_token_id=0, max_length=cfg.model.max_length) if packed
                    else DataCollatorForLanguageModeling(pad_token_id=0))
        results[name]["padded_share"] = round(padded_share(
            lengths, cfg.train.per_device_batch_size, cfg.cluster.num_workers, collator), 3)
    speed = {name: results["random"]["step_s"] / r["step_s"] for name, r in results.items()}
    ratios = {f"{name}_vs_random_speed": round(s, 2) for name, s in speed.items() if name != "random"}
    print("padded share of tokens:", {k: v["padded_share"] for k, v in results.items()})
    print("ratios:", ratios)
    out = Path(__file__).parent / "results" / "sft.json"
    out.write_text(json.dumps({**results, "ratios": ratios, "setup": {
        "steps": args.steps, "per_device_batch_size": cfg.train.per_device_batch_size,
        "workers": cfg.cluster.num_workers, "row_tokens": cfg.model.max_length, "model": cfg.model.path}},
        indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
