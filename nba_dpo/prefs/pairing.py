"""Pairing strategies: candidates of one prompt -> (chosen, rejected) pairs, plus the reason a prompt gave none.

best_worst: the best against the worst candidate. margin: every pair whose scores differ by at least
`min_margin`, largest gaps first. all_pairs: every pair with different scores, capped per prompt. Identical
completions count once. When all candidates tie (all correct or all wrong), `on_tie` decides: skip the prompt, or
pair with a hard negative (a corrupted gold SQL under a correct candidate) or with the gold answer (over a wrong
candidate); `strategy` records which. With `chosen=gold` the gold answer is the chosen side of every pair, over the
wrong candidates (worst first, capped per prompt) or, when all are correct, over a corrupted gold SQL.
"""
from __future__ import annotations

import itertools
import random
from collections import Counter

from omegaconf import DictConfig

from nba_dpo.data.dataset import completion_text
from nba_dpo.prefs.hard_negatives import corrupt_sql
from nba_dpo.sql.extract import extract_reasoning


def _pair(prompt: dict, chosen: str, rejected: str, cs: float, rs: float, strategy: str) -> dict:
    return {"prompt": prompt["prompt"], "chosen": chosen, "rejected": rejected, "prompt_id": prompt["prompt_id"],
            "chosen_score": float(cs), "rejected_score": float(rs), "margin": float(cs - rs), "strategy": strategy,
            "question": prompt["question"], "difficulty": prompt["difficulty"], "template_id": prompt["template_id"]}


def pairs_for_prompt(prompt: dict, candidates: list[dict], p: DictConfig, verifier,
                     rng: random.Random) -> tuple[list[dict], str | None]:
    """Pairs for one prompt and, when there are none, why."""
    usable = [c for c in candidates if not (c["error"] or "").startswith("generation failed")]
    if not usable:
        return [], "generation_failed"
    unique: dict[str, dict] = {}
    for c in sorted(usable, key=lambda c: (-c["score"], c["candidate_idx"])):
        unique.setdefault(c["completion"].strip(), c)
    ranked = list(unique.values())
    gold = completion_text(prompt["reasoning"], prompt["sql"])
    pairs: list[dict] = []
    if p.chosen == "gold":
        wrong = [c for c in reversed(ranked) if not c["correct"]]  # worst first
        pairs = [_pair(prompt, gold, c["completion"], p.gold_score, c["score"], f"{p.strategy}+gold")
                 for c in wrong[: p.max_pairs_per_prompt]]
    elif p.strategy == "best_worst":
        best, worst = ranked[0], ranked[-1]
        if best["score"] - worst["score"] >= p.min_margin and best["score"] > worst["score"]:
            pairs.append(_pair(prompt, best["completion"], worst["completion"], best["score"], worst["score"],
                               p.strategy))
    else:
        combos = [(a, b) for a, b in itertools.combinations(ranked, 2) if a["score"] - b["score"] >= p.min_margin
                  and a["score"] > b["score"]]
        combos.sort(key=lambda ab: ab[1]["score"] - ab[0]["score"])
        pairs = [_pair(prompt, a["completion"], b["completion"], a["score"], b["score"], p.strategy)
                 for a, b in combos[: p.max_pairs_per_prompt]]
    if pairs:
        return pairs, None
    all_correct, all_wrong = all(c["correct"] for c in ranked), not any(c["correct"] for c in ranked)
    reason = "all_correct" if all_correct else "all_wrong" if all_wrong else "margin_too_small"
    if p.on_tie != "hard_negative" or reason == "margin_too_small":
        return [], reason
    if all_correct:  # a correct answer (the model's own, or gold) over a controlled corruption of the gold SQL
        bad = corrupt_sql(prompt["sql"], verifier, rng)
        if bad is None:
            return [], reason
        chosen, score = (gold, p.gold_score) if p.chosen == "gold" else (ranked[0]["completion"], ranked[0]["score"])
        reasoning = extract_reasoning(chosen) or prompt["reasoning"]
        return [_pair(prompt, chosen, completion_text(reasoning, bad[0]), score, p.hard_negative_score,
                      f"{p.strategy}+hard_negative:{bad[1]}")], None
    worst = ranked[-1]  # all wrong: the gold answer over the model's worst
    return [_pair(prompt, gold, worst["completion"], p.gold_score, worst["score"], f"{p.strategy}+gold")], None


def prompt_of(candidate: dict) -> dict:
    """The prompt a candidate row answers, with its gold answer (the candidate contract carries both)."""
    return {"prompt_id": candidate["prompt_id"], "prompt": candidate["prompt"], "question": candidate["question"],
            "difficulty": candidate["difficulty"], "template_id": candidate["template_id"],
            "sql": candidate["gold_sql"], "reasoning": candidate["gold_reasoning"]}


def make_pairs(prompts: list[dict], candidates: list[dict], p: DictConfig, verifier, seed: int
               ) -> tuple[list[dict], Counter]:
    """All pairs, and a Counter of why prompts produced none. Each prompt draws its hard negatives from a generator
    of its own (seed and prompt id), so its pairs do not depend on which prompts are paired with it."""
    by_prompt: dict[str, list[dict]] = {}
    for c in candidates:
        by_prompt.setdefault(c["prompt_id"], []).append(c)
    pairs, reasons = [], Counter()
    for prompt in prompts:
        rng = random.Random(f"{seed}:{prompt['prompt_id']}")
        got, reason = pairs_for_prompt(prompt, by_prompt.get(prompt["prompt_id"], []), p, verifier, rng)
        pairs += got
        if reason:
            reasons[reason] += 1
    return pairs, reasons
