import os
from pathlib import Path

import pytest
from nba_dpo.config import compose as compose_cfg  # noqa: F401  (tests import it from here)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def built_data(tmp_path_factory):
    """The default data build (full sizes), once per test session: (config, manifest)."""
    from nba_dpo.config import validate
    from nba_dpo.data.build import build_data

    artifacts = tmp_path_factory.mktemp("artifacts")
    cfg = validate(compose_cfg(overrides=[f"paths.artifacts={artifacts}"]))
    return cfg, build_data(cfg)


@pytest.fixture(scope="session")
def db_path(built_data) -> Path:
    return Path(built_data[0].data.db_path)


# Tiny sizes for the end-to-end tests: real Ray, Ray Data, Ray Train, TRL and DeepSpeed, seconds of compute.
TINY_DATA = ["data.sizes.train=400", "data.sizes.val=40", "data.sizes.test=60", "data.sizes.pref=60",
             "data.params_per_intent=40"]
TINY_MODEL = ["model.build.hidden_size=64", "model.build.num_layers=2", "model.build.num_heads=2",
              "model.build.intermediate_size=128", "model.build.vocab_size=600"]
TINY_TRAIN = ["train.max_steps=6", "train.save_steps=3", "train.logging_steps=1", "train.per_device_batch_size=8"]


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory):
    """Tiny data and a tiny SFT model (6 steps, 2 Ray Train workers), once per session."""
    import ray

    from nba_dpo.config import validate
    from nba_dpo.data.build import build_data
    from nba_dpo.training.sft import train_sft

    root = tmp_path_factory.mktemp("tiny")
    build_data(validate(compose_cfg("config", [f"paths.artifacts={root}"] + TINY_DATA)))
    train_sft(validate(compose_cfg("sft", [f"paths.artifacts={root}", "run_name=tiny"] + TINY_DATA + TINY_MODEL
                                   + TINY_TRAIN)))
    yield root
    ray.shutdown()
