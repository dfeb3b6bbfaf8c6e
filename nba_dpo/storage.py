"""One storage root for every stage, over pyarrow.fs: a local path, a shared mount (EFS, NFS, a ReadWriteMany
volume) or an object store (`s3://bucket/run`, `gs://bucket/run`). Nothing else in the project opens an artifact.

- `filesystem(uri)` gives the pyarrow filesystem and the path inside it: the same one reaches Ray Data
  (`read_parquet(filesystem=...)`) and Ray Train (`RunConfig(storage_filesystem=...)`).
- Writes are published atomically on every backend. A file is written under a temporary name beside its target,
  then moved into place: a rename on a disk, a server-side copy on an object store, whose objects appear whole (S3
  copies one object of at most 5 GB this way). A folder (`publishing`) gets its `_SUCCESS` marker written last.
- `local_copy(uri)`: what a library can only open as a local file (model folders, tokenizers, the SQLite database)
  is fetched once per node and content (every file's size and mtime) into a node-local cache, under a file lock,
  so that two actors of one node fetch it once between them. Local and shared paths are used where they are.
- S3's endpoint and credentials come from the standard AWS variables and files only (`AWS_ENDPOINT_URL`,
  `AWS_ACCESS_KEY_ID`, `AWS_REGION`, `~/.aws`, instance profiles), GCS's from Google's
  (`GOOGLE_APPLICATION_CREDENTIALS`, the metadata server; `STORAGE_EMULATOR_HOST` for an emulator), resolved in each
  process, never stored.
- A failing storage call becomes a `StorageError`, one sentence naming the object, after pyarrow's bounded retries.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import functools
import hashlib
import io
import json
import os
import posixpath
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from nba_dpo.errors import UserError

MARKER = "_SUCCESS"          # written last into every published folder
CHUNK = 16 << 20             # bytes per read/write when copying between filesystems
S3_ATTEMPTS = 5              # pyarrow's standard retry strategy (exponential back-off) per request
GCS_RETRY_S = 30             # how long GCS's client retries a failing request
ROW_GROUP_ROWS = 4096        # Ray Data reads a row group as one block: small groups keep a reader's memory flat


class StorageError(UserError):
    """A storage call failed (after retries): the object and the reason, in one sentence."""


def is_uri(path: str | os.PathLike) -> bool:
    return "://" in str(path)


@functools.cache
def _object_store(scheme: str) -> pafs.FileSystem:
    if scheme == "s3":
        # pyarrow's S3FileSystem takes no endpoint from the environment itself (FileSystem.from_uri does, but sets
        # no retry strategy): AWS_ENDPOINT_URL is what boto3 and the AWS CLI read too
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return pafs.S3FileSystem(endpoint_override=endpoint,
                                 region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
                                 retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=S3_ATTEMPTS),
                                 connect_timeout=5, request_timeout=60)
    if scheme == "gs":
        # credentials as Google's libraries find them (GOOGLE_APPLICATION_CREDENTIALS, the metadata server); an
        # emulator through STORAGE_EMULATOR_HOST, the variable those libraries and gcloud read (pyarrow reads none)
        retry = datetime.timedelta(seconds=GCS_RETRY_S)
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        if emulator:
            scheme_, _, host = emulator.rpartition("://")
            return pafs.GcsFileSystem(anonymous=True, scheme=scheme_ or "http", endpoint_override=host,
                                      retry_time_limit=retry)
        return pafs.GcsFileSystem(retry_time_limit=retry)
    return pafs.FileSystem.from_uri(f"{scheme}://")[0]


def filesystem(uri: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of `uri` and the path inside it (absolute for local paths)."""
    uri = str(uri)
    if is_uri(uri):
        scheme, rest = uri.split("://", 1)
        return _object_store(scheme), rest.rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def absolute(path: str) -> str:
    """`path` as every process of the cluster can name it: URIs as they are, existing local paths made absolute
    (a Ray Train worker runs in a folder of its own), anything else (a hub model id) unchanged."""
    return path if is_uri(path) or not os.path.exists(path) else os.path.abspath(path)


def _local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


@contextlib.contextmanager
def _errors(action: str, uri: str) -> Iterator[None]:
    try:
        yield
    except OSError as e:  # pyarrow's IOError/ArrowIOError: a refused connection, a denied key, a missing bucket
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise StorageError(f"cannot {action} {uri}: {reason}") from None


# ---- reading ------------------------------------------------------------------------------------------------------

def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    with _errors("look up", uri):
        return fs.get_file_info(path).type != pafs.FileType.NotFound


