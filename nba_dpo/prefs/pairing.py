"""Pairing strategies: candidates of one prompt -> (chosen, rejected) pairs, plus the reason a prompt gave none.

best_worst: the best against the worst candidate. margin: every pair whose scores differ by at least
`min_margin`, largest gaps first. all_pairs: every pair with different scores, capped per prompt. Identical
completions count once. When all candidates tie (all correct or all wrong), `on_tie` decides: skip the prompt, or
pair with a hard negative (a corrupted gold SQL under a correct candidate) or with the gold answer (over a wrong
candidate); `strategy` records which. With `chosen=gold` the gold answer is the chosen side of every pair, over the
wrong candidates (worst first, capped per prompt) or, when all are correct, over a corrupted gold SQL.

`chosen=consensus` reads no gold: the candidates are grouped by their execution result (Spider semantics), and an
answer of the largest group is chosen when that group has at least `min_votes` members and no other group as many;
the rejected answers are the least supported (failures first, then the smallest groups). An empty result casts no
vote: a wrong filter value returns one as readily as a right one. When every sample agrees, `on_tie=hard_negative`
pairs the consensus answer with a corruption of its own SQL.
"""
from __future__ import annotations

import itertools
import random
from collections import Counter

from omegaconf import DictConfig

from nba_dpo.data.dataset import completion_text
from nba_dpo.prefs.hard_negatives import corrupt_sql
from nba_dpo.sql.compare import has_order_by, spider_equal, token_edits
from nba_dpo.sql.extract import extract_reasoning, extract_sql


def _pair(prompt: dict, chosen: str, rejected: str, cs: float, rs: float, strategy: str,
          correct: tuple[bool | None, bool | None] = (None, None)) -> dict:
    """A preference row; `correct` is whether each side is right by the gold SQL (None: not known), which only the
    stage's summary reads."""
    return {"prompt": prompt["prompt"], "chosen": chosen, "rejected": rejected, "prompt_id": prompt["prompt_id"],
            "chosen_score": float(cs), "rejected_score": float(rs), "margin": float(cs - rs), "strategy": strategy,
            "question": prompt["question"], "difficulty": prompt["difficulty"], "template_id": prompt["template_id"],
            "chosen_correct": correct[0], "rejected_correct": correct[1]}


def result_groups(candidates: list[dict], verifier) -> list[list[dict]]:
    """The candidates whose SQL returns rows, grouped by result (Spider semantics against each group's first member,
    whose ORDER BY decides whether order counts), most votes first."""
    groups: list[tuple[list, bool, list[dict]]] = []
    for c in candidates:
        rows = verifier.sandbox.run(c["sql"]).rows if c["exec_ok"] else []
        if not rows:
            continue
        for first_rows, ordered, members in groups:
            if spider_equal(rows, first_rows, ordered):
                members.append(c)
                break
        else:
            groups.append((rows, has_order_by(c["sql"]), [c]))
    return sorted((members for _, _, members in groups), key=lambda g: -sum(c["votes"] for c in g))


