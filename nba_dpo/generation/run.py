"""The generate stage: prompts -> Ray Data (generator actors -> execution verifier -> reward model) -> candidates
-> composite score -> pairs -> reference log-probs -> Parquet.

Resumable: candidates are written in part files of `chunk_prompts` complete prompts each (atomically); a rerun reads
them, skips those prompts and generates the rest. Every prompt id appears once per sample index, as a candidate or
as an error row with its reason.
"""
from __future__ import annotations

import hashlib
import math
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from omegaconf import DictConfig
from tqdm import tqdm

from nba_dpo.errors import UserError
from nba_dpo.io import write_json, write_parquet
from nba_dpo.prefs.pairing import make_pairs
from nba_dpo.prefs.schema import CANDIDATE_SCHEMA, PAIR_SCHEMA
from nba_dpo.scoring.composite import composite_score
from nba_dpo.scoring.execution import ExecutionVerifier


def _seed(*parts) -> int:
    return int(hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def load_prompts(cfg: DictConfig) -> list[dict]:
    from transformers import AutoTokenizer

    from nba_dpo.models.prompts import build_prompt

    g = cfg.generate
    for path, what in ((g.prompts, "prompts"), (Path(g.model_path) / "config.json", "policy model")):
        if not Path(path).exists():
            raise UserError(f"{what} not found at {path}: run the earlier stages (build_data, sft) first")
    tokenizer = AutoTokenizer.from_pretrained(g.model_path)
    pool = pq.read_table(g.prompts).to_pylist()
    rows = pool[g.offset: g.offset + g.limit if g.limit else None]
    if not rows:
        raise UserError(f"{g.prompts} holds {len(pool)} prompts, none after generate.offset={g.offset}: lower "
                        "generate.limit or pipeline.rounds")
    return [{"prompt_id": r["id"], "prompt": build_prompt(tokenizer, r["question"], r["schema"],
                                                          cfg.model.include_schema),
             "question": r["question"], "sql": r["sql"], "reasoning": r["reasoning"], "difficulty": r["difficulty"],
             "template_id": r["template_id"]} for r in rows]


def _candidate_dataset(cfg: DictConfig, prompts: list[dict]):
    """Ray Data pipeline: prompt rows -> candidate rows with exec_ok/correct (and reward)."""
    import ray

    g, s = cfg.generate, cfg.score
    items = [{"id": p["prompt_id"], "prompt": p["prompt"], "sql": p["sql"], "question": p["question"]}
             for p in prompts]
    if g.backend == "vllm":
        from nba_dpo.generation.vllm_backend import build_vllm_candidates

        rows = sample_rows(items, g)
        # one block per engine call (from_items' default: up to 200 tiny blocks), rounded up: 8,000 rows in 31 blocks
        # of 258 made 31 engine calls of 256 rows and 31 of 2
        blocks = max(1, math.ceil(len(rows) / g.batch_size))
        ds = build_vllm_candidates(g, cfg.cluster)(ray.data.from_items(rows, override_num_blocks=blocks))
        ds = ds.map_batches(_restore_question, fn_kwargs={"questions": {i["id"]: i["question"] for i in items}},
                            batch_format="numpy")
    else:
        from nba_dpo.cluster import one_call_per_actor
        from nba_dpo.generation.hf import HFCandidates

        use_gpu = cfg.cluster.use_gpu
        ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items) // g.batch_size, 64)))
        ds = ds.map_batches(HFCandidates, batch_size=g.batch_size, compute=one_call_per_actor(g.concurrency),
                            num_cpus=1, num_gpus=1 if use_gpu else 0,
                            fn_constructor_kwargs=dict(model_path=g.model_path, max_new_tokens=g.max_new_tokens,
                                                       greedy=False, num_samples=g.num_samples,
                                                       temperature=g.temperature, top_p=g.top_p, top_k=g.top_k,
                                                       seed=g.seed, dtype=cfg.model.dtype,
                                                       sample_chunk=g.batch_size, use_gpu=use_gpu))
    # no CPU reserved: SQLite checks are light, and one that waited for a core would start only once the generator
    # actors holding every core (hf on CPU) had finished, instead of checking their output as it comes
    ds = ds.map_batches(ExecutionVerifier, batch_size=256, compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0,
                        fn_constructor_kwargs=dict(db_path=cfg.data.db_path, timeout_s=s.sql_timeout_s))
    if s.reward_model:
        from nba_dpo.scoring.reward import RewardScorer

        rm = s.reward_model
        ds = ds.map_batches(RewardScorer, batch_size=rm.batch_size,
                            compute=ray.data.ActorPoolStrategy(size=rm.concurrency), num_gpus=rm.num_gpus,
                            num_cpus=0 if rm.num_gpus else 1,
                            fn_constructor_kwargs=dict(model_path=rm.path, kind=rm.kind, dtype=rm.dtype,
                                                       trust_remote_code=rm.trust_remote_code,
                                                       max_length=rm.max_length, use_gpu=rm.num_gpus > 0))
    return ds


