"""Hydra multirun support: each sweep point gets its own output folder and Ray run; every job returns the figure its
config's `objective` names, and a callback writes a table of every point's overrides and that figure, best first by
the objective's direction, when the sweep ends."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from nba_dpo.errors import UserError


def per_sweep_point(cfg: DictConfig, output_key: str) -> DictConfig:
    """In a multirun, suffix the output folder and the run name with this point's overrides."""
    try:
        hc = HydraConfig.get()
    except ValueError:  # composed outside a Hydra app
        return cfg
    if hc.mode != RunMode.MULTIRUN:
        return cfg
    point = point_name(hc.job.num, list(hc.overrides.task))
    with open_dict(cfg):
        node, leaf = cfg, output_key.split(".")
        for key in leaf[:-1]:
            node = node[key]
        node[leaf[-1]] = f"{node[leaf[-1]]}/{point}"
        cfg.run_name = f"{cfg.run_name}-{hc.job.num}"
    return cfg


def point_name(num: int, overrides: list[str], max_chars: int = 100) -> str:
    """A short folder name for one sweep point: its number, then its overrides with paths cut to their last part
    (`3_train.beta-0.1_deepspeed-zero3`); paths.* and hydra.* are left out, being the same for every point."""
    parts = []
    for override in overrides:
        key, _, value = override.partition("=")
        if not key.startswith(("paths.", "hydra.")):
            parts.append(f"{key}-{value.rstrip('/').rsplit('/', 1)[-1]}")
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", "_".join([str(num), *parts]))[:max_chars]


def objective(cfg: DictConfig, results: dict) -> float | None:
    """What the job returns to Hydra: results[objective.metric] (None when the run could not measure it)."""
    metric = cfg.objective.metric
    if metric not in results:
        choices = ", ".join(sorted(k for k, v in results.items() if isinstance(v, (int, float))))
        raise UserError(f"objective.metric={metric} is not one of this job's results ({choices})")
    return results[metric]


class SweepSummary(Callback):
    """Collects (overrides, return value) of every job; on_multirun_end writes sweep_summary.{md,json}."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN:
            return
        value = job_return.return_value if job_return.status.name == "COMPLETED" else None
        self.rows.append({"job": hc.job.num, "overrides": list(hc.overrides.task), "result": value,
                          "status": job_return.status.name, "dir": hc.runtime.output_dir})

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if not self.rows:
            return
        out = Path(config.hydra.sweep.dir)
        out.mkdir(parents=True, exist_ok=True)
        metric, direction = config.objective.metric, config.objective.direction
        sign = -1 if direction == "maximize" else 1
        ranked = sorted(self.rows, key=lambda r: (not isinstance(r["result"], (int, float)),
                                                  sign * r["result"] if isinstance(r["result"], (int, float)) else 0))
        summary = {"metric": metric, "direction": direction, "points": ranked}
        (out / "sweep_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        lines = [f"| job | overrides | {metric} | status |", "|---:|---|---:|---|"]
        for r in ranked:
            result = f"{r['result']:.4f}" if isinstance(r["result"], (int, float)) else "-"
            lines.append(f"| {r['job']} | {' '.join(r['overrides'])} | {result} | {r['status']} |")
        (out / "sweep_summary.md").write_text("\n".join(lines) + "\n")
        print("\n".join([f"[sweep] summary, best {metric} first ({direction}):", *lines,
                          f"[sweep] written to {out}/sweep_summary.md"]))
