"""Settings are written by several processes at once (two workers starting together)."""

from __future__ import annotations

import threading

from server.crm.settings import get_setting, set_setting
from server.db import Database


def test_two_writers_of_a_new_setting_both_succeed_and_the_last_one_wins(db: Database) -> None:
    started = threading.Event()
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            started.set()
            with db.session() as session:
                set_setting(session, "test.race", "second")
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    with db.session() as session:
        set_setting(session, "test.race", "first")
        session.flush()
        thread = threading.Thread(target=second_writer)
        thread.start()
        started.wait()
        thread.join(timeout=0.5)  # let the second writer reach the row this one holds
    thread.join(timeout=30)

    assert errors == []
    with db.read_session() as session:
        assert get_setting(session, "test.race") == "second"


def test_a_setting_read_in_the_same_session_shows_the_new_value(db: Database) -> None:
    with db.session() as session:
        set_setting(session, "test.same", 1)
    with db.session() as session:
        assert get_setting(session, "test.same") == 1
        set_setting(session, "test.same", 2)
        assert get_setting(session, "test.same") == 2