def sample_rows(items: list[dict], g: DictConfig) -> list[dict]:
    """The vllm backend's requests: one row per (prompt, sample index), each with its own seed."""
    return [{**it, "candidate_idx": k, "seed": _seed(g.seed, it["id"], k)} for it in items
            for k in range(g.num_samples)]


def _restore_question(batch: dict, questions: dict) -> dict:
    batch["question"] = np.array([questions[i] for i in batch["id"]], dtype=object)
    return batch


def _candidate_row(r: dict, prompt: dict, weights: DictConfig) -> dict:
    row = {"prompt_id": str(r["id"]), "candidate_idx": int(r["candidate_idx"]), "prompt": prompt["prompt"],
           "completion": str(r["completion"]), "sql": str(r["pred_sql"]), "exec_ok": bool(r["exec_ok"]),
           "correct": bool(r["correct_spider"]), "n_tokens": int(r["n_tokens"]),
           "reward": float(r["reward"]) if r.get("reward") is not None and not np.isnan(r["reward"]) else None,
           "error": r["error"] if isinstance(r.get("error"), str) else None, "question": prompt["question"],
           "difficulty": prompt["difficulty"], "template_id": prompt["template_id"]}
    row["score"] = composite_score(row, weights)
    return row


def generate_candidates(cfg: DictConfig, prompts: list[dict]) -> tuple[list[dict], int]:
    """Candidates for every prompt, reusing the part files a previous run completed; and how many rows it reused."""
    g = cfg.generate
    cand_dir = Path(g.output_dir) / "candidates"
    done = [pq.read_table(f, schema=CANDIDATE_SCHEMA).to_pylist() for f in sorted(cand_dir.glob("part-*.parquet"))]
    rows = [r for part in done for r in part]
    finished = {r["prompt_id"] for r in rows}
    todo = [p for p in prompts if p["prompt_id"] not in finished]
    reused = len(rows)
    if finished:
        print(f"[generate] resuming: {len(finished)} prompts already have candidates, {len(todo)} to go")
    if not todo:
        return rows, reused
    from nba_dpo.cluster import start_ray

    start_ray(cfg.cluster)
    by_id = {p["prompt_id"]: p for p in todo}
    pending: dict[str, dict[int, dict]] = defaultdict(dict)
    complete: list[dict] = []
    part = len(done)
    bar = tqdm(total=len(todo), desc=f"[generate] prompts ({g.backend}, {g.num_samples} samples)", unit="prompt")
    for r in _candidate_dataset(cfg, todo).iter_rows():
        pid = str(r["id"])
        pending[pid][int(r["candidate_idx"])] = _candidate_row(r, by_id[pid], cfg.score.weights)
        if len(pending[pid]) == g.num_samples:  # each (prompt, sample) exactly once, even after actor retries
            got = pending.pop(pid)
            complete += [got[k] for k in range(g.num_samples)]
            bar.update(1)
        if len(complete) >= g.chunk_prompts * g.num_samples:
            write_parquet(complete, cand_dir / f"part-{part:05d}.parquet", schema=CANDIDATE_SCHEMA)
            rows, complete, part = rows + complete, [], part + 1
    bar.close()
    for pid, got in pending.items():  # should not happen; recorded rather than lost
        complete += [got.get(k) or _candidate_row({"id": pid, "candidate_idx": k, "completion": "", "pred_sql": "",
                                                    "exec_ok": False, "correct_spider": False, "n_tokens": 0,
                                                    "error": "missing: no output for this sample"},
                                                    by_id[pid], cfg.score.weights) for k in range(g.num_samples)]
    if complete:
        write_parquet(complete, cand_dir / f"part-{part:05d}.parquet", schema=CANDIDATE_SCHEMA)
        rows += complete
    return rows, reused


