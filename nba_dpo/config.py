"""Typed schemas for the config groups in conf/, and validation that runs before any Ray work starts.

The YAML files stay the single place for defaults; these dataclasses give every value a type and let
`validate` turn a wrong type, a missing value or a bad combination into one sentence (a UserError).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nba_dpo.errors import UserError


@dataclass
class Paths:
    artifacts: str = MISSING
    data: str = MISSING


@dataclass
class SyntheticData:
    name: str = "nba_synthetic"
    db_path: str = MISSING
    n_seasons: int = 4
    first_season: int = 2021
    heldout_fraction: float = 0.15
    params_per_intent: int = 400
    sizes: dict[str, int] = field(default_factory=lambda: {"train": 6000, "val": 600, "test": 1200, "pref": 3400})


@dataclass
class ByoData:
    name: str = "byo"
    db_path: str = MISSING
    questions: str = MISSING
    split_fractions: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})


DATA_SCHEMAS = {"nba_synthetic": SyntheticData, "byo": ByoData}


def _typed(node: Any, schema: type, where: str) -> DictConfig:
    """Merge `node` over `schema`: unknown keys, wrong types and missing values become a UserError."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise UserError(f"{where} needs a value for {', '.join(f'{where}.{k}' for k in missing)} "
                            f"(add {missing[0]}=... on the command line)")
        OmegaConf.resolve(merged)
        return merged
    except OmegaConfBaseException as e:
        raise UserError(f"invalid {where} config: {str(e).splitlines()[0]}") from None


def validate(cfg: DictConfig) -> DictConfig:
    """Type-check and sanity-check the groups present in `cfg`; returns the resolved config."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    try:
        OmegaConf.resolve(out)
    except OmegaConfBaseException as e:
        raise UserError(f"cannot resolve the config: {str(e).splitlines()[0]}") from None
    out.paths = _typed(out.paths, Paths, "paths")
    if "data" in out:
        name = out.data.get("name")
        if name not in DATA_SCHEMAS:
            raise UserError(f"unknown data config {name!r}; choose one of {', '.join(DATA_SCHEMAS)}")
        out.data = _typed(out.data, DATA_SCHEMAS[name], "data")
        if name == "nba_synthetic":
            if not 0 < out.data.heldout_fraction < 0.5:
                raise UserError("data.heldout_fraction must lie between 0 and 0.5")
            if set(out.data.sizes) != {"train", "val", "test", "pref"} or min(out.data.sizes.values()) <= 0:
                raise UserError("data.sizes needs positive train, val, test and pref counts")
        else:
            fr = out.data.split_fractions
            if set(fr) != {"train", "val", "test"} or abs(sum(fr.values()) - 1) > 1e-6:
                raise UserError("data.split_fractions needs train, val and test fractions summing to 1")
    return out
