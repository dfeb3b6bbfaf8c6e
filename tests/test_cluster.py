"""Cluster configs name real config groups and entry points; a job submitted with scripts/submit.sh to a local Ray
head (started with `ray start --head`) succeeds and writes its outputs."""
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nba_dpo.config import compose
from nba_dpo.pipeline import STAGE_CONFIGS, validate_stages
from tests.conftest import ROOT


def stage_commands(text: str) -> list[list[str]]:
    return [shlex.split(m) for m in re.findall(r"python -m (jobs\.\w+[^\n\"]*)", text)]


@pytest.mark.parametrize("path", ["cluster/aws-gpu.yaml", "cluster/kuberay/raycluster.yaml",
                                  "cluster/kuberay/rayjob.yaml", "cluster/runtime_env.yaml"])
def test_cluster_files_parse(path):
    doc = yaml.safe_load((ROOT / path).read_text())
    assert doc
    text = (ROOT / path).read_text()
    assert "RAY_AUTH_MODE" in text or path.endswith("runtime_env.yaml")
    assert not re.search(r"(?i)(aws_secret|access_key_id|password)\s*[:=]", text)  # no credentials
    for cmd in stage_commands(text):
        module = cmd[0].split(".")[1]
        assert (ROOT / "jobs" / f"{module}.py").exists(), module
        config = {"build_data": "config"}.get(module, module)
        overrides = [a for a in cmd[1:] if "=" in a]
        assert compose(config, overrides)  # every group and key it names exists


def test_experiments_compose():
    for exp in (ROOT / "conf" / "experiment").glob("*.yaml"):
        cfg = compose("pipeline", [f"experiment={exp.stem}"])
        for stage, config in STAGE_CONFIGS.items():
            assert compose(config, list(cfg.pipeline.common) + list(cfg.pipeline[stage]))


def test_vllm_tokenizer_stages_follow_the_cluster():
    """ray.data.llm's tokenize/detokenize actors run beside GPU engines only; asked for on a small CPU machine, the
    job stops with a one-line error instead of waiting forever for CPU slots."""
    pytest.importorskip("vllm")
    from nba_dpo.config import validate
    from nba_dpo.errors import UserError

    assert not validate(compose("generate", ["generate=vllm"])).generate.tokenizer_stages
    assert compose("generate", ["generate=vllm", "cluster=gpu"]).generate.tokenizer_stages
    with pytest.raises(UserError, match="needs at least 4 logical CPUs"):
        validate(compose("generate", ["generate=vllm", "generate.tokenizer_stages=true", "cluster.num_cpus=3"]))


def test_actors_leave_a_cpu_for_ray_data():
    """The generate stage streams its prompts to the generators: Ray Data's tasks between them (listing the pool,
    repartitioning) need a CPU, so actors holding every CPU of the local Ray would wait forever. Stopped before Ray
    starts, with the fix; in a pipeline, whose stages join its Ray, before the first stage."""
    from nba_dpo.config import validate
    from nba_dpo.errors import UserError

    assert validate(compose("generate", ["generate.concurrency=2", "cluster.num_cpus=3"]))
    with pytest.raises(UserError, match="generate.concurrency=3 generators take 3 of the 3 CPUs .* raise "
                                        "cluster.num_cpus"):
        validate(compose("generate", ["generate.concurrency=3", "cluster.num_cpus=3"]))
    with pytest.raises(UserError, match="cluster.num_workers=3 x cluster.cpus_per_worker=1 Train workers take 3"):
        validate(compose("train_dpo", ["cluster.num_workers=3", "cluster.num_cpus=3"]))
    assert validate(compose("generate", ["generate.concurrency=3", "cluster.num_cpus=3", "cluster.address=auto"]))
    pipeline = compose("pipeline", ['pipeline.common=["cluster.num_cpus=3"]', 'pipeline.generate=["score=learned"]'])
    with pytest.raises(UserError, match="generate.concurrency=2 generators and reward_model.concurrency=1 reward "
                                        "scorers on CPU take 3 of the 3 CPUs"):
        validate_stages(pipeline)


