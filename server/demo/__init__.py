"""Demo data for Rapport: a fictional small business's mailboxes to import and explore.

`generate_demo` (in `generator.py`) writes them; the `rapport demo` command captures them through
the ordinary `rapport import` path, so the demo shows exactly what real mail would.
"""
