"""Controlled corruptions of a gold SQL, for prompts whose candidates all tie: a wrong column, a wrong filter
value, or a dropped condition. A corruption counts only if it runs and answers differently from the gold."""
from __future__ import annotations

import random

import sqlglot
from sqlglot import exp

# Columns that can stand in for each other without breaking the query's shape.
SWAPPABLE = [["points", "rebounds", "assists", "steals", "blocks", "turnovers", "fg3m", "ftm", "minutes"],
             ["home_score", "away_score"], ["conference", "division", "state", "city"],
             ["height_cm", "weight_kg", "draft_year", "birth_year"], ["position", "country"]]


def _wrong_column(tree: exp.Expression, rng: random.Random) -> exp.Expression | None:
    cols = [c for c in tree.find_all(exp.Column) if any(c.name in g for g in SWAPPABLE)]
    if not cols:
        return None
    col = rng.choice(cols)
    group = next(g for g in SWAPPABLE if col.name in g)
    col.set("this", exp.to_identifier(rng.choice([c for c in group if c != col.name])))
    return tree


def _wrong_value(tree: exp.Expression, rng: random.Random) -> exp.Expression | None:
    lits = [lit for lit in tree.find_all(exp.Literal)]
    if not lits:
        return None
    lit = rng.choice(lits)
    if lit.is_string:
        text = lit.this
        if len(text) == 7 and text[4] == "-" and text[:4].isdigit():  # a season: '2023-24' -> '2022-23'
            y = int(text[:4]) + rng.choice([-1, 1])
            lit.replace(exp.Literal.string(f"{y}-{(y + 1) % 100:02d}"))
        else:
            lit.replace(exp.Literal.string(text[::-1] if len(text) > 1 else text + "x"))
    else:
        lit.replace(exp.Literal.number(int(float(lit.this)) + rng.choice([-3, -1, 1, 3])))
    return tree


def _dropped_condition(tree: exp.Expression, rng: random.Random) -> exp.Expression | None:
    ands = list(tree.find_all(exp.And))
    if not ands:
        return None
    node = rng.choice(ands)
    node.replace(node.left if rng.random() < 0.5 else node.right)
    return tree


CORRUPTIONS = {"wrong_column": _wrong_column, "wrong_value": _wrong_value, "dropped_condition": _dropped_condition}


def corrupt_sql(gold_sql: str, verifier, rng: random.Random, tries: int = 6) -> tuple[str, str] | None:
    """(corrupted SQL, kind) that executes and is wrong, or None."""
    for _ in range(tries):
        kind = rng.choice(sorted(CORRUPTIONS))
        try:
            tree = CORRUPTIONS[kind](sqlglot.parse_one(gold_sql, read="sqlite"), rng)
        except (sqlglot.errors.ParseError, ValueError):
            return None
        if tree is None:
            continue
        sql = tree.sql(dialect="sqlite") + ";"
        verdict = verifier.verify_sql(sql, gold_sql)
        if verdict.exec_ok and not verdict.correct_spider:
            return sql, kind
    return None
