"""The evaluate stage: generate with a model folder over Ray Data shards (or take given predictions), execute,
compare with the gold answers, check the reasoning lines, optionally score the model's likelihood of held-out
preference pairs (eval.pairs), and write metrics.json, predictions.parquet, summary.md and plots."""
from __future__ import annotations

import json
import time

import pyarrow as pa
from omegaconf import DictConfig

from nba_dpo import storage
from nba_dpo.data.dataset import column_names, completion_text, read_byo_questions, table_names
from nba_dpo.data.text import jsonl_lines, storable
from nba_dpo.errors import UserError
from nba_dpo.evaluation.metrics import compute_metrics, preference_metrics
from nba_dpo.evaluation.reasoning import check_reasoning
from nba_dpo.evaluation.report import write_report
from nba_dpo.scoring.execution import ExecutionVerifier
from nba_dpo.seeds import stable_seed
from nba_dpo.sql.compare import exact_match
from nba_dpo.sql.extract import extract_reasoning, extract_sql

PREDICTION_COLUMNS = ["id", "sql", "correct_spider", "correct_bird", "error", "exec_ok", "exact_match", "question",
                      "gold_sql", "difficulty", "template_id", "holdout"]
# with a model: its completion, lengths, pass@k verdicts, reward-model score and reasoning verdicts
MODEL_COLUMNS = ["completion", "n_tokens", "reasoning_tokens", "sql_tokens", "gold_reasoning_tokens", "gold_sql_tokens",
                 "samples_correct", "reward", "has_reasoning", "reasoning_consistent", "reasoning_correct"]


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


def _read_predictions(p: str) -> dict[str, tuple[str, str | None]]:
    """id -> (SQL, problem): text that is not valid UTF-8 is kept, replaced, and scored as a failure."""
    if not storage.exists(p):
        raise UserError(f"predictions file not found: {p}")
    preds = {}
    for lineno, line, problem in jsonl_lines(p):
        try:
            obj = json.loads(line)
            sql, bad_sql = storable(str(obj["sql"] or ""))
            preds[storable(str(obj["id"]))[0]] = (sql, problem or bad_sql)
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise UserError(f"{p}:{lineno}: expected a JSON object with 'id' and 'sql' ({e})") from None
    return preds


def score_predictions(rows: list[dict], predictions: dict[str, tuple[str, str | None]], db_path: str,
                      timeout_s: float) -> list[dict]:
    """Run each given SQL as is (no extraction) in the sandbox and compare with the gold result."""
    verifier = ExecutionVerifier(db_path, timeout_s)
    out = []
    for r in rows:
        pred, problem = predictions.get(str(r["id"]), (None, None))
        v = verifier.verify_sql("" if problem else pred or "", r["sql"])
        error = "missing: no prediction for this id" if pred is None else problem or v.error
        out.append({**r, "gold_sql": r["sql"], "sql": pred or "", "exec_ok": v.exec_ok and not problem,
                    "correct_spider": v.correct_spider and not problem, "correct_bird": v.correct_bird and not problem,
                    "exact_match": bool(pred) and not problem and exact_match(pred, r["sql"]), "error": error})
    return out


def vllm_answers(cfg: DictConfig, items: list[dict], samples: int):
    """The greedy answer of each question and its `samples` sampled ones (eval.temperature, a seed per sample), all
    from the same vLLM engines (eval=vllm, eval.num_shards replicas) in model.dtype, as the hf actors run it, as a
    Ray Dataset with the columns the hf actors give: completion, n_tokens, error and, with samples, `samples`."""
    import ray

    from nba_dpo.generation.vllm_backend import build_vllm_processor

    evaluation = cfg.eval
    requests = [{**item, "sample_idx": k, "temperature": 0.0 if k < 0 else evaluation.temperature,
                 "seed": stable_seed(cfg.seed, item["id"], k)} for item in items for k in range(-1, samples)]
    answer = build_vllm_processor(evaluation, cfg.cluster, model_path=evaluation.model_path,
                                  batch_size=evaluation.batch_size, concurrency=evaluation.num_shards, seed=cfg.seed,
                                  max_new_tokens=evaluation.max_new_tokens, temperature=evaluation.temperature,
                                  top_p=evaluation.top_p, top_k=evaluation.top_k, dtype=cfg.model.dtype,
                                  passthrough=("id", "sample_idx", "prompt", "sql", "question"))
    by_question: dict[str, dict] = {}
    for r in sorted(answer(ray.data.from_items(requests)).take_all(), key=lambda r: r["sample_idx"]):
        if r["sample_idx"] < 0:
            by_question[r["id"]] = {k: r[k] for k in ("id", "prompt", "sql", "question", "completion", "n_tokens",
                                                      "error")} | ({"samples": []} if samples else {})
        else:
            by_question[r["id"]]["samples"].append(r["completion"])
    return ray.data.from_items(list(by_question.values()), override_num_blocks=max(evaluation.num_shards * 4, 1))


