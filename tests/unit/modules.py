"""Run one of the repository's own modules (`python -m ...`) as a user would, for end-to-end checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_module(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'src'}:{REPO_ROOT}"}
    for name in [k for k in env if k.startswith("POWERTOOLS_")]:
        env.pop(name)  # the module sets the functions' Lambda-like environment itself
    env.pop("AWS_ENDPOINT_URL", None)  # its AWS is in-process moto, never a pipeline left running
    return subprocess.run(  # noqa: S603 - our own interpreter and package
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
