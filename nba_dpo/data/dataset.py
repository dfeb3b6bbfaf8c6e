"""The instruction dataset and the preference prompt pool, drawn from the question intents.

Splits measure generalisation, not recall: test holds out whole entities (15% of players, 15% of team-season
pairs) and the last phrasing of every intent; SFT train never sees either, and the preference pool (fresh
questions, disjoint from train and test) sees the extra `pref` phrasing but no held-out entity or phrasing.
Every gold SQL is run in the sandbox and kept only if it returns a non-empty, non-trivial answer.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from nba_dpo.data.templates import GAME_TYPES, INTENTS, PLAYER_STATS, POSITIONS, Intent
from nba_dpo.errors import UserError
from nba_dpo.seeds import stable_seed
from nba_dpo.sql.sandbox import Sandbox

INSTRUCTION_SCHEMA = pa.schema([
    ("id", pa.string()), ("question", pa.string()), ("db_id", pa.string()), ("schema", pa.string()),
    ("reasoning", pa.string()), ("sql", pa.string()), ("template_id", pa.string()),
    ("difficulty", pa.string()), ("split", pa.string()),
    ("phrasing_id", pa.int32()),  # index into the intent's phrasings (-1 for byo)
    ("holdout", pa.string()),     # none | phrasing | entity | both: what test holds out for this row
])
GOLD_COLUMNS = ("sql", "reasoning")  # what a label-free preference pool leaves out
SPLITS = ("train", "val", "test")


def completion_text(reasoning: str, sql: str) -> str:
    """The completion format of DESIGN.md: one reasoning line, then one SQL line."""
    return f"Reasoning: {reasoning}\nSQL: {sql}" if reasoning else f"SQL: {sql}"


def connect_read_only(db_path: str | Path) -> sqlite3.Connection:
    """A plain read-only connection for trusted queries (untrusted SQL goes through the Sandbox)."""
    return sqlite3.connect(f"{Path(db_path).resolve().as_uri()}?mode=ro", uri=True)


def table_names(db_path: str | Path) -> list[str]:
    con = connect_read_only(db_path)
    try:
        return [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    finally:
        con.close()


def column_names(db_path: str | Path) -> list[str]:
    """Every column name of every table (a name shared by several tables once)."""
    con = connect_read_only(db_path)
    try:
        return sorted({c[0] for t in table_names(db_path)
                       for c in con.execute("SELECT name FROM pragma_table_info(?)", (t,))})
    finally:
        con.close()


def schema_ddl(db_path: str | Path) -> str:
    con = connect_read_only(db_path)
    try:
        rows = con.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL "
                           "AND name NOT LIKE 'sqlite_%' ORDER BY rowid").fetchall()
    finally:
        con.close()
    return ";\n".join(r[0].strip() for r in rows) + ";"


@dataclass
class _Pools:
    """Values questions are drawn from, read from the database so that every question has an answer."""
    teams: list[str]
    states: list[str]
    divisions: list[str]
    countries: list[str]
    years: list[int]
    dates: list[str]
    seasons: list[str]
    players: list[str]
    player_seasons: list[tuple[str, str]]
    playoff_player_seasons: list[tuple[str, str]]
    season_players: dict[str, list[str]]

    @classmethod
    def load(cls, db_path: Path) -> "_Pools":
        con = connect_read_only(db_path)
        q = lambda sql: [r if len(r) > 1 else r[0] for r in con.execute(sql).fetchall()]  # noqa: E731
        try:
            ps = q("SELECT p.full_name, g.season FROM player_box_scores b JOIN players p USING (player_id) "
                   "JOIN games g USING (game_id) WHERE g.game_type = 'Regular Season' GROUP BY 1, 2 "
                   "HAVING COUNT(*) >= 10 ORDER BY 2, 1")
            pools = cls(
                teams=q("SELECT full_name FROM teams ORDER BY team_id"),
                states=q("SELECT DISTINCT state FROM teams ORDER BY state"),
                divisions=q("SELECT DISTINCT division FROM teams ORDER BY division"),
                countries=q("SELECT country FROM players WHERE country != 'USA' GROUP BY country "
                            "HAVING COUNT(*) >= 2 ORDER BY country"),
                years=q("SELECT draft_year FROM players GROUP BY draft_year HAVING COUNT(*) >= 3 ORDER BY 1"),
                dates=q("SELECT DISTINCT game_date FROM games ORDER BY game_date"),
                seasons=q("SELECT season FROM seasons ORDER BY season"),
                players=q("SELECT DISTINCT p.full_name FROM players p JOIN player_box_scores b USING (player_id) "
                          "ORDER BY 1"),
                player_seasons=[tuple(r) for r in ps],
                playoff_player_seasons=[tuple(r) for r in q(
                    "SELECT p.full_name, g.season FROM player_box_scores b JOIN players p USING (player_id) "
                    "JOIN games g USING (game_id) WHERE g.game_type = 'Playoffs' GROUP BY 1, 2 ORDER BY 2, 1")],
                season_players={},
            )
        finally:
            con.close()
        for player, season in pools.player_seasons:
            pools.season_players.setdefault(season, []).append(player)
        return pools

    def sample(self, intent: Intent, rng: np.random.Generator) -> dict:
        pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
        p: dict = {}
        params = intent.params
        if "game_type" in params:
            p["game_type_name"] = pick(list(GAME_TYPES))
            p["game_type"] = GAME_TYPES[p["game_type_name"]]
        if "player" in params and "season" in params:
            pool = self.playoff_player_seasons if p.get("game_type") == "Playoffs" else self.player_seasons
            p["player"], p["season"] = pick(pool)
        elif "player" in params:
            p["player"] = pick(self.players)
        if "player1" in params:
            p["season"] = pick(self.seasons)
            a, b = rng.choice(len(self.season_players[p["season"]]), size=2, replace=False)
            p["player1"], p["player2"] = (self.season_players[p["season"]][i] for i in sorted((a, b)))
        if "season" in params and "season" not in p:
            p["season"] = pick(self.seasons)
        if "stat" in params:
            n = intent.numbers.get("n")
            p["stat"] = pick(sorted(n) if isinstance(n, dict) else list(PLAYER_STATS))
            p["col"] = PLAYER_STATS[p["stat"]]
        if "n" in params:
            n = intent.numbers["n"]
            p["n"] = pick(n[p["stat"]] if isinstance(n, dict) else n)
        if "k" in params:
            p["k"] = pick(intent.numbers["k"])
        if "position" in params:
            p["position_name"] = pick(list(POSITIONS))
            p["position"] = POSITIONS[p["position_name"]]
        for name, pool in (("team", self.teams), ("state", self.states), ("division", self.divisions),
                           ("country", self.countries), ("year", self.years), ("date", self.dates)):
            if name in params:
                p[name] = pick(pool)
        return p


def _stable_id(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:12]


class _GoldChecker:
    """Runs each distinct gold SQL once; a gold answer must be non-empty and not a bare NULL or 0."""

    def __init__(self, db_path: Path):
        self.sandbox = Sandbox(db_path, timeout_s=5.0, max_steps=500_000_000)
        self.cache: dict[str, bool] = {}

    def ok(self, sql: str) -> bool:
        if sql not in self.cache:
            r = self.sandbox.run(sql)
            self.cache[sql] = r.ok and len(r.rows) > 0 and r.rows[0][0] not in (None, 0)
        return self.cache[sql]


def _waterfill(total: int, room: list[int]) -> list[int]:
    """Split `total` as evenly as possible over slots that hold at most room[i] each."""
    quota = [0] * len(room)
    while total > 0:
        open_ = [i for i in range(len(room)) if quota[i] < room[i]]
        if not open_:
            break
        share = max(1, total // len(open_))
        for i in open_:
            add = min(share, room[i] - quota[i], total)
            quota[i] += add
            total -= add
    return quota


def _plan_intent(intent: Intent, pools: _Pools, rng: np.random.Generator, n_params: int,
                 heldout_players: set[str], heldout_ts: set[tuple[str, str]]) -> dict[str, list]:
    """Candidate (params, phrasing index, holdout) triples of one intent, shuffled, by the split they may feed."""
    params, seen = [], set()
    for _ in range(n_params * 5):
        p = pools.sample(intent, rng)
        key = tuple(sorted(p.items()))
        if key not in seen:
            seen.add(key)
            params.append(p)
        if len(params) >= n_params:
            break
    roles = [intent.phrasing_role(i) for i in range(len(intent.phrasings))]
    items = {"train": [], "pref_only": [], "test_phrasing": [], "test_entity": []}
    for p in params:
        held = (any(p.get(k) in heldout_players for k in ("player", "player1", "player2"))
                or (p.get("team"), p.get("season")) in heldout_ts)
        for i, role in enumerate(roles):
            if role == "test":
                items["test_phrasing"].append((p, i, "both" if held else "phrasing"))
            elif held and role == "train":
                items["test_entity"].append((p, i, "entity"))
            elif not held:
                items["pref_only" if role == "pref" else "train"].append((p, i, "none"))
    for v in items.values():
        rng.shuffle(v)
    # test alternates the two kinds of hold-out while both last
    tp, te = items.pop("test_phrasing"), items.pop("test_entity")
    m = min(len(tp), len(te))
    items["test"] = [x for pair in zip(tp[:m], te[:m]) for x in pair] + tp[m:] + te[m:]
    return items


def build_instruction_data(db_path: str | Path, seed: int, sizes: dict[str, int], heldout_fraction: float = 0.15,
                           params_per_intent: int = 400) -> dict[str, list[dict]]:
    """Rows for train/val/test and the preference pool ('pref'), deterministic for a seed."""
    db_path = Path(db_path)
    rng = np.random.default_rng(seed)
    pools = _Pools.load(db_path)
    ddl = schema_ddl(db_path)
    heldout_players = set(rng.choice(pools.players, size=int(len(pools.players) * heldout_fraction), replace=False))
    team_seasons = [(t, s) for t in pools.teams for s in pools.seasons]
    heldout_ts = {team_seasons[i] for i in rng.choice(len(team_seasons), size=int(len(team_seasons) *
                                                                                  heldout_fraction), replace=False)}
    checker = _GoldChecker(db_path)
    plans = [_plan_intent(intent, pools, rng, params_per_intent, heldout_players, heldout_ts) for intent in INTENTS]
    # Quotas per intent: an even share of each split, topped up from intents with room where others run short.
    # The shared train pool feeds train, then val, then (with the pref-only phrasing) the preference pool.
    room = {"test": [len(p["test"]) for p in plans], "train": [len(p["train"]) for p in plans]}
    quota = {"test": _waterfill(sizes["test"], room["test"]), "train": _waterfill(sizes["train"], room["train"])}
    quota["val"] = _waterfill(sizes["val"], [r - q for r, q in zip(room["train"], quota["train"])])
    quota["pref"] = _waterfill(sizes["pref"], [len(p["pref_only"]) + r - q - v for p, r, q, v in
                                               zip(plans, room["train"], quota["train"], quota["val"])])
    out: dict[str, list[dict]] = {name: [] for name in ("train", "val", "test", "pref")}
    used_texts: set[str] = set()
    for n, (intent, plan) in enumerate(zip(INTENTS, plans)):
        for split, pool in (("test", plan["test"]), ("train", plan["train"]), ("val", plan["train"]),
                            ("pref", plan["pref_only"] + plan["train"])):
            taken = 0
            for p, i, holdout in pool:
                if taken >= quota[split][n]:
                    break
                question = intent.phrasings[i].format(**p)
                sql = intent.sql.format(**p)
                if question in used_texts or not checker.ok(sql):
                    continue
                used_texts.add(question)
                taken += 1
                out[split].append({
                    "id": f"{intent.id}-{_stable_id(question)}", "question": question, "db_id": db_path.stem,
                    "schema": ddl, "reasoning": intent.reasoning.format(**p), "sql": sql,
                    "template_id": intent.id, "difficulty": intent.difficulty, "split": split,
                    "phrasing_id": i, "holdout": holdout})
    checker.sandbox.close()
    for rows in out.values():  # intent order -> seeded shuffle, so that any prefix (a `limit`) is a fair sample
        rng.shuffle(rows)
    return out


def read_byo_questions(db_path: str | Path, questions_path: str | Path) -> list[dict]:
    """Instruction rows (split unset) from a JSONL of {id?, question, gold_sql[, reasoning, difficulty]}; every
    gold SQL must run in the sandbox, else one sentence names the line. Either file may be local or in storage."""
    from nba_dpo import storage
    from nba_dpo.data.text import jsonl_lines, storable

    questions_path = str(questions_path)
    if not storage.exists(str(db_path)):
        raise UserError(f"database not found: {db_path}")
    db_path = Path(storage.local_copy(str(db_path)))
    check_sqlite_file(db_path)
    if not storage.exists(questions_path):
        raise UserError(f"questions file not found: {questions_path}")
    ddl = schema_ddl(db_path)
    rows: list[dict] = []
    with Sandbox(db_path, timeout_s=5.0) as sandbox:
        for lineno, line, _ in jsonl_lines(questions_path):  # text that is not UTF-8 is kept as U+FFFD
            try:
                q = json.loads(line)
                question, gold = storable(str(q["question"]))[0], q["gold_sql"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise UserError(f"{questions_path}:{lineno}: expected a JSON object with 'question' and "
                                f"'gold_sql' ({e.__class__.__name__}: {e})") from None
            r = sandbox.run(gold)
            if not r.ok:
                raise UserError(f"{questions_path}:{lineno}: gold SQL fails in the sandbox ({r.failure}: "
                                f"{r.message})")
            rows.append({"id": str(q.get("id", lineno)), "question": question, "db_id": db_path.stem, "schema": ddl,
                         "reasoning": q.get("reasoning", ""), "sql": gold.strip().rstrip(";") + ";",
                         "template_id": q.get("template_id", "byo"), "difficulty": q.get("difficulty", "unknown"),
                         "split": None, "phrasing_id": -1, "holdout": "none"})
    return rows


def build_byo_data(db_path: str | Path, questions_path: str | Path, seed: int,
                   fractions: dict[str, float]) -> dict[str, list[dict]]:
    """A user's SQLite file plus a questions JSONL -> the instruction contract, split by a hash of each id.

    With no templates to draw fresh questions from, the preference pool is the train split.
    """
    bounds = np.cumsum([fractions[s] for s in SPLITS])
    rows = read_byo_questions(db_path, questions_path)
    for r in rows:
        u = stable_seed(seed, r["id"]) / 2**32
        r["split"] = SPLITS[min(int(np.searchsorted(bounds, u, side="right")), len(SPLITS) - 1)]
    out = {s: [r for r in rows if r["split"] == s] for s in SPLITS}
    out["pref"] = [dict(r, split="pref") for r in out["train"]]
    return out


def check_sqlite_file(path: Path) -> None:
    if not path.is_file():
        raise UserError(f"database not found: {path}")
    with open(path, "rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise UserError(f"{path} is not a SQLite database")
