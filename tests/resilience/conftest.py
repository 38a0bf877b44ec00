"""Print each resilience run's figures even when pytest captures output."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def show(capsys: pytest.CaptureFixture[str]) -> Callable[[str, list[str]], None]:
    def emit(title: str, lines: list[str]) -> None:
        with capsys.disabled():
            print(f"\n== {title}")
            for line in lines:
                print(f"   {line}")

    return emit
