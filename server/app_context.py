"""What the Flask app carries for the request handlers: settings, database, secret box."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from server.config import Settings
from server.crypto import SecretBox
from server.db import Database


@dataclass
class Rapport:
    settings: Settings
    db: Database
    secrets: SecretBox


def rapport(app: Flask) -> Rapport:
    state: Rapport = app.extensions["rapport"]
    return state
