"""Win rates and McNemar's test on hand-made paired answers, the round the pipeline reports, and settings a config
cannot take."""
import pytest

from nba_dpo.config import validate
from nba_dpo.errors import UserError
from nba_dpo.evaluation.head_to_head import head_to_head, mcnemar_exact
from nba_dpo.evaluation.pipeline_report import choose_round
from tests.conftest import compose_cfg


def rows(correct: list[bool], rewards=None, difficulty="lookup"):
    return [{"id": str(i), "correct_spider": c, "difficulty": difficulty, "holdout": "none",
             "reward": None if rewards is None else rewards[i]} for i, c in enumerate(correct)]


def test_wins_ties_losses_and_mcnemar():
    a = rows([True] * 10 + [False] * 2 + [True] * 3 + [False] * 5)
    b = rows([False] * 10 + [True] * 2 + [True] * 3 + [False] * 5)
    h = head_to_head(a, b)
    assert (h["wins"]["n"], h["ties"]["n"], h["losses"]["n"], h["questions"]) == (10, 8, 2, 20)
    assert (h["only_a_correct"], h["only_b_correct"]) == (10, 2)
    assert h["mcnemar_p"] == pytest.approx(2 * (1 + 12 + 66) / 4096)  # exact binomial, 10 of 12 discordant
    low, high = h["wins"]["ci95"]
    assert low < 0.5 < high and h["wins"]["rate"] == 0.5
    assert h["by_difficulty"]["lookup"]["wins"]["n"] == 10 and not h["reward_tiebreak"]
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0


def test_reward_model_breaks_ties_only():
    a = rows([True, True, False, False], rewards=[0.9, 0.1, 0.5, float("nan")])
    b = rows([True, False, False, False], rewards=[0.2, 0.9, 0.7, 0.3])
    h = head_to_head(a, b)
    # both right: A's reward is higher (win); only A right (win, whatever the rewards); both wrong: B higher (loss),
    # and a missing score leaves a tie
    assert (h["wins"]["n"], h["ties"]["n"], h["losses"]["n"]) == (2, 1, 1) and h["reward_tiebreak"]


def test_reported_round_is_the_best_on_validation_not_the_last():
    rounds = [{"round": 1, "eval": "dpo", "model": "m/dpo"}, {"round": 2, "eval": "dpo_r2", "model": "m/dpo_r2"}]
    chosen, why = choose_round(rounds, {"sft": 0.40, "dpo": 0.572, "dpo_r2": 0.549})
    assert chosen["round"] == 1 and "round 2 54.9%" in why
    assert choose_round(rounds, {"sft": 0.4, "dpo": 0.5, "dpo_r2": 0.5})[0]["round"] == 1  # a tie: fewer rounds
    assert choose_round(rounds, {"sft": 0.4, "dpo": 0.5, "dpo_r2": 0.6})[0]["round"] == 2


@pytest.mark.parametrize("config,override,sentence", [
    ("train_dpo", "train.beta=-1", "train.beta=-1.0 is not allowed: it must be greater than 0"),
    ("train_dpo", "train.per_device_batch_size=0", "train.per_device_batch_size=0 is not allowed"),
    ("sft", "train.learning_rate=0", "train.learning_rate=0.0 is not allowed: it must be greater than 0"),
    ("evaluate", "eval.batch_size=0", "eval.batch_size=0 is not allowed"),
    ("generate", "generate.temperature=0", "generate.temperature=0.0 is not allowed"),
    ("generate", "pairs.min_token_edits=-1", "pairs.min_token_edits=-1 is not allowed: it must be at least 0"),
    ("evaluate", "objective.direction=up", "objective.direction must be maximize or minimize"),
])
def test_values_a_config_cannot_take(tmp_path, config, override, sentence):
    with pytest.raises(UserError) as e:
        validate(compose_cfg(config, [f"paths.artifacts={tmp_path}", override]))
    assert str(e.value).startswith(sentence) and "\n" not in str(e.value)
