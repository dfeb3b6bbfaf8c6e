"""End to end on real components, tiny sizes: data -> tiny model -> SFT on 2 Ray Train workers (ZeRO-2 full, and
LoRA) -> sharded evaluation; sharded and unsharded evaluation agree exactly."""
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
    cfg, out = sft(tiny_artifacts, "deepspeed=zero2", "run_name=zero2",
                   "train.output_dir=${paths.artifacts}/models/sft_zero2")
    assert out["steps"] == 6 and out["final_loss"] < out["first_loss"]
    model = AutoModelForCausalLM.from_pretrained(cfg.train.output_dir)
    assert model.config.num_hidden_layers == 2
    assert list(Path(cfg.paths.artifacts, "ray_results").glob("sft-zero2-*/checkpoint_*"))  # via ray.train.report


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
