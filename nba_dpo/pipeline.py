"""Stage orchestration for jobs/pipeline.py: subprocess per stage, completeness markers, on-policy rounds."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import DictConfig

from nba_dpo.errors import UserError
from nba_dpo.evaluation.pipeline_report import write_pipeline_report
from nba_dpo.io import write_json


def _run(stage: str, args: list[str], done: Path, timings: dict, key: str) -> None:
    if done.exists():
        print(f"[pipeline] {key}: complete ({done}), skipped")
        return
    print(f"[pipeline] {key}: python -m jobs.{stage} {' '.join(args)}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", f"jobs.{stage}", *args])
    if proc.returncode != 0:
        raise UserError(f"stage {key} failed (exit code {proc.returncode}); fix it and rerun the pipeline: finished "
                        "stages are skipped")
    timings[key] = round(time.perf_counter() - start, 1)


def run_pipeline(cfg: DictConfig) -> dict:
    p = cfg.pipeline
    art = Path(cfg.paths.artifacts)
    timings_file = art / "report" / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    common = [f"paths.artifacts={art}", f"seed={cfg.seed}", f"run_name={cfg.run_name}", *p.common]

    def run(stage, extra, done, key):
        _run(stage, common + list(extra), done, timings, key)
        write_json(timings, timings_file)

    run("build_data", p.build_data, art / "data" / "manifest.json", "build_data")
    run("sft", p.sft, art / "models" / "sft" / "config.json", "sft")
    sampling = [f"eval.num_samples={p.eval_samples}"] if p.eval_samples > 1 else []
    run("evaluate", ["eval.name=sft", "eval.model_path=${paths.artifacts}/models/sft", *sampling, *p.evaluate],
        art / "eval" / "sft" / "metrics.json", "evaluate_sft")
    policy = art / "models" / "sft"
    rounds = []
    for r in range(1, p.rounds + 1):
        suffix = "" if p.rounds == 1 else f"_r{r}"
        prefs, model = art / f"prefs{suffix}", art / "models" / f"dpo{suffix}"
        run("generate", [f"generate.model_path={policy}", f"generate.output_dir={prefs}", *p.generate],
            prefs / "summary.json", f"generate{suffix}")
        run("train_dpo", [f"train.base_model={policy}", f"train.pairs={prefs}/pairs/train.parquet",
                          f"train.eval_pairs={prefs}/pairs/test.parquet", f"train.output_dir={model}",
                          f"run_name={cfg.run_name}{suffix}", *p.train_dpo],
            model / "config.json", f"train_dpo{suffix}")
        run("evaluate", [f"eval.name=dpo{suffix}", f"eval.model_path={model}", *sampling, *p.evaluate],
            art / "eval" / f"dpo{suffix}" / "metrics.json", f"evaluate_dpo{suffix}")
        rounds.append({"round": r, "prefs": str(prefs), "model": str(model), "eval": f"dpo{suffix}"})
        policy = model
    summary = write_pipeline_report(art, rounds, timings)
    print(f"[pipeline] report in {art / 'report' / 'report.md'}")
    return summary
