"""Metrics over scored prediction rows: execution accuracy (Spider, BIRD), validity, exact match, verbosity,
reasoning, pass@k, overall and per difficulty, template and hold-out kind, with counts; and over held-out preference
pairs, how often the model's likelihood prefers the chosen answer."""
from __future__ import annotations

from collections import defaultdict
from math import comb

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al., 2021)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def _group(rows: list[dict]) -> dict:
    n = len(rows)
    return {"n": n,
            "ex_spider": float(np.mean([r["correct_spider"] for r in rows])) if n else 0.0,
            "ex_bird": float(np.mean([r["correct_bird"] for r in rows])) if n else 0.0,
            "valid_sql": float(np.mean([r["exec_ok"] for r in rows])) if n else 0.0}


def _spread(values: list[float]) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "p50": float(np.percentile(v, 50)), "p90": float(np.percentile(v, 90))}


def _verbosity(rows: list[dict]) -> dict:
    """Token lengths of the completions, their reasoning lines and SQL, against the gold answers'."""
    toks = np.array([r["n_tokens"] for r in rows], dtype=float)
    spreads = {name: _spread([r[key] for r in rows]) for name, key in (
        ("completion", "n_tokens"), ("reasoning", "reasoning_tokens"), ("sql", "sql_tokens"),
        ("gold_completion", "gold_tokens"), ("gold_reasoning", "gold_reasoning_tokens"),
        ("gold_sql", "gold_sql_tokens"))}
    return {"mean_completion_tokens": float(toks.mean()), "p50_completion_tokens": float(np.percentile(toks, 50)),
            "p90_completion_tokens": float(np.percentile(toks, 90)),
            "mean_reasoning_tokens": spreads["reasoning"]["mean"], "mean_sql_tokens": spreads["sql"]["mean"],
            "ratio_to_gold": float(toks.sum() / max(1, sum(r["gold_tokens"] for r in rows))),
            "tokens": spreads}


def _reasoning(rows: list[dict]) -> dict:
    """How often the reasoning line agrees with the completion's own SQL (consistent) and with the gold SQL
    (correct), per fact as well, and EX among the questions whose reasoning was right and wrong."""
    stated = [r for r in rows if r["has_reasoning"]]
    right = [r for r in rows if r["reasoning_correct"]]
    wrong = [r for r in rows if not r["reasoning_correct"]]
    facets = {k: float(np.mean([r["reasoning_facets"][k] for r in stated])) if stated else 0.0
              for k in (rows[0]["reasoning_facets"] if rows else [])}
    return {"has_reasoning": float(np.mean([r["has_reasoning"] for r in rows])),
            "consistent": float(np.mean([r["reasoning_consistent"] for r in rows])),
            "correct": float(np.mean([r["reasoning_correct"] for r in rows])),
            "facets_when_stated": facets,
            "ex_when_correct": _group(right)["ex_spider"], "n_when_correct": len(right),
            "ex_when_wrong": _group(wrong)["ex_spider"], "n_when_wrong": len(wrong)}


def compute_metrics(rows: list[dict], pass_k: list[int] | None = None) -> dict:
    """`rows` carry correct_spider, correct_bird, exec_ok, exact_match, difficulty, template_id, holdout and, with a
    model, completion, the token counts, reasoning verdicts and samples_correct."""
    m = _group(rows)
    m["exact_match"] = float(np.mean([r["exact_match"] for r in rows])) if rows else 0.0
    for key, name in (("difficulty", "by_difficulty"), ("template_id", "by_template"), ("holdout", "by_holdout")):
        groups = defaultdict(list)
        for r in rows:
            groups[r.get(key) or "unknown"].append(r)
        m[name] = {g: _group(rs) for g, rs in sorted(groups.items())}
    held = [r for r in rows if r.get("holdout") in ("phrasing", "both")]
    m["heldout_phrasings"] = _group(held)
    if rows and "n_tokens" in rows[0]:
        m["verbosity"] = _verbosity(rows)
        m["reasoning"] = _reasoning(rows)
    if pass_k and rows and rows[0].get("samples_correct") is not None:
        n = len(rows[0]["samples_correct"])
        m["pass_at_k"] = {str(k): float(np.mean([pass_at_k(n, int(sum(r["samples_correct"])), k) for r in rows]))
                          for k in pass_k if k <= n}
        m["num_samples"] = n
    return m


LOGP_NOISE = 1e-3  # nats: summed float32 log-probs of one sequence differ by ~1e-5 between batchings


def preference_metrics(pairs: list[dict]) -> dict:
    """How often the model's own likelihood prefers each held-out pair's chosen completion: summed log-probability
    and per token; with reference log-probs in the pairs, also DPO's implicit reward (the log-ratio to the reference)
    accuracy and mean margin, in log-ratio units (TRL's rewards/margins is beta times it)."""
    c = np.array([p["chosen_logps"] for p in pairs], dtype=float)
    r = np.array([p["rejected_logps"] for p in pairs], dtype=float)
    nc = np.maximum(np.array([p["chosen_tokens"] for p in pairs], dtype=float), 1)
    nr = np.maximum(np.array([p["rejected_tokens"] for p in pairs], dtype=float), 1)
    out = {"n": len(pairs), "prefers_chosen": float(np.mean(c > r)) if pairs else 0.0,
           "prefers_chosen_per_token": float(np.mean(c / nc > r / nr)) if pairs else 0.0,
           "mean_logp_margin": float(np.mean(c - r)) if pairs else 0.0}
    if pairs and "ref_chosen_logps" in pairs[0]:
        margin = (c - np.array([p["ref_chosen_logps"] for p in pairs], dtype=float)) - \
                 (r - np.array([p["ref_rejected_logps"] for p in pairs], dtype=float))
        # beyond float noise: the stored reference log-probs were summed in other batches than these
        out["implicit_reward_accuracy"] = float(np.mean(margin > LOGP_NOISE))
        out["implicit_reward_margin"] = float(np.mean(margin))
    return out
