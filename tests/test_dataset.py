"""The instruction splits and the preference pool: sizes, hold-outs, disjointness, and that every gold SQL answers."""
import re
from collections import Counter, defaultdict

import datasets
import pyarrow.parquet as pq
import pytest

from nba_dpo.data.dataset import INSTRUCTION_SCHEMA, completion_text
from nba_dpo.data.templates import DIFFICULTIES, INTENTS
from nba_dpo.sql.sandbox import Sandbox

CONTRACT = ["id", "question", "db_id", "schema", "reasoning", "sql", "template_id", "difficulty", "split"]


@pytest.fixture(scope="module")
def splits(built_data):
    files = built_data[1]["files"]
    return {name: pq.read_table(path).to_pylist() for name, path in files.items()}


def test_intents_cover_the_levels():
    assert len(INTENTS) >= 40
    assert set(i.difficulty for i in INTENTS) == set(DIFFICULTIES) and len(DIFFICULTIES) >= 5
    for intent in INTENTS:
        assert len(intent.phrasings) >= 5 and intent.reasoning
        assert [intent.phrasing_role(i) for i in range(len(intent.phrasings))].count("test") == 1


def test_sizes_and_contract(splits, built_data):
    assert len(splits["train"]) >= 5000 and len(splits["val"]) >= 500
    assert len(splits["test"]) >= 1000 and len(splits["pref"]) >= 3000
    for name, path in built_data[1]["files"].items():
        table = pq.read_table(path)
        assert table.schema.names[:len(CONTRACT)] == CONTRACT
        assert table.schema == INSTRUCTION_SCHEMA
        assert set(table.column("split").to_pylist()) == {name}
    for split in ("train", "test"):
        assert set(r["difficulty"] for r in splits[split]) == set(DIFFICULTIES)
        assert len(set(r["template_id"] for r in splits[split])) == len(INTENTS)
    ds = datasets.load_dataset("parquet", data_files=built_data[1]["files"]["train"], split="train")
    assert ds.num_rows == len(splits["train"])


def test_no_leakage(splits):
    texts = {name: {r["question"] for r in rows} for name, rows in splits.items()}
    assert not texts["test"] & texts["train"]
    assert not texts["pref"] & (texts["train"] | texts["test"])
    assert not texts["val"] & texts["train"]
    ids = [r["id"] for rows in splits.values() for r in rows]
    assert len(ids) == len(set(ids))
    last = {i.id: len(i.phrasings) - 1 for i in INTENTS}
    # the held-out phrasing of every intent is never seen by SFT nor by the preference pool
    for name in ("train", "val", "pref"):
        assert all(r["phrasing_id"] != last[r["template_id"]] for r in splits[name])
        assert {r["holdout"] for r in splits[name]} == {"none"}
    assert all(r["phrasing_id"] == last[r["template_id"]] for r in splits["test"] if r["holdout"] in ("phrasing", "both"))
    assert all(i.phrasing_role(0) == "train" for i in INTENTS)
    # the pref-only phrasing never reaches SFT train
    assert all(r["phrasing_id"] != last[r["template_id"]] - 1 for r in splits["train"])
    assert any(r["phrasing_id"] == last[r["template_id"]] - 1 for r in splits["pref"])
    counts = Counter(r["holdout"] for r in splits["test"])
    assert counts["phrasing"] + counts["both"] >= 300 and counts["entity"] + counts["both"] >= 150


def _players(sql: str) -> set[str]:
    found = set(re.findall(r"(?:p\.full_name|FROM players WHERE full_name) = '([^']+)'", sql))
    for group in re.findall(r"p\.full_name IN \(([^)]*)\)", sql):
        found |= set(re.findall(r"'([^']+)'", group))
    return found


def _team_season(sql: str):
    team = re.search(r"t2?\.full_name = '([^']+)'", sql)
    season = re.search(r"season = '([^']+)'", sql)
    return (team.group(1), season.group(1)) if team and season else None


def test_entities_held_out(splits):
    train_players = set().union(*(_players(r["sql"]) for r in splits["train"] + splits["pref"]))
    train_ts = {_team_season(r["sql"]) for r in splits["train"] + splits["pref"]} - {None}
    held_players, held_ts = set(), set()
    for r in splits["test"]:
        if r["holdout"] == "entity":
            ps, ts = _players(r["sql"]), _team_season(r["sql"])
            assert (ps & (ps - train_players)) or (ts and ts not in train_ts), r["question"]
            held_players |= ps - train_players
            held_ts |= {ts} - train_ts - {None}
    assert len(held_players) >= 20 and len(held_ts) >= 5


def test_every_gold_sql_answers(splits, db_path):
    by_sql = defaultdict(list)
    for rows in splits.values():
        for r in rows:
            by_sql[r["sql"]].append(r["id"])
    with Sandbox(db_path, timeout_s=5.0) as sandbox:
        for sql, ids in by_sql.items():
            result = sandbox.run(sql)
            assert result.ok and len(result.rows) >= 1, (ids[0], sql, result.message)


def test_completion_format(splits):
    row = splits["train"][0]
    text = completion_text(row["reasoning"], row["sql"])
    first, second = text.split("\n")
    assert first.startswith("Reasoning: ") and second.startswith("SQL: SELECT") and second.endswith(";")


def test_train_shards_do_not_depend_on_the_io_block_bound(tmp_path):
    """Ray Train splits a dataset over its workers block by block: with the stages' 1 MiB I/O bound the two halves
    of a file would be other rows than with Ray's default blocks, and SFT another model. `for_training` keeps the
    split the same for any `cluster.data_block_mib`; the split here is Ray Data's own, as Ray Train calls it."""
    from concurrent.futures import ThreadPoolExecutor

    import ray
    from omegaconf import OmegaConf
    from ray.data import DataContext

    from nba_dpo import storage
    from nba_dpo.cluster import bound_ray_data
    from nba_dpo.training.common import for_training
    from tests.conftest import compose_cfg

    uri = storage.write_parquet([{"id": i, "text": "x" * 600} for i in range(10_000)], str(tmp_path / "rows.parquet"))
    local = compose_cfg("config").cluster  # the stages' bound on this machine: 1 MiB blocks
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=3, logging_level="ERROR", log_to_driver=False)
    ctx = DataContext.get_current()
    saved = ctx.target_max_block_size, ctx.execution_options.resource_limits

    def shards(cluster) -> list[list[int]]:
        bound_ray_data(cluster)
        ds = for_training(storage.read_dataset(uri))
        ds.context.execution_options.preserve_order = True  # as run_trainer's DataConfig asks
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(lambda it: [i for b in it.iter_batches(batch_format="pyarrow")
                                             for i in b.column("id").to_pylist()], ds.streaming_split(2, equal=True)))

    try:
        bounded, default = shards(local), shards(OmegaConf.merge(local, {"data_block_mib": 128}))
    finally:
        ctx.target_max_block_size, ctx.execution_options.resource_limits = saved  # this process's other tests
        if started:
            ray.shutdown()
    assert bounded == default and [len(s) for s in bounded] == [5000, 5000]
    assert bounded[1][0] == 5000  # each worker one contiguous half of the file