def _split_of(prompt_id: str, seed: int, test_fraction: float) -> str:
    return "test" if _seed(seed, "pairs", prompt_id) / 2**32 < test_fraction else "train"


def add_ref_logprobs(cfg: DictConfig, pairs: list[dict]) -> list[dict]:
    import ray

    from nba_dpo.cluster import start_ray
    from nba_dpo.prefs.ref_logprobs import RefLogProbs

    start_ray(cfg.cluster)
    g = cfg.generate
    ds = ray.data.from_items(pairs, override_num_blocks=max(1, min(len(pairs) // 64, 32)))
    ds = ds.map_batches(RefLogProbs, batch_size=64, compute=ray.data.ActorPoolStrategy(size=g.concurrency), num_cpus=1,
                        num_gpus=1 if cfg.cluster.use_gpu else 0,
                        fn_constructor_kwargs=dict(model_path=g.ref_model_path, max_length=cfg.model.max_length,
                                                   dtype=cfg.model.dtype, use_gpu=cfg.cluster.use_gpu))
    by_key = {(r["prompt_id"], r["chosen"], r["rejected"]): r for r in ds.iter_rows()}
    return [by_key[(p["prompt_id"], p["chosen"], p["rejected"])] for p in pairs]


def generate_preferences(cfg: DictConfig) -> dict:
    """Run the whole stage; returns the summary (also written to <output_dir>/summary.json, last)."""
    g = cfg.generate
    out = Path(g.output_dir)
    (out / "summary.json").unlink(missing_ok=True)
    start = time.perf_counter()
    prompts = load_prompts(cfg)
    candidates, reused = generate_candidates(cfg, prompts)
    gen_seconds = time.perf_counter() - start
    verifier = ExecutionVerifier(cfg.data.db_path, cfg.score.sql_timeout_s)
    pairs, reasons = make_pairs(prompts, candidates, cfg.pairs, verifier, seed=cfg.seed)
    if g.ref_logprobs and pairs:
        pairs = add_ref_logprobs(cfg, pairs)
    else:
        pairs = [{**p, "ref_chosen_logps": None, "ref_rejected_logps": None} for p in pairs]
    split = {name: [p for p in pairs if _split_of(p["prompt_id"], cfg.seed, cfg.pairs.test_fraction) == name]
             for name in ("train", "test")}
    for name, rows in split.items():
        write_parquet(rows, out / "pairs" / f"{name}.parquet", schema=PAIR_SCHEMA)
    summary = summarize(prompts, candidates, reused, pairs, reasons, split, gen_seconds,
                        time.perf_counter() - start)
    write_json(summary, out / "summary.json")
    return summary


def summarize(prompts, candidates, reused, pairs, reasons, split, gen_seconds, seconds) -> dict:
    """The stage's closing numbers; tokens/s counts only the candidates this run generated (not resumed ones)."""
    by_diff = defaultdict(list)
    for c in candidates:
        by_diff[c["difficulty"]].append(c["correct"])
    per_prompt = Counter(p["prompt_id"] for p in pairs)
    tokens = sum(c["n_tokens"] for c in candidates)
    fresh_tokens = sum(c["n_tokens"] for c in candidates[reused:])
    return {
        "prompts": len(prompts), "candidates": len(candidates),
        "errors": sum(1 for c in candidates if c["error"] and c["error"].startswith(("generation", "missing"))),
        "pass_rate": float(np.mean([c["correct"] for c in candidates])) if candidates else 0.0,
        "pass_rate_by_difficulty": {d: float(np.mean(v)) for d, v in sorted(by_diff.items())},
        "pairs": {"n": len(pairs), "train": len(split["train"]), "test": len(split["test"]),
                  "prompts_with_pairs": len(per_prompt),
                  "per_prompt": len(pairs) / max(1, len(prompts)),
                  "by_strategy": dict(Counter(p["strategy"].split(":")[0] for p in pairs))},
        "no_pair_reasons": dict(reasons), "generated_tokens": tokens, "resumed_candidates": reused,
        "tokens_per_s": fresh_tokens / gen_seconds if fresh_tokens and gen_seconds > 0 else None,
        "seconds": round(seconds, 1)}
