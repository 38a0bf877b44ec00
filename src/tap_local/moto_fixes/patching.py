"""One attribute of moto replaced, and put back: what every correction in this package does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Patch:
    """`owner.name` replaced by `replacement` while installed; `original` is moto's own."""

    owner: Any
    name: str
    replacement: Any
    original: Any = field(default=None, init=False)

    def install(self) -> None:
        if self.original is None:  # idempotent: a second install must not wrap the replacement
            self.original = getattr(self.owner, self.name)
            setattr(self.owner, self.name, self.replacement)

    def uninstall(self) -> None:
        if self.original is not None:
            setattr(self.owner, self.name, self.original)
            self.original = None


@dataclass
class Patches:
    """The patches of one correction, installed and removed together."""

    patches: tuple[Patch, ...]

    def install(self) -> None:
        for patch in self.patches:
            patch.install()

    def uninstall(self) -> None:
        for patch in reversed(self.patches):
            patch.uninstall()
