"""Scoring an outside system's predictions with no model: the exact command of the issue, hand-made cases."""
import hashlib
import json
import subprocess
import sys

import pyarrow.parquet as pq

from tests.conftest import ROOT

QUESTIONS = [
    ("count", "How many teams are there?", "SELECT COUNT(*) FROM teams"),
    ("east", "Which teams are in the East?", "SELECT full_name FROM teams WHERE conference = 'East'"),
    ("top", "Top 3 tallest players?", "SELECT full_name, height_cm FROM players ORDER BY height_cm DESC, player_id LIMIT 3"),
    ("avg", "Average home score?", "SELECT AVG(home_score) FROM games"),
    ("drop", "Seasons?", "SELECT season FROM seasons"),
    ("slow", "Games?", "SELECT COUNT(*) FROM games"),
    ("missing", "Divisions?", "SELECT DISTINCT division FROM teams"),
]
PREDICTIONS = [
    {"id": "count", "sql": "select count(team_id) from teams;"},                               # right, other SQL
    {"id": "east", "sql": "SELECT conference, full_name FROM teams WHERE conference = 'East'"},  # extra column
    {"id": "top", "sql": "SELECT height_cm, full_name FROM players ORDER BY height_cm DESC, player_id LIMIT 3"},  # permuted
    {"id": "avg", "sql": "SELECT AVG(away_score) FROM games"},                                  # wrong value
    {"id": "drop", "sql": "DROP TABLE seasons"},                                                # hostile
    {"id": "slow", "sql": "SELECT COUNT(*) FROM player_box_scores a, player_box_scores b"},     # runaway
]


