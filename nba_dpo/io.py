"""Artifact I/O: Parquet and JSON written atomically (temporary name in the same folder, then rename)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _atomic(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    write(tmp)
    os.replace(tmp, path)
    return path


def write_parquet(rows: list[dict] | pa.Table, path: str | os.PathLike, schema: pa.Schema | None = None) -> Path:
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)
    return _atomic(path, lambda tmp: pq.write_table(table, tmp))


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    return _atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n"))


def write_text(text: str, path: str | os.PathLike) -> Path:
    return _atomic(path, lambda tmp: tmp.write_text(text))


def read_parquet_rows(path: str | os.PathLike) -> list[dict]:
    return pq.read_table(path).to_pylist()
