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
from nba_dpo.evaluation.pipeline_report import headline, write_pipeline_report


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


CONTROLS = {  # name -> train_dpo overrides: the same pairs from the same SFT model, one term of the loss changed
    "nll_only": ["train.loss_type=[sft]", "train.loss_weights=null"],  # the NLL term alone: no preference term
}


def stage_common(cfg: DictConfig) -> list[str]:
    """The overrides every stage gets: the pipeline's root, seed and run name, then `pipeline.common`. Nothing else
    of the pipeline's own config reaches a stage (per-stage settings go in `pipeline.<stage>`)."""
    return [f"paths.artifacts={cfg.paths.artifacts}", f"seed={cfg.seed}", f"run_name={cfg.run_name}",
            *cfg.pipeline.common]


STAGE_CONFIGS = {"build_data": "config", "sft": "sft", "generate": "generate", "train_dpo": "train_dpo",
                 "evaluate": "evaluate"}


def validate_stages(cfg: DictConfig) -> None:
    """Every stage's config as the pipeline will run it, validated (with the preflight) by the pipeline's entry points
    before any stage starts: a mistake in the last stage's overrides stops the run at once, not hours later. The
    stages join the pipeline's Ray, where their own preflight cannot count its CPUs."""
    from nba_dpo.config import validate

    for stage, config_name in STAGE_CONFIGS.items():
        validate(compose(config_name, stage_common(cfg) + list(cfg.pipeline[stage])))


def run_pipeline(cfg: DictConfig) -> dict:
    pipeline = cfg.pipeline
    art = cfg.paths.artifacts
    unknown = sorted(set(pipeline.controls) - set(CONTROLS))
    if unknown:
        raise UserError(f"unknown pipeline.controls entry {unknown[0]!r}; the controls are {', '.join(CONTROLS)}")
    published = lambda model: f"{model}/{storage.MARKER}"  # noqa: E731
    timings_file = f"{art}/report/timings.json"
    timings = storage.read_json(timings_file) if storage.exists(timings_file) else {}
    common = stage_common(cfg)
    shared_env = functools.cache(lambda: _shared_ray_env(cfg))  # Ray starts with the first stage that runs

    def run(stage, extra, done, key):
        _run(stage, common + list(extra), done, timings, key, shared_env)
        storage.write_json(timings, timings_file)

    sampling = [f"eval.num_samples={pipeline.eval_samples}"] if pipeline.eval_samples > 1 else []
    heldout_pairs = f"{art}/prefs/pairs/test.parquet"  # round 1's: every model is measured on the same pairs

    def evaluate(name, model, validation=pipeline.rounds > 1):
        """The test split (greedy, sampled for pass@k, the held-out pairs' likelihood) and, when there are rounds to
        choose from, the validation split (greedy)."""
        run("evaluate", [f"eval.name={name}", f"eval.model_path={model}", f"eval.pairs={heldout_pairs}", *sampling,
                         *pipeline.evaluate], f"{art}/eval/{name}/metrics.json", f"evaluate_{name}")
        if validation:
            run("evaluate", [f"eval.name={name}_val", f"eval.model_path={model}", "eval.split=val", *pipeline.evaluate],
                f"{art}/eval/{name}_val/metrics.json", f"evaluate_{name}_val")

    run("build_data", pipeline.build_data, f"{art}/data/manifest.json", "build_data")
    run("sft", pipeline.sft, published(f"{art}/models/sft"), "sft")
    sft = f"{art}/models/sft"
    policy, rounds = sft, []
    # each round samples the next generate.limit prompts of the pool: fresh questions for the newer policy
    limit = compose("generate", common + list(pipeline.generate)).generate.limit
    for r in range(1, pipeline.rounds + 1):
        suffix = "" if r == 1 else f"_r{r}"  # round 1 keeps its names, so that more rounds reuse a finished run
        prefs, model = f"{art}/prefs{suffix}", f"{art}/models/dpo{suffix}"
        offset = [f"generate.offset={(r - 1) * limit}"] if limit else []
        run("generate", [f"generate.model_path={policy}", f"generate.output_dir={prefs}", *offset, *pipeline.generate],
            f"{prefs}/summary.json", f"generate{suffix}")
        if r == 1:
            evaluate("sft", sft)
        run("train_dpo", [f"train.base_model={policy}", f"train.pairs={prefs}/pairs/train.parquet",
                          f"train.eval_pairs={prefs}/pairs/test.parquet", f"train.output_dir={model}",
                          f"run_name={cfg.run_name}{suffix}", *pipeline.train_dpo], published(model),
            f"train_dpo{suffix}")
        evaluate(f"dpo{suffix}", model)
        rounds.append({"round": r, "prefs": prefs, "model": model, "eval": f"dpo{suffix}"})
        policy = model
    controls = []
    for name in pipeline.controls:
        model = f"{art}/models/{name}"
        run("train_dpo", [f"train.base_model={sft}", f"train.pairs={art}/prefs/pairs/train.parquet",
                          f"train.eval_pairs={heldout_pairs}", f"train.output_dir={model}",
                          f"run_name={cfg.run_name}_{name}", *pipeline.train_dpo, *CONTROLS[name]],
            published(model), f"train_{name}")
        evaluate(name, model, validation=False)
        controls.append({"name": name, "model": model, "eval": name})
    summary = write_pipeline_report(art, cfg.data.db_path, rounds, controls, timings)
    print(f"\n{headline(summary)}\n[pipeline] report in {art}/report/report.md")
    return summary
