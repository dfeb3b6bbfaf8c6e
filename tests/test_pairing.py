"""Pairing strategies, deduplication, ties and hard negatives, on hand-made candidates scored for real."""
import random

import pytest
from omegaconf import OmegaConf

from nba_dpo.config import compose, validate
from nba_dpo.errors import UserError
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


def candidates(verifier, texts, gold=GOLD):
    """Scored candidate rows; with gold=None, as a label-free prompt's are (`correct` unknown)."""
    weights = compose("generate", ["paths.artifacts=/tmp/unused"]).score.weights
    out = []
    for i, text in enumerate(texts):
        v = verifier.verify(text, gold)
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


# the same answer as GOLD, written differently; an answer with no rows
RIGHT_OTHER = ("Reasoning: Count playoff games by id.\nSQL: SELECT COUNT(game_id) FROM games WHERE game_type = "
               "'Playoffs' AND season = '2022-23';")
EMPTY = "Reasoning: List games.\nSQL: SELECT game_id FROM games WHERE season = '1900-01';"
UNLABELLED = dict(PROMPT, sql=None, reasoning=None)


def test_consensus_chooses_the_answer_most_samples_agree_on_without_gold(verifier):
    # 3 samples agree on the right count (three spellings), 2 on a wrong one, 4 return no rows, 1 fails
    texts = [RIGHT_LONG, WRONG, EMPTY, RIGHT, BROKEN, EMPTY, RIGHT_OTHER, WRONG, EMPTY, EMPTY]
    cfg = pairs_cfg("consensus", max_pairs_per_prompt=3)
    pairs, reason = pairs_for_prompt(UNLABELLED, candidates(verifier, texts, gold=None), cfg, verifier,
                                     random.Random(0))
    assert reason is None
    # the shortest of the agreeing group, over the least supported: the failure, the empty result, the wrong count
    assert [p["chosen"] for p in pairs] == [RIGHT] * 3 and [p["rejected"] for p in pairs] == [BROKEN, EMPTY, WRONG]
    assert [(p["chosen_score"], p["rejected_score"]) for p in pairs] == [(0.3, 0.0), (0.3, 0.0), (0.3, 0.2)]
    assert {p["strategy"] for p in pairs} == {"consensus"} and pairs[0]["chosen_correct"] is None
    # with the gold known, the same pairs; only the summary's verdicts are filled in
    labelled, _ = pairs_for_prompt(PROMPT, candidates(verifier, texts), cfg, verifier, random.Random(0))
    drop = lambda ps: [{k: v for k, v in p.items() if not k.endswith("_correct")} for p in ps]  # noqa: E731
    assert drop(labelled) == drop(pairs)
    assert [(p["chosen_correct"], p["rejected_correct"]) for p in labelled] == [(True, False)] * 3


@pytest.mark.parametrize("texts,over,reason", [
    ([RIGHT, RIGHT_OTHER, WRONG, WRONG], {"min_votes": 2}, "no_consensus"),  # a tie for the most votes
    ([RIGHT, RIGHT_OTHER, WRONG, BROKEN], {}, "no_consensus"),               # 2 votes, min_votes=3
    ([EMPTY, EMPTY, EMPTY, BROKEN], {}, "no_result"),                        # empty results cast no vote
    ([RIGHT, RIGHT_OTHER, RIGHT_LONG], {"on_tie": "skip"}, "unanimous"),
])
def test_consensus_skips_prompts_without_one(verifier, texts, over, reason):
    got = pairs_for_prompt(UNLABELLED, candidates(verifier, texts, gold=None), pairs_cfg("consensus", **over),
                           verifier, random.Random(0))
    assert got == ([], reason)


def test_unanimous_consensus_over_a_corruption_of_its_own_sql(verifier):
    texts = [RIGHT, RIGHT_OTHER, RIGHT_LONG]
    pairs, reason = pairs_for_prompt(UNLABELLED, candidates(verifier, texts, gold=None), pairs_cfg("consensus"),
                                     verifier, random.Random(0))
    assert reason is None and pairs[0]["chosen"] == RIGHT
    assert pairs[0]["strategy"].startswith("consensus+hard_negative:")
    v = verifier.verify_sql(pairs[0]["rejected"].split("SQL: ")[1], GOLD)
    assert v.exec_ok and not v.correct_spider


def test_consensus_needs_enough_samples():
    with pytest.raises(UserError, match="pairs.min_votes=5 is more than generate.num_samples=4"):
        validate(compose("generate", ["pairs=consensus", "pairs.min_votes=5", "generate.num_samples=4",
                                      "paths.artifacts=/tmp/unused"]))


def test_label_free_ranking_never_falls_back_on_gold(verifier):
    """chosen=best on a prompt without gold (a reward model's ranking): a tie is no pair, never a null 'gold' answer."""
    cands = [dict(c, score=1.0) for c in candidates(verifier, [WRONG, RIGHT], gold=None)]
    assert pairs_for_prompt(UNLABELLED, cands, pairs_cfg("best_over_worst"), verifier, random.Random(0)) == \
        ([], "margin_too_small")
    cands[1]["score"] = 2.0
    pairs, _ = pairs_for_prompt(UNLABELLED, cands, pairs_cfg("best_over_worst"), verifier, random.Random(0))
    assert [(p["chosen"], p["rejected"], p["chosen_correct"]) for p in pairs] == [(RIGHT, WRONG, None)]


def test_pairs_whose_sql_differs_in_too_few_tokens_are_dropped(verifier):
    # RIGHT and WRONG differ in 4 SQL tokens: AND game_type = 'Playoffs'
    prompts, cands = [UNLABELLED], candidates(verifier, [WRONG, RIGHT], gold=None)
    cands[1]["score"] += 1.0  # a reward model's ranking: RIGHT first
    kept, reasons = make_pairs(prompts, cands, pairs_cfg("best_over_worst", min_token_edits=4), verifier, seed=0)
    assert [(p["chosen"], p["rejected"]) for p in kept] == [(RIGHT, WRONG)] and not reasons
    assert make_pairs(prompts, cands, pairs_cfg("best_over_worst", min_token_edits=5), verifier, seed=0) == \
        ([], {"too_similar": 1})
