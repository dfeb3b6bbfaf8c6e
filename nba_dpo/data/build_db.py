"""Deterministic builder of the simulated NBA database (same seed -> byte-identical SQLite file).

Real franchises, fictional players, simulated seasons: every regular-season game of an 82-game NBA schedule,
playoffs of 16 teams in best-of-7 series, player and team box scores. Team scores are the sum of the player
points and equal the game row; made shots never exceed attempts.
"""
from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from nba_dpo.data.teams import COUNTRIES, FIRST_NAMES, FRANCHISES, LAST_NAMES

BUILDER_VERSION = "1"
ROSTER_SIZE = 15
ACTIVE_PER_GAME = 13
POSITIONS = ["G", "G", "G", "G", "G-F", "F", "F", "F", "F", "F-C", "C", "C", "C", "G", "F"]  # one roster's mix

SCHEMA = """
CREATE TABLE teams (
    team_id INTEGER PRIMARY KEY,
    abbreviation TEXT NOT NULL,
    full_name TEXT NOT NULL,      -- e.g. 'Boston Celtics'
    nickname TEXT NOT NULL,       -- e.g. 'Celtics'
    city TEXT NOT NULL,
    state TEXT NOT NULL,
    conference TEXT NOT NULL,     -- 'East' or 'West'
    division TEXT NOT NULL
);
CREATE TABLE players (
    player_id INTEGER PRIMARY KEY,
    full_name TEXT NOT NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    position TEXT NOT NULL,       -- G, G-F, F, F-C, C
    height_cm INTEGER NOT NULL,
    weight_kg INTEGER NOT NULL,
    birth_year INTEGER NOT NULL,
    country TEXT NOT NULL,
    draft_year INTEGER NOT NULL
);
CREATE TABLE seasons (
    season TEXT PRIMARY KEY,      -- e.g. '2023-24'
    start_year INTEGER NOT NULL,
    champion_team_id INTEGER REFERENCES teams(team_id)
);
CREATE TABLE rosters (
    season TEXT NOT NULL REFERENCES seasons(season),
    team_id INTEGER NOT NULL REFERENCES teams(team_id),
    player_id INTEGER NOT NULL REFERENCES players(player_id),
    jersey_number INTEGER NOT NULL,
    PRIMARY KEY (season, player_id)
);
CREATE TABLE games (
    game_id INTEGER PRIMARY KEY,
    season TEXT NOT NULL REFERENCES seasons(season),
    game_date TEXT NOT NULL,      -- YYYY-MM-DD
    game_type TEXT NOT NULL,      -- 'Regular Season' or 'Playoffs'
    home_team_id INTEGER NOT NULL REFERENCES teams(team_id),
    away_team_id INTEGER NOT NULL REFERENCES teams(team_id),
    home_score INTEGER NOT NULL,
    away_score INTEGER NOT NULL
);
CREATE TABLE team_box_scores (
    game_id INTEGER NOT NULL REFERENCES games(game_id),
    team_id INTEGER NOT NULL REFERENCES teams(team_id),
    opponent_team_id INTEGER NOT NULL REFERENCES teams(team_id),
    is_home INTEGER NOT NULL,
    won INTEGER NOT NULL,
    points INTEGER NOT NULL,
    fgm INTEGER NOT NULL, fga INTEGER NOT NULL,
    fg3m INTEGER NOT NULL, fg3a INTEGER NOT NULL,
    ftm INTEGER NOT NULL, fta INTEGER NOT NULL,
    rebounds INTEGER NOT NULL, assists INTEGER NOT NULL, steals INTEGER NOT NULL,
    blocks INTEGER NOT NULL, turnovers INTEGER NOT NULL,
    PRIMARY KEY (game_id, team_id)
);
CREATE TABLE player_box_scores (
    game_id INTEGER NOT NULL REFERENCES games(game_id),
    player_id INTEGER NOT NULL REFERENCES players(player_id),
    team_id INTEGER NOT NULL REFERENCES teams(team_id),
    starter INTEGER NOT NULL,
    minutes INTEGER NOT NULL,
    points INTEGER NOT NULL,
    fgm INTEGER NOT NULL, fga INTEGER NOT NULL,
    fg3m INTEGER NOT NULL, fg3a INTEGER NOT NULL,
    ftm INTEGER NOT NULL, fta INTEGER NOT NULL,
    oreb INTEGER NOT NULL, dreb INTEGER NOT NULL, rebounds INTEGER NOT NULL,
    assists INTEGER NOT NULL, steals INTEGER NOT NULL, blocks INTEGER NOT NULL,
    turnovers INTEGER NOT NULL, fouls INTEGER NOT NULL,
    PRIMARY KEY (game_id, player_id)
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

INDEXES = """
CREATE INDEX idx_pbs_player ON player_box_scores(player_id);
CREATE INDEX idx_pbs_team ON player_box_scores(team_id);
CREATE INDEX idx_tbs_team ON team_box_scores(team_id);
CREATE INDEX idx_games_season ON games(season, game_type);
CREATE INDEX idx_games_home ON games(home_team_id);
CREATE INDEX idx_games_away ON games(away_team_id);
CREATE INDEX idx_rosters_team ON rosters(team_id, season);
CREATE INDEX idx_players_name ON players(full_name);
CREATE INDEX idx_teams_name ON teams(full_name);
"""


@dataclass
class Player:
    player_id: int
    first: str
    last: str
    position: str
    height_cm: int
    weight_kg: int
    birth_year: int
    country: str
    draft_year: int
    talent: float  # ~N(0, 1); stars are the top few percent

    @property
    def full_name(self) -> str:
        return f"{self.first} {self.last}"


class _Simulator:
    def __init__(self, seed: int, n_seasons: int, first_season: int):
        self.rng = np.random.default_rng(seed)
        self.seasons = [first_season + i for i in range(n_seasons)]
        self.players: list[Player] = []
        self.used_names: set[str] = set()
        self.rows: dict[str, list[tuple]] = {k: [] for k in
                                             ("seasons", "rosters", "games", "team_box_scores", "player_box_scores")}

    # --- players -------------------------------------------------------------------------------------------------
    def new_player(self, position: str, draft_year: int, rookie: bool) -> Player:
        rng = self.rng
        while True:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            if f"{first} {last}" not in self.used_names:
                break
        self.used_names.add(f"{first} {last}")
        base_h = {"G": 191, "G-F": 199, "F": 203, "F-C": 208, "C": 212}[position]
        height = int(round(rng.normal(base_h, 4)))
        weight = int(round(height - 100 + rng.normal(0, 5) + (6 if "C" in position else 0)))
        age = int(rng.integers(19, 22)) if rookie else int(rng.integers(20, 35))
        names, weights = zip(*COUNTRIES)
        country = str(rng.choice(names, p=np.array(weights) / sum(weights)))
        talent = float(rng.normal(-0.3 if rookie else 0.0, 1.0))
        p = Player(len(self.players) + 1, str(first), str(last), position, height, weight,
                   draft_year - age + 20 if not rookie else draft_year - age, country,
                   draft_year if rookie else draft_year - max(0, age - 20), talent)
        self.players.append(p)
        return p

    def first_rosters(self, season: int) -> dict[int, list[Player]]:
        return {t[0]: [self.new_player(pos, season, rookie=False) for pos in POSITIONS] for t in FRANCHISES}

    def next_rosters(self, rosters: dict[int, list[Player]], season: int) -> dict[int, list[Player]]:
        rng = self.rng
        new = {}
        for team_id, roster in rosters.items():
            keep = []
            for p in roster:
                p.talent += float(rng.normal(0.05, 0.25))  # development, age
                if rng.random() > 0.13:  # ~13% leave the league each summer
                    keep.append(p)
            new[team_id] = keep
        # ~8% traded: swap pairs of players of the same position between random teams
        team_ids = sorted(new)
        for _ in range(20):
            a, b = rng.choice(team_ids, size=2, replace=False)
            if new[a] and new[b]:
                i, j = int(rng.integers(len(new[a]))), int(rng.integers(len(new[b])))
                new[a][i], new[b][j] = new[b][j], new[a][i]
        for team_id in team_ids:  # fill with rookies keeping the positional mix
            while len(new[team_id]) < ROSTER_SIZE:
                have = [p.position for p in new[team_id]]
                missing = [pos for pos in POSITIONS if have.count(pos) < POSITIONS.count(pos)] or ["F"]
                new[team_id].append(self.new_player(missing[0], season, rookie=True))
        return new

    # --- schedule ------------------------------------------------------------------------------------------------
    @staticmethod
    def matchups() -> list[tuple[int, int]]:
        """The 1,230 (home, away) pairs of an 82-game season: 4 games against division rivals, 3 or 4 against the
        rest of the conference, 2 against the other conference."""
        by_conf = {"East": [], "West": []}
        for conf in by_conf:
            for div in sorted({t[6] for t in FRANCHISES if t[5] == conf}):
                by_conf[conf].append([t[0] for t in FRANCHISES if t[6] == div])
        games = []
        for conf, divisions in by_conf.items():
            for d, div in enumerate(divisions):
                for j, team in enumerate(div):
                    for k, other in enumerate(div):
                        if k > j:
                            games += [(team, other), (team, other), (other, team), (other, team)]
                    for d2 in range(d + 1, len(divisions)):
                        for k, other in enumerate(divisions[d2]):
                            n = 3 if (k - j) % 5 in (1, 4) else 4
                            games += [(team, other), (other, team)] * 2 if n == 4 else \
                                [(team, other), (other, team), (team, other) if (j + k) % 2 else (other, team)]
        east = [t[0] for t in FRANCHISES if t[5] == "East"]
        west = [t[0] for t in FRANCHISES if t[5] == "West"]
        games += [(e, w) for e in east for w in west] + [(w, e) for e in east for w in west]
        return games

    def schedule(self, year: int) -> list[tuple[str, int, int]]:
        pending = self.matchups()
        order = self.rng.permutation(len(pending))
        pending = [pending[i] for i in order]
        day, out = date(year, 10, 20), []
        while pending:
            busy, left = set(), []
            for home, away in pending:
                if len(busy) < 16 and home not in busy and away not in busy:
                    busy |= {home, away}
                    out.append((day.isoformat(), home, away))
                else:
                    left.append((home, away))
            pending, day = left, day + timedelta(days=1)
        return out

    # --- one game --------------------------------------------------------------------------------------------------
    def team_line(self, roster: list[Player], strength: float, home: bool):
        rng = self.rng
        active = sorted(rng.choice(len(roster), size=ACTIVE_PER_GAME, replace=False),
                        key=lambda i: -roster[i].talent)
        players = [roster[i] for i in active]
        talent = np.array([p.talent for p in players])
        base = np.array([33.0] * 5 + [21.0] * 4 + [8.0] * 4)
        minutes = np.clip(base + 2.5 * talent + rng.normal(0, 4, len(players)), 0, 44)
        minutes[9:] *= rng.random(4) > 0.35  # deep bench often does not play
        minutes = minutes * 240.0 / minutes.sum()
        mins = np.floor(minutes).astype(int)
        mins[np.argsort(-(minutes - mins))[: 240 - mins.sum()]] += 1
        pos = [p.position for p in players]
        big = np.array([1.0 if "C" in x else 0.5 if x == "F" else 0.0 for x in pos])
        guard = np.array([1.0 if x.startswith("G") else 0.0 for x in pos])
        edge = 0.012 * home + 0.004 * strength
        fga = rng.poisson(mins * np.clip(0.315 + 0.08 * talent, 0.12, 0.7))
        fg3a = rng.binomial(fga, np.clip(0.5 - 0.34 * big + 0.05 * guard, 0.02, 0.75))
        fg3m = rng.binomial(fg3a, np.clip(0.355 + 0.015 * talent + edge, 0.2, 0.5))
        fg2m = rng.binomial(fga - fg3a, np.clip(0.51 + 0.05 * big + 0.02 * talent + edge, 0.35, 0.7))
        fta = rng.poisson(mins * np.clip(0.075 + 0.03 * talent + 0.008 * home, 0.02, 0.25))
        ftm = rng.binomial(fta, np.clip(0.78 - 0.1 * big + 0.02 * talent, 0.45, 0.95))
        oreb = rng.poisson(mins * (0.02 + 0.06 * big))
        dreb = rng.poisson(mins * (0.1 + 0.14 * big))
        ast = rng.poisson(mins * np.clip(0.06 + 0.1 * guard + 0.025 * talent, 0.01, 0.4))
        stl = rng.poisson(mins * (0.025 + 0.01 * guard))
        blk = rng.poisson(mins * (0.008 + 0.04 * big))
        tov = rng.poisson(mins * np.clip(0.045 + 0.012 * talent, 0.01, 0.15))
        pf = np.minimum(rng.poisson(mins * 0.065), 6)
        fgm = fg2m + fg3m
        points = 2 * fg2m + 3 * fg3m + ftm
        return players, mins, np.stack([points, fgm, fga, fg3m, fg3a, ftm, fta, oreb, dreb, oreb + dreb,
                                        ast, stl, blk, tov, pf], axis=1)

    def play(self, game_id: int, season: str, day: str, game_type: str, home: int, away: int,
             rosters: dict[int, list[Player]], strength: dict[int, float]) -> int:
        lines = {t: self.team_line(rosters[t], strength[t], t == home) for t in (home, away)}
        score = {t: int(lines[t][2][:, 0].sum()) for t in lines}
        if score[home] == score[away]:  # overtime: someone on a random side hits the winning shot
            t = home if self.rng.random() < 0.55 else away
            stats = lines[t][2]
            stats[0, [0, 1, 2]] += [2, 1, 1]
            score[t] += 2
        winner = home if score[home] > score[away] else away
        self.rows["games"].append((game_id, season, day, game_type, home, away, score[home], score[away]))
        for t in (home, away):
            players, mins, stats = lines[t]
            tot = stats.sum(axis=0)
            self.rows["team_box_scores"].append(
                (game_id, t, away if t == home else home, int(t == home), int(t == winner), int(tot[0]),
                 *map(int, tot[1:7]), int(tot[9]), *map(int, tot[10:14])))
            for i, p in enumerate(players):
                if mins[i] > 0:
                    self.rows["player_box_scores"].append(
                        (game_id, p.player_id, t, int(i < 5), int(mins[i]), *map(int, stats[i])))
        return winner

    # --- seasons ---------------------------------------------------------------------------------------------------
    def run(self):
        rosters = None
        for year in self.seasons:
            season = f"{year}-{(year + 1) % 100:02d}"
            rosters = self.first_rosters(year) if rosters is None else self.next_rosters(rosters, year)
            for team_id, roster in sorted(rosters.items()):
                numbers = self.rng.choice(np.arange(0, 100), size=len(roster), replace=False)
                for p, num in zip(roster, numbers):
                    self.rows["rosters"].append((season, team_id, p.player_id, int(num)))
            strength = {t: float(np.mean(sorted(p.talent for p in r)[-8:])) + float(self.rng.normal(0, 1))
                        for t, r in rosters.items()}
            wins = {t[0]: 0 for t in FRANCHISES}
            last_day = None
            for seq, (day, home, away) in enumerate(self.schedule(year), start=1):
                game_id = int(f"2{year % 100:02d}{seq:05d}")
                wins[self.play(game_id, season, day, "Regular Season", home, away, rosters, strength)] += 1
                last_day = day
            champion = self.playoffs(year, season, date.fromisoformat(last_day), rosters, strength, wins)
            self.rows["seasons"].append((season, year, champion))

    def playoffs(self, year, season, last_day, rosters, strength, wins) -> int:
        day, seq = last_day + timedelta(days=5), 0

        def series(high: int, low: int) -> int:
            nonlocal day, seq
            won = {high: 0, low: 0}
            for g in range(7):
                home, away = (high, low) if g in (0, 1, 4, 6) else (low, high)
                seq += 1
                won[self.play(int(f"4{year % 100:02d}{seq:05d}"), season, day.isoformat(), "Playoffs",
                              home, away, rosters, strength)] += 1
                day += timedelta(days=2)
                if max(won.values()) == 4:
                    break
            return max(won, key=won.get)

        finalists = []
        for conf in ("East", "West"):
            seeds = sorted((t[0] for t in FRANCHISES if t[5] == conf), key=lambda t: (-wins[t], t))[:8]
            rank = {t: i for i, t in enumerate(seeds)}
            bracket = [seeds[i] for i in (0, 7, 3, 4, 1, 6, 2, 5)]
            while len(bracket) > 1:
                pairs = [sorted(bracket[i:i + 2], key=rank.get) for i in range(0, len(bracket), 2)]
                bracket = [series(a, b) for a, b in pairs]
            finalists.append(bracket[0])
        high, low = sorted(finalists, key=lambda t: (-wins[t], t))
        return series(high, low)


def build_database(path: str | os.PathLike, seed: int = 0, n_seasons: int = 4, first_season: int = 2021) -> Path:
    """Build the simulated NBA database at `path` (written under a temporary name, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sim = _Simulator(seed, n_seasons, first_season)
    sim.run()
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    try:
        con.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA page_size=4096;" + SCHEMA)
        con.executemany("INSERT INTO teams VALUES (?,?,?,?,?,?,?,?)",
                        [(t, ab, f"{city} {nick}", nick, city, st, conf, div)
                         for t, ab, city, nick, st, conf, div in FRANCHISES])
        con.executemany("INSERT INTO players VALUES (?,?,?,?,?,?,?,?,?,?)",
                        [(p.player_id, p.full_name, p.first, p.last, p.position, p.height_cm, p.weight_kg,
                          p.birth_year, p.country, p.draft_year) for p in sim.players])
        for table, rows in sim.rows.items():
            con.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(rows[0]))})", rows)
        con.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("data", "SIMULATED: real franchises, fictional players, simulated games and statistics"),
            ("seed", str(seed)), ("builder_version", BUILDER_VERSION),
            ("seasons", ",".join(r[0] for r in sim.rows["seasons"]))])
        con.executescript(INDEXES)
        con.commit()
        con.execute("VACUUM")
    finally:
        con.close()
    os.replace(tmp, path)
    return path
