"""Check a completion's `Reasoning:` line against SQL: the SQL that follows it (consistency) and the gold SQL
(correctness).

Both sides are reduced to the same facts: tables, columns, entity values (quoted strings and numbers),
aggregations, ORDER BY directions and the LIMIT. A reasoning line agrees with a SQL when it names at least one table
and every table, column, value, aggregation, direction and limit it states is one the SQL uses. Join keys and other
details a one-line plan leaves out do not count against it; a fact it gets wrong does. On the training data's own
reasoning lines every verdict is True (a test checks it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

FACETS = ("tables", "columns", "values", "aggregations", "order", "limit")

_AGGREGATES = {exp.Count: "count", exp.Avg: "avg", exp.Sum: "sum", exp.Max: "max", exp.Min: "min"}
_AGGREGATE_WORDS = {"count": "count", "average": "avg", "avg": "avg", "sum": "sum", "max": "max", "maximum": "max",
                    "min": "min", "minimum": "min"}
_QUOTED = re.compile(r"'((?:[^']|'')*)'")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
_WORD = re.compile(r"[a-z_][a-z0-9_]*")
_LIMIT = re.compile(r"\bkeep (?:the (?:top|first) )?(\d+)\b")


@dataclass(frozen=True)
class Facts:
    tables: frozenset[str]
    columns: frozenset[str]
    values: frozenset[str]
    aggregations: frozenset[str]
    order: frozenset[str]
    limit: int | None


def _number(text: str) -> str:
    """One spelling per number: 7, 7.0 and 07 are the same value."""
    value = float(text)
    return str(int(value)) if value.is_integer() else repr(value)


def sql_facts(sql: str) -> Facts | None:
    """The facts of a SQL statement, or None when sqlglot cannot parse it."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError, ValueError):
        return None
    if tree is None:
        return None
    literals = list(tree.find_all(exp.Literal))
    values = {lit.this for lit in literals if lit.is_string} | {_number(lit.this) for lit in literals
                                                                 if not lit.is_string}
    limit = tree.args.get("limit")
    limit_value = limit.expression if isinstance(limit, exp.Limit) else None
    return Facts(tables=frozenset(t.name.lower() for t in tree.find_all(exp.Table)),
                 columns=frozenset(c.name.lower() for c in tree.find_all(exp.Column) if c.name != "*"),
                 values=frozenset(values),
                 aggregations=frozenset(name for cls, name in _AGGREGATES.items() if tree.find(cls)),
                 order=frozenset("desc" if o.args.get("desc") else "asc" for o in tree.find_all(exp.Ordered)),
                 limit=int(limit_value.this) if isinstance(limit_value, exp.Literal) and limit_value.is_int else None)


def reasoning_facts(reasoning: str, tables: set[str], columns: set[str]) -> Facts:
    """The facts a reasoning line states; `tables` and `columns` are the database's (lower case)."""
    strings = {m.replace("''", "'") for m in _QUOTED.findall(reasoning)}
    rest = _QUOTED.sub(" ", reasoning).lower()  # names inside quoted values are values, not tables or columns
    words = set(_WORD.findall(rest))
    order = {"desc" for w in words if w.startswith("descend")} | {"asc" for w in words if w.startswith("ascend")}
    limit = _LIMIT.search(rest)
    return Facts(tables=frozenset(words & tables), columns=frozenset(words & columns),
                 values=frozenset(strings | {_number(n) for n in _NUMBER.findall(rest)}),
                 aggregations=frozenset(_AGGREGATE_WORDS[w] for w in words if w in _AGGREGATE_WORDS),
                 order=frozenset(order), limit=int(limit.group(1)) if limit else None)


def agreement(stated: Facts, sql: Facts | None) -> dict[str, bool]:
    """Per facet, whether the reasoning's facts hold in the SQL's (all False when the SQL does not parse)."""
    if sql is None:
        return dict.fromkeys(FACETS, False)
    return {"tables": bool(stated.tables) and stated.tables <= sql.tables, "columns": stated.columns <= sql.columns,
            "values": stated.values <= sql.values, "aggregations": stated.aggregations <= sql.aggregations,
            "order": stated.order <= sql.order, "limit": stated.limit in (None, sql.limit)}


def check_reasoning(reasoning: str, sql: str, gold_sql: str, tables: set[str], columns: set[str]) -> dict:
    """{"has_reasoning", "consistent", "correct", "consistent_facets", "correct_facets"} for one completion: its
    reasoning against its own SQL and against the gold SQL. Without a reasoning line both verdicts are False."""
    if not reasoning.strip():
        none = dict.fromkeys(FACETS, False)
        return {"has_reasoning": False, "consistent": False, "correct": False, "consistent_facets": none,
                "correct_facets": none}
    stated = reasoning_facts(reasoning, tables, columns)
    own, gold = agreement(stated, sql_facts(sql)), agreement(stated, sql_facts(gold_sql))
    return {"has_reasoning": True, "consistent": all(own.values()), "correct": all(gold.values()),
            "consistent_facets": own, "correct_facets": gold}
