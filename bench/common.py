"""Helpers shared by the benchmarks: statistics, machine description, the moto backend."""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mode:
    """Sizes of one benchmark run: ``quick`` only proves the code executes, ``full`` produces figures."""

    name: str

    @property
    def quick(self) -> bool:
        return self.name == "quick"


def median_spread(values: list[float]) -> tuple[float, float, float]:
    """Median, min and max: the spread shows how noisy the machine was during the run."""
    return statistics.median(values), min(values), max(values)


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


PACKAGES = ("boto3", "botocore", "moto", "aws-lambda-powertools", "pydantic", "aws-xray-sdk")


def machine() -> dict[str, str]:
    """What the figures were measured on (they do not transfer to Lambda's arm64 cores 1:1)."""
    info = {
        "cpu count": str(os.cpu_count()),
        "cpu model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    for package in PACKAGES:
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info
