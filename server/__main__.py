"""`python -m server` is the `rapport` command."""

from server.cli import main

main(prog_name="rapport")
