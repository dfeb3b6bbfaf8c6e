"""data=byo: any SQLite file plus a questions JSONL becomes the same contract; bad input stops with one sentence."""
import json
import sqlite3
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from nba_dpo.config import validate
from nba_dpo.data.build import build_data
from nba_dpo.errors import UserError
from tests.conftest import ROOT, compose_cfg


@pytest.fixture
def byo(tmp_path):
    db = tmp_path / "league.sqlite"
    con = sqlite3.connect(db)
    con.executescript("CREATE TABLE coaches (name TEXT, team TEXT, wins INTEGER);"
                      "INSERT INTO coaches VALUES ('A', 'X', 10), ('B', 'Y', 20), ('C', 'Z', 30);")
    con.commit()
    con.close()
    questions = tmp_path / "q.jsonl"
    rows = [{"id": f"q{i}", "question": f"Who has more than {i} wins?", "gold_sql": f"SELECT name FROM coaches WHERE wins > {i}"}
            for i in range(20)]
    questions.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return db, questions


def cfg_for(tmp_path, db, questions):
    return validate(compose_cfg(overrides=["data=byo", f"data.db_path={db}", f"data.questions={questions}",
                                           f"paths.artifacts={tmp_path / 'out'}"]))


def test_byo_builds_the_contract(tmp_path, byo):
    db, questions = byo
    before = db.read_bytes()
    manifest = build_data(cfg_for(tmp_path, db, questions))
    tables = {k: pq.read_table(v).to_pylist() for k, v in manifest["files"].items()}
    assert sum(len(tables[s]) for s in ("train", "val", "test")) == 20
    row = tables["train"][0]
    assert "CREATE TABLE coaches" in row["schema"] and row["sql"].endswith(";") and row["db_id"] == "league"
    assert [r["question"] for r in tables["pref"]] == [r["question"] for r in tables["train"]]
    assert db.read_bytes() == before


def test_failing_gold_names_the_line(tmp_path, byo):
    db, questions = byo
    lines = questions.read_text().splitlines()
    lines[6] = json.dumps({"question": "broken", "gold_sql": "SELECT nope FROM coaches"})
    questions.write_text("\n".join(lines))
    with pytest.raises(UserError, match=r"q\.jsonl:7: gold SQL fails"):
        build_data(cfg_for(tmp_path, db, questions))
    lines[6] = "{not json"
    questions.write_text("\n".join(lines))
    with pytest.raises(UserError, match=r"q\.jsonl:7:"):
        build_data(cfg_for(tmp_path, db, questions))


def test_not_sqlite_stops_with_one_sentence(tmp_path, byo):
    _, questions = byo
    fake = tmp_path / "fake.sqlite"
    fake.write_text("just text")
    proc = subprocess.run([sys.executable, "-m", "jobs.build_data", "data=byo", f"data.db_path={fake}",
                           f"data.questions={questions}", f"paths.artifacts={tmp_path / 'out'}"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {fake} is not a SQLite database"
    assert not (tmp_path / "out" / "data" / "sft").exists()


def test_missing_value_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match="data.db_path"):
        validate(compose_cfg(overrides=["data=byo", f"paths.artifacts={tmp_path}"]))
    with pytest.raises(UserError, match="invalid data config"):
        validate(compose_cfg(overrides=["data.n_seasons=many", f"paths.artifacts={tmp_path}"]))
