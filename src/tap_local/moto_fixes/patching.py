"""One attribute of moto replaced, and put back: what every correction in this package does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

# What is replaced: a replacement stands in for moto's own, so both have its type.
F = TypeVar("F")


@dataclass
class Patch(Generic[F]):
    """`owner.name` replaced by `replacement` while installed; `original` is moto's own (set by install)."""

    owner: Any
    name: str
    replacement: F
    original: F = field(init=False, repr=False, compare=False)
    installed: bool = field(default=False, init=False)

    def install(self) -> None:
        if not self.installed:  # idempotent: a second install must not wrap the replacement
            self.original = getattr(self.owner, self.name)
            setattr(self.owner, self.name, self.replacement)
            self.installed = True

    def uninstall(self) -> None:
        if self.installed:
            setattr(self.owner, self.name, self.original)
            self.installed = False


@dataclass
class Patches:
    """The patches of one correction, installed and removed together."""

    patches: tuple[Patch[Any], ...]

    def install(self) -> None:
        for patch in self.patches:
            patch.install()

    def uninstall(self) -> None:
        for patch in reversed(self.patches):
            patch.uninstall()
