"""Relationship signals: whom to contact, when, and why.

    model.py     the dataclasses the rules read (timelines, deals, companies) and write (Signal)
    worktime.py  business days and hours in a time zone
    config.py    the thresholds, their defaults and checks (stored as one admin setting)
    rules.py     the rules: pure functions, no database (tests/unit/test_signals.py)
    store.py     loading timelines, recomputing subjects, storing signals
    dirty.py     the one call capture makes: which contacts new mail touched
    upkeep.py    the worker's job kinds that keep signals current
    read.py      what a person sees, snoozes and dismisses (API, task pane lookup)

Signals are computed when mail arrives (for the contacts it touched) and stored with the moment
they become due, so reading them is one indexed query; docs/signals.md explains each kind.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.crm.signals.model import KINDS, Kind
    from server.crm.signals.read import SignalView, list_signals, signals_for_contacts

__all__ = ["KINDS", "Kind", "SignalView", "list_signals", "signals_for_contacts"]

# Imported on first use: capture imports only `dirty`, and read.py (with the cards) is slow to load.
_LAZY = {
    "KINDS": "model",
    "Kind": "model",
    "SignalView": "read",
    "list_signals": "read",
    "signals_for_contacts": "read",
}


def __getattr__(name: str) -> Any:
    """The names above, from their submodule."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
