"""A package's names, each imported from its module the first time it is used: what lets every lesson's first
cell run ``from handwritten import plots, widgets`` without paying for matplotlib, ipywidgets and the other
lessons' pictures. Used by ``handwritten.plots`` and ``handwritten.widgets``."""

from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, homes: dict[str, tuple[str, ...]]):
    """For a package's ``__init__``: ``__all__, __getattr__, __dir__ = lazy_exports(__name__, HOMES)``, where
    ``HOMES`` is ``{module: (name, ...)}``. ``package.name`` imports ``package.module`` (once) and returns its
    ``name``, which the package then keeps; ``dir(package)`` lists every name, imported or not."""
    home = {name: module for module, names in homes.items() for name in names}
    namespace = vars(sys.modules[package])

    def __getattr__(name: str):
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home[name]}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *home})

    return sorted(home), __getattr__, __dir__
