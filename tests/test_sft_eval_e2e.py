"""End to end on real components, tiny sizes: data -> tiny model -> SFT on 2 Ray Train workers (ZeRO-2 full: the
session's tiny SFT model; and LoRA) -> sharded evaluation; sharded and unsharded evaluation agree exactly (vLLM's
agreement with the hf actors is checked on the two-node cluster, test_multinode.py)."""
import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from nba_dpo.config import validate
from nba_dpo.evaluation.run import evaluate
from nba_dpo.training.sft import train_sft
from tests.conftest import TINY_DATA, TINY_MODEL, TINY_TRAIN, compose_cfg

pytestmark = pytest.mark.slow


def sft(artifacts: Path, *overrides: str) -> tuple:
    cfg = validate(compose_cfg("sft", [f"paths.artifacts={artifacts}"] + TINY_DATA + TINY_MODEL + TINY_TRAIN
                               + list(overrides)))
    return cfg, train_sft(cfg)


def test_sft_full_zero2(tiny_artifacts):
    """The session's tiny SFT model (tests/conftest.py): 6 steps of full SFT under ZeRO-2 on 2 workers."""
    folder = tiny_artifacts / "models" / "sft"
    losses = [h["loss"] for h in json.loads((folder / "log_history.json").read_text()) if "loss" in h]
    assert len(losses) == 6 and losses[-1] < losses[0]  # logging_steps=1
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.num_hidden_layers == 2
    assert list((tiny_artifacts / "ray_results").glob("sft-tiny-*/checkpoint_*"))  # via ray.train.report


def test_sft_lora_merged(tiny_artifacts, monkeypatch):
    monkeypatch.chdir(tiny_artifacts.parent)  # a relative paths.artifacts, as scripts/demo.sh passes
    cfg, out = sft(Path(tiny_artifacts.name), "train=sft_lora", "run_name=lora",
                   "train.output_dir=${paths.artifacts}/models/sft_lora")
    assert out["steps"] == 6
    folder = Path(cfg.train.output_dir)
    assert (folder / "config.json").exists() and not (folder / "adapter_config.json").exists()  # merged, plain folder
    AutoModelForCausalLM.from_pretrained(folder)


def test_sharded_and_unsharded_evaluation_agree(tiny_artifacts):
    artifacts = tiny_artifacts
    model = artifacts / "models" / "sft"
    results = {}
    for shards in (2, 1):
        cfg = validate(compose_cfg("evaluate", [f"paths.artifacts={artifacts}", f"eval.model_path={model}",
                                                f"eval.num_shards={shards}", f"eval.name=s{shards}",
                                                "eval.num_samples=4", "eval.pass_k=[1,4]", "eval.max_new_tokens=48",
                                                "eval.batch_size=16"] + TINY_DATA + TINY_MODEL))
        results[shards] = evaluate(cfg)
    a, b = results[2], results[1]
    for key in ("n", "ex_spider", "ex_bird", "valid_sql", "exact_match", "by_difficulty", "verbosity", "pass_at_k"):
        assert a[key] == b[key], key
    assert a["n"] == 60 and set(a["pass_at_k"]) == {"1", "4"}
    out = artifacts / "eval" / "s2"
    assert json.loads((out / "metrics.json").read_text())["n"] == 60
    assert (out / "predictions.parquet").exists() and (out / "summary.md").exists()
    assert list(out.glob("*.png"))


def test_questions_no_model_can_take_are_failed_not_fatal(tiny_artifacts, tmp_path):
    """A megabyte question, one with a NUL byte and one in U+FFFD (what a lone surrogate is stored as): the first
    cannot fit the tiny model's context and is failed with the reason, the others are generated and scored as usual,
    with the reasoning check and a reward model's score on every generated row."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from nba_dpo.models.tiny import build_tiny_reward_model

    data = tmp_path / "data"
    shutil.copytree(tiny_artifacts / "data", data)
    rows = pq.read_table(data / "sft" / "test.parquet").to_pylist()[:6]
    rows[3] = {**rows[3], "id": "huge", "question": "How many teams? " * 70_000}
    rows[4] = {**rows[4], "id": "nul", "question": "How many\x00 teams?"}
    rows[5] = {**rows[5], "id": "replaced", "question": "How many teams \ufffd?"}
    pq.write_table(pa.Table.from_pylist(rows), data / "sft" / "test.parquet")
    reward = tmp_path / "reward"
    build_tiny_reward_model(tiny_artifacts / "models" / "sft", reward, seed=0)
    model = tiny_artifacts / "models" / "sft"
    cfg = validate(compose_cfg("evaluate", [f"paths.artifacts={tmp_path}", f"eval.model_path={model}", "eval.name=nasty",
                                            "eval.max_new_tokens=48", "eval.num_shards=1",
                                            "+reward_model@eval.reward_model=sequence_classification",
                                            f"eval.reward_model.path={reward}"] + TINY_DATA + TINY_MODEL))
    m = evaluate(cfg)
    got = {r["id"]: r for r in pq.read_table(tmp_path / "eval" / "nasty" / "predictions.parquet").to_pylist()}
    assert m["n"] == 6 and set(got) == {r["id"] for r in rows}
    assert got["huge"]["error"].startswith("prompt_too_long:") and got["huge"]["completion"] == ""
    assert got["huge"]["reward"] is None and not got["huge"]["has_reasoning"]
    for key in ("nul", "replaced", rows[0]["id"]):
        assert got[key]["completion"] and got[key]["reward"] is not None
        assert not (got[key]["error"] or "").startswith("prompt_too_long")
