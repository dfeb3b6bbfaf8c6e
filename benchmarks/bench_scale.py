"""Memory and time against data size, with the by-value baseline in the same run: train_dpo (train.max_steps fixed)
on 1k, 10k and 100k pairs, and generate on 1k, 10k and 100k prompts, with the tiny model.

Two arms run the same commands on the same inputs: `streamed`, this checkout (rows reach Train workers as Ray Data
shards; generate streams prompts, candidates and pairs), and `by_value`, the commit given by --baseline (the last
one where SFT/DPO rows travelled inside train_loop_config and generate held every prompt, candidate and pair in the
driver), checked out into a temporary git worktree. Each stage runs as `python -m jobs.<stage>` with its own
embedded Ray; a sampler reads the resident memory (RSS) of the driver and of every Ray worker process below it
every 0.2 s, and keeps each process's peak. Reported per arm and size: the driver's peak, the largest peak of each
kind of worker (Train worker, generator actor, ...), wall time, and time per pair or prompt.
Target: every process's peak grows at most 1.2x from 1k to 100k; time per pair flat.

    python benchmarks/bench_scale.py --artifacts artifacts/demo [--only dpo|generate] [--sizes 1000,10000,100000]

Needs the demo's artifacts (data/, models/sft, prefs/pairs). Writes benchmarks/results/scale.json.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nba_dpo import storage

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "66cb4ad"  # the by-value path: rows in train_loop_config, generate's rows all in the driver


def synthetic(src: Path, n: int, id_column: str, out: Path) -> Path:
    """`n` rows cycled from `src`, each with an id of its own, written as the project writes Parquet."""
    table = pq.read_table(src)
    table = pa.concat_tables([table] * math.ceil(n / len(table))).slice(0, n)
    ids = pc.binary_join_element_wise(table[id_column], pa.array([str(i) for i in range(n)]), "-")
    storage.write_parquet(table.set_column(table.schema.get_field_index(id_column), id_column, ids), str(out))
    return out


ROLES = ((r"RayTrainWorker", "train_worker"), (r"HFCandidates|HFGenerator", "generator_actor"),
         (r"RefLogProbs", "ref_logprobs_actor"), (r"ExecutionVerifier", "verifier_actor"),
         (r"PromptBuilder", "prompt_actor"), (r"ray::", "other_ray_worker"))


def role(proc: psutil.Process) -> str | None:
    """What a process under the driver is, from the title Ray gives it (which changes as a worker takes a task)."""
    try:
        title = " ".join(proc.cmdline())[:200]
    except psutil.Error:
        return None
    for pattern, name in ROLES:
        if re.search(pattern, title):
            return name
    return "ray_system"


def measure(cmd: list[str], cwd: Path, env: dict) -> dict:
    """Run `cmd`; peak RSS (MB) of the driver and of each kind of process below it, and the wall time."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peaks: dict[int, float] = {}
    roles: dict[int, str] = {}  # each process's most specific role seen (a Ray worker starts as ray::IDLE)
    rank = {name: i for i, (_, name) in enumerate(ROLES)}
    done = threading.Event()

    def sample() -> None:
        driver = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [driver, *driver.children(recursive=True)]
            except psutil.Error:
                break
            for p in procs:
                try:
                    rss = p.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                name = "driver" if p.pid == proc.pid else role(p)
                if name and rank.get(name, len(rank)) <= rank.get(roles.get(p.pid), len(rank)):
                    roles[p.pid] = name
                peaks[p.pid] = max(rss, peaks.get(p.pid, 0))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = proc.communicate()[0]
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{output[-4000:]}")
    by_role: dict[str, float] = {}
    for pid, rss in peaks.items():
        name = roles.get(pid, "ray_system")
        by_role[name] = round(max(rss, by_role.get(name, 0)), 1)
    return {"seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": by_role}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", required=True, help="the demo's artifacts folder")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--only", choices=["dpo", "generate"])
    ap.add_argument("--baseline", default=BASELINE, help="the commit of the by-value path")
    ap.add_argument("--steps", type=int, default=20, help="train.max_steps of every DPO run")
    args = ap.parse_args()
    art = Path(args.artifacts).resolve()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    base = work / "by_value_tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(base), args.baseline], cwd=ROOT, check=True,
                   capture_output=True)
    trees = {"by_value": base, "streamed": ROOT}
    out = Path(__file__).parent / "results" / "scale.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    results["setup"] = {"baseline": args.baseline, "sizes": sizes, "dpo_max_steps": args.steps,
                        "generate": "2 samples, 16 new tokens, no reference log-probs", "sample_every_s": 0.2,
                        "machine": f"{os.cpu_count()} CPUs"}
    try:
        for stage in ("dpo", "generate"):
            if args.only and stage != args.only:
                continue
            for n in sizes:
                if stage == "dpo":
                    data = synthetic(art / "prefs" / "pairs" / "train.parquet", n, "prompt_id",
                                     work / f"pairs{n}.parquet")
                    overrides = [f"train.pairs={data}", f"train.eval_pairs={art}/prefs/pairs/test.parquet",
                                 f"train.base_model={art}/models/sft", f"train.max_steps={args.steps}",
                                 "train.save_steps=100000", "train.logging_steps=10"]
                else:
                    data = synthetic(art / "data" / "pref_prompts.parquet", n, "id", work / f"prompts{n}.parquet")
                    overrides = [f"generate.prompts={data}", "generate.num_samples=2", "generate.max_new_tokens=16",
                                 "generate.ref_logprobs=false", f"generate.model_path={art}/models/sft",
                                 f"data.db_path={art}/data/nba.sqlite"]
                for arm, tree in trees.items():
                    run_dir = work / f"{stage}_{arm}_{n}"
                    cmd = [sys.executable, "-m", f"jobs.{'train_dpo' if stage == 'dpo' else 'generate'}",
                           f"paths.artifacts={run_dir}", f"paths.data={art}/data", f"run_name=scale{n}", *overrides]
                    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # an embedded Ray per stage
                    env.update(PYTHONPATH=str(tree), HF_HUB_OFFLINE="1")
                    r = measure(cmd, tree, env)
                    r["seconds_per_1k"] = round(r["seconds"] / n * 1000, 2)
                    results.setdefault(stage, {}).setdefault(arm, {})[str(n)] = r
                    print(f"{stage:>8} {arm:>9} {n:>7}: {r}", flush=True)
                    out.write_text(json.dumps(results, indent=2) + "\n")
        for stage in ("dpo", "generate"):
            for arm, runs in results.get(stage, {}).items():
                lo, hi = runs.get(str(min(sizes))), runs.get(str(max(sizes)))
                if lo and hi:
                    runs["growth_small_to_large"] = {k: round(hi["peak_rss_mb"][k] / v, 2)
                                                     for k, v in lo["peak_rss_mb"].items() if k in hi["peak_rss_mb"]}
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps({s: {a: r.get("growth_small_to_large") for a, r in results.get(s, {}).items()}
                          for s in ("dpo", "generate")}, indent=1))
        print(f"wrote {out}")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