def require(inputs: dict[str, str], fix: str) -> None:
    """A stage's inputs ({what: uri}) must exist before it starts; else one sentence naming the first missing one
    and `fix`. A model is required by its config.json."""
    for what, uri in inputs.items():
        if not exists(uri):
            raise UserError(f"{what} not found at {uri}: {fix}")


def is_published(uri: str) -> bool:
    """A folder written by `publishing`, complete."""
    return exists(f"{uri}/{MARKER}")


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with _errors("read", uri), fs.open_input_stream(path) as f:
        return f.read()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode()


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def read_table(uri: str, **kwargs) -> pa.Table:
    """One Parquet file (or a folder of them); kwargs go to `pq.read_table` (columns, schema, filters)."""
    fs, path = filesystem(uri)
    with _errors("read", uri):
        return pq.read_table(path, filesystem=fs, **kwargs)


def iter_row_groups(uri: str, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """One Parquet file, a row group at a time: for a file too large to hold."""
    fs, path = filesystem(uri)
    with _errors("read", uri), fs.open_input_file(path) as f:
        reader = pq.ParquetFile(f)
        for group in range(reader.num_row_groups):
            yield reader.read_row_group(group, columns=columns)


def parquet_metadata(uri: str) -> pq.FileMetaData:
    """A Parquet file's footer: row count, schema and per-column statistics, without reading the data."""
    fs, path = filesystem(uri)
    with _errors("read", uri), fs.open_input_file(path) as f:
        return pq.ParquetFile(f).metadata


def list_files(uri: str, suffix: str = "") -> list[str]:
    """The files directly inside folder `uri` whose names end with `suffix`, sorted; none when it does not exist."""
    fs, path = filesystem(uri)
    with _errors("list", uri):
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    names = sorted(posixpath.basename(i.path) for i in infos if i.type == pafs.FileType.File)
    return [f"{uri}/{n}" for n in names if n.endswith(suffix) and not n.startswith(".")]


# ---- writing ------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def open_output(uri: str) -> Iterator[pa.NativeFile]:
    """A stream that becomes the file `uri` when the block ends without error (see the module docstring); on an
    error the target is left as it was and the temporary file is removed."""
    fs, path = filesystem(uri)
    parent, name = posixpath.split(path)
    tmp = f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:12]}"
    with _errors("write", uri):
        if _local(fs):
            fs.create_dir(parent, recursive=True)
        try:
            with fs.open_output_stream(tmp) as out:
                yield out
            fs.move(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                fs.delete_file(tmp)
            raise


def upload_file(local: str | os.PathLike, uri: str) -> str:
    with open(local, "rb") as src, open_output(uri) as out:
        _copy(src, out)
    return uri


def write_bytes(data: bytes, uri: str) -> str:
    with open_output(uri) as out:
        out.write(data)
    return uri


def write_text(text: str, uri: str) -> str:
    return write_bytes(text.encode(), uri)


def write_json(obj: Any, uri: str) -> str:
    return write_text(json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n", uri)


def write_parquet(rows: list[dict] | pa.Table, uri: str, schema: pa.Schema | None = None) -> str:
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)
    with open_output(uri) as out:
        pq.write_table(table, out, row_group_size=ROW_GROUP_ROWS)
    return uri


@contextlib.contextmanager
def parquet_writer(uri: str, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """Stream tables into one Parquet file, published when the block ends: for outputs too large to hold."""
    with open_output(uri) as out, pq.ParquetWriter(out, schema) as writer:
        yield writer


def read_dataset(uri: str, columns: list[str] | None = None):
    """A Ray Dataset over a Parquet file or folder. Its read tasks reserve no CPU: reading is light, and they run
    beside Train workers that on a small machine hold every core."""
    import ray

    fs, path = filesystem(uri)
    return ray.data.read_parquet(path, filesystem=fs, columns=columns, num_cpus=0)


def write_dataset(ds, uri: str, schema: pa.Schema | None = None) -> int:
    """Stream a Ray Dataset, in its order, into one Parquet file published at `uri`; returns the rows written. The
    driver holds one batch at a time."""
    ds.context.execution_options.preserve_order = True
    rows = 0
    with open_output(uri) as out:
        writer = pq.ParquetWriter(out, schema) if schema is not None else None
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=4096):
            batch = batch.select(schema.names).cast(schema) if schema is not None else batch
            writer = writer or pq.ParquetWriter(out, batch.schema)
            writer.write_table(batch)
            rows += batch.num_rows
        if writer is None:
            raise ValueError(f"nothing to write to {uri}: the dataset is empty")
        writer.close()
    return rows


def write_figure(fig, uri: str) -> str:
    """A matplotlib figure as PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return write_bytes(buf.getvalue(), uri)


def delete(uri: str) -> None:
    """Remove a file or a folder (a published folder's marker first); nothing when it does not exist."""
    fs, path = filesystem(uri)
    with _errors("delete", uri):
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            fs.delete_file(path)
        elif info.type == pafs.FileType.Directory:
            if fs.get_file_info(f"{path}/{MARKER}").type == pafs.FileType.File:
                fs.delete_file(f"{path}/{MARKER}")
            fs.delete_dir_contents(path, missing_dir_ok=True)
            if fs.get_file_info(path).type == pafs.FileType.Directory:  # on GCS a folder was its objects' prefix
                fs.delete_dir(path)


@contextlib.contextmanager
def publishing(uri: str) -> Iterator[Path]:
    """A local folder to fill; when the block ends without error it replaces the folder `uri`, marker last. On a
    disk it is a sibling folder renamed into place; on an object store its files are uploaded after the old folder
    (marker first) is deleted, so a reader that checks the marker never takes a half-written folder."""
    fs, path = filesystem(uri)
    if _local(fs):
        parent = Path(path).parent
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{Path(path).name}.tmp-", dir=parent))
        try:
            yield staging
            (staging / MARKER).touch()
            shutil.rmtree(path, ignore_errors=True)
            os.replace(staging, path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return
    with tempfile.TemporaryDirectory(prefix="nba_dpo_publish_") as staging:
        yield Path(staging)
        delete(uri)
        with _errors("write", uri):
            for file in sorted(p for p in Path(staging).rglob("*") if p.is_file()):
                with open(file, "rb") as src, fs.open_output_stream(f"{path}/{file.relative_to(staging)}") as dst:
                    _copy(src, dst)
            with fs.open_output_stream(f"{path}/{MARKER}"):
                pass


def upload_dir(local: str | os.PathLike, uri: str) -> None:
    """Copy a local folder's files to `uri` as they are, overwriting (logs and events that are read while written)."""
    fs, path = filesystem(uri)
    with _errors("write", uri):
        pafs.copy_files(str(local), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def _copy(src, dst, on_bytes: Callable[[int], Any] | None = None) -> None:
    while chunk := src.read(CHUNK):
        dst.write(chunk)
        if on_bytes:
            on_bytes(len(chunk))


# ---- the node-local cache -----------------------------------------------------------------------------------------

def cache_root() -> Path:
    """Where this node keeps fetched copies: NBA_DPO_CACHE_DIR (set per node, on a node-local disk), else
    ~/.cache/nba_dpo."""
    return Path(os.environ.get("NBA_DPO_CACHE_DIR") or Path.home() / ".cache" / "nba_dpo")


def local_copy(uri: str) -> str:
    """A local path to read `uri` from. A local or shared path is itself (absolute); a hub model id is returned as
    it is. An object-store file or folder is fetched into this node's cache, once per content: the key covers every
    file's name, size and mtime, so a republished model is fetched again while an unchanged one is reused."""
    if not is_uri(uri):
        return absolute(uri)
    fs, path = filesystem(uri)
    with _errors("read", uri):
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            files = [i for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
                     if i.type == pafs.FileType.File]
        elif info.type == pafs.FileType.File:
            files = [info]
        else:
            raise StorageError(f"cannot read {uri}: it does not exist")
    name = posixpath.basename(path)
    content = hashlib.sha1(json.dumps(sorted((f.path, f.size, f.mtime_ns) for f in files)).encode()).hexdigest()
    prefix = hashlib.sha1(uri.encode()).hexdigest()[:12]
    entry = cache_root() / f"{prefix}-{content[:16]}"
    target = entry / name
    if target.exists():
        return str(target)
    entry.parent.mkdir(parents=True, exist_ok=True)
    with open(cache_root() / f"{prefix}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another actor of this node may be fetching the same object
        if target.exists():
            return str(target)
        from tqdm import tqdm

        staging = Path(tempfile.mkdtemp(prefix=f".{prefix}.tmp-", dir=cache_root()))
        try:
            with tqdm(total=sum(f.size for f in files), unit="B", unit_scale=True, desc=f"fetching {uri}",
                      disable=sum(f.size for f in files) < 64 << 20) as bar, _errors("read", uri):
                for f in files:
                    rel = name if info.type == pafs.FileType.File else f"{name}/{posixpath.relpath(f.path, path)}"
                    (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                    with fs.open_input_stream(f.path) as src, open(staging / rel, "wb") as dst:
                        _copy(src, dst, bar.update)
            os.replace(staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        for old in cache_root().glob(f"{prefix}-*"):  # earlier contents of the same object
            if old != entry:
                shutil.rmtree(old, ignore_errors=True)
    return str(target)
