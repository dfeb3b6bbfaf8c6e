"""The composite score of a candidate: weighted execution verdict, reward and brevity.

The default weights make it lexicographic for SQL: correctness first (10), then executing at all (1), then the
reward model's score squashed into (0, 1) (when configured), then brevity (tokens / 1000, at most ~0.2).
"""
from __future__ import annotations

import math

from omegaconf import DictConfig


def composite_score(row: dict, w: DictConfig) -> float:
    if row.get("error") and row["error"].startswith("generation failed"):
        return float("-inf")
    reward = row.get("reward")
    r = 0.0 if reward is None or math.isnan(reward) else 1 / (1 + math.exp(-reward))
    return (w.correct * bool(row["correct"]) + w.exec_ok * bool(row["exec_ok"]) + w.reward * r
            - w.brevity * min(row["n_tokens"], 200) / 1000)
