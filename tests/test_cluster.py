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
        for stage, config in (("build_data", "config"), ("sft", "sft"), ("generate", "generate"),
                              ("train_dpo", "train_dpo"), ("evaluate", "evaluate")):
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