def generate_and_score(cfg: DictConfig, rows: list[dict]) -> list[dict]:
    """Ray Data: prompts -> generator actors (eval.num_shards: hf actors, or vLLM engines with eval=vllm) ->
    ExecutionVerifier actors [-> RewardScorer] -> rows. A question whose prompt leaves no room for
    eval.max_new_tokens in the model's context (or eval.max_model_len) is not generated: it is scored as a failure
    with that reason."""
    import ray
    from transformers import AutoTokenizer

    from nba_dpo.generation.completions import hf_completions, verified
    from nba_dpo.generation.hf import HFGenerator
    from nba_dpo.models.prompts import build_prompt, token_limit

    evaluation = cfg.eval
    samples = evaluation.num_samples if evaluation.num_samples > 1 else 0  # sampled completions besides the greedy one
    storage.require({"eval.model_path's model": f"{evaluation.model_path}/config.json"},
                    "train one with jobs.sft or point eval.model_path at a model folder")
    model_dir = storage.local_copy(evaluation.model_path)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    count = lambda text: len(tokenizer(text, add_special_tokens=False).input_ids) if text else 0  # noqa: E731
    limit, what = token_limit(model_dir, evaluation.backend, evaluation.get("max_model_len"), "eval")
    items, too_long = [], {}
    for r in rows:
        prompt = build_prompt(tokenizer, r["question"], r["schema"], cfg.model.include_schema)
        n = count(prompt)
        if limit and n + evaluation.max_new_tokens > limit:
            too_long[r["id"]] = (f"prompt_too_long: {n} prompt tokens + eval.max_new_tokens="
                                 f"{evaluation.max_new_tokens} exceed {what}")
        else:
            items.append({"id": r["id"], "prompt": prompt, "sql": r["sql"], "question": r["question"]})
    scored = {}
    if items:
        if evaluation.backend == "vllm":
            ds = vllm_answers(cfg, items, samples)
        else:
            ds = ray.data.from_items(items, override_num_blocks=max(evaluation.num_shards * 4, 1))
            ds = hf_completions(ds, HFGenerator, cfg.cluster, batch_size=evaluation.batch_size,
                                concurrency=evaluation.num_shards, model_path=evaluation.model_path,
                                max_new_tokens=evaluation.max_new_tokens, greedy=True, num_samples=samples,
                                temperature=evaluation.temperature, top_p=evaluation.top_p, top_k=evaluation.top_k,
                                seed=cfg.seed, dtype=cfg.model.dtype)
        ds = verified(ds, cfg.data.db_path, evaluation.sql_timeout_s, cfg.cluster, evaluation.reward_model,
                      batch_size=evaluation.batch_size, verifiers=evaluation.num_shards)
        scored = {r["id"]: r for r in ds.take_all()}
    out = []
    for r in rows:
        gold = {"gold_sql": r["sql"], "gold_tokens": count(completion_text(r["reasoning"], r["sql"])),
                "gold_reasoning_tokens": count(r["reasoning"]), "gold_sql_tokens": count(r["sql"])}
        if r["id"] in too_long:
            out.append({**r, **gold, "sql": "", "completion": "", "n_tokens": 0, "reasoning_tokens": 0,
                        "sql_tokens": 0, "samples_correct": [False] * samples if samples else None,
                        "exec_ok": False, "correct_spider": False, "correct_bird": False, "exact_match": False,
                        "error": too_long[r["id"]], "reward": None})
            continue
        s = scored[r["id"]]
        out.append({**r, **gold, "sql": s["pred_sql"], "completion": s["completion"],
                    "n_tokens": int(s["n_tokens"]), "reasoning_tokens": count(extract_reasoning(s["completion"])),
                    "sql_tokens": count(extract_sql(s["completion"])),
                    "samples_correct": list(s["samples_correct"]) if s.get("samples_correct") is not None else None,
                    "reward": float(s["reward"]) if evaluation.reward_model else None,
                    **{k: s[k] for k in ("exec_ok", "correct_spider", "correct_bird", "exact_match", "error")}})
    return out


