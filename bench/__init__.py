"""Benchmarks: capture speed against `notmuch new`, and memory over large imports.

Run from the repository root with the project's virtualenv, e.g.
`.venv/bin/python -m bench.capture_vs_notmuch --messages 5000`; results go to docs/benchmarks.md.
"""
