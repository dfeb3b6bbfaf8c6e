"""Two models on the same test questions: wins, ties and losses with 95% intervals, and an exact McNemar test.

A question is a win for A when only A's answer is correct by execution (Spider). When both are right or both wrong,
a reward model's score decides if both predictions carry one (`reward`, from `eval.reward_model`), else it is a tie.
"""
from __future__ import annotations

import math
from collections import defaultdict

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def outcome(a: dict, b: dict) -> int:
    """+1 when A wins the question, -1 when B does, 0 for a tie."""
    if a["correct_spider"] != b["correct_spider"]:
        return 1 if a["correct_spider"] else -1
    ra, rb = a.get("reward"), b.get("reward")
    if ra is None or rb is None or math.isnan(ra) or math.isnan(rb) or ra == rb:
        return 0
    return 1 if ra > rb else -1


def _share(k: int, n: int) -> dict:
    """k of n with its Wilson 95% interval."""
    if n == 0:
        return {"n": 0, "rate": 0.0, "ci95": [0.0, 0.0]}
    p, z2 = k / n, Z95 ** 2
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return {"n": k, "rate": p, "ci95": [max(0.0, center - half), min(1.0, center + half)]}


def _tally(outcomes: list[int]) -> dict:
    n = len(outcomes)
    return {"questions": n, "wins": _share(outcomes.count(1), n), "ties": _share(outcomes.count(0), n),
            "losses": _share(outcomes.count(-1), n)}


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: the discordant questions as a binomial test with p = 1/2."""
    n = only_a + only_b
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def head_to_head(a_rows: list[dict], b_rows: list[dict]) -> dict:
    """A against B over the questions both answered (matched by id): overall, by difficulty and by held-out kind,
    with McNemar's p-value on paired correctness and whether a reward model broke the ties."""
    b_by_id = {r["id"]: r for r in b_rows}
    pairs = [(a, b_by_id[a["id"]]) for a in a_rows if a["id"] in b_by_id]
    outcomes = [outcome(a, b) for a, b in pairs]
    only_a = sum(a["correct_spider"] and not b["correct_spider"] for a, b in pairs)
    only_b = sum(b["correct_spider"] and not a["correct_spider"] for a, b in pairs)
    out = {**_tally(outcomes), "only_a_correct": only_a, "only_b_correct": only_b,
           "mcnemar_p": mcnemar_exact(only_a, only_b),
           "reward_tiebreak": any(a.get("reward") is not None and b.get("reward") is not None for a, b in pairs)}
    for key, name in (("difficulty", "by_difficulty"), ("holdout", "by_holdout")):
        groups = defaultdict(list)
        for (a, _), o in zip(pairs, outcomes):
            groups[a.get(key) or "unknown"].append(o)
        out[name] = {g: _tally(os) for g, os in sorted(groups.items())}
    return out
