"""Proof under fire: crash and fuzz suites, bounded in every CI run, long from bench/reliability.py."""
