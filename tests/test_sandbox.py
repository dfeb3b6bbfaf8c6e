"""The sandbox against hostile and broken SQL: every statement is a failure result, fast, and the file never changes."""
import hashlib
import time
from pathlib import Path

import pytest

from nba_dpo.sql.sandbox import Sandbox

HOSTILE = [
    # writes of every kind
    "DELETE FROM games",
    "DELETE FROM players WHERE player_id = 1",
    "UPDATE games SET home_score = 0",
    "INSERT INTO teams VALUES (99, 'X', 'X', 'X', 'X', 'X', 'East', 'Atlantic')",
    "INSERT INTO teams SELECT * FROM teams",
    "REPLACE INTO meta VALUES ('seed', 'x')",
    "UPSERT INTO meta VALUES ('a', 'b')",
    "DROP TABLE games",
    "DROP INDEX idx_pbs_player",
    "DROP VIEW v",
    "ALTER TABLE games ADD COLUMN x INTEGER",
    "ALTER TABLE games RENAME TO g2",
    "CREATE TABLE x (a INTEGER)",
    "CREATE TABLE x AS SELECT * FROM games",
    "CREATE INDEX ix ON games(season)",
    "CREATE VIEW v AS SELECT 1",
    "CREATE TRIGGER t AFTER INSERT ON games BEGIN DELETE FROM games; END",
    "CREATE VIRTUAL TABLE f USING fts5(x)",
    "WITH x AS (SELECT 1) DELETE FROM games",
    "WITH x AS (SELECT 1) INSERT INTO meta SELECT 'k', 'v' FROM x",
    "WITH x AS (SELECT 1) UPDATE games SET home_score = 1",
    # temp objects
    "CREATE TEMP TABLE t (a)",
    "CREATE TEMPORARY VIEW tv AS SELECT * FROM games",
    "CREATE TEMP TRIGGER tt AFTER INSERT ON games BEGIN SELECT 1; END",
    "SELECT * FROM temp.sqlite_master",
    # other databases, pragmas, extensions, vacuum, transactions
    "ATTACH DATABASE '/tmp/evil.db' AS evil",
    "ATTACH ':memory:' AS m",
    "DETACH DATABASE main",
    "PRAGMA writable_schema = ON",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA user_version = 7",
    "PRAGMA query_only = OFF",
    "SELECT load_extension('/tmp/evil.so')",
    "SELECT load_extension('libc.so.6', 'system')",
    "VACUUM",
    "VACUUM INTO '/tmp/copy.sqlite'",
    "REINDEX",
    "ANALYZE",
    "BEGIN IMMEDIATE",
    "SAVEPOINT s1",
    # several statements in one string
    "SELECT 1; DELETE FROM games",
    "SELECT 1; SELECT 2",
    "SELECT * FROM teams; DROP TABLE teams;",
    # runaway work
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT MAX(x) FROM c",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
    "SELECT COUNT(*) FROM player_box_scores a, player_box_scores b",
    "SELECT COUNT(*) FROM player_box_scores a CROSS JOIN player_box_scores b CROSS JOIN games c",
    "SELECT * FROM player_box_scores a, player_box_scores b ORDER BY a.points * b.points",
    # huge results
    "SELECT zeroblob(2000000000)",
    "SELECT randomblob(1000000000)",
    "SELECT printf('%.*c', 1000000000, 'x')",
    "SELECT format('%2000000000d', 1)",
    "SELECT replace(hex(zeroblob(900000)), '0', '0000000000')",
    "SELECT * FROM player_box_scores",
    # broken input
    "SELECT 1 " + "OR 1 " * 250_000,
    "SELECT 'a\x00b'",
    "SELECT * FROM games\x00; DELETE FROM games",
    b"SELECT '\xff\xfe\xfa'",
    "SELECT '\udcff'",
    "SELEC * FROM games",
    "SELECT * FROM no_such_table",
    "",
    "   ",
    "-- only a comment",
]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_suite_is_large_enough():
    assert len(HOSTILE) >= 40


@pytest.fixture(scope="module")
def sandbox(db_path):
    before = sha256(db_path)
    with Sandbox(db_path, timeout_s=1.0) as sb:
        yield sb
    assert sha256(db_path) == before, "the database file changed"


@pytest.mark.parametrize("sql", HOSTILE, ids=[repr(s[:40]) for s in HOSTILE])
def test_hostile_statement_fails_fast(sandbox, sql):
    start = time.monotonic()
    result = sandbox.run(sql)
    elapsed = time.monotonic() - start
    assert not result.ok, f"{sql[:60]!r} returned {result.rows[:2]}"
    assert result.failure in ("denied", "timeout", "error", "too_many_rows")
    assert result.message
    assert elapsed < 2.0


def test_reasons(sandbox):
    assert sandbox.run("DELETE FROM games").failure == "denied"
    assert sandbox.run("WITH x AS (SELECT 1) DELETE FROM games").failure == "denied"
    assert sandbox.run("SELECT load_extension('x')").failure == "denied"
    assert sandbox.run("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT MAX(x) FROM c").failure == "timeout"
    assert sandbox.run("SELECT * FROM player_box_scores").failure == "too_many_rows"
    assert sandbox.run("SELECT * FROM nope").failure == "error"


def test_legitimate_queries_still_run(sandbox):
    r = sandbox.run("SELECT full_name FROM teams WHERE conference = 'East' ORDER BY full_name;")
    assert r.ok and len(r.rows) == 15 and r.columns == ["full_name"]
    r = sandbox.run("/* comment */ WITH t AS (SELECT season FROM seasons) SELECT COUNT(*) FROM t")
    assert r.ok and r.rows[0][0] >= 4
    r = sandbox.run("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10) SELECT SUM(x) FROM c")
    assert r.ok and r.rows == [(55,)]
    # the sandbox stays usable after failures
    sandbox.run("SELECT COUNT(*) FROM player_box_scores a, player_box_scores b")
    assert sandbox.run("SELECT COUNT(*) FROM teams").rows == [(30,)]
