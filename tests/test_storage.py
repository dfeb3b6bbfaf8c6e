"""The storage layer on a local disk, on a real S3 server (SeaweedFS) and on a GCS emulator: round trips, atomic
publication of files and folders, the node-local cache (once per content, safe under concurrent fetches), and
one-sentence errors."""
import json
import multiprocessing
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from nba_dpo import storage
from tests.conftest import ROOT, TINY_DATA, fresh_prefix


def prefix_on(kind: str, request) -> str:
    """A fresh prefix for one test on the session's S3 server or GCS emulator."""
    return fresh_prefix(request.getfixturevalue("gcs_server" if kind == "gs" else "s3_server"), request)


@pytest.fixture(params=["local", "s3", "gs"])
def root(request, tmp_path):
    return str(tmp_path / "root") if request.param == "local" else prefix_on(request.param, request) + "/run"


@pytest.fixture(params=["s3", "gs"])
def store(request):
    return prefix_on(request.param, request)


def all_names(uri: str) -> list[str]:
    """Every file below `uri`, hidden ones included (storage.list_files leaves those out)."""
    fs, path = storage.filesystem(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    return sorted(os.path.relpath(i.path, path) for i in infos if i.type == pafs.FileType.File)


def test_round_trips(root):
    storage.write_json({"a": 1}, f"{root}/x/a.json")
    storage.write_text("hello", f"{root}/x/b.txt")
    storage.write_parquet([{"k": 1}, {"k": 2}], f"{root}/x/t.parquet")
    assert storage.read_json(f"{root}/x/a.json") == {"a": 1}
    assert storage.read_text(f"{root}/x/b.txt") == "hello"
    assert storage.read_table(f"{root}/x/t.parquet").column("k").to_pylist() == [1, 2]
    assert storage.parquet_metadata(f"{root}/x/t.parquet").num_rows == 2
    assert storage.list_files(f"{root}/x", ".parquet") == [f"{root}/x/t.parquet"]
    assert storage.list_files(f"{root}/nothing") == []
    assert storage.exists(f"{root}/x/a.json") and not storage.exists(f"{root}/x/c.json")
    storage.delete(f"{root}/x")
    assert not storage.exists(f"{root}/x/a.json")
    storage.delete(f"{root}/x")  # nothing there: no error


def test_a_failed_write_leaves_the_old_file_and_no_temporary(root):
    uri = f"{root}/out/t.parquet"
    storage.write_parquet([{"k": 1}], uri)
    with pytest.raises(RuntimeError, match="boom"):
        with storage.parquet_writer(uri, pa.schema([("k", pa.int64())])) as w:
            w.write_table(pa.table({"k": list(range(100_000))}))
            raise RuntimeError("boom")  # the writer has flushed rows: on S3 a plain stream would now publish them
    assert storage.read_table(uri).column("k").to_pylist() == [1]
    assert all_names(f"{root}/out") == ["t.parquet"]


def test_publishing_a_folder(root):
    uri = f"{root}/models/m"
    with storage.publishing(uri) as out:
        (out / "config.json").write_text("{}")
        (out / "sub").mkdir()
        (out / "sub" / "w.bin").write_bytes(b"\0" * 10)
    assert storage.is_published(uri)
    assert all_names(uri) == [storage.MARKER, "config.json", "sub/w.bin"]
    with pytest.raises(RuntimeError):
        with storage.publishing(uri) as out:
            (out / "config.json").write_text('{"new": 1}')
            raise RuntimeError("stopped before the end")
    assert storage.read_json(f"{uri}/config.json") == {} and storage.is_published(uri)  # the old folder stands
    with storage.publishing(uri) as out:
        (out / "config.json").write_text('{"new": 1}')
    assert all_names(uri) == [storage.MARKER, "config.json"]  # replaced as a whole


def test_local_copy_once_per_content(store, tmp_path, monkeypatch):
    monkeypatch.setenv("NBA_DPO_CACHE_DIR", str(tmp_path / "cache"))
    with storage.publishing(f"{store}/m") as out:
        (out / "config.json").write_text('{"v": 1}')
    first = storage.local_copy(f"{store}/m")
    assert json.loads(open(f"{first}/config.json").read()) == {"v": 1}
    assert storage.local_copy(f"{store}/m") == first  # unchanged: the same copy
    with storage.publishing(f"{store}/m") as out:
        (out / "config.json").write_text('{"v": 2, "longer": true}')
    second = storage.local_copy(f"{store}/m")
    assert second != first and json.loads(open(f"{second}/config.json").read())["v"] == 2
    assert not os.path.exists(first)  # the earlier content is evicted
    storage.write_bytes(b"SQLite format 3\0", f"{store}/db/nba.sqlite")
    assert storage.local_copy(f"{store}/db/nba.sqlite").endswith("/nba.sqlite")  # a file keeps its name
    assert storage.local_copy(str(tmp_path)) == str(tmp_path)  # local paths are used where they are
    assert storage.local_copy("Qwen/Qwen2.5-Coder-7B-Instruct") == "Qwen/Qwen2.5-Coder-7B-Instruct"  # a hub id


def _fetch(uri: str, queue) -> None:
    queue.put(storage.local_copy(uri))


def test_concurrent_fetches_on_one_node_share_one_copy(bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("NBA_DPO_CACHE_DIR", str(tmp_path / "cache"))
    with storage.publishing(f"{bucket}/big") as out:
        for i in range(8):
            (out / f"shard-{i}.bin").write_bytes(os.urandom(2 << 20))
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_fetch, args=(f"{bucket}/big", queue)) for _ in range(4)]
    for p in procs:
        p.start()
    paths = {queue.get(timeout=120) for _ in procs}
    for p in procs:
        p.join(timeout=60)
    assert len(paths) == 1 and all(p.exitcode == 0 for p in procs)
    entries = [e for e in os.listdir(tmp_path / "cache") if not e.endswith(".lock")]
    assert len(entries) == 1  # one copy, no staging folder left behind
    assert sorted(os.listdir(paths.pop())) == [storage.MARKER] + [f"shard-{i}.bin" for i in range(8)]


def test_unreachable_store_is_one_sentence(tmp_path):
    """A job that cannot reach its object store stops with one line naming the object, after bounded retries."""
    env = {**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "k",
           "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    proc = subprocess.run([sys.executable, "-m", "jobs.build_data", "paths.artifacts=s3://nowhere/run"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot ") and "s3://nowhere/run/data/manifest.json" in last
    assert "Traceback" not in proc.stderr


def test_wrong_key_is_refused(bucket, monkeypatch):
    storage.write_text("x", f"{bucket}/f.txt")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    storage._object_store.cache_clear()
    try:
        with pytest.raises(storage.StorageError, match=f"cannot .* {bucket}/f.txt"):
            storage.read_text(f"{bucket}/f.txt")
    finally:
        monkeypatch.undo()
        storage._object_store.cache_clear()


def test_a_stage_on_gcs(gcs_server, tmp_path):
    """build_data with its root on gs://, reaching the emulator through STORAGE_EMULATOR_HOST only."""
    root = f"{gcs_server.bucket}/stage"
    proc = subprocess.run([sys.executable, "-m", "jobs.build_data", f"paths.artifacts={root}", *TINY_DATA],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert storage.read_json(f"{root}/data/manifest.json")
    assert storage.parquet_metadata(f"{root}/data/sft/train.parquet").num_rows == 400
    assert storage.exists(f"{root}/data/nba.sqlite") and not list(tmp_path.rglob("*.parquet"))
