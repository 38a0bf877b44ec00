"""The local pipeline as a user runs it, and what its process tree holds: for the soak and tests.

`PipelineProcess` starts `python -m tap_local up` in a session of its own (so that everything it
starts can be found and, after a stop, shown to be gone); the other functions read `/proc`:
the tree under a process, its memory (PSS), its CPU time by role, and what is left of a session.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT
from tap_local.processes import descendants

PIPELINE_START_TIMEOUT = 180.0


def process_tree(pid: int) -> list[int]:
    return [pid, *descendants(pid)]


def tree_memory_mb(pid: int) -> float:
    """Resident memory of the process tree: the sum of each process's PSS (proportional set size:
    resident pages, each shared page divided among the processes sharing it), so pages the six
    worker interpreters share (the Python binary, libraries) count once, and the sum is what the
    tree really holds in RAM. Falls back to VmRSS where smaps_rollup is unreadable."""
    total_kb = 0
    for member in process_tree(pid):
        for path, field_name in (
            (f"/proc/{member}/smaps_rollup", "Pss"),
            (f"/proc/{member}/status", "VmRSS"),
        ):
            try:
                text = Path(path).read_text()
            except OSError:
                continue
            match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
            if match:
                total_kb += int(match.group(1))
                break
    return total_kb / 1024


def _role(pid: int, root: int) -> str:
    """What a process of the pipeline's tree is: the `up` process, the emulator or a function."""
    if pid == root:
        return "tap_local up (API, SQS pollers, outbox)"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return "other"
    if "tap_local.emulator" in command:
        return "emulator (moto)"
    for entry in environment:
        if entry.startswith(b"AWS_LAMBDA_FUNCTION_NAME="):
            return "function " + entry.split(b"=", 1)[1].decode().rsplit("-", 1)[0]
    return "other"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def tree_cpu_seconds(root: int) -> dict[int, tuple[str, float]]:
    """CPU seconds used so far by each live process of the tree, with its role."""
    usage = {}
    for pid in process_tree(root):
        try:
            usage[pid] = (_role(pid, root), _cpu_seconds(pid))
        except OSError:
            continue
    return usage


def session_members(session_id: int) -> list[int]:
    """Live processes in a session (what a pipeline started with `start_new_session` leaves behind)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields after the command: state, ppid, pgrp, session, ...; zombies are already gone in effect
        if int(fields[3]) == session_id and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PipelineProcess:
    """`python -m tap_local up` in its own session, on free ports, in a temporary workdir."""

    def __init__(self, workers_per_function: int | None = None):
        self.workdir = Path(tempfile.mkdtemp(prefix="tap-soak-"))
        self.outputs_path = self.workdir / "flat-outputs.json"
        environment = {
            **os.environ,
            "PYTHONPATH": f"{REPO_ROOT / 'src'}:{REPO_ROOT}",
            "TAP_LOCAL_API_PORT": str(_free_port()),
            "TAP_LOCAL_EMULATOR_PORT": str(_free_port()),
            "TAP_LOCAL_WORKDIR": str(self.workdir),
            "TAP_LOCAL_OUTPUTS": str(self.outputs_path),
        }
        if workers_per_function is not None:
            environment["TAP_LOCAL_WORKERS"] = str(workers_per_function)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tap_local", "up"],
            env=environment,
            stdout=(self.workdir / "up.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.process.pid

    def wait_ready(self) -> dict[str, Any]:
        deadline = time.monotonic() + PIPELINE_START_TIMEOUT
        while not self.outputs_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.workdir / "up.log").read_text()[-3000:]
                raise RuntimeError(f"the local pipeline did not start:\n{log}")
            time.sleep(0.2)
        return dict(json.loads(self.outputs_path.read_text()))

    def stop(self, how: str = "SIGTERM") -> tuple[float, int]:
        """Stop it by SIGTERM, or by SIGINT to its whole process group ("Ctrl-C", as a terminal
        sends it); seconds until the process exited, and how many processes of its session remain."""
        began = time.monotonic()
        if how == "Ctrl-C":
            os.killpg(self.pid, signal.SIGINT)
        else:
            self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=60)
        seconds = time.monotonic() - began
        time.sleep(0.5)  # workers notice their closed stdin
        left = session_members(self.pid)
        for pid in left:  # never leave anything behind, whatever was measured
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        return seconds, len(left)
