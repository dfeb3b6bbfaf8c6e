"""The reward-model stage on a local stand-in with ArmoRM's interface (custom code, `.score`, Llama-3 chat format,
its own pad token): rows scored `batch_size` per forward give the scores each row gets alone, with the schema and
question as the user turn and the completion as the assistant turn. ArmoRM itself is never loaded here."""
import numpy as np
import pytest

from nba_dpo.scoring.reward import RewardScorer
from tests.stand_ins import stand_in_armorm

SCHEMA = "CREATE TABLE players (player_id INTEGER, name TEXT);"
QUESTIONS = ["How many players are there?", "Name every player.", "Who scored the most points in 2023-24?"]
COMPLETIONS = ["Reasoning: count players.\nSQL: SELECT COUNT(*) FROM players;",
               "SQL: SELECT name FROM players;",
               "Reasoning: the players table, ordered by points, first one only, which is a longer line.\n"
               "SQL: SELECT name FROM players ORDER BY points DESC LIMIT 1;"]


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    folder = stand_in_armorm(tmp_path_factory.mktemp("armorm"))
    return RewardScorer(str(folder), kind="armorm", trust_remote_code=True, max_length=2048, schema=SCHEMA)


def test_batched_scores_match_one_row_at_a_time(scorer):
    batched = scorer.scores(QUESTIONS, COMPLETIONS)  # padded on the right to the longest of the three
    alone = np.array([scorer.scores([q], [c])[0] for q, c in zip(QUESTIONS, COMPLETIONS)])
    assert len(set(np.round(alone, 6))) == 3  # three different rewards: the comparison below means something
    np.testing.assert_allclose(batched, alone, rtol=1e-5, atol=1e-6)


def test_armorm_input_format(scorer):
    text = scorer.tokenizer.apply_chat_template(scorer.conversation(QUESTIONS[0], COMPLETIONS[0]), tokenize=False)
    assert text == ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
                    f"Database schema:\n{SCHEMA}\n\nQuestion: {QUESTIONS[0]}<|eot_id|>"
                    f"<|start_header_id|>assistant<|end_header_id|>\n\n{COMPLETIONS[0]}<|eot_id|>")


def test_failed_generations_get_no_reward(scorer):
    batch = {"question": np.array(QUESTIONS, dtype=object), "completion": np.array(COMPLETIONS, dtype=object),
             "error": np.array([None, "generation failed: engine died", "no SQL found"], dtype=object)}
    rewards = scorer(batch)["reward"]
    assert np.isnan(rewards[1])
    np.testing.assert_allclose(rewards[[0, 2]], scorer.scores([QUESTIONS[0], QUESTIONS[2]],
                                                              [COMPLETIONS[0], COMPLETIONS[2]]), rtol=1e-5)


def test_long_inputs_lose_the_start_of_the_prompt_not_the_answer(tmp_path):
    scorer = RewardScorer(str(stand_in_armorm(tmp_path / "rm")), kind="armorm", trust_remote_code=True,
                          max_length=200, schema=SCHEMA * 20)
    ids = scorer.tokenizer.apply_chat_template(scorer.conversation(QUESTIONS[2], COMPLETIONS[2]), truncation=True,
                                               max_length=200, return_dict=True)["input_ids"]
    assert len(ids) == 200 and scorer.tokenizer.decode(ids).endswith(COMPLETIONS[2] + "<|eot_id|>")


def test_a_model_without_a_pad_token_is_scored_one_row_at_a_time(tmp_path):
    """A reward model and tokenizer with no pad token cannot be batched: each row goes alone, unpadded."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from tests.stand_ins import stand_in_hub_model

    tok = AutoTokenizer.from_pretrained(stand_in_hub_model("llama", tmp_path / "base"))
    tok.pad_token = None
    folder = tmp_path / "rm"
    LlamaForSequenceClassification(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                               num_labels=1, pad_token_id=None)).save_pretrained(folder)
    tok.save_pretrained(folder)
    scorer = RewardScorer(str(folder), max_length=2048)
    assert not scorer.batched
    rewards = scorer.scores(QUESTIONS, COMPLETIONS)
    assert rewards.shape == (3,) and np.isfinite(rewards).all() and len(set(np.round(rewards, 6))) == 3
