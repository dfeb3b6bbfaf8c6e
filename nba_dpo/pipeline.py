"""Stage orchestration for jobs/pipeline.py: subprocess per stage, completeness markers, on-policy rounds."""
from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from typing import Callable

from omegaconf import DictConfig

from nba_dpo import storage
from nba_dpo.config import compose
from nba_dpo.errors import UserError
from nba_dpo.evaluation.pipeline_report import write_pipeline_report


def _shared_ray_env(cfg: DictConfig) -> dict[str, str]:
    """The environment of every stage: RAY_ADDRESS of one Ray cluster for all of them. Each stage's driver then
    connects in seconds instead of starting and stopping its own Ray (about half a minute each on a 2-core machine);
    under `ray job submit` or with cluster.address set, that is the cluster the pipeline itself was given."""
    import ray

    from nba_dpo.cluster import start_ray

    start_ray(cfg, log_to_driver=False)  # each stage's driver prints its own workers' output, once
    return {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}


def _run(stage: str, args: list[str], done: str, timings: dict, key: str, env: Callable[[], dict]) -> None:
    if storage.exists(done):
        print(f"[pipeline] {key}: complete ({done}), skipped")
        return
    print(f"[pipeline] {key}: python -m jobs.{stage} {' '.join(args)}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", f"jobs.{stage}", *args], env=env())
    if proc.returncode != 0:
        raise UserError(f"stage {key} failed (exit code {proc.returncode}); fix it and rerun the pipeline: finished "
                        "stages are skipped")
    timings[key] = round(time.perf_counter() - start, 1)


def run_pipeline(cfg: DictConfig) -> dict:
    p = cfg.pipeline
    art = cfg.paths.artifacts
    timings_file = f"{art}/report/timings.json"
    timings = storage.read_json(timings_file) if storage.exists(timings_file) else {}
    common = [f"paths.artifacts={art}", f"seed={cfg.seed}", f"run_name={cfg.run_name}", *p.common]
    shared_env = functools.cache(lambda: _shared_ray_env(cfg))  # Ray starts with the first stage that runs

    def run(stage, extra, done, key):
        _run(stage, common + list(extra), done, timings, key, shared_env)
        storage.write_json(timings, timings_file)

    published = lambda model: f"{model}/{storage.MARKER}"  # noqa: E731
    run("build_data", p.build_data, f"{art}/data/manifest.json", "build_data")
    run("sft", p.sft, published(f"{art}/models/sft"), "sft")
    sampling = [f"eval.num_samples={p.eval_samples}"] if p.eval_samples > 1 else []
    run("evaluate", ["eval.name=sft", "eval.model_path=${paths.artifacts}/models/sft", *sampling, *p.evaluate],
        f"{art}/eval/sft/metrics.json", "evaluate_sft")
    policy = f"{art}/models/sft"
    rounds = []
    # each round samples the next generate.limit prompts of the pool: fresh questions for the newer policy
    limit = compose("generate", common + list(p.generate)).generate.limit
    for r in range(1, p.rounds + 1):
        suffix = "" if p.rounds == 1 else f"_r{r}"
        prefs, model = f"{art}/prefs{suffix}", f"{art}/models/dpo{suffix}"
        offset = [f"generate.offset={(r - 1) * limit}"] if limit else []
        run("generate", [f"generate.model_path={policy}", f"generate.output_dir={prefs}", *offset, *p.generate],
            f"{prefs}/summary.json", f"generate{suffix}")
        run("train_dpo", [f"train.base_model={policy}", f"train.pairs={prefs}/pairs/train.parquet",
                          f"train.eval_pairs={prefs}/pairs/test.parquet", f"train.output_dir={model}",
                          f"run_name={cfg.run_name}{suffix}", *p.train_dpo],
            published(model), f"train_dpo{suffix}")
        run("evaluate", [f"eval.name=dpo{suffix}", f"eval.model_path={model}", *sampling, *p.evaluate],
            f"{art}/eval/dpo{suffix}/metrics.json", f"evaluate_dpo{suffix}")
        rounds.append({"round": r, "prefs": prefs, "model": model, "eval": f"dpo{suffix}"})
        policy = model
    summary = write_pipeline_report(art, rounds, timings)
    print(f"[pipeline] report in {art}/report/report.md")
    return summary
