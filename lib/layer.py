"""The functions' third-party packages: one Lambda layer built from requirements/functions.txt (F14).

Build step (needs PyPI; run it before `pulumi preview` / `pulumi up`, and again whenever the pins
change):

    .venv/bin/python -m lib.layer

It installs exactly the pinned requirements, with their dependencies, as wheels for the functions'
runtime (CPython 3.12 on arm64 Linux) into `build/lambda-layer/python/`, and writes
`build/lambda-layer/manifest.json`: the sha256 of requirements/functions.txt, the target, every
installed distribution with its version and top-level import names, and which bytecode it holds.

Bytecode: Lambda mounts the layer read-only, so a module without a matching `.pyc` is compiled in
memory at every cold start (BENCHMARKS.md measures what that costs: most of a second on this
machine). Only an interpreter of the runtime's own version can write bytecode the runtime loads, so
the build compiles the layer when it runs on Python 3.12 and otherwise says the layer has none
(`bytecode_problem`, shown as a warning by `pulumi preview`/`up`).

The program itself never touches the network: `load_settings` checks that the built directory
matches the current pins (`layer_problem`) and the stack packages that directory as the functions'
only layer. Lambda puts `/opt/python` (the layer) ahead of the runtime's own libraries on
`sys.path`, so the functions import the pinned boto3 and pydantic, not the versions the runtime or
a public layer happens to carry.
"""

from __future__ import annotations

