"""Run untrusted SQL against a SQLite database without ever changing it or hanging.

Defence in depth: a read-only URI connection with `query_only`, an authorizer that allows reading only, SQLite
length limits (statement size, string/blob size, no ATTACH), a wall-clock and VM-step budget through the
progress handler, a cap on returned rows, and one statement only. Every failure comes back as a result with a
reason, never as an exception.
"""
from __future__ import annotations

import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAILURE_REASONS = ("denied", "timeout", "error", "too_many_rows")

_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
# printf/format with a huge width spin for seconds inside one VM step, out of the progress handler's reach.
_DENIED_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "printf", "format"}
_LEADING_COMMENTS = re.compile(r"^(\s+|--[^\n]*(\n|$)|/\*.*?\*/)*", re.S)


@dataclass
class QueryResult:
    rows: list[tuple] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    failure: str | None = None  # one of FAILURE_REASONS, or None when the query succeeded
    message: str | None = None  # SQLite's own words, for the error column of predictions

    @property
    def ok(self) -> bool:
        return self.failure is None


def _authorizer(action: int, arg1: Any, arg2: Any, db_name: Any, trigger: Any) -> int:
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and str(arg2).lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_READ and db_name not in (None, "main"):  # temp schema and attached files
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


class Sandbox:
    """A read-only, budgeted SQLite connection. One per thread or actor; `run` is safe to call repeatedly."""

    def __init__(self, db_path: str | Path, timeout_s: float = 1.0, max_steps: int = 50_000_000,
                 max_rows: int = 10_000, max_sql_chars: int = 20_000, max_value_bytes: int = 1_000_000):
        path = Path(db_path).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"database not found: {path}")
        self.timeout_s, self.max_steps, self.max_rows = timeout_s, max_steps, max_rows
        self.max_sql_chars = max_sql_chars
        self._con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
        self._con.execute("PRAGMA query_only = ON")
        self._con.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        self._con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max_value_bytes)
        self._con.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, max_sql_chars)
        self._con.set_authorizer(_authorizer)
        self._lock = threading.Lock()
        self._deadline = 0.0
        self._steps = 0

    _STEP_GRANULARITY = 1_000

    def _progress(self) -> int:
        self._steps += self._STEP_GRANULARITY
        return int(time.monotonic() > self._deadline or self._steps > self.max_steps)

    def run(self, sql: str) -> QueryResult:
        if isinstance(sql, bytes):
            try:
                sql = sql.decode("utf-8")
            except UnicodeDecodeError as e:
                return QueryResult(failure="error", message=f"not UTF-8: {e}")
        if not isinstance(sql, str) or not sql.strip():
            return QueryResult(failure="error", message="empty statement")
        if len(sql) > self.max_sql_chars:
            return QueryResult(failure="error", message=f"statement longer than {self.max_sql_chars} characters")
        head = _LEADING_COMMENTS.sub("", sql, count=1)[:6].lower()
        if not (head.startswith("select") or head.startswith("with") or head.startswith("values")):
            return QueryResult(failure="denied", message="only SELECT statements are allowed")
        with self._lock:
            self._deadline, self._steps = time.monotonic() + self.timeout_s, 0
            self._con.set_progress_handler(self._progress, self._STEP_GRANULARITY)
            try:
                cur = self._con.execute(sql)
                rows = cur.fetchmany(self.max_rows + 1)
                columns = [d[0] for d in cur.description or []]
                cur.close()
            except sqlite3.DatabaseError as e:
                return self._failure(e)
            except (sqlite3.Warning, sqlite3.ProgrammingError, ValueError, UnicodeError, OverflowError,
                    MemoryError) as e:  # several statements, NUL bytes, lone surrogates, huge ints
                return QueryResult(failure="error", message=str(e))
            finally:
                self._con.set_progress_handler(None, 0)
        if len(rows) > self.max_rows:
            return QueryResult(columns=columns, failure="too_many_rows",
                               message=f"more than {self.max_rows} rows")
        return QueryResult(rows=[tuple(r) for r in rows], columns=columns)

    def _failure(self, e: sqlite3.DatabaseError) -> QueryResult:
        msg = str(e)
        if "interrupted" in msg:
            return QueryResult(failure="timeout", message=f"over {self.timeout_s}s or {self.max_steps} steps")
        if "not authorized" in msg or "prohibited" in msg or "readonly" in msg or "too many attached" in msg:
            return QueryResult(failure="denied", message=msg)
        return QueryResult(failure="error", message=msg)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