def test_predictions_mode(tmp_path, db_path):
    q = tmp_path / "Q.jsonl"
    q.write_text("\n".join(json.dumps({"id": i, "question": t, "gold_sql": s}) for i, t, s in QUESTIONS))
    p = tmp_path / "P.jsonl"
    p.write_text("\n".join(json.dumps(x) for x in PREDICTIONS))
    before = hashlib.sha256(db_path.read_bytes()).hexdigest()
    out = tmp_path / "OUT"
    proc = subprocess.run([sys.executable, "-m", "jobs.evaluate", "data=byo", f"data.db_path={db_path}",
                           f"data.questions={q}", f"eval.predictions={p}", "eval.name=outside",
                           f"paths.artifacts={out}"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert hashlib.sha256(db_path.read_bytes()).hexdigest() == before
    metrics = json.loads((out / "eval/outside/metrics.json").read_text())
    assert metrics["n"] == 7
    assert abs(metrics["ex_spider"] - 2 / 7) < 1e-9     # count, top (column permutation)
    assert abs(metrics["ex_bird"] - 1 / 7) < 1e-9       # count only: BIRD keeps column order
    assert abs(metrics["valid_sql"] - 4 / 7) < 1e-9
    rows = {r["id"]: r for r in pq.read_table(out / "eval/outside/predictions.parquet").to_pylist()}
    assert set(pq.read_schema(out / "eval/outside/predictions.parquet").names) >= {
        "id", "sql", "correct_spider", "correct_bird", "error"}
    assert rows["count"]["correct_spider"] is True and rows["count"]["error"] is None
    assert rows["top"]["correct_spider"] is True and rows["top"]["correct_bird"] is False
    assert rows["east"]["correct_spider"] is False
    assert rows["drop"]["error"].startswith("denied")
    assert rows["slow"]["error"].startswith("timeout")
    assert rows["missing"]["error"].startswith("missing")
    assert (out / "eval/outside/summary.md").exists() and (out / "eval/outside/ex_by_difficulty.png").exists()


def test_bad_predictions_line_is_one_sentence(tmp_path, db_path):
    q = tmp_path / "Q.jsonl"
    q.write_text(json.dumps({"id": "a", "question": "x", "gold_sql": "SELECT 1"}))
    p = tmp_path / "P.jsonl"
    p.write_text('{"id": "a", "sql": "SELECT 1"}\nnot json\n')
    proc = subprocess.run([sys.executable, "-m", "jobs.evaluate", "data=byo", f"data.db_path={db_path}",
                           f"data.questions={q}", f"eval.predictions={p}", f"paths.artifacts={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {p}:2:")


def test_multirun_writes_a_sweep_summary(tmp_path, db_path):
    """Hydra --multirun: one folder per point, and SweepSummary's table of every point's result, best first."""
    q = tmp_path / "Q.jsonl"
    q.write_text("\n".join(json.dumps({"id": i, "question": t, "gold_sql": s}) for i, t, s in QUESTIONS))
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text("\n".join(json.dumps({"id": i, "sql": s}) for i, _, s in QUESTIONS))
    bad.write_text("\n".join(json.dumps(x) for x in PREDICTIONS))
    proc = subprocess.run([sys.executable, "-m", "jobs.evaluate", "-m", "data=byo", f"data.db_path={db_path}",
                           f"data.questions={q}", f"eval.predictions={bad},{good}", "eval.name=sweep",
                           f"paths.artifacts={tmp_path}"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    [sweep_dir] = (tmp_path / "hydra" / "evaluate").glob("multirun-*")
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert (summary["metric"], summary["direction"]) == ("ex_spider", "maximize")
    assert [r["status"] for r in summary["points"]] == ["COMPLETED", "COMPLETED"]
    assert [r["result"] for r in summary["points"]] == [1.0, 2 / 7]  # best first
    table = (sweep_dir / "sweep_summary.md").read_text().splitlines()
    assert "ex_spider" in table[0] and f"eval.predictions={good}" in table[2] and "1.0000" in table[2]
    assert len(list((tmp_path / "eval" / "sweep").glob("*/metrics.json"))) == 2  # a folder per point


def test_no_text_kills_a_run(tmp_path, db_path):
    """Lone surrogates (a JSON \\ud800 escape), invalid UTF-8, NUL bytes and a megabyte of SQL in a predictions file,
    and a question with a lone surrogate: each such row is stored and scored as a failure with its reason, and the
    others keep their results."""
    questions = QUESTIONS[:4] + [("surrogate_q", "How many teams? \ud800", "SELECT COUNT(*) FROM teams")]
    q = tmp_path / "Q.jsonl"
    q.write_text("\n".join(json.dumps({"id": i, "question": t, "gold_sql": s}) for i, t, s in questions))
    lines = [json.dumps({"id": "count", "sql": "SELECT COUNT(*) FROM teams"}).encode(),
             b'{"id": "east", "sql": "SELECT 1 \\ud800"}',                         # lone surrogate
             b'{"id": "top", "sql": "SELECT \xff\xfe FROM players"}',              # not UTF-8
             json.dumps({"id": "avg", "sql": "SELECT AVG(home_score) FROM games\u0000"}).encode(),  # NUL byte
             json.dumps({"id": "surrogate_q", "sql": "SELECT '" + "x" * 1_000_000 + "'"}).encode()]  # 1 MB
    p = tmp_path / "P.jsonl"
    p.write_bytes(b"\n".join(lines))
    out = tmp_path / "OUT"
    proc = subprocess.run([sys.executable, "-m", "jobs.evaluate", "data=byo", f"data.db_path={db_path}",
                           f"data.questions={q}", f"eval.predictions={p}", "eval.name=nasty",
                           f"paths.artifacts={out}"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in pq.read_table(out / "eval/nasty/predictions.parquet").to_pylist()}
    assert rows["count"]["correct_spider"] is True and rows["count"]["error"] is None
    assert rows["east"]["error"].startswith("invalid_text: lone surrogate") and not rows["east"]["exec_ok"]
    assert rows["east"]["sql"] == "SELECT 1 \ufffd"
    assert rows["top"]["error"].startswith("invalid_text: not UTF-8") and not rows["top"]["correct_spider"]
    assert rows["avg"]["error"].startswith("error") and "null character" in rows["avg"]["error"]
    assert rows["surrogate_q"]["question"] == "How many teams? \ufffd"
    assert rows["surrogate_q"]["error"].startswith("error: statement longer than")
    assert len(rows["surrogate_q"]["sql"]) > 1_000_000
    assert json.loads((out / "eval/nasty/metrics.json").read_text())["ex_spider"] == 1 / 5
