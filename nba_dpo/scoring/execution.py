"""The execution verifier: run a predicted SQL in the sandbox and compare its result with the gold result (when the
prompt has one: a label-free prompt's candidates are only executed, and their `correct` stays unknown)."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from nba_dpo import storage
from nba_dpo.data.columns import object_column
from nba_dpo.sql.compare import bird_equal, exact_match, has_order_by, spider_equal
from nba_dpo.sql.extract import extract_sql
from nba_dpo.sql.sandbox import Sandbox


@dataclass(frozen=True)
class Verdict:
    sql: str
    exec_ok: bool
    correct_spider: bool | None  # None: no gold to compare with
    correct_bird: bool | None
    error: str | None  # None, or "<reason>: <message>" (reason: denied, timeout, error, too_many_rows, no_sql)


class ExecutionVerifier:
    """One sandbox per instance (per Ray actor); gold results are cached by SQL, and verdicts by (SQL, gold SQL):
    a prompt's samples often repeat one answer (half of the demo's 8,000 candidates did). Both caches are bounded,
    so a long stream of prompts does not grow the actor."""

    def __init__(self, db_path: str, timeout_s: float = 2.0):
        self.sandbox = Sandbox(storage.local_copy(db_path), timeout_s=timeout_s)  # a node-local copy of an object
        self.gold = functools.lru_cache(maxsize=10_000)(self._gold)
        self.verify_sql = functools.lru_cache(maxsize=100_000)(self._verify_sql)

    def _gold(self, gold_sql: str) -> tuple[list, bool]:
        r = self.sandbox.run(gold_sql)
        if not r.ok:
            raise ValueError(f"gold SQL fails ({r.failure}: {r.message}): {gold_sql}")
        return r.rows, has_order_by(gold_sql)

    def _verify_sql(self, sql: str, gold_sql: str | None) -> Verdict:
        if not sql.strip():
            return Verdict(sql, False, False, False, "no_sql: no SQL found in the completion")
        r = self.sandbox.run(sql)
        if not r.ok:
            return Verdict(sql, False, False, False, f"{r.failure}: {r.message}")
        if gold_sql is None:
            return Verdict(sql, True, None, None, None)
        gold_rows, ordered = self.gold(gold_sql)
        return Verdict(sql, True, spider_equal(r.rows, gold_rows, ordered), bird_equal(r.rows, gold_rows), None)

    def verify(self, completion: str, gold_sql: str | None) -> Verdict:
        return self.verify_sql(extract_sql(completion), gold_sql)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data stage: score `completion` against the gold `sql` (null for a label-free prompt); `samples`, if
        any, become `samples_correct`."""
        out = dict(batch)
        golds = [g if isinstance(g, str) else None for g in batch["sql"]]
        verdicts = [self.verify(str(c), g) for c, g in zip(batch["completion"], golds)]
        out["pred_sql"] = np.array([v.sql for v in verdicts], dtype=object)
        out["exec_ok"] = np.array([v.exec_ok for v in verdicts])
        out["correct_spider"] = np.array([v.correct_spider for v in verdicts])
        out["correct_bird"] = np.array([v.correct_bird for v in verdicts])
        prior = batch.get("error")  # a generation failure from an earlier stage stays the recorded reason
        out["error"] = np.array([prior[i] if prior is not None and isinstance(prior[i], str) else v.error
                                 for i, v in enumerate(verdicts)], dtype=object)
        out["exact_match"] = np.array([exact_match(v.sql, g) if v.sql and g else False
                                       for v, g in zip(verdicts, golds)])
        if "samples" in batch:
            # the verdicts replace the texts: nothing downstream reads them, and Ray Data would store them pickled
            # (it takes equal-length lists for a tensor column, which strings cannot fill)
            out["samples_correct"] = object_column(
                [[self.verify(str(s), str(g)).correct_spider for s in samples] for samples, g in
                 zip(out.pop("samples"), batch["sql"])])
        return out
