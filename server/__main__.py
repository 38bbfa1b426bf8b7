"""`python -m server` is the `rapport` command."""

from server.entry import main

main()
