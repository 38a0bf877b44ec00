"""moto server's backend lookup without listing its package directory on every request.

Why this exists: moto 5.2.5's ``DomainDispatcherApplication.get_backend_for_host`` calls
``moto.backends.list_of_moto_modules()`` on every request, which lists moto's package directory
and stats each entry (about 150 ``isdir`` calls). Under load that was about a tenth of the local
emulator's time, spent on an answer that cannot change while the process runs.

The correction lists the directory once and serves the same names from then on.

Upstream note (for a moto issue): "list_of_moto_modules() is called per request by
DomainDispatcherApplication.get_backend_for_host and hits the filesystem each time; caching it
(functools.cache) removes ~10 % of the server's CPU per request."
"""

from __future__ import annotations

from collections.abc import Iterable

import moto.backends as moto_backends

from tap_local.moto_fixes.patching import Patch

_names: tuple[str, ...] | None = None


def _list_of_moto_modules() -> Iterable[str]:
    global _names
    if _names is None:
        _names = tuple(_PATCH.original())
    return iter(_names)


_PATCH = Patch(moto_backends, "list_of_moto_modules", _list_of_moto_modules)


def install() -> None:
    _PATCH.install()


def uninstall() -> None:
    global _names
    _PATCH.uninstall()
    _names = None  # listed again after the next install
