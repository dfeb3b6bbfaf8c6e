import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ROOT = Path(__file__).resolve().parents[1]


def compose_cfg(config_name: str = "config", overrides: list[str] | None = None):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides or [])


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
