"""Where a Ray actor puts its model."""
from __future__ import annotations

import torch


def actor_device(use_gpu: bool) -> torch.device:
    """The GPU Ray gave the actor (num_gpus=1 makes it the only one visible) when asked for, else the CPU."""
    return torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
