"""Result comparison with the two semantics the text-to-SQL literature reports.

Spider test-suite (`result_eq` of taoyds/test-suite-sql-eval): same number of rows and columns; a bag of rows,
order compared only when the gold SQL has ORDER BY; the prediction's columns may be any permutation of the
gold's; values compared exactly (1 == 1.0, NULL == NULL).
BIRD: the set of rows of the prediction equals the set of rows of the gold; column order matters.
"""
from __future__ import annotations

import difflib
import itertools
from collections import Counter

import sqlglot
from sqlglot import exp

_MAX_PERMUTATIONS = 5_040  # 7 columns; wider results are compared in the gold's column order only


def has_order_by(sql: str) -> bool:
    """True when the outermost query orders its rows (then order is part of the answer)."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.ParseError:
        return "order by" in sql.lower()
    return tree.args.get("order") is not None


def _bag(rows: list[tuple]) -> Counter:
    return Counter(rows)


def spider_equal(pred: list[tuple], gold: list[tuple], ordered: bool) -> bool:
    if len(pred) == 0 and len(gold) == 0:
        return True
    if len(pred) != len(gold):
        return False
    width = len(gold[0])
    if any(len(r) != width for r in pred):
        return False
    gold_cols = [Counter(r[i] for r in gold) for i in range(width)]
    pred_cols = [Counter(r[i] for r in pred) for i in range(width)]
    # each gold column must be matched by a prediction column holding the same multiset of values
    candidates = [[j for j in range(width) if pred_cols[j] == gold_cols[i]] for i in range(width)]
    if any(not c for c in candidates):
        return False
    gold_key = gold if ordered else _bag(gold)
    for n, perm in enumerate(itertools.product(*candidates)):
        if n >= _MAX_PERMUTATIONS:
            break
        if len(set(perm)) != width:
            continue
        permuted = [tuple(r[j] for j in perm) for r in pred]
        if (permuted if ordered else _bag(permuted)) == gold_key:
            return True
    return False


def bird_equal(pred: list[tuple], gold: list[tuple]) -> bool:
    return set(pred) == set(gold)


def normalize_sql(sql: str) -> str:
    """A canonical spelling for exact-match: sqlglot's SQLite output, lower-cased identifiers, no trailing ';'."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
        for ident in tree.find_all(exp.Identifier):
            ident.set("this", ident.this.lower())
        return tree.sql(dialect="sqlite", normalize_functions="upper")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError, ValueError):
        return " ".join(sql.strip().rstrip(";").split()).lower()


def exact_match(pred: str, gold: str) -> bool:
    return normalize_sql(pred) == normalize_sql(gold)


def _tokens(sql: str) -> list[str]:
    try:
        return [t.text.lower() for t in sqlglot.tokenize(sql, read="sqlite")]
    except sqlglot.errors.TokenError:
        return sql.lower().split()


def token_edits(a: str, b: str) -> int:
    """How many SQL tokens (sqlglot's) must change to turn one statement into the other: a swapped filter value or
    column is 1, whatever its length in characters."""
    ops = difflib.SequenceMatcher(None, _tokens(a), _tokens(b), autojunk=False).get_opcodes()
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in ops if tag != "equal")