def add_reasoning_verdicts(rows: list[dict], db_path: str) -> None:
    """reasoning_consistent / reasoning_correct of each completion (`reasoning.check_reasoning`), in place."""
    db = storage.local_copy(db_path)
    tables, columns = {t.lower() for t in table_names(db)}, {c.lower() for c in column_names(db)}
    for r in rows:
        v = check_reasoning(extract_reasoning(r["completion"]), r["sql"], r["gold_sql"], tables, columns)
        r["has_reasoning"], r["reasoning_consistent"], r["reasoning_correct"] = (v["has_reasoning"], v["consistent"],
                                                                                 v["correct"])
        r["reasoning_facets"] = {f"{kind}_{facet}": ok for kind in ("consistent", "correct")
                                 for facet, ok in v[f"{kind}_facets"].items()}


def pair_logprobs(cfg: DictConfig) -> list[dict]:
    """The evaluated model's log-probabilities of each held-out pair's chosen and rejected completions (Ray Data
    actors, one per shard)."""
    import ray

    from nba_dpo.cluster import actor_resources
    from nba_dpo.prefs.ref_logprobs import PairLogProbs

    evaluation = cfg.eval
    if not storage.exists(evaluation.pairs):
        raise UserError(f"eval.pairs={evaluation.pairs} not found: run jobs.generate first, or leave eval.pairs unset")
    names = storage.parquet_metadata(evaluation.pairs).schema.names
    columns = ["prompt", "chosen", "rejected"] + [c for c in ("ref_chosen_logps", "ref_rejected_logps") if c in names]
    ds = storage.read_dataset(evaluation.pairs, columns=columns)
    use_gpu = cfg.cluster.use_gpu
    ds = ds.map_batches(PairLogProbs, batch_size=evaluation.batch_size,
                        compute=ray.data.ActorPoolStrategy(size=evaluation.num_shards),
                        **actor_resources(cfg.cluster, num_cpus=1, num_gpus=1 if use_gpu else 0),
                        fn_constructor_kwargs=dict(model_path=evaluation.model_path, max_length=cfg.model.max_length,
                                                   dtype=cfg.model.dtype, use_gpu=use_gpu))
    return ds.drop_columns(["prompt", "chosen", "rejected"]).take_all()


def _storable_row(row: dict, columns: list[str]) -> dict:
    return {c: storable(row[c])[0] if isinstance(row.get(c), str) else row.get(c) for c in columns}


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
        add_reasoning_verdicts(scored, cfg.data.db_path)
    metrics = compute_metrics(scored, pass_k=list(cfg.eval.pass_k))
    if cfg.eval.pairs and not cfg.eval.predictions:
        metrics["preferences"] = preference_metrics(pair_logprobs(cfg))
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    metrics["model_path"] = None if cfg.eval.predictions else cfg.eval.model_path
    out_dir = f"{cfg.paths.artifacts}/eval/{cfg.eval.name}"
    columns = PREDICTION_COLUMNS + [c for c in MODEL_COLUMNS if c in scored[0]]
    table = pa.Table.from_pylist([_storable_row(r, columns) for r in scored])
    storage.write_parquet(table, f"{out_dir}/predictions.parquet")
    write_report(cfg.eval.name, metrics, out_dir)
    storage.write_json(metrics, f"{out_dir}/metrics.json")  # last: marks a complete evaluation
    return metrics
