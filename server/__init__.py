"""Rapport: an Outlook-centric CRM for small businesses."""

from server import compiled

compiled.install()  # before any of the parser's modules is imported, in every process
