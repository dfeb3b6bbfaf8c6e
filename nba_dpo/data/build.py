"""The build_data stage: database + instruction splits + preference prompt pool, written atomically."""
from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
from omegaconf import DictConfig

from nba_dpo import storage
from nba_dpo.data.build_db import build_database
from nba_dpo.data.dataset import GOLD_COLUMNS, INSTRUCTION_SCHEMA, SPLITS, build_byo_data, build_instruction_data


def build_data(cfg: DictConfig) -> dict:
    """Write <data>/nba.sqlite (synthetic only), <data>/sft/{train,val,test}.parquet, <data>/pref_prompts.parquet
    (without its gold columns when data.pref_gold is false) and <data>/manifest.json (written last: its presence
    marks a complete build). Returns the manifest."""
    from nba_dpo.cluster import joins_cluster, start_ray

    data_dir = cfg.paths.data
    start = time.perf_counter()
    if joins_cluster(cfg.cluster):  # the storage check of a multi-node cluster; the stage itself needs no Ray
        start_ray(cfg)
    storage.delete(f"{data_dir}/manifest.json")
    if cfg.data.name == "nba_synthetic":
        db_path = cfg.data.db_path
        print(f"[build_data] simulating {cfg.data.n_seasons} seasons (seed {cfg.seed}) -> {db_path}")
        with tempfile.TemporaryDirectory(prefix="nba_dpo_db_") as tmp:  # SQLite writes a local file
            local_db = build_database(Path(tmp) / Path(db_path).name, seed=cfg.seed, n_seasons=cfg.data.n_seasons,
                                      first_season=cfg.data.first_season)
            print(f"[build_data] database built in {time.perf_counter() - start:.1f}s; drawing questions")
            splits = build_instruction_data(local_db, seed=cfg.seed, sizes=dict(cfg.data.sizes),
                                            heldout_fraction=cfg.data.heldout_fraction,
                                            params_per_intent=cfg.data.params_per_intent)
            storage.upload_file(local_db, db_path)
    else:
        db_path = cfg.data.db_path
        print(f"[build_data] reading {cfg.data.questions} against {db_path}")
        splits = build_byo_data(db_path, cfg.data.questions, seed=cfg.seed, fractions=dict(cfg.data.split_fractions))
    files = {}
    for split in SPLITS:
        files[split] = storage.write_parquet(splits[split], f"{data_dir}/sft/{split}.parquet",
                                             schema=INSTRUCTION_SCHEMA)
    pool_schema = INSTRUCTION_SCHEMA if cfg.data.pref_gold else pa.schema(
        [f for f in INSTRUCTION_SCHEMA if f.name not in GOLD_COLUMNS])  # a label-free pool: questions only
    files["pref"] = storage.write_parquet(splits["pref"], f"{data_dir}/pref_prompts.parquet", schema=pool_schema)
    counts = {split: dict(sorted(Counter(r["difficulty"] for r in rows).items())) for split, rows in splits.items()}
    manifest = {"db_path": db_path, "files": files, "counts": counts, "seed": cfg.seed, "pref_gold": cfg.data.pref_gold,
                "data": cfg.data.name, "seconds": round(time.perf_counter() - start, 1)}
    storage.write_json(manifest, f"{data_dir}/manifest.json")
    return manifest


def format_counts(counts: dict[str, dict[str, int]]) -> str:
    levels = sorted({d for c in counts.values() for d in c})
    head = f"{'split':<8}" + "".join(f"{d:>13}" for d in levels) + f"{'total':>9}"
    lines = [head, "-" * len(head)]
    for split, c in counts.items():
        lines.append(f"{split:<8}" + "".join(f"{c.get(d, 0):>13}" for d in levels) + f"{sum(c.values()):>9}")
    return "\n".join(lines)
