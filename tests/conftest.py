import contextlib
import os
from pathlib import Path

import pytest
from nba_dpo.config import compose as compose_cfg  # noqa: F401  (tests import it from here)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ROOT = Path(__file__).resolve().parents[1]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    """scripts/test.sh runs the suite on two pytest-xdist workers (`--dist loadgroup --no-loadscope-reorder`): the
    tests that use the tiny model or its pairs go to one worker, which builds them once, and the tests that use the
    two-node cluster to one worker, which starts it and runs the pipeline on it once. These two groups, the longest
    units, come first, so that each worker takes one (a worker with two tests or fewer pending takes the next unit);
    short modules fill in behind whichever finishes first."""
    for item in items:
        if {"tiny_artifacts", "tiny_prefs"} & set(item.fixturenames):
            item.add_marker(pytest.mark.xdist_group("tiny"))
        if "two_nodes" in item.fixturenames:
            item.add_marker(pytest.mark.xdist_group("multinode"))
    first = ["tiny", "multinode"]

    def rank(item) -> int:
        groups = [m.args[0] for m in item.iter_markers("xdist_group")]
        return next((first.index(g) for g in groups if g in first), len(first))

    items.sort(key=rank)  # stable: the collection order within each unit and among the rest


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


# Tiny sizes for the end-to-end tests (conf/experiment/tiny.yaml): real Ray, Ray Data, Ray Train, TRL and DeepSpeed,
# seconds of compute.
TINY = compose_cfg("pipeline", ["experiment=tiny"]).pipeline
TINY_DATA = [o for o in TINY.common if o.startswith("data.")]
TINY_MODEL = [o for o in TINY.common if o.startswith("model.")]
TINY_TRAIN = list(TINY.sft)


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory):
    """Tiny data and a tiny SFT model (6 steps of full SFT under ZeRO-2 on 2 Ray Train workers, which
    test_sft_eval_e2e.py checks), once per session."""
    import ray

    from nba_dpo.config import validate
    from nba_dpo.data.build import build_data
    from nba_dpo.training.sft import train_sft

    root = tmp_path_factory.mktemp("tiny")
    build_data(validate(compose_cfg("config", [f"paths.artifacts={root}"] + TINY_DATA)))
    train_sft(validate(compose_cfg("sft", [f"paths.artifacts={root}", "run_name=tiny"] + TINY_DATA + TINY_MODEL
                                   + TINY_TRAIN + ["deepspeed=zero2"])))
    yield root
    ray.shutdown()


# Tiny preference data: the hf backend on the tiny SFT model, 3 part files of 8 prompts x 4 samples.
N_PROMPTS, N_SAMPLES, CHUNK = 24, 4, 8


def gen_cfg(artifacts: Path, name: str, *overrides: str):
    from nba_dpo.config import validate

    return validate(compose_cfg("generate", [f"paths.artifacts={artifacts}", f"generate.limit={N_PROMPTS}",
                                             f"generate.num_samples={N_SAMPLES}", "generate.max_new_tokens=48",
                                             f"generate.batch_size={CHUNK}", f"generate.chunk_prompts={CHUNK}",
                                             f"generate.output_dir=${{paths.artifacts}}/prefs_{name}"]
                               + TINY_DATA + TINY_MODEL + list(overrides)))


@pytest.fixture(scope="session")
def tiny_prefs(tiny_artifacts):
    """The generate stage's output (candidates, pairs with stored reference log-probs), once per session:
    (config, summary). The generate tests check it; the DPO tests train on its pairs."""
    from nba_dpo.prefs.run import generate_preferences

    cfg = gen_cfg(tiny_artifacts, "hf")
    return cfg, generate_preferences(cfg)


@contextlib.contextmanager
def serving(server):
    """`server.env` in this process's environment (and so in every process it starts) while the block runs; then
    the server stopped and the environment as it was."""
    try:
        with pytest.MonkeyPatch.context() as env:
            for key, value in server.env.items():
                env.setenv(key, value)
            yield
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server (SeaweedFS) on 127.0.0.1 for the session, reached through the standard AWS variables only,
    which this process (and every process it starts) gets."""
    from tests.servers import S3Server

    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    server.bucket = server.create_bucket("nba-dpo-tests")  # one bucket: SeaweedFS gives each its own volumes
    with serving(server):
        yield server


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory):
    """A Google Cloud Storage emulator on 127.0.0.1 for the session, reached through STORAGE_EMULATOR_HOST only."""
    from tests.servers import GcsServer

    server = GcsServer(tmp_path_factory.mktemp("gcs"), bucket="nba-dpo-tests")
    with serving(server):
        yield server


def fresh_prefix(server, request) -> str:
    """A fresh prefix of a session server's bucket for one test: <bucket>/<test name>."""
    import re

    return f"{server.bucket}/{re.sub(r'[^a-z0-9-]', '-', request.node.name.lower())}"


@pytest.fixture
def bucket(s3_server, request) -> str:
    """A fresh prefix of the session's S3 bucket for one test: s3://nba-dpo-tests/<test name>."""
    return fresh_prefix(s3_server, request)


PIN = "cluster.resources={node_b: 1}"  # every Train worker and Ray Data actor on node B of `two_nodes`


@pytest.fixture(scope="session")
def two_nodes(s3_server, tmp_path_factory):
    """A real two-node Ray cluster on this machine (tests/servers.py). Node B runs in a mount namespace of its own,
    with empty tmpfs folders over the head's local artifacts folder (`.local`) and over the node cache
    (NBA_DPO_CACHE_DIR, `.cache`): it cannot see the head's disk, as a second machine could not."""
    from tests.servers import RayCluster, unshare_permitted

    if not unshare_permitted():
        pytest.skip("`unshare --mount` is not permitted here (it needs root): there is no second node that cannot "
                    "see this disk")
    root = tmp_path_factory.mktemp("cluster")
    local, cache = root / "local", root / "cache"
    env = {**os.environ, "NBA_DPO_CACHE_DIR": str(cache),
           # the head declares a node dead after ~3 s without an answer, not 30
           "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}
    c = RayCluster(root, env, head_cpus=1)
    try:
        c.add_node("node_b", cpus=3, hidden=[local, cache])
        c.local, c.cache = local, cache
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def two_node_pipeline(two_nodes, s3_server, tmp_path_factory):
    """The seed's entry point (implement_rec_047.py) on `two_nodes`: the tiny pipeline with paths.artifacts=
    s3://<bucket>/multinode/run, this process its driver on the head (as under ray job submit), every stage's Train
    workers and Ray Data actors pinned to node B. (entry point, execute()'s result, the driver's folder)"""
    from implement_rec_047 import ImplementCreateAndFinetuneWithPreferenceDatasets

    pinned = ",".join(f'"{o}"' for o in [*TINY.common, PIN])
    # greedy evaluation only: the sampled pass@k is the same path once more (test_sft_eval_e2e.py runs it)
    entry = ImplementCreateAndFinetuneWithPreferenceDatasets(
        artifacts=f"{s3_server.bucket}/multinode/run", overrides=[f"pipeline.common=[{pinned}]",
                                                                 "pipeline.eval_samples=0"])
    entry.setup()
    cwd = tmp_path_factory.mktemp("driver")
    with two_nodes.driver(cwd):
        result = entry.execute()
    return entry, result, cwd
