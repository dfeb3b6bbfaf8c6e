"""Pairing strategies, deduplication, ties and hard negatives, on hand-made candidates scored for real."""
import random

import pytest
from omegaconf import OmegaConf

from nba_dpo.config import compose
from nba_dpo.prefs.hard_negatives import corrupt_sql
from nba_dpo.prefs.pairing import make_pairs, pairs_for_prompt
from nba_dpo.scoring.composite import composite_score
from nba_dpo.scoring.execution import ExecutionVerifier

GOLD = "SELECT COUNT(*) FROM games WHERE season = '2022-23' AND game_type = 'Playoffs';"
PROMPT = {"prompt_id": "p1", "prompt": "<|user|>\nHow many playoff games in 2022-23?<|end|>\n<|assistant|>\n",
          "question": "How many playoff games in 2022-23?", "sql": GOLD, "difficulty": "aggregate",
          "template_id": "count_games_season",
          "reasoning": "Count games where season = '2022-23' and game_type = 'Playoffs'."}
RIGHT = "Reasoning: Count playoff games.\nSQL: " + GOLD
RIGHT_LONG = "Reasoning: Count the games of the playoffs in that season, carefully.\nSQL: " + GOLD
WRONG = "Reasoning: Count games.\nSQL: SELECT COUNT(*) FROM games WHERE season = '2022-23';"
BROKEN = "Reasoning: Count.\nSQL: SELECT COUNT(*) FROM gamez;"


def pairs_cfg(name: str, **over):
    cfg = compose("generate", [f"pairs={name}", "paths.artifacts=/tmp/unused"]).pairs
    return OmegaConf.merge(cfg, over)


@pytest.fixture(scope="module")
def verifier(db_path):
    return ExecutionVerifier(str(db_path))


def candidates(verifier, texts):
    weights = compose("generate", ["paths.artifacts=/tmp/unused"]).score.weights
    out = []
    for i, text in enumerate(texts):
        v = verifier.verify(text, GOLD)
        row = {"prompt_id": "p1", "candidate_idx": i, "completion": text, "sql": v.sql, "exec_ok": v.exec_ok,
               "correct": v.correct_spider, "n_tokens": len(text.split()), "reward": None, "error": v.error}
        row["score"] = composite_score(row, weights)
        out.append(row)
    return out


def test_composite_ranks_correctness_then_execution_then_brevity(verifier):
    c = {x["completion"]: x["score"] for x in candidates(verifier, [RIGHT, RIGHT_LONG, WRONG, BROKEN])}
    assert c[RIGHT] > c[RIGHT_LONG] > c[WRONG] > c[BROKEN]


def test_best_over_worst(verifier):
    cands = candidates(verifier, [WRONG, RIGHT, BROKEN, RIGHT, RIGHT_LONG])
    pairs, reason = pairs_for_prompt(PROMPT, cands, pairs_cfg("best_over_worst"), verifier,
                                     random.Random(0))
    assert reason is None and len(pairs) == 1
    assert pairs[0]["chosen"] == RIGHT and pairs[0]["rejected"] == BROKEN and pairs[0]["margin"] > 10
    assert pairs[0]["strategy"] == "best_worst"


def test_margin_and_all_pairs(verifier):
    cands = candidates(verifier, [WRONG, RIGHT, BROKEN, RIGHT_LONG, RIGHT])
    margin, _ = pairs_for_prompt(PROMPT, cands, pairs_cfg("margin"), verifier, random.Random(0))
    # only pairs across the correctness gap (>= 5): 2 correct x 2 not-correct distinct completions
    assert len(margin) == 4 and all(p["margin"] >= 5 for p in margin)
    assert margin[0]["margin"] >= margin[-1]["margin"]
    everything, _ = pairs_for_prompt(PROMPT, cands, pairs_cfg("all_pairs"), verifier, random.Random(0))
    assert len(everything) == 6  # 4 distinct completions, all scores differ: C(4,2)
    capped, _ = pairs_for_prompt(PROMPT, cands, pairs_cfg("all_pairs", max_pairs_per_prompt=2), verifier,
                                 random.Random(0))
    assert len(capped) == 2


