"""Hydra sweeps rank by each job's declared objective: two points whose order is known, the better one first, for
sft (validation loss, lower is better), train_dpo (held-out reward accuracy, higher is better) and the pipeline (a
folder of its own per point, each returning its own DPO EX)."""
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nba_dpo.data.dataset import completion_text
from tests.conftest import ROOT, TINY_DATA, TINY_MODEL, TINY_TRAIN, compose_cfg

pytestmark = pytest.mark.slow
SLOW, FAST = "1e-9", "0.005"  # learning rates: the first leaves the model where it started


def sweep(job: str, artifacts, *overrides: str) -> dict:
    """A Hydra sweep of `job` on the test session's Ray (as the pipeline's stages share one): connecting takes
    seconds, where starting a Ray of its own takes half a minute here."""
    import ray

    from nba_dpo.cluster import start_ray
    from nba_dpo.config import validate

    start_ray(validate(compose_cfg("config", [f"paths.artifacts={artifacts}"])))
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    proc = subprocess.run([sys.executable, "-m", f"jobs.{job}", "-m", f"paths.artifacts={artifacts}", *overrides],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [folder] = (artifacts / "hydra" / job).glob("multirun-*")
    return json.loads((folder / "sweep_summary.json").read_text())


def test_sft_sweep_ranks_the_lower_validation_loss_first(tiny_artifacts):
    s = sweep("sft", tiny_artifacts, f"train.learning_rate={SLOW},{FAST}", "run_name=sweep_sft",
              "train.output_dir=${paths.artifacts}/models/sweep_sft", *TINY_DATA, *TINY_MODEL, *TINY_TRAIN)
    assert (s["metric"], s["direction"]) == ("val_loss", "minimize")
    best, worst = s["points"]
    assert f"train.learning_rate={FAST}" in best["overrides"] and best["result"] < worst["result"]


@pytest.fixture(scope="module")
def handmade_pairs(tiny_artifacts):
    """Pairs from the SFT data: the gold answer chosen, the same reasoning with a wrong SQL rejected."""
    from transformers import AutoTokenizer

    from nba_dpo.models.prompts import build_prompt

    tokenizer = AutoTokenizer.from_pretrained(tiny_artifacts / "models" / "sft")
    rows = pq.read_table(tiny_artifacts / "data" / "sft" / "train.parquet").to_pylist()[:80]
    pairs = [{"prompt": build_prompt(tokenizer, r["question"], r["schema"], False),  # as tiny_nba is prompted
              "chosen": completion_text(r["reasoning"], r["sql"]),
              "rejected": completion_text(r["reasoning"], "SELECT name FROM sqlite_master;")} for r in rows]
    folder = tiny_artifacts / "handmade_pairs"
    folder.mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(pairs[:64]), folder / "train.parquet")
    pq.write_table(pa.Table.from_pylist(pairs[64:]), folder / "test.parquet")
    return folder


def test_train_dpo_sweep_ranks_the_higher_heldout_accuracy_first(tiny_artifacts, handmade_pairs):
    s = sweep("train_dpo", tiny_artifacts, f"train.learning_rate={SLOW},{FAST}", "run_name=sweep_dpo",
              f"train.pairs={handmade_pairs}/train.parquet", f"train.eval_pairs={handmade_pairs}/test.parquet",
              "train.output_dir=${paths.artifacts}/models/sweep_dpo", *TINY_MODEL, "train.max_steps=6",
              "train.save_steps=6", "train.per_device_batch_size=8")
    assert (s["metric"], s["direction"]) == ("heldout_reward_accuracy", "maximize")
    best, worst = s["points"]
    assert f"train.learning_rate={FAST}" in best["overrides"] and best["result"] > worst["result"]
