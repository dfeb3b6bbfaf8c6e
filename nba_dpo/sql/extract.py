"""Pull the SQL out of a completion: the `SQL:` line this project teaches, a fenced ```sql block, or bare SQL."""
from __future__ import annotations

import re

_FENCE = re.compile(r"```(?:sql|sqlite)?\s*\n?(.*?)(?:```|$)", re.S | re.I)
_SQL_LINE = re.compile(r"^\s*SQL\s*:\s*(.*)", re.S | re.I | re.M)
_BARE = re.compile(r"\b(SELECT|WITH)\b.*", re.S | re.I)
_REASONING = re.compile(r"^\s*Reasoning\s*:\s*(.*?)\s*$", re.I | re.M)


def _first_statement(text: str) -> str:
    """Text up to the first ';' outside quotes, or up to a blank line when there is none."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif ch == ";":
            return text[:i].strip()
    return text.split("\n\n")[0].strip()


def extract_sql(completion: str) -> str:
    """The SQL statement in a completion (without its ';'), or '' when there is none."""
    if not completion:
        return ""
    fence = _FENCE.search(completion)
    if fence and fence.group(1).strip():
        return _first_statement(fence.group(1))
    line = _SQL_LINE.search(completion)
    if line:
        return _first_statement(line.group(1))
    bare = _BARE.search(completion)
    return _first_statement(bare.group(0)) if bare else ""


def extract_reasoning(completion: str) -> str:
    """The text of the `Reasoning:` line, or '' when the completion has none."""
    m = _REASONING.search(completion or "")
    return m.group(1) if m else ""
