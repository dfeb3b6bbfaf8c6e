"""Text from outside the project (questions and predictions files, model completions) made safe to store: valid
UTF-8 whatever came in, with what was wrong named, so that one bad row is scored as a failure instead of stopping a
run when its results are written."""
from __future__ import annotations

import re
from typing import Iterator

from nba_dpo import storage

_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> tuple[str, str | None]:
    """`text` as valid UTF-8, and the problem, if any: a lone surrogate (a JSON "\\ud800" escape gives one) becomes
    U+FFFD."""
    try:
        text.encode("utf-8")
        return text, None
    except UnicodeEncodeError as e:
        return _SURROGATE.sub("\ufffd", text), f"invalid_text: lone surrogate at character {e.start}"


def jsonl_lines(uri: str) -> Iterator[tuple[int, str, str | None]]:
    """The non-blank lines of a JSONL file as (line number, text, problem): bytes that are not UTF-8 become U+FFFD
    and are named in the problem."""
    for lineno, raw in enumerate(storage.read_bytes(uri).split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            yield lineno, raw.decode("utf-8"), None
        except UnicodeDecodeError as e:
            yield lineno, raw.decode("utf-8", "replace"), f"invalid_text: not UTF-8 at byte {e.start}"