def consensus_pairs(prompt: dict, ranked: list[dict], p: DictConfig, verifier,
                    rng: random.Random) -> tuple[list[dict], str | None]:
    """`chosen=consensus`: pairs for one prompt from its distinct candidates (best scored first, each with the number
    of samples that wrote it, `votes`), without its gold."""
    groups = result_groups(ranked, verifier)
    if not groups:
        return [], "no_result"
    votes = [sum(c["votes"] for c in g) for g in groups]
    if votes[0] < p.min_votes or (len(votes) > 1 and votes[1] >= votes[0]):
        return [], "no_consensus"
    total = sum(c["votes"] for c in ranked)
    support = {c["candidate_idx"]: v / total for g, v in zip(groups, votes) for c in g}  # failures: none
    chosen = groups[0][0]  # the group's best scored member: the shortest, or the reward model's favourite
    won = {c["candidate_idx"] for c in groups[0]}
    losers = sorted((c for c in ranked if c["candidate_idx"] not in won),  # failures, empty results, smaller groups
                    key=lambda c: (support.get(c["candidate_idx"], 0.0), c["score"]))
    score = support[chosen["candidate_idx"]]
    pairs = [_pair(prompt, chosen["completion"], c["completion"], score, support.get(c["candidate_idx"], 0.0),
                   "consensus", (chosen["correct"], c["correct"])) for c in losers[: p.max_pairs_per_prompt]]
    if pairs:
        return pairs, None
    bad = corrupt_sql(chosen["sql"], verifier, rng) if p.on_tie == "hard_negative" else None
    if bad is None:
        return [], "unanimous"
    reasoning = extract_reasoning(chosen["completion"]) or ""
    return [_pair(prompt, chosen["completion"], completion_text(reasoning, bad[0]), score, p.hard_negative_score,
                  f"consensus+hard_negative:{bad[1]}", (chosen["correct"], False))], None


def pairs_for_prompt(prompt: dict, candidates: list[dict], p: DictConfig, verifier,
                     rng: random.Random) -> tuple[list[dict], str | None]:
    """Pairs for one prompt and, when there are none, why."""
    usable = [c for c in candidates if not (c["error"] or "").startswith("generation failed")]
    if not usable:
        return [], "generation_failed"
    unique: dict[str, dict] = {}
    for c in sorted(usable, key=lambda c: (-c["score"], c["candidate_idx"])):
        unique.setdefault(c["completion"].strip(), {**c, "votes": 0})["votes"] += 1
    ranked = list(unique.values())
    if p.chosen == "consensus":
        return consensus_pairs(prompt, ranked, p, verifier, rng)
    gold = completion_text(prompt["reasoning"], prompt["sql"])
    pairs: list[dict] = []
    if p.chosen == "gold":
        wrong = [c for c in reversed(ranked) if not c["correct"]]  # worst first
        pairs = [_pair(prompt, gold, c["completion"], p.gold_score, c["score"], f"{p.strategy}+gold", (True, False))
                 for c in wrong[: p.max_pairs_per_prompt]]
    elif p.strategy == "best_worst":
        best, worst = ranked[0], ranked[-1]
        if best["score"] - worst["score"] >= p.min_margin and best["score"] > worst["score"]:
            pairs.append(_pair(prompt, best["completion"], worst["completion"], best["score"], worst["score"],
                               p.strategy, (best["correct"], worst["correct"])))
    else:
        combos = [(a, b) for a, b in itertools.combinations(ranked, 2) if a["score"] - b["score"] >= p.min_margin
                  and a["score"] > b["score"]]
        combos.sort(key=lambda ab: ab[1]["score"] - ab[0]["score"])
        pairs = [_pair(prompt, a["completion"], b["completion"], a["score"], b["score"], p.strategy,
                       (a["correct"], b["correct"])) for a, b in combos[: p.max_pairs_per_prompt]]
    if pairs:
        return pairs, None
    if prompt["sql"] is None:  # a label-free prompt: no gold to fall back on, nor right and wrong answers to tell
        return [], "margin_too_small"
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
                      f"{p.strategy}+hard_negative:{bad[1]}", (True, False))], None
    worst = ranked[-1]  # all wrong: the gold answer over the model's worst
    return [_pair(prompt, gold, worst["completion"], p.gold_score, worst["score"], f"{p.strategy}+gold",
                  (True, False))], None


def prompt_of(candidate: dict) -> dict:
    """The prompt a candidate row answers, with its gold answer (the candidate contract carries both; a label-free
    prompt's is null)."""
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
        if p.min_token_edits:
            kept = [x for x in got if token_edits(extract_sql(x["chosen"]), extract_sql(x["rejected"]))
                    >= p.min_token_edits]
            got, reason = kept, reason or (None if kept else "too_similar")
        pairs += got
        if reason:
            reasons[reason] += 1
    return pairs, reasons
