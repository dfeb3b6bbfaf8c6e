"""Metrics over scored prediction rows: execution accuracy (Spider, BIRD), validity, exact match, verbosity,
reasoning, pass@k; overall and per difficulty, template and hold-out kind, with counts."""
from __future__ import annotations

import re
from collections import defaultdict
from math import comb

import numpy as np
import sqlglot
from sqlglot import exp

from nba_dpo.sql.extract import extract_reasoning


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al., 2021)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def sql_tables(sql: str) -> set[str]:
    try:
        return {t.name.lower() for t in sqlglot.parse_one(sql, read="sqlite").find_all(exp.Table)}
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError, ValueError):
        return set()


def reasoning_tables(reasoning: str, known_tables: set[str]) -> set[str]:
    words = set(re.findall(r"[a-z_]+", reasoning.lower()))
    return words & known_tables


def _group(rows: list[dict]) -> dict:
    n = len(rows)
    return {"n": n,
            "ex_spider": float(np.mean([r["correct_spider"] for r in rows])) if n else 0.0,
            "ex_bird": float(np.mean([r["correct_bird"] for r in rows])) if n else 0.0,
            "valid_sql": float(np.mean([r["exec_ok"] for r in rows])) if n else 0.0}


def compute_metrics(rows: list[dict], known_tables: set[str], pass_k: list[int] | None = None,
                    token_counts: bool = True) -> dict:
    """`rows` carry correct_spider, correct_bird, exec_ok, exact_match, difficulty, template_id, holdout and, with a
    model, completion, n_tokens, reasoning_tokens, sql_tokens, gold_tokens, samples_correct."""
    m = _group(rows)
    m["exact_match"] = float(np.mean([r["exact_match"] for r in rows])) if rows else 0.0
    for key, name in (("difficulty", "by_difficulty"), ("template_id", "by_template"), ("holdout", "by_holdout")):
        groups = defaultdict(list)
        for r in rows:
            groups[r.get(key) or "unknown"].append(r)
        m[name] = {g: _group(rs) for g, rs in sorted(groups.items())}
    held = [r for r in rows if r.get("holdout") in ("phrasing", "both")]
    m["heldout_phrasings"] = _group(held)
    if token_counts and rows and "n_tokens" in rows[0]:
        toks = np.array([r["n_tokens"] for r in rows], dtype=float)
        m["verbosity"] = {
            "mean_completion_tokens": float(toks.mean()), "p50_completion_tokens": float(np.percentile(toks, 50)),
            "p90_completion_tokens": float(np.percentile(toks, 90)),
            "mean_reasoning_tokens": float(np.mean([r["reasoning_tokens"] for r in rows])),
            "mean_sql_tokens": float(np.mean([r["sql_tokens"] for r in rows])),
            "ratio_to_gold": float(toks.sum() / max(1, sum(r["gold_tokens"] for r in rows)))}
        has = [bool(extract_reasoning(r["completion"])) for r in rows]
        consistent = [reasoning_tables(extract_reasoning(r["completion"]), known_tables) == sql_tables(r["sql"])
                      for r, h in zip(rows, has) if h]
        m["reasoning"] = {"has_reasoning": float(np.mean(has)),
                          "tables_match_sql": float(np.mean(consistent)) if consistent else 0.0}
    if pass_k and rows and rows[0].get("samples_correct") is not None:
        n = len(rows[0]["samples_correct"])
        m["pass_at_k"] = {str(k): float(np.mean([pass_at_k(n, int(sum(r["samples_correct"])), k) for r in rows]))
                          for k in pass_k if k <= n}
        m["num_samples"] = n
    return m
