"""DPO training costs, each with its baseline in the same run:

1. overhead: our Ray Train + DeepSpeed ZeRO-2 DPO step (2 workers x 1 CPU; also with plain DDP, the CPU default)
   vs TRL's bare DPOTrainer in this one process on the same model, pairs, steps, precision and LM-head scoring
   (completion tokens only, `score_completion_tokens_only`): with the same global batch on 2 threads, and with one
   worker's batch on 1 thread (what Ray Train and DeepSpeed add to a worker's step) (goal: <= 1.10x the bare step
   time); and the bare step with TRL's CPU default of scoring every position, against completion tokens only;
2. reference: stored reference log-probs vs an in-memory reference model, one epoch on a >= 50M-parameter model
   at the DPO default batch, each arm run --repeats times in ABBA order (goal: >= 1.3x faster epoch and a lower
   peak memory per worker);
3. zero: ZeRO-2 vs ZeRO-3 peak memory per worker on the same >= 50M-parameter model, ZeRO-3 at its default
   `deepspeed.max_live_parameters` (1e9: the whole model stays gathered during a step) and at 1e7 (a few layers)
   (goal: ZeRO-3 at or below ZeRO-2).

    python benchmarks/bench_dpo.py --artifacts artifacts/demo [--only overhead|reference|zero]

Needs <artifacts>/models/sft and <artifacts>/prefs/pairs/train.parquet (run the demo first). Peak memory is the
peak RSS of rank 0's worker process. Prints every figure and ratio; writes benchmarks/results/dpo.json.
"""
import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import ray
import torch
from transformers import AutoModelForCausalLM

from nba_dpo.config import compose, validate
from nba_dpo.prefs.ref_logprobs import RefLogProbs
from nba_dpo.training.common import StepTimer
from nba_dpo.training.dpo import REF_COLUMNS, score_completion_tokens_only, train_dpo


def ours(work: Path, model: str, pairs: Path, name: str, *overrides: str) -> dict:
    """One jobs.train_dpo run on 2 Ray Train workers, in a fresh Ray; steady-state step time after 3 steps."""
    cfg = validate(compose("train_dpo", [
        f"paths.artifacts={work / name}", f"run_name=bench-{name}", f"train.base_model={model}",
        f"train.pairs={pairs}", "cluster.num_workers=2", "train.save_steps=100000", "train.logging_steps=1000",
        *overrides]))
    ray.shutdown()
    out = train_dpo(cfg)
    result = {"steps": out["steps"], "train_runtime_s": round(out["train_runtime"], 2),
              "step_s": round(out["step_s"], 3), "peak_rss_mb": round(out["peak_rss_mb"])}
    print(f"{name:>24}: {result}", flush=True)
    return result


