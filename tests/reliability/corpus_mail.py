"""The benchmark's synthetic mailbox (bench/corpus.py) as messages the crash tests deliver.

A new seed gives new Message-IDs, so every episode of a crash test brings mail never seen.
"""

from __future__ import annotations

import shutil
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

from bench.corpus import OWNER, generate
from server.crm.threads import normalise_message_id

__all__ = ["OWNER", "corpus_maildir", "maildir_messages", "message_key", "messages"]


def message_key(raw: bytes) -> str:
    """The message's own Message-ID (every generated message has one), in capture's form."""
    header = BytesHeaderParser(policy=compat32).parsebytes(raw)["Message-ID"]
    normalised = normalise_message_id(str(header))
    assert normalised is not None, header
    return f"mid:{normalised}"


def corpus_maildir(out: Path, *, messages: int, seed: int) -> Path:
    generate(out, messages=messages, seed=seed, lean=True)
    return out


def maildir_messages(root: Path) -> list[tuple[str, bytes]]:
    """(folder, bytes) of a corpus Maildir: the root is the INBOX, `Sent` a nested Maildir."""
    found = []
    for folder, path in (("INBOX", root), ("Sent", root / "Sent")):
        for sub in ("cur", "new"):
            found += [(folder, f.read_bytes()) for f in sorted((path / sub).iterdir())]
    return found


def messages(work: Path, *, count: int, seed: int) -> list[tuple[str, bytes]]:
    """`count` messages of a fresh corpus as (INBOX or Sent, bytes), the files removed."""
    root = corpus_maildir(work / f"corpus-{seed}", messages=count, seed=seed)
    found = maildir_messages(root)
    shutil.rmtree(root)
    return found