def test_vllm_cpu_kv_cache_must_hold_something():
    pytest.importorskip("vllm")
    from nba_dpo.config import validate
    from nba_dpo.errors import UserError

    with pytest.raises(UserError, match="cpu_kv_cache_gib=0 is not allowed: it must be at least 1"):
        validate(compose("generate", ["generate=vllm", "generate.cpu_kv_cache_gib=0"]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_submit_to_local_head(tmp_path):
    ray = str(Path(sys.executable).with_name("ray"))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",  # local test head only
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # the job runs this venv's python
    port, dash, agent = free_port(), free_port(), free_port()
    temp = Path("/tmp") / f"rayhead{port}"  # short: Ray's socket paths are length-limited
    # its own session: every process of this head (raylet, agents, client server) shares the process group
    head = subprocess.Popen([ray, "start", "--head", f"--port={port}", f"--dashboard-port={dash}", "--num-cpus=2",
                             "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--temp-dir={temp}",
                             f"--dashboard-agent-listen-port={agent}"],  # not the default 52365: other Rays may hold it
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert head.wait(timeout=120) == 0, head.stderr.read()
    try:
        out = tmp_path / "out"
        env_submit = {**env, "RAY_ADDRESS": f"http://127.0.0.1:{dash}", "RAY": ray}
        args = ["scripts/submit.sh", "build_data", f"paths.artifacts={out}", "data.sizes.train=100",
                "data.sizes.val=20", "data.sizes.test=20", "data.sizes.pref=20", "data.params_per_intent=20"]
        for _ in range(12):  # a fresh head's job agent takes a few seconds to come up
            proc = subprocess.run(args, cwd=ROOT, env=env_submit, capture_output=True, text=True, timeout=300)
            if "No available agent" not in proc.stdout + proc.stderr:
                break
            time.sleep(5)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        job_id = re.search(r"raysubmit_\w+", proc.stdout + proc.stderr).group(0)
        from ray.job_submission import JobStatus, JobSubmissionClient

        assert JobSubmissionClient(env_submit["RAY_ADDRESS"]).get_job_status(job_id) == JobStatus.SUCCEEDED
        assert (out / "data" / "manifest.json").exists() and (out / "data" / "sft" / "train.parquet").exists()
    finally:  # only this head's processes: `ray stop` would also stop any other Ray on the machine. Killing by
        # command line missed the dashboard agent and client server, which then took ~40% of a core for the rest of
        # the test session
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(2)


@pytest.mark.parametrize("path", ["cluster/aws-gpu.yaml", "cluster/kuberay/rayjob.yaml",
                                  "cluster/kuberay/raycluster.yaml"])
def test_cluster_files_name_shared_storage(path):
    """Nodes share no disk: every launcher's commands put paths.artifacts on an object store."""
    text = (ROOT / path).read_text()
    assert "paths.artifacts=s3://" in text
    for cmd in stage_commands(text):
        assert any(a.startswith("paths.artifacts=s3://") for a in cmd), cmd


LAUNCHERS = ["cluster/aws-gpu.yaml", "cluster/kuberay/raycluster.yaml", "cluster/kuberay/rayjob.yaml"]


def declared_nodes(doc: dict) -> list[dict]:
    """One {"CPU": n, "GPU": m} per node that a cluster file can bring up at most."""
    if "available_node_types" in doc:  # Ray's cluster launcher
        return [{"GPU": 0, **t["resources"]} for name, t in doc["available_node_types"].items()
                for _ in range(1 if name == doc["head_node_type"] else t["max_workers"])]
    spec = doc["spec"].get("rayClusterSpec", doc["spec"])  # KubeRay: a RayJob carries its RayCluster's spec

    def pod(group: dict) -> dict:
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        return {"CPU": float(limits["cpu"]), "GPU": float(limits.get("nvidia.com/gpu", 0))}

    return [pod(spec["headGroupSpec"])] + [pod(g) for g in spec["workerGroupSpecs"] for _ in range(g["maxReplicas"])]


def stage_demands(stage: str, cfg) -> list[list[dict]]:
    """What a stage asks of Ray, phase by phase: the bundles of Train workers and Ray Data actors that run at once
    (actors that reserve nothing, the verifiers and prompt builders, left out)."""
    cluster = cfg.cluster
    gpu = 1 if cluster.use_gpu else 0

    def scorers(rm) -> list[dict]:
        return [{"CPU": 0 if rm.num_gpus else 1, "GPU": rm.num_gpus}] * rm.concurrency if rm else []

    if stage in ("sft", "train_dpo"):
        workers = [{"CPU": cluster.cpus_per_worker, "GPU": cluster.gpus_per_worker * gpu}] * cluster.num_workers
        return [workers] if stage == "sft" or cfg.train.reference != "precompute" else [workers, workers]
    if stage == "generate":
        g = cfg.generate
        engines = g.concurrency * (g.tensor_parallel_size if g.backend == "vllm" else 1)
        return [[{"CPU": 1, "GPU": gpu}] * engines + scorers(cfg.score.reward_model),
                [{"CPU": 1, "GPU": gpu}] * g.concurrency]  # then the reference log-probs of the pairs
    if stage == "evaluate":
        engines = cfg.eval.num_shards * (cfg.eval.tensor_parallel_size if cfg.eval.backend == "vllm" else 1)
        return [[{"CPU": 1, "GPU": gpu}] * engines + scorers(cfg.eval.reward_model)]
    return []


def fits(bundles: list[dict], nodes: list[dict]) -> bool:
    """Whether every bundle finds a node with room for it, placed largest first (Ray's PACK placement)."""
    free = [dict(n) for n in nodes]
    for bundle in sorted(bundles, key=lambda b: (-b["GPU"], -b["CPU"])):
        node = next((n for n in free if all(n[k] >= v for k, v in bundle.items())), None)
        if node is None:
            return False
        for k, v in bundle.items():
            node[k] -= v
    return True


@pytest.mark.parametrize("path", LAUNCHERS)
def test_cluster_files_fit_the_experiments(path):
    """Each hub experiment's stages on each cluster file: every phase's Train workers and actors fit the nodes the
    file declares at most, so no stage waits forever for resources that never come."""
    nodes = declared_nodes(yaml.safe_load((ROOT / path).read_text()))
    for exp in ("qwen_coder_7b_lora_8gpu", "llama3_8b_full_zero3"):
        pipeline = compose("pipeline", [f"experiment={exp}"]).pipeline
        for stage in ("sft", "generate", "train_dpo", "evaluate"):
            cfg = compose(stage, list(pipeline.common) + list(pipeline[stage]))
            for bundles in stage_demands(stage, cfg):
                assert fits(bundles, nodes), (exp, stage, bundles, nodes)


def test_cluster_files_run_the_projects_image():
    """The image every cluster file names is built by cluster/Dockerfile, at the project's version, on the Python
    the project requires; the AWS launcher runs Ray and the jobs inside it."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dockerfile = (ROOT / "cluster" / "Dockerfile").read_text()
    python = re.search(r">=(\d+\.\d+),<", project["requires-python"]).group(1)
    assert f"python{python} -m venv /opt/venv" in dockerfile and 'pip install -e ".[gpu]"' in dockerfile
    torch_pin = next(d for d in project["dependencies"] if d.startswith("torch=="))
    assert f"pip install {torch_pin}" in dockerfile
    image = f"ghcr.io/nba-dpo/nba-dpo:{project['version']}"
    for path in LAUNCHERS:
        named = set(re.findall(r"image:\s*(\S+)", (ROOT / path).read_text()))
        assert named == {image}, (path, named)
    launcher = yaml.safe_load((ROOT / "cluster" / "aws-gpu.yaml").read_text())
    assert launcher["docker"]["image"] == image and f"Python {python}" in " ".join(launcher["setup_commands"])