import compileall
import contextlib
import hashlib
import importlib.metadata
import json
import py_compile
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO_ROOT / "requirements" / "functions.txt"
DEFAULT_LAYER_DIR = REPO_ROOT / "build" / "lambda-layer"
MANIFEST_NAME = "manifest.json"
SITE_DIR_NAME = "python"  # Lambda adds /opt/python to sys.path
LAYER_SITE_PATH = "/opt/" + SITE_DIR_NAME
# The functions' runtime and architecture (lib/components/functions.py: RUNTIME, ARCHITECTURE).
TARGET_PYTHON = "3.12"
TARGET_PLATFORM = "manylinux2014_aarch64"
# `packaging` marker environment of that runtime, to resolve the dependency closure for it.
TARGET_MARKERS = {
    "implementation_name": "cpython",
    "implementation_version": "3.12.0",
    "os_name": "posix",
    "platform_machine": "aarch64",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": "3.12.0",
    "python_version": TARGET_PYTHON,
    "sys_platform": "linux",
}
# The `.pyc` tag the runtime loads (`sys.implementation.cache_tag` of CPython 3.12).
RUNTIME_CACHE_TAG = "cpython-" + TARGET_PYTHON.replace(".", "")
# Bytecode checked against its source by hash, not by modification time: the zips Lambda unpacks do
# not keep the build's mtimes, so timestamp-checked `.pyc` files would be ignored, and a hash can
# never let a stale `.pyc` run. Hash-based `.pyc` files are also reproducible (no timestamps), so
# the asset hashes Pulumi compares change only when the code does.
BYTECODE_MODE = py_compile.PycInvalidationMode.CHECKED_HASH
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*==\s*([^\s;#]+)")


class LayerError(RuntimeError):
    """The layer cannot be built or resolved; the message says what to do."""


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines(requirements: Path = REQUIREMENTS) -> list[str]:
    lines = []
    for raw in requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def pins(requirements: Path = REQUIREMENTS) -> dict[str, str]:
    """Canonical distribution name -> pinned version; every requirement must be pinned with `==`."""
    pinned = {}
    for line in requirement_lines(requirements):
        match = _PIN.match(line)
        if not match:
            raise LayerError(f"{requirements.name}: {line!r} is not pinned with ==")
        pinned[canonical_name(match.group(1))] = match.group(3)
    return pinned


def requirements_digest(requirements: Path = REQUIREMENTS) -> str:
    return hashlib.sha256(requirements.read_bytes()).hexdigest()


def top_level_modules(paths: Iterable[str]) -> set[str]:
    """Import names a distribution installs, from the paths of its RECORD (relative to site dir)."""
    modules = set()
    for path in paths:
        parts = PurePosixPath(path).parts
        if not parts or parts[0] in ("..", "__pycache__", "bin"):
            continue
        if parts[0].endswith((".dist-info", ".data", ".egg-info")):
            continue
        if len(parts) > 1:
            modules.add(parts[0])
        elif parts[0].endswith((".py", ".so", ".pyd")):
            modules.add(parts[0].split(".", 1)[0])
    return modules


def _distribution_entry(distribution: importlib.metadata.Distribution) -> dict[str, Any]:
    return {
        "version": distribution.version,
        "modules": sorted(top_level_modules(str(f) for f in distribution.files or [])),
    }


def installed_distributions(site_dir: Path) -> dict[str, dict[str, Any]]:
    """Every distribution installed in `site_dir` (what the layer really holds)."""
    found = {}
    for dist_info in sorted(site_dir.glob("*.dist-info")):
        distribution = importlib.metadata.PathDistribution(dist_info)
        found[canonical_name(distribution.metadata["Name"])] = _distribution_entry(distribution)
    return found


def manifest_for(
    layer_dir: Path, requirements: Path = REQUIREMENTS, bytecode: str | None = None
) -> dict[str, Any]:
    return {
        "requirements_sha256": requirements_digest(requirements),
        "python_version": TARGET_PYTHON,
        "platform": TARGET_PLATFORM,
        "bytecode": bytecode,
        "distributions": installed_distributions(layer_dir / SITE_DIR_NAME),
    }


@contextlib.contextmanager
def plain_bytecode_paths() -> Iterator[None]:
    """Write `.pyc` files next to their sources even when PYTHONPYCACHEPREFIX points elsewhere."""
    prefix, sys.pycache_prefix = sys.pycache_prefix, None
    try:
        yield
    finally:
        sys.pycache_prefix = prefix


def builds_runtime_bytecode(runtime_tag: str = RUNTIME_CACHE_TAG) -> bool:
    """True when this interpreter writes bytecode the functions' runtime loads (same version)."""
    return sys.implementation.cache_tag == runtime_tag


def compile_bytecode(site_dir: Path, runtime_tag: str = RUNTIME_CACHE_TAG) -> str | None:
    """Compile every module under `site_dir` for the runtime; the cache tag written, or None if this
    interpreter is not the runtime's version (its bytecode would be ignored there)."""
    if not builds_runtime_bytecode(runtime_tag):
        return None
    with plain_bytecode_paths():
        compiled = compileall.compile_dir(
            site_dir,
            ddir=LAYER_SITE_PATH,  # the paths tracebacks show in Lambda, and no build path in the zip
            quiet=1,
            workers=0,
            optimize=0,  # `name.<tag>.pyc`, never the `.opt-N.pyc` an -O interpreter would write
            invalidation_mode=BYTECODE_MODE,
        )
    if not compiled:
        # Packages may ship files that are never imported (examples, other Pythons' shims); those
        # stay source-only, and an imported one would fail in Lambda too (the import scan covers ours).
        print(f"warning: some files under {site_dir} do not compile (listed above)", file=sys.stderr)
    return runtime_tag


def bytecode_problem(layer_dir: Path) -> str | None:
    """Why the built layer makes every cold start compile its modules, or None."""
    manifest = read_manifest(layer_dir) or {}
    if manifest.get("bytecode") == RUNTIME_CACHE_TAG:
        return None
    return (
        f"the dependency layer in {layer_dir} holds no Python {TARGET_PYTHON} bytecode (built with "
        f"another Python), so every cold start compiles the libraries it imports in memory "
        f"(BENCHMARKS.md, cold start: most of a second on the benchmark machine). Rebuild it with "
        f"Python {TARGET_PYTHON}: python{TARGET_PYTHON} -m lib.layer"
    )


def read_manifest(layer_dir: Path) -> dict[str, Any] | None:
    try:
        manifest: dict[str, Any] = json.loads((layer_dir / MANIFEST_NAME).read_text())
        return manifest
    except (OSError, ValueError):
        return None


def layer_problem(layer_dir: Path, requirements: Path = REQUIREMENTS) -> str | None:
    """Why `layer_dir` is not a layer built from the current pins for the target, or None."""
    manifest = read_manifest(layer_dir)
    site_dir = layer_dir / SITE_DIR_NAME
    if manifest is None or not site_dir.is_dir():
        return f"the functions' dependency layer is not built in {layer_dir}"
    if manifest.get("requirements_sha256") != requirements_digest(requirements):
        return f"the layer in {layer_dir} was built from another {requirements.name}"
    target = (manifest.get("platform"), manifest.get("python_version"))
    if target != (TARGET_PLATFORM, TARGET_PYTHON):
        return f"the layer in {layer_dir} was built for {target}, not {(TARGET_PLATFORM, TARGET_PYTHON)}"
    installed = installed_distributions(site_dir)
    if installed != manifest.get("distributions"):
        return f"the packages in {site_dir} are not the ones its manifest lists"
    for name, version in pins(requirements).items():
        held = installed.get(name, {}).get("version")
        if held != version:
            return f"the layer in {layer_dir} holds {name} {held}, not the pinned {version}"
    return None


def provided_modules(distributions: dict[str, dict[str, Any]]) -> set[str]:
    return {module for entry in distributions.values() for module in entry["modules"]}


def resolve_from_environment(requirements: Path = REQUIREMENTS) -> dict[str, dict[str, Any]]:
    """What the build step installs, resolved without the network from this environment's metadata.

    The pinned requirements and their dependency closure for the target runtime (markers evaluated
    for CPython 3.12 on arm64 Linux), each with its installed version and import names. Fails if a
    pinned distribution is installed here at another version, or a needed one is not installed:
    then this environment cannot tell what the layer holds (run `make install`).
    """
    from packaging.requirements import Requirement

    pinned = pins(requirements)
    resolved: dict[str, dict[str, Any]] = {}
    extras_seen: dict[str, set[str]] = {}
    pending = [Requirement(line) for line in requirement_lines(requirements)]
    while pending:
        requirement = pending.pop()
        name = canonical_name(requirement.name)
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise LayerError(f"{name} (needed by the layer) is not installed in this environment") from None
        if name in pinned and distribution.version != pinned[name]:
            raise LayerError(f"{name} is installed at {distribution.version}, pinned at {pinned[name]}")
        if not requirement.specifier.contains(distribution.version, prereleases=True):
            raise LayerError(f"{name} {distribution.version} does not satisfy {requirement}")
        extras = set(requirement.extras)
        if name in resolved and extras <= extras_seen[name]:
            continue
        extras_seen[name] = extras_seen.get(name, set()) | extras
        resolved[name] = _distribution_entry(distribution)
        for text in distribution.requires or []:
            dependency = Requirement(text)
            if dependency.marker is None or any(
                dependency.marker.evaluate({**TARGET_MARKERS, "extra": extra})
                for extra in ("", *sorted(extras_seen[name]))
            ):
                pending.append(dependency)
    return resolved


def pip_command(site_dir: Path, requirements: Path = REQUIREMENTS) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--only-binary=:all:",
        "--platform",
        TARGET_PLATFORM,
        "--implementation",
        "cp",
        "--python-version",
        TARGET_PYTHON,
        "--target",
        str(site_dir),
        "--requirement",
        str(requirements),
    ]


def build(layer_dir: Path = DEFAULT_LAYER_DIR, requirements: Path = REQUIREMENTS) -> dict[str, Any]:
    """Install the pinned requirements for the target into `layer_dir` and write its manifest."""
    if layer_dir.exists():
        shutil.rmtree(layer_dir)
    site_dir = layer_dir / SITE_DIR_NAME
    site_dir.mkdir(parents=True)
    subprocess.run(pip_command(site_dir, requirements), check=True)  # noqa: S603 - fixed argv
    manifest = manifest_for(layer_dir, requirements, compile_bytecode(site_dir))
    (layer_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    problem = layer_problem(layer_dir, requirements)
    if problem:
        raise LayerError(problem)
    return manifest


def main() -> None:
    manifest = build()
    problem = bytecode_problem(DEFAULT_LAYER_DIR)
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
    print(
        f"built {DEFAULT_LAYER_DIR}: "
        + ", ".join(f"{name} {entry['version']}" for name, entry in sorted(manifest["distributions"].items()))
    )


if __name__ == "__main__":
    main()
