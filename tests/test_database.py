import hashlib
import sqlite3
from pathlib import Path

from nba_dpo.config import validate
from nba_dpo.data.build import build_data
from nba_dpo.data.build_db import build_database
from tests.conftest import compose_cfg


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def q(db, sql):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_real_franchises_and_sizes(db_path):
    assert q(db_path, "SELECT COUNT(*), COUNT(DISTINCT conference), COUNT(DISTINCT division) FROM teams") == [(30, 2, 6)]
    assert q(db_path, "SELECT conference, division FROM teams WHERE full_name = 'Boston Celtics'") == [("East", "Atlantic")]
    assert q(db_path, "SELECT division FROM teams WHERE full_name = 'Denver Nuggets'") == [("Northwest",)]
    assert q(db_path, "SELECT COUNT(*) FROM seasons")[0][0] >= 4
    assert q(db_path, "SELECT COUNT(*) FROM players")[0][0] >= 400
    # an 82-game regular season for every team, and playoffs of 16 teams
    per_team = q(db_path, "SELECT g.season, tb.team_id, COUNT(*) FROM team_box_scores tb JOIN games g USING (game_id) "
                          "WHERE g.game_type = 'Regular Season' GROUP BY 1, 2")
    assert {n for _, _, n in per_team} == {82}
    playoff_teams = q(db_path, "SELECT g.season, COUNT(DISTINCT tb.team_id) FROM team_box_scores tb JOIN games g "
                               "USING (game_id) WHERE g.game_type = 'Playoffs' GROUP BY 1")
    assert {n for _, n in playoff_teams} == {16}
    assert "SIMULATED" in q(db_path, "SELECT value FROM meta WHERE key = 'data'")[0][0]
    assert {"seed", "builder_version"} <= {k for (k,) in q(db_path, "SELECT key FROM meta")}
    assert len(q(db_path, "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_%'")) >= 6


def test_box_scores_are_consistent(db_path):
    # player points add up to the team score, which equals the game row
    assert q(db_path, """SELECT COUNT(*) FROM (SELECT game_id, team_id, SUM(points) AS s FROM player_box_scores
                         GROUP BY 1, 2) x JOIN team_box_scores t USING (game_id, team_id) WHERE x.s != t.points""") == [(0,)]
    assert q(db_path, """SELECT COUNT(*) FROM games g JOIN team_box_scores h ON h.game_id = g.game_id AND h.is_home = 1
                         JOIN team_box_scores a ON a.game_id = g.game_id AND a.is_home = 0
                         WHERE h.points != g.home_score OR a.points != g.away_score""") == [(0,)]
    assert q(db_path, """SELECT COUNT(*) FROM player_box_scores WHERE fgm > fga OR fg3m > fg3a OR ftm > fta
                         OR fg3m > fgm OR points != 2 * fgm + fg3m + ftm OR rebounds != oreb + dreb""") == [(0,)]
    assert q(db_path, "SELECT COUNT(*) FROM games WHERE home_score = away_score") == [(0,)]
    assert q(db_path, "SELECT COUNT(*) FROM team_box_scores WHERE won = 1")[0][0] == q(db_path, "SELECT COUNT(*) FROM games")[0][0]


def test_realistic_distributions(db_path):
    (home_pts, away_pts, home_win), = q(db_path, "SELECT AVG(home_score), AVG(away_score), "
                                                 "AVG(home_score > away_score) FROM games")
    assert 100 < away_pts < home_pts < 125
    assert 0.52 < home_win < 0.62  # home advantage
    (fg, fg3, ft), = q(db_path, "SELECT 1.0 * SUM(fgm) / SUM(fga), 1.0 * SUM(fg3m) / SUM(fg3a), "
                                "1.0 * SUM(ftm) / SUM(fta) FROM team_box_scores")
    assert 0.43 < fg < 0.52 and 0.32 < fg3 < 0.40 and 0.70 < ft < 0.82
    # stars and bench players: the best scorers average far more than the median regular
    avgs = sorted(a for (a,) in q(db_path, "SELECT AVG(points) FROM player_box_scores GROUP BY player_id "
                                           "HAVING COUNT(*) >= 40"))
    assert avgs[-1] > 22 and avgs[len(avgs) // 2] < 12


def test_same_seed_same_bytes_different_seed_different_db(tmp_path):
    small = ["data.sizes.train=200", "data.sizes.val=40", "data.sizes.test=80", "data.sizes.pref=100",
             "data.params_per_intent=40"]
    manifests = []
    for run in ("a", "b"):
        cfg = validate(compose_cfg(overrides=[f"paths.artifacts={tmp_path / run}"] + small))
        manifests.append(build_data(cfg))
    for key in ("train", "val", "test", "pref"):
        a, b = manifests[0]["files"][key], manifests[1]["files"][key]
        assert sha256(a) == sha256(b), key
    assert sha256(manifests[0]["db_path"]) == sha256(manifests[1]["db_path"])
    other = build_database(tmp_path / "seed1.sqlite", seed=1)
    assert sha256(other) != sha256(manifests[0]["db_path"])
