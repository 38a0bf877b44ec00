"""`python -m bench --mode quick` runs every benchmark end to end (what CI checks; no timing asserts)."""

from __future__ import annotations

from tests.unit.modules import REPO_ROOT, run_module


def test_quick_mode_runs_every_benchmark_and_reports_its_figures(tmp_path):
    output = tmp_path / "bench.md"
    result = run_module("bench", "--mode", "quick", "--output", str(output), timeout=300)

    assert result.returncode == 0, result.stderr[-3000:]
    report = output.read_text()
    assert report in result.stdout
    for heading in (
        "## 1. Cold start",
        "## 2. Cost per transaction",
        "### Hot merchant",
        "## 3. Handler CPU and capacity",
        "### Capacity at 1,000 TPS, 512 MB",
        "## 4. Local pipeline soak",
        "## 5. Emulator cost per call against stored items",
        "## Summary of targets",
    ):
        assert heading in report
    for figure in (
        "| validator |",
        "| fraud_detector |",
        "| failed_handler |",
        "import+init without bytecode",
        "| handler | import+init | first request | init + first request |",
        "before the snapshot: import+init+hooks",
        "after a restore: hooks",
        "| 100 |",
        "Cache refresh, measured once",
        "| process | CPU ms per transaction | share |",
        "| emulator (moto) |",
        "SIGTERM after the soak",
        "| moto 5.2.5 as released |",
        "| moto 5.2.5 + tap_local.moto_fixes |",
    ):
        assert figure in report
    assert "**Quick mode**" in report
    assert (
        not (REPO_ROOT / "BENCHMARKS.md").exists()
        or "--mode full" in (REPO_ROOT / "BENCHMARKS.md").read_text()
    )


def test_cold_start_alone_replaces_section_1_and_its_summary_rows_and_keeps_the_rest(tmp_path):
    output = tmp_path / "bench.md"
    earlier = (REPO_ROOT / "BENCHMARKS.md").read_text()
    output.write_text(earlier)
    result = run_module(
        "bench", "--mode", "quick", "--only", "cold-start", "--output", str(output), timeout=300
    )

    assert result.returncode == 0, result.stderr[-3000:]
    report = output.read_text()
    assert "regenerated alone by `python -m bench --mode quick --only cold-start`" in report
    assert "| handler | import+init | first request | init + first request |" in report
    # Every other section is the earlier run's, byte for byte.
    assert (
        report[report.index("## 2. ") : report.index("## Summary of targets")]
        == (earlier[earlier.index("## 2. ") : earlier.index("## Summary of targets")])
    )
    assert report.count("| cold start ") == 3
    assert "<= 1.5x baseline" in report
