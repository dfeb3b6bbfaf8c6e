"""Hydra sweeps rank by each job's declared objective: two points whose order is known, the better one first, for
sft (validation loss, lower is better), train_dpo (held-out reward accuracy, higher is better) and the pipeline (a
folder of its own per point, each returning its own DPO EX)."""
import json
import os
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nba_dpo.data.dataset import completion_text
from tests.conftest import ROOT, TINY, TINY_DATA, TINY_MODEL, TINY_TRAIN, compose_cfg

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
              "train.output_dir=${paths.artifacts}/models/sweep_sft", *TINY_DATA, *TINY_MODEL, *TINY_TRAIN,
              "cluster.num_workers=1")  # the ranking, not the scale-out (the stage tests train on two workers)
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
              "train.save_steps=6", "train.per_device_batch_size=8", "cluster.num_workers=1",
              "train.reference=model")  # the base model as TRL's reference: no Ray Data pass per point to precompute it
    assert (s["metric"], s["direction"]) == ("heldout_reward_accuracy", "maximize")
    best, worst = s["points"]
    assert f"train.learning_rate={FAST}" in best["overrides"] and best["result"] > worst["result"]


def sweep_points(*overrides: str) -> list[list[str]]:
    """Each point's task overrides as Hydra's basic sweeper forms them (the same parser, the same order)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    points = [[]]
    for o in parsed:
        key = o.get_key_element()
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        points = [p + [f"{key}={v}"] for p in points for v in values]
    return points


def test_pipeline_sweep_gives_each_point_its_folder_and_returns_its_own_dpo(tiny_artifacts, tiny_prefs, tmp_path):
    """Two points that differ in DPO's learning rate. What comes before DPO is finished once and copied into both
    points' folders (the tests' tiny data, SFT model and pairs, and the SFT evaluation), so the sweep trains and
    evaluates DPO only. Ranked by the held-out implicit reward accuracy: the point whose DPO did not move has no margin
    beyond float noise (exactly 0); the one that learned has some, and ranks first."""
    from nba_dpo.config import validate
    from nba_dpo.evaluation.run import evaluate
    from nba_dpo.sweep import point_name

    root = tmp_path / "pipe"
    as_list = lambda items: "[" + ",".join(f"'{i}'" for i in items) + "]"  # noqa: E731  (in a list, Hydra needs k=v quoted)
    evaluation = ["eval.max_new_tokens=16", "eval.limit=8"]
    overrides = ["experiment=tiny", "objective.metric=dpo_reward_accuracy", "pipeline.eval_samples=0",
                 f"pipeline.evaluate={as_list(evaluation)}",
                 "pipeline.train_dpo=" + ",".join(as_list([*TINY.train_dpo, "cluster.num_workers=1",
                                                          f"train.learning_rate={lr}"]) for lr in (SLOW, FAST))]
    points = sweep_points(f"paths.artifacts={root}", *overrides)  # as sweep() passes them
    folders = [root / point_name(num, point) for num, point in enumerate(points)]
    first = folders[0]
    for part in ("data", "models/sft"):
        shutil.copytree(tiny_artifacts / part, first / part)
    shutil.copytree(tiny_prefs[0].generate.output_dir, first / "prefs")
    evaluate(validate(compose_cfg("evaluate", [f"paths.artifacts={first}", "eval.name=sft",
                                               f"eval.model_path={first}/models/sft",
                                               f"eval.pairs={first}/prefs/pairs/test.parquet",
                                               *evaluation, *TINY_DATA, *TINY_MODEL])))
    shutil.copytree(first, folders[1])
    s = sweep("pipeline", root, *overrides)
    assert (s["metric"], s["direction"]) == ("dpo_reward_accuracy", "maximize")
    best, worst = s["points"]
    assert f"train.learning_rate={FAST}" in " ".join(best["overrides"]) and best["result"] > worst["result"] == 0
    for folder, point in zip(folders, sorted(s["points"], key=lambda p: p["job"])):  # each point, its own folder
        summary = json.loads((folder / "report" / "summary.json").read_text())
        assert summary["preferences"]["dpo"]["implicit_reward_accuracy"] == point["result"]
        assert set(summary["timings_s"]) == {"train_dpo", "evaluate_dpo"}  # the copied stages were skipped
