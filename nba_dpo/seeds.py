"""Seeds derived from names: the same parts give the same seed in every process and on every run (Python's own
`hash` of a string changes between processes)."""
from __future__ import annotations

import hashlib


def stable_seed(*parts) -> int:
    """A 32-bit seed from `parts` joined with ':' (e.g. the run's seed and a prompt id)."""
    return int(hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:8], 16)