def test_identical_completions_are_deduplicated(verifier):
    cands = candidates(verifier, [RIGHT, RIGHT, RIGHT])
    pairs, reason = pairs_for_prompt(PROMPT, cands, pairs_cfg("all_pairs", on_tie="skip"), verifier, random.Random(0))
    assert pairs == [] and reason == "all_correct"


def test_ties_skip_or_hard_negative(verifier):
    all_right = candidates(verifier, [RIGHT, RIGHT_LONG])
    all_right = [dict(c, score=10.0) for c in all_right]  # an exact tie
    skip, reason = pairs_for_prompt(PROMPT, all_right, pairs_cfg("gold_over_worst", on_tie="skip"), verifier,
                                    random.Random(0))
    assert skip == [] and reason == "all_correct"
    hard, reason = pairs_for_prompt(PROMPT, all_right, pairs_cfg("gold_over_worst"), verifier, random.Random(0))
    assert reason is None and hard[0]["strategy"].startswith("best_worst+hard_negative:")
    rejected_sql = hard[0]["rejected"].split("SQL: ")[1]
    v = verifier.verify_sql(rejected_sql, GOLD)
    assert v.exec_ok and not v.correct_spider  # a real, runnable, wrong query
    all_wrong = candidates(verifier, [WRONG, WRONG])
    gold, reason = pairs_for_prompt(PROMPT, all_wrong, pairs_cfg("gold_over_worst"), verifier, random.Random(0))
    assert gold[0]["strategy"] == "best_worst+gold" and GOLD in gold[0]["chosen"]


def test_gold_chosen(verifier):
    gold_text = "Reasoning: " + PROMPT["reasoning"] + "\nSQL: " + GOLD
    cands = candidates(verifier, [WRONG, RIGHT, BROKEN, RIGHT_LONG])
    worst, reason = pairs_for_prompt(PROMPT, cands, pairs_cfg("gold_over_worst"), verifier,
                                     random.Random(0))
    assert reason is None and len(worst) == 1
    assert worst[0]["chosen"] == gold_text and worst[0]["rejected"] == BROKEN
    assert worst[0]["strategy"] == "best_worst+gold"
    # several pairs per prompt: the gold answer over each wrong candidate, worst first, never over a correct one
    every, _ = pairs_for_prompt(PROMPT, cands, pairs_cfg("all_pairs", chosen="gold"), verifier, random.Random(0))
    assert [p["rejected"] for p in every] == [BROKEN, WRONG] and all(p["chosen"] == gold_text for p in every)
    all_right = candidates(verifier, [RIGHT, RIGHT_LONG])
    hard, reason = pairs_for_prompt(PROMPT, all_right, pairs_cfg("gold_over_worst"), verifier,
                                    random.Random(0))
    assert reason is None and hard[0]["chosen"] == gold_text
    assert hard[0]["strategy"].startswith("best_worst+hard_negative:")
    skip, reason = pairs_for_prompt(PROMPT, all_right, pairs_cfg("gold_over_worst", chosen="gold", on_tie="skip"),
                                    verifier, random.Random(0))
    assert skip == [] and reason == "all_correct"


def test_yield_reasons(verifier):
    prompts = [PROMPT, dict(PROMPT, prompt_id="p2")]
    cands = candidates(verifier, [RIGHT, WRONG]) + [dict(c, prompt_id="p2", error="generation failed: boom")
                                                    for c in candidates(verifier, [RIGHT, WRONG])]
    pairs, reasons = make_pairs(prompts, cands, pairs_cfg("gold_over_worst"), verifier, seed=0)
    assert len(pairs) == 1 and reasons == {"generation_failed": 1}


@pytest.mark.parametrize("seed", range(5))
def test_corruptions_are_wrong_but_run(verifier, seed):
    gold = ("SELECT SUM(b.points) FROM player_box_scores b JOIN players p ON p.player_id = b.player_id JOIN games g "
            "ON g.game_id = b.game_id WHERE g.season = '2023-24' AND b.minutes > 30;")
    out = corrupt_sql(gold, verifier, random.Random(seed))
    assert out is not None
    sql, kind = out
    assert kind in ("wrong_column", "wrong_value", "dropped_condition")
    v = verifier.verify_sql(sql, gold)
    assert v.exec_ok and not v.correct_spider
