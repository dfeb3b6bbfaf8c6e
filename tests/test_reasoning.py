"""The reasoning check: hand-made completions whose verdicts are known, right and wrong in each fact, and the
training data's own reasoning lines, which all agree with their SQL."""
import pyarrow.parquet as pq
import pytest

from nba_dpo.data.dataset import column_names, table_names
from nba_dpo.evaluation.metrics import compute_metrics
from nba_dpo.evaluation.reasoning import check_reasoning

GOLD = ("SELECT p.full_name, SUM(b.points) AS total FROM player_box_scores b JOIN players p ON p.player_id = "
        "b.player_id JOIN games g ON g.game_id = b.game_id WHERE g.season = '2022-23' GROUP BY p.player_id "
        "ORDER BY total DESC LIMIT 5;")
GOLD_REASONING = ("Sum points per player in player_box_scores joined to players and games for season '2022-23', "
                  "order by the total descending, keep 5.")


@pytest.fixture(scope="module")
def schema(db_path):
    return {t.lower() for t in table_names(db_path)}, {c.lower() for c in column_names(db_path)}


# (reasoning, the completion's SQL, consistent with it, correct against GOLD, the facet that fails)
CASES = [
    (GOLD_REASONING, GOLD, True, True, None),
    # the SQL drifts from a right plan: another season in the SQL only
    (GOLD_REASONING, GOLD.replace("2022-23", "2021-22"), False, True, "values"),
    # a wrong plan carried out faithfully: another entity value
    (GOLD_REASONING.replace("2022-23", "2021-22"), GOLD.replace("2022-23", "2021-22"), True, False, "values"),
    # ascending where the question wants the top
    (GOLD_REASONING.replace("descending", "ascending"), GOLD.replace("DESC", "ASC"), True, False, "order"),
    # keep 3 instead of 5
    (GOLD_REASONING.replace("keep 5", "keep 3"), GOLD.replace("LIMIT 5", "LIMIT 3"), True, False, "limit"),
    # averages where the gold sums
    (GOLD_REASONING.replace("Sum points", "Average points"), GOLD.replace("SUM(", "AVG("), True, False,
     "aggregations"),
    # another column
    (GOLD_REASONING.replace("Sum points", "Sum assists"), GOLD.replace("b.points", "b.assists"), True, False,
     "columns"),
    # a table the SQL does not read
    (GOLD_REASONING.replace("joined to players", "joined to rosters"), GOLD, False, False, "tables"),
]


@pytest.mark.parametrize("reasoning,sql,consistent,correct,facet", CASES)
def test_known_verdicts(schema, reasoning, sql, consistent, correct, facet):
    v = check_reasoning(reasoning, sql, GOLD, *schema)
    assert v["has_reasoning"] and (v["consistent"], v["correct"]) == (consistent, correct)
    if facet:
        failed = {f for f, ok in v["consistent_facets"].items() if not ok} | \
                 {f for f, ok in v["correct_facets"].items() if not ok}
        assert failed == {facet}


def test_missing_reasoning_and_unparseable_sql(schema):
    assert check_reasoning("", GOLD, GOLD, *schema) == {
        "has_reasoning": False, "consistent": False, "correct": False,
        "consistent_facets": dict.fromkeys(("tables", "columns", "values", "aggregations", "order", "limit"), False),
        "correct_facets": dict.fromkeys(("tables", "columns", "values", "aggregations", "order", "limit"), False)}
    v = check_reasoning(GOLD_REASONING, "SELEC full_name FRM", GOLD, *schema)
    assert not v["consistent"] and v["correct"]
    # a line that states no table is checked against nothing: it is not counted as agreeing
    assert not check_reasoning("I will write the query.", GOLD, GOLD, *schema)["correct"]


def test_training_reasoning_agrees_with_its_sql(built_data, schema):
    cfg, _ = built_data
    rows = pq.read_table(f"{cfg.paths.data}/sft/train.parquet").to_pylist()
    wrong = [r for r in rows if not check_reasoning(r["reasoning"], r["sql"], r["sql"], *schema)["consistent"]]
    assert not wrong, wrong[:3]


def test_ex_split_by_reasoning():
    row = lambda ok, right: {"correct_spider": ok, "correct_bird": ok, "exec_ok": True, "exact_match": False,  # noqa
                             "n_tokens": 10, "reasoning_tokens": 4, "sql_tokens": 5, "gold_tokens": 9,
                             "gold_reasoning_tokens": 4, "gold_sql_tokens": 5, "has_reasoning": True,
                             "reasoning_consistent": True, "reasoning_correct": right,
                             "reasoning_facets": {"correct_values": right}}
    m = compute_metrics([row(True, True), row(True, True), row(False, True), row(False, False)])
    r = m["reasoning"]
    assert (r["correct"], r["n_when_correct"], r["n_when_wrong"]) == (0.75, 3, 1)
    assert r["ex_when_correct"] == pytest.approx(2 / 3) and r["ex_when_wrong"] == 0.0
    assert r["facets_when_stated"] == {"correct_values": 0.75}
    assert m["verbosity"]["tokens"]["gold_sql"] == {"mean": 5.0, "p50": 5.0, "p90": 5.0}
