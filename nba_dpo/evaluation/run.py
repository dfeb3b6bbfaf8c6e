"""The evaluate stage: generate with a model folder over Ray Data shards (or take given predictions), execute,
compare with the gold answers, and write metrics.json, predictions.parquet, summary.md and plots."""
from __future__ import annotations

import json
import time

import pyarrow as pa
from omegaconf import DictConfig

from nba_dpo import storage
from nba_dpo.data.dataset import completion_text, read_byo_questions, table_names
from nba_dpo.errors import UserError
from nba_dpo.evaluation.metrics import compute_metrics
from nba_dpo.evaluation.report import write_report
from nba_dpo.scoring.execution import ExecutionVerifier
from nba_dpo.sql.compare import exact_match
from nba_dpo.sql.extract import extract_reasoning, extract_sql

PREDICTION_COLUMNS = ["id", "sql", "correct_spider", "correct_bird", "error", "exec_ok", "exact_match", "question",
                      "gold_sql", "difficulty", "template_id", "holdout"]


def eval_rows(cfg: DictConfig) -> list[dict]:
    """The questions to evaluate: the byo JSONL as given, or a split of the built dataset."""
    if cfg.data.name == "byo" and cfg.eval.predictions:
        rows = read_byo_questions(cfg.data.db_path, cfg.data.questions)
    else:
        path = f"{cfg.paths.data}/sft/{cfg.eval.split}.parquet"
        if not storage.exists(path):
            raise UserError(f"{path} does not exist: run `python -m jobs.build_data paths.artifacts="
                            f"{cfg.paths.artifacts}` first")
        rows = storage.read_table(path).to_pylist()
    return rows[: cfg.eval.limit] if cfg.eval.limit else rows


def _read_predictions(p: str) -> dict[str, str]:
    preds = {}
    if not storage.exists(p):
        raise UserError(f"predictions file not found: {p}")
    for lineno, line in enumerate(storage.read_text(p).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            preds[str(obj["id"])] = str(obj["sql"] or "")
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise UserError(f"{p}:{lineno}: expected a JSON object with 'id' and 'sql' ({e})") from None
    return preds


def score_predictions(rows: list[dict], predictions: dict[str, str], db_path: str, timeout_s: float) -> list[dict]:
    """Run each given SQL as is (no extraction) in the sandbox and compare with the gold result."""
    verifier = ExecutionVerifier(db_path, timeout_s)
    out = []
    for r in rows:
        pred = predictions.get(str(r["id"]))
        v = verifier.verify_sql(pred or "", r["sql"])
        out.append({**r, "gold_sql": r["sql"], "sql": pred or "", "exec_ok": v.exec_ok,
                    "correct_spider": v.correct_spider, "correct_bird": v.correct_bird,
                    "exact_match": bool(pred) and exact_match(pred, r["sql"]),
                    "error": "missing: no prediction for this id" if pred is None else v.error})
    return out


def generate_and_score(cfg: DictConfig, rows: list[dict]) -> list[dict]:
    """Ray Data: prompts -> HFGenerator actors (eval.num_shards) -> ExecutionVerifier actors -> rows."""
    import ray
    from transformers import AutoTokenizer

    from nba_dpo.cluster import actor_resources, one_call_per_actor
    from nba_dpo.generation.hf import HFGenerator
    from nba_dpo.models.prompts import build_prompt

    e = cfg.eval
    if not storage.exists(f"{e.model_path}/config.json"):
        raise UserError(f"eval.model_path={e.model_path} is not a model folder (no config.json); train one with "
                        "jobs.sft or point eval.model_path at one")
    tokenizer = AutoTokenizer.from_pretrained(storage.local_copy(e.model_path))
    items = [{"id": r["id"], "prompt": build_prompt(tokenizer, r["question"], r["schema"], cfg.model.include_schema),
              "sql": r["sql"]} for r in rows]
    ds = ray.data.from_items(items, override_num_blocks=max(e.num_shards * 4, 1))
    use_gpu = cfg.cluster.use_gpu  # a GPU per shard on a GPU cluster
    ds = ds.map_batches(HFGenerator, batch_size=e.batch_size, compute=one_call_per_actor(e.num_shards),
                        **actor_resources(cfg.cluster, num_cpus=1, num_gpus=1 if use_gpu else 0),
                        fn_constructor_kwargs=dict(model_path=e.model_path, max_new_tokens=e.max_new_tokens,
                                                   greedy=True, num_samples=e.num_samples if e.num_samples > 1 else 0,
                                                   temperature=e.temperature, top_p=e.top_p, top_k=e.top_k,
                                                   seed=cfg.seed, dtype=cfg.model.dtype, use_gpu=use_gpu))
    # no CPU reserved, as in the generate stage: checks run beside generator actors that hold every core
    ds = ds.map_batches(ExecutionVerifier, batch_size=e.batch_size,
                        compute=ray.data.ActorPoolStrategy(size=e.num_shards), **actor_resources(cfg.cluster, 0),
                        fn_constructor_kwargs=dict(db_path=cfg.data.db_path, timeout_s=e.sql_timeout_s))
    scored = {r["id"]: r for r in ds.take_all()}
    count = lambda text: len(tokenizer(text, add_special_tokens=False).input_ids) if text else 0  # noqa: E731
    out = []
    for r in rows:
        s = scored[r["id"]]
        out.append({**r, "gold_sql": r["sql"], "sql": s["pred_sql"], "completion": s["completion"],
                    "n_tokens": int(s["n_tokens"]), "reasoning_tokens": count(extract_reasoning(s["completion"])),
                    "sql_tokens": count(extract_sql(s["completion"])),
                    "gold_tokens": count(completion_text(r["reasoning"], r["sql"])),
                    "samples_correct": list(s["samples_correct"]) if s.get("samples_correct") is not None else None,
                    **{k: s[k] for k in ("exec_ok", "correct_spider", "correct_bird", "exact_match", "error")}})
    return out


def evaluate(cfg: DictConfig) -> dict:
    """Run one evaluation into <artifacts>/eval/<eval.name>/ and return its metrics."""
    from nba_dpo.cluster import joins_cluster, start_ray

    start = time.perf_counter()
    if not cfg.eval.predictions or joins_cluster(cfg.cluster):  # scoring given SQL needs no Ray of its own
        start_ray(cfg)
    rows = eval_rows(cfg)
    if cfg.eval.predictions:
        scored = score_predictions(rows, _read_predictions(cfg.eval.predictions), cfg.data.db_path,
                                   cfg.eval.sql_timeout_s)
    else:
        scored = generate_and_score(cfg, rows)
    tables = {t.lower() for t in table_names(storage.local_copy(cfg.data.db_path))}
    metrics = compute_metrics(scored, tables, pass_k=list(cfg.eval.pass_k), token_counts=not cfg.eval.predictions)
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    metrics["model_path"] = None if cfg.eval.predictions else cfg.eval.model_path
    out_dir = f"{cfg.paths.artifacts}/eval/{cfg.eval.name}"
    columns = PREDICTION_COLUMNS + [c for c in ("completion", "n_tokens", "samples_correct") if c in scored[0]]
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in scored])
    storage.write_parquet(table, f"{out_dir}/predictions.parquet")
    write_report(cfg.eval.name, metrics, out_dir)
    storage.write_json(metrics, f"{out_dir}/metrics.json")  # last: marks a complete evaluation
    return metrics

