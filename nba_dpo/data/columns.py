"""Columns of Ray Data batches."""
from __future__ import annotations

import numpy as np


def object_column(values: list) -> np.ndarray:
    """A 1-D object array of `values`, one element per row, even when every value is a list of the same length
    (np.array would stack those into a 2-D array)."""
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column