def bare_trl(model_path: str, pairs: Path, batch: int, steps: int, threads: int) -> dict:
    """TRL's DPOTrainer in this process: no Ray, no DeepSpeed, stored reference log-probs."""
    import datasets
    from transformers import AutoTokenizer
    from trl import DPOConfig

    from nba_dpo.training.dpo import StoredReferenceDPOTrainer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    rows = pq.read_table(pairs, columns=["prompt", "chosen", "rejected", *REF_COLUMNS]).to_pylist()
    args = DPOConfig(output_dir=tempfile.mkdtemp(prefix="bench_dpo_bare_"), use_cpu=True, max_steps=steps,
                     per_device_train_batch_size=batch, learning_rate=5e-5, beta=0.1, max_length=256,
                     loss_type=["sigmoid", "sft"], loss_weights=[1.0, 1.0],
                     precompute_ref_log_probs=True, gradient_checkpointing=False,  # TRL's default is on; ours off
                     bf16=False,  # TRL's default is bf16 autocast, ours float32 (train.bf16=false)
                     report_to=[], save_strategy="no", logging_steps=1000,
                     disable_tqdm=True, seed=0, dataloader_num_workers=0)
    trainer = StoredReferenceDPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_path), ref_model=None,
                                        args=args, train_dataset=datasets.Dataset.from_list(rows),
                                        processing_class=tokenizer)
    timer = StepTimer()
    trainer.add_callback(timer)
    out = trainer.train()
    runtime = out.metrics["train_runtime"]
    result = {"steps": out.global_step, "train_runtime_s": round(runtime, 2), "step_s": round(timer.step_s(), 3),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    print(f"{f'bare TRL, batch {batch}':>24}: {result}", flush=True)
    return result


def with_ref_logps(model_path: str, rows: list[dict], out: Path) -> Path:
    """The pairs with reference log-probs recomputed under `model_path` (what the generate stage stores)."""
    ref = RefLogProbs(model_path, max_length=256)
    prompts = [r["prompt"] for r in rows]
    rows = [dict(r) for r in rows]
    for col, key in zip(REF_COLUMNS, ("chosen", "rejected")):
        for r, lp in zip(rows, ref.logps(prompts, [r[key] for r in rows])[0]):
            r[col] = lp
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out


def big_model(work: Path, rows: list[dict]) -> tuple[str, int]:
    from bench_models import LLAMA_51M
    from nba_dpo.models.tiny import build_tiny_model

    corpus = [r["prompt"] + r["chosen"] for r in rows] + [r["rejected"] for r in rows]
    path = build_tiny_model(corpus, work / "big_model", seed=0, **LLAMA_51M)
    n = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(path).parameters())
    print(f"built a {n / 1e6:.1f}M-parameter model for the memory measurements", flush=True)
    return str(path), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", required=True, help="a folder with models/sft and prefs/pairs (run the demo first)")
    ap.add_argument("--only", choices=["overhead", "reference", "zero"], default=None)
    ap.add_argument("--steps", type=int, default=40, help="optimizer steps for the overhead comparison")
    ap.add_argument("--batch", type=int, default=16, help="per-worker batch of the overhead comparison")
    ap.add_argument("--big-pairs", type=int, default=192, help="pairs per epoch on the 50M model")
    ap.add_argument("--big-batch", type=int, default=16,
                    help="per-worker batch of the reference comparison (16: the DPO default)")
    ap.add_argument("--repeats", type=int, default=2,
                    help="runs of each arm of the reference comparison, in ABBA order; its ratios are of the means")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_dpo_"))
    sft = f"{args.artifacts}/models/sft"
    rows = pq.read_table(f"{args.artifacts}/prefs/pairs/train.parquet",
                         columns=["prompt", "chosen", "rejected"]).to_pylist()
    out_file = Path(__file__).parent / "results" / "dpo.json"
    results = json.loads(out_file.read_text()) if out_file.exists() and args.only else {}

    if args.only in (None, "overhead"):
        pairs = with_ref_logps(sft, rows[: args.steps * args.batch * 2], work / "pairs_sft.parquet")
        steps = ["train.reference=stored", f"train.max_steps={args.steps}", f"train.per_device_batch_size={args.batch}"]
        ray_ds = ours(work, sft, pairs, "ray_zero2", "deepspeed=zero2", *steps)
        ray_ddp = ours(work, sft, pairs, "ray_ddp", "deepspeed=none", *steps)  # the CPU default
        # TRL as it comes (its fused LM head scores every position without Triton), then as our CPU workers run it
        every_position = bare_trl(sft, pairs, args.batch, args.steps, threads=1)
        score_completion_tokens_only()
        # the same global batch on both cores, and one worker's share of it on one core (pure Ray + DeepSpeed cost)
        bare = bare_trl(sft, pairs, 2 * args.batch, args.steps, threads=2)
        per_worker = bare_trl(sft, pairs, args.batch, args.steps, threads=1)
        results["overhead"] = {
            "model": sft, "global_batch": 2 * args.batch, "ray_deepspeed_zero2": ray_ds, "ray_ddp": ray_ddp,
            "bare_trl": bare, "bare_trl_one_workers_batch": per_worker,
            "step_time_ratio": round(ray_ds["step_s"] / bare["step_s"], 3),
            "step_time_ratio_vs_one_workers_batch": round(ray_ds["step_s"] / per_worker["step_s"], 3),
            "ddp_step_time_ratio": round(ray_ddp["step_s"] / bare["step_s"], 3), "goal": "<= 1.10",
            "bare_trl_one_workers_batch_every_position_scored": every_position,
            "completion_only_scoring_speedup": round(every_position["step_s"] / per_worker["step_s"], 2)}
        o = results["overhead"]
        print(f"overhead: Ray Train + ZeRO-2 step / bare TRL step = {o['step_time_ratio']} (same global batch), "
              f"{o['step_time_ratio_vs_one_workers_batch']} (one worker's batch on one core); Ray Train + DDP "
              f"{o['ddp_step_time_ratio']} (same global batch); goal <= 1.10; scoring completion tokens only: "
              f"{o['completion_only_scoring_speedup']}x faster bare steps", flush=True)

    if args.only in (None, "reference", "zero"):
        model, n_params = big_model(work, rows)
        pairs = with_ref_logps(model, rows[: args.big_pairs], work / "pairs_big.parquet")
        epoch = ["train.epochs=1", f"train.per_device_batch_size={args.big_batch}"]
        if args.only in (None, "reference"):
            # the same epoch run one run after another varies by 15-25% here; runs in ABBA order (stored, in memory,
            # in memory, stored, ...) cancel a drift in the machine's speed, and means over them damp the rest
            runs = {"stored": [], "in_memory": []}
            for i in range(args.repeats):
                for arm in ("stored", "in_memory") if i % 2 == 0 else ("in_memory", "stored"):
                    runs[arm].append(ours(work, model, pairs, f"{arm}_ref_{i}", "deepspeed=zero2",
                                          f"train.reference={'stored' if arm == 'stored' else 'model'}", *epoch))
            mean = {arm: {k: round(sum(r[k] for r in rs) / len(rs), 3) for k in ("train_runtime_s", "step_s")}
                    | {"peak_rss_mb": max(r["peak_rss_mb"] for r in rs), "runs": rs} for arm, rs in runs.items()}
            stored, in_memory = mean["stored"], mean["in_memory"]
            results["reference"] = {
                "params": n_params, "pairs": args.big_pairs, "per_device_batch": args.big_batch,
                "repeats": args.repeats, "stored": stored, "in_memory": in_memory,
                "epoch_speedup": round(in_memory["train_runtime_s"] / stored["train_runtime_s"], 3),
                "steady_step_speedup": round(in_memory["step_s"] / stored["step_s"], 3),
                "peak_rss_saved_mb": in_memory["peak_rss_mb"] - stored["peak_rss_mb"],
                "goal": ">= 1.3x faster epoch, lower peak memory"}
            print(f"reference: stored is {results['reference']['epoch_speedup']}x faster per epoch "
                  f"({results['reference']['steady_step_speedup']}x per steady-state step) and uses "
                  f"{results['reference']['peak_rss_saved_mb']} MB less at peak (goal >= 1.3x, lower)", flush=True)
        if args.only in (None, "zero"):
            steps = ["train.max_steps=4", "train.per_device_batch_size=4", "train.reference=stored"]
            zero2 = ours(work, model, pairs, "zero2", "deepspeed=zero2", *steps)
            zero3 = ours(work, model, pairs, "zero3", "deepspeed=zero3", *steps)
            zero3_few = ours(work, model, pairs, "zero3_live_1e7", "deepspeed=zero3",
                             "deepspeed.max_live_parameters=10000000", *steps)
            results["zero"] = {"params": n_params, "zero2": zero2, "zero3": zero3, "zero3_live_1e7": zero3_few,
                               "zero3_peak_rss_saved_mb": zero2["peak_rss_mb"] - zero3["peak_rss_mb"],
                               "zero3_live_1e7_peak_rss_saved_mb": zero2["peak_rss_mb"] - zero3_few["peak_rss_mb"],
                               "goal": "ZeRO-3 at or below ZeRO-2"}
            print(f"zero: peak RSS per worker ZeRO-2 {zero2['peak_rss_mb']} MB, ZeRO-3 {zero3['peak_rss_mb']} MB, "
                  f"ZeRO-3 with max_live_parameters=1e7 {zero3_few['peak_rss_mb']} MB (goal: ZeRO-3 <= ZeRO-2)",
                  flush=True)

    results["setup"] = {"machine_cpus": os.cpu_count(), "torch_threads_bare": 2,
                        "workers": 2, "cpus_per_worker": 1, "measured_at": time.strftime("%Y-%m-%d %H:%M")}
    out_file.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out_file}")


if __name__ == "__main__":
    main()
