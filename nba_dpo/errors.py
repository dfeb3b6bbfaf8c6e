"""One exception type for mistakes a user can fix (bad input, bad config): jobs print it as one sentence."""
from __future__ import annotations

import functools
import sys


class UserError(Exception):
    """A bad input or configuration, explained in one sentence."""


def exit_on_user_error(fn):
    """Wrap a job's main: a UserError prints `error: <sentence>` and exits 2, with no traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
    return wrapper
