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

from server.crm.signals.model import KINDS, Kind
from server.crm.signals.read import SignalView, list_signals, signals_for_contacts

__all__ = ["KINDS", "Kind", "SignalView", "list_signals", "signals_for_contacts"]
