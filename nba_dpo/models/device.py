"""Where a Ray actor puts its model, and in which dtype."""
from __future__ import annotations

import torch


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype a config names (model.dtype, reward_model.dtype)."""
    return DTYPES[name]


def actor_device(use_gpu: bool) -> torch.device:
    """The GPU Ray gave the actor (num_gpus=1 makes it the only one visible) when asked for, else the CPU."""
    return torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
