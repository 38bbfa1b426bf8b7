"""The EWS emulator answers as Exchange does, quirks included: the source's tests
(tests/integration/test_ews_source.py) rely on each behaviour checked here. Requests go through
exchangelib (as the source sends them) or plain requests where the HTTP layer is the point."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from exchangelib.errors import (  # type: ignore[import-untyped]
    ErrorImpersonateUserDenied,
    ErrorInvalidSyncStateData,
    ErrorItemNotFound,
    ErrorServerBusy,
    UnauthorizedError,
)
from exchangelib.items import CalendarItem, Message  # type: ignore[import-untyped]
from requests_ntlm import HttpNtlmAuth

from server.mail_ingest.errors import CursorInvalid, Throttled
from server.mail_ingest.sources.ews import EwsClient, EwsSettings
from tests.emulators.ews import EwsEmulator, ews, ews_server  # noqa: F401
from tests.support.mail import make_email

USER = "CONTOSO\\svc-emulator"
PASSWORD = "correct horse battery staple"
_count = iter(range(10_000))


@pytest.fixture
def mailbox(ews: EwsEmulator) -> str:  # noqa: F811
    ews.add_account(USER, PASSWORD, impersonation=True)
    address = f"m{os.getpid()}x{next(_count)}@contoso.com"
    ews.add_mailbox(address)
    return address


@pytest.fixture
def client(ews: EwsEmulator, mailbox: str) -> Iterator[EwsClient]:  # noqa: F811
    settings = EwsSettings(
        server=ews.url,
        mailbox=mailbox,
        user=USER,
        password=PASSWORD,
        ca_bundle=ews.ca_path,
        timeout=10,
        attempts=1,
    )
    made = EwsClient(settings)
    yield made
    made.close()


def sync(
    client: EwsClient, folder_id: str, state: str | None
) -> tuple[list[tuple[str, str]], str, bool]:
    answer = client.sync_page(folder_id, state, ("datetime_received",), Message, "test")
    changes = [
        (kind, str(getattr(item, "id", None) or item[0].id)) for kind, item in answer.changes
    ]
    return changes, answer.state, answer.last


def soap(body: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
        'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    )


def test_ntlm_signs_a_connection_in_and_refuses_a_wrong_password(
    ews: EwsEmulator,  # noqa: F811
    mailbox: str,
) -> None:
    ews.grant_full_access(mailbox, USER)
    probe = soap(
        "<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>"
        '<m:FolderIds><t:DistinguishedFolderId Id="inbox"><t:Mailbox>'
        f"<t:EmailAddress>{mailbox}</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId>"
        "</m:FolderIds></m:GetFolder>"
    )
    with requests.Session() as http:
        http.trust_env = False
        http.verify = str(ews.ca_path)
        bare = http.post(ews.url, data=probe)
        assert bare.status_code == 401
        assert {"NTLM", "Negotiate"} <= {
            v.strip() for v in bare.headers["WWW-Authenticate"].split(",")
        }
        http.auth = HttpNtlmAuth(USER, "wrong")
        assert http.post(ews.url, data=probe).status_code == 401
    with requests.Session() as http:
        http.trust_env = False
        http.verify = str(ews.ca_path)
        http.auth = HttpNtlmAuth(USER, PASSWORD)
        answer = http.post(ews.url, data=probe)
        assert answer.status_code == 200, answer.text
        assert b"ServerVersionInfo" in answer.content and b"NoError" in answer.content
        # Outside the handshake, the same connection stays signed in (as IIS keeps it).
        http.auth = None
        assert http.post(ews.url, data=probe).status_code == 200


def test_basic_auth_when_the_virtual_directory_allows_it(tmp_path: Path) -> None:
    with EwsEmulator(tmp_path, auth="basic") as basic:
        basic.add_account("svc@contoso.com", PASSWORD)
        with requests.Session() as http:
            http.trust_env = False
            http.verify = str(basic.ca_path)
            refused = http.post(
                basic.url, data=soap("<m:ConvertId/>"), auth=("svc@contoso.com", "x")
            )
            assert refused.status_code == 401
            assert refused.headers["WWW-Authenticate"].startswith("Basic")
            ok = http.post(
                basic.url, data=soap("<m:ConvertId/>"), auth=("svc@contoso.com", PASSWORD)
            )
            assert ok.status_code == 200 and b"ErrorInvalidIdMalformed" in ok.content


def test_sync_pages_replay_and_moves_change_item_ids(
    ews: EwsEmulator,  # noqa: F811
    mailbox: str,
    client: EwsClient,
) -> None:
    inbox = ews.folder_id(mailbox, "inbox")
    ids = [
        ews.deliver(mailbox, make_email(sender="c@client.example", to=mailbox, subject=f"Q{n}"))
        for n in range(5)
    ]
    ews.page_limit = 3
    first, state, last = sync(client, inbox, None)
    assert [k for k, _ in first] == ["create"] * 3 and not last
    again, _, _ = sync(client, inbox, None)
    assert again == first, "the same state (none) gives the same page"
    rest, state, last = sync(client, inbox, state)
    assert len(rest) == 2 and last
    assert {i for _, i in first + rest} == set(ids)
    moved = ews.move(mailbox, ids[0], "sentitems")
    ews.mark_read(mailbox, ids[1])
    changes, state, last = sync(client, inbox, state)
    assert sorted(changes) == sorted([("read_flag_change", ids[1]), ("delete", ids[0])])
    assert moved != ids[0], "a moved item has a new ItemId"
    sent, _, _ = sync(client, ews.folder_id(mailbox, "sentitems"), None)
    assert sent == [("create", moved)]
    unchanged, _, last = sync(client, inbox, state)
    assert unchanged == [] and last


def test_mime_content_and_item_not_found(
    ews: EwsEmulator,  # noqa: F811
    mailbox: str,
    client: EwsClient,
) -> None:
    raw = make_email(sender="c@client.example", to=mailbox, subject="Quote")
    item_id = ews.deliver(mailbox, raw)
    found, missing = client.get_items(
        [(item_id, None), ("AAMkADnothere", None)], ("mime_content", "size"), Message, "mime"
    )
    assert found.mime_content == raw and found.size == len(raw)
    assert isinstance(missing, ErrorItemNotFound)


def test_faults_server_busy_with_back_off_and_invalid_sync_state(
    ews: EwsEmulator,  # noqa: F811
    mailbox: str,
    client: EwsClient,
) -> None:
    inbox = ews.folder_id(mailbox, "inbox")
    ews.deliver(mailbox, make_email(sender="c@client.example", to=mailbox))
    _, state, _ = sync(client, inbox, None)
    ews.busy_next(1, back_off_ms=400)
    with pytest.raises(Throttled) as busy:
        sync(client, inbox, state)
    assert isinstance(busy.value.__cause__, ErrorServerBusy)
    assert busy.value.retry_after == 0.4, "BackOffMilliseconds, read through exchangelib"
    ews.invalidate_sync_state(mailbox, "inbox")
    with pytest.raises(CursorInvalid) as invalid:
        sync(client, inbox, state)
    assert isinstance(invalid.value.__cause__, ErrorInvalidSyncStateData)
    assert ews.count("SyncFolderItems", code="ErrorInvalidSyncStateData") == 1
    assert len(ews.violations()) >= 1, "the request right after the back-off was too early"


def test_access_rules(
    ews: EwsEmulator,  # noqa: F811
    mailbox: str,
    client: EwsClient,
) -> None:
    ews.grant_impersonation(USER, False)
    with pytest.raises(ErrorImpersonateUserDenied):
        client.account.root  # noqa: B018
    ews.change_password(USER, "new")
    settings = EwsSettings(
        server=ews.url, mailbox=mailbox, user=USER, password=PASSWORD, ca_bundle=ews.ca_path
    )
    other = EwsClient(settings)
    try:
        with pytest.raises(UnauthorizedError):
            other.protocol.version  # noqa: B018
    finally:
        other.close()


def test_calendar_folders_hold_masters_and_exceptions_hang_off_them(
    ews: EwsEmulator,  # noqa: F811
    mailbox: str,
    client: EwsClient,
) -> None:
    start = datetime(2026, 9, 7, 9, 0, tzinfo=UTC)
    series = ews.add_event(
        mailbox,
        subject="Weekly",
        start=start,
        organizer=("Olga", mailbox),
        attendees={"bob@client.example": ("Bob", "accepted")},
        recurrence={"type": "weekly", "interval": 1, "count": 4},
    )
    ews.change_occurrence(mailbox, series, start + timedelta(days=7), subject="Moved")
    ews.delete_occurrence(mailbox, series, start + timedelta(days=14))
    answer = client.sync_page(ews.folder_id(mailbox, "calendar"), None, (), CalendarItem, "c")
    assert [(k, i.id) for k, i in answer.changes] == [("create", series)]
    fields = ("uid", "type", "recurrence", "modified_occurrences", "deleted_occurrences")
    (master,) = client.get_items([(series, None)], fields, CalendarItem, "event")
    assert master.type == "RecurringMaster" and master.uid.startswith("040000008200E000")
    assert master.recurrence.boundary.number == 4
    assert [d.start for d in master.deleted_occurrences] == [start + timedelta(days=14)]
    (occurrence,) = master.modified_occurrences
    (exception,) = client.get_items(
        [(occurrence.id, None)], ("subject", "type", "original_start", "uid"), CalendarItem, "e"
    )
    assert (exception.type, exception.subject) == ("Exception", "Moved")
    assert exception.original_start == start + timedelta(days=7)
    assert exception.uid == master.uid
