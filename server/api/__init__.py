"""The HTTP API: one blueprint per resource, each module exposing `bp`."""

from __future__ import annotations

import importlib
import pkgutil

from flask import Blueprint


def blueprints() -> list[Blueprint]:
    """Every module of this package that defines `bp` contributes its blueprint (so adding a
    resource is one new module, with no registry to edit)."""
    found = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        bp = getattr(loaded, "bp", None)
        if isinstance(bp, Blueprint):
            found.append(bp)
    return found
