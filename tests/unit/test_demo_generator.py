"""The demo data generator: deterministic, realistic, and holding every kind of message it promises.

The checks parse the written files with the stdlib only, so they test the files as any importer
would see them, not the generator's own bookkeeping; `DemoDataset.kinds` is compared against what
parsing finds.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import cast

import icalendar
import pytest

from server.crm.bulk import bulk_reason
from server.demo.generator import DemoDataset, generate_demo
from server.mail_ingest.errors import BadItem
from server.mail_ingest.mime import parse_message

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
DOMAIN = "northwind-supplies.com"


@dataclass(frozen=True)
class Stored:
    """One distinct message and every mailbox folder that holds it."""

    raw: bytes
    places: tuple[str, ...]  # "anna/INBOX", "tom/Sent"...

    @property
    def msg(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _stored(dataset: DemoDataset) -> list[Stored]:
    places: dict[bytes, list[str]] = {}
    for box in dataset.staff:
        for path in sorted(box.path.rglob("*")):
            if path.is_file() and path.parent.name in ("cur", "new"):
                folder = "Sent" if path.parent.parent.name == "Sent" else "INBOX"
                places.setdefault(path.read_bytes(), []).append(f"{box.name}/{folder}")
    return [Stored(raw, tuple(where)) for raw, where in places.items()]


def _addresses(msg: EmailMessage, *names: str) -> list[str]:
    values = [str(v) for name in names for v in msg.get_all(name, [])]
    return [addr.lower() for _, addr in getaddresses(values) if addr]


def _date(msg: EmailMessage) -> datetime:
    return parsedate_to_datetime(str(msg["Date"]))


def _calendar_parts(msg: EmailMessage) -> Iterator[icalendar.Calendar]:
    for part in msg.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            yield icalendar.Calendar.from_ical(payload)


def _raw_header(raw: bytes, name: str) -> str:
    """A header as it is on the wire (RFC 2047 encoded words left alone)."""
    return str(email.message_from_bytes(raw, policy=email.policy.compat32)[name] or "")


def _mbox(path: Path) -> list[mailbox.mboxMessage]:
    box = mailbox.mbox(path, create=False)
    try:
        return list(box)
    finally:
        box.close()


def _is_broken(msg: EmailMessage) -> bool:
    return msg["From"] is None and msg["Date"] is None


# A Monday noon, and a Sunday night in the hour the clocks go forward in Europe.
CASES = [(7, NOW), (3, datetime(2026, 3, 29, 1, 30, tzinfo=UTC))]


@pytest.fixture(scope="module", params=CASES, ids=["seed7-monday", "seed3-sunday-dst"])
def case(request: pytest.FixtureRequest) -> tuple[int, datetime]:
    return cast(tuple[int, datetime], request.param)


@pytest.fixture(scope="module")
def now(case: tuple[int, datetime]) -> datetime:
    return case[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, case: tuple[int, datetime]) -> DemoDataset:
    seed, now = case
    return generate_demo(tmp_path_factory.mktemp("demo") / "out", seed=seed, now=now)


@pytest.fixture(scope="module")
def stored(demo: DemoDataset) -> list[Stored]:
    return _stored(demo)


def test_same_seed_and_now_write_identical_files(
    tmp_path: Path, demo: DemoDataset, case: tuple[int, datetime]
) -> None:
    seed, now = case
    first = demo.staff[0].path.parents[1]
    again = generate_demo(tmp_path / "again", seed=seed, now=now)
    assert _files(first) == _files(tmp_path / "again")
    assert again.message_count == demo.message_count
    assert again.kinds == demo.kinds
    other = generate_demo(tmp_path / "other", seed=seed + 1, now=now)
    assert _files(tmp_path / "other") != _files(tmp_path / "again")
    assert other.company_domain == DOMAIN


def test_layout_and_counts(demo: DemoDataset, stored: list[Stored]) -> None:
    assert demo.company_domain == DOMAIN
    assert 3 <= len(demo.staff) <= 4
    for box in demo.staff:
        assert box.owner.endswith("@" + DOMAIN)
        for folder in (box.path, box.path / "Sent"):
            assert {p.name for p in folder.iterdir()} >= {"cur", "new", "tmp"}
    archived = len(_mbox(next(p for p in demo.extra_files if p.suffix == ".mbox")))
    saved = {p.read_bytes() for p in demo.extra_files if p.suffix == ".eml"}
    new_saved = saved - {s.raw for s in stored}
    assert len(saved) - len(new_saved) == 1  # one saved .eml duplicates a mailbox message
    assert demo.message_count == len(stored) + archived + len(new_saved)
    assert demo.file_count == sum(len(s.places) for s in stored)
    assert 200 <= demo.message_count <= 600  # "a few hundred"


def test_messages_are_well_formed(stored: list[Stored], now: datetime) -> None:
    broken = without_id = 0
    for item in stored:
        msg = item.msg
        if _is_broken(msg):
            broken += 1
            continue
        assert b"\r\n" in item.raw and b"\n" not in item.raw.replace(b"\r\n", b"")
        assert item.raw.isascii(), "bodies are QP/base64 and headers RFC 2047 encoded"
        assert not msg.defects, (msg["Subject"], msg.defects)
        date = parsedate_to_datetime(str(msg["Date"]))
        assert date.tzinfo is not None
        assert now - timedelta(days=121) <= date <= now, (msg["Subject"], date)
        assert msg["From"] is not None and (msg["To"] or msg["Cc"])
        if msg["Message-ID"] is None:
            without_id += 1
        else:
            assert str(msg["Message-ID"]).startswith("<")
        for name in ("In-Reply-To", "References"):
            assert "=?" not in str(msg[name] or "")
    assert broken == 1
    assert without_id == 1


def test_the_broken_message_is_quarantined_by_the_parser(stored: list[Stored]) -> None:
    broken = [s.raw for s in stored if _is_broken(s.msg)]
    assert len(broken) == 1
    with pytest.raises(BadItem):
        parse_message(broken[0])


def test_mailboxes_hold_the_right_copies(stored: list[Stored]) -> None:
    for item in stored:
        msg = item.msg
        if _is_broken(msg):
            continue
        sender = _addresses(msg, "From")[0]
        recipients = set(_addresses(msg, "To", "Cc"))
        for place in item.places:
            name, folder = place.split("/")
            local = name.split()[0].lower()
            owner = f"{local}@{DOMAIN}"
            if folder == "Sent":
                assert sender == owner
            elif msg["List-Id"] is None:  # list posts are addressed to the list
                assert owner in recipients, (place, msg["Subject"])
    # The same bytes sit in the sender's Sent and in the cc'd colleague's INBOX.
    shared = [
        s for s in stored if "Anna Lindqvist/Sent" in s.places and "Tom Okafor/INBOX" in s.places
    ]
    assert shared


def test_promised_kinds_are_there(demo: DemoDataset, stored: list[Stored]) -> None:
    found: Counter[str] = Counter()
    subjects: list[str] = []
    for item in stored:
        msg = item.msg
        if _is_broken(msg):
            found["broken"] += 1
            continue
        subject = str(msg["Subject"] or "")
        subjects.append(subject)
        everyone = _addresses(msg, "From", "To", "Cc")
        if all(a.endswith("@" + DOMAIN) for a in everyone):
            found["internal"] += 1
        if msg["List-Id"] is not None:
            found["list_id"] += 1
        elif msg["List-Unsubscribe"] is not None:
            found["newsletter"] += 1
        for header in ("X-MC-User", "X-SES-Outgoing", "X-SFMC-Stack", "X-SG-EID", "X-BeenThere"):
            if msg[header] is not None:
                found[header] += 1
        if str(msg["Precedence"] or "") == "bulk":
            found["precedence_bulk"] += 1
        auto = str(msg["Auto-Submitted"] or "")
        if msg.get_content_type() == "multipart/report":
            found["bounce"] += 1
        elif auto.startswith("auto-replied"):
            found["auto_reply"] += 1
        local = _addresses(msg, "From")[0].partition("@")[0]
        if local in ("noreply", "no-reply", "notifications", "calendar-notification"):
            found["no_reply_sender"] += 1
        types = {part.get_content_type() for part in msg.walk()}
        found["message_rfc822"] += "message/rfc822" in types
        found["html_only"] += msg.get_content_type() == "text/html"
        found["alternative"] += "multipart/alternative" in types
        found["pdf"] += "application/pdf" in types
        found["inline_image"] += any(p["Content-ID"] is not None for p in msg.walk())
        text = msg.get_body(("plain", "html"))
        forward = subject.upper().startswith("FW:")  # replies quote forwards too
        if forward and text is not None and "-----Original Message-----" in text.get_content():
            found["forward_inline"] += 1
        if "=?utf-8?" in _raw_header(item.raw, "Subject").lower():
            found["encoded_subject"] += 1
        for cal in _calendar_parts(msg):
            method = str(cal["METHOD"])
            found[f"calendar_{method.lower()}"] += 1
            event = next(iter(cal.walk("VEVENT")))
            found["calendar_sequence_1"] += method == "REQUEST" and str(event["SEQUENCE"]) == "1"
            found["calendar_rrule"] += "RRULE" in event
            found["calendar_windows_tz"] += "W. Europe Standard Time" in cal.to_ical().decode()
    kinds = demo.kinds
    assert found["broken"] == kinds["broken"] == 1
    assert found["internal"] == kinds["internal"] > 0
    assert found["list_id"] + found["newsletter"] == kinds["newsletter"] + kinds["mailing_list"]
    assert found["newsletter"] > 0 and found["list_id"] > 0
    assert all(found[h] > 0 for h in ("X-MC-User", "X-SES-Outgoing", "X-SFMC-Stack", "X-SG-EID"))
    assert found["X-BeenThere"] > 0 and found["precedence_bulk"] > 0
    assert found["auto_reply"] == kinds["auto_reply"] >= 4
    assert found["bounce"] == kinds["bounce"] == 1
    assert found["no_reply_sender"] > 0
    assert found["message_rfc822"] == kinds["forward_attached"] >= 1
    assert found["forward_inline"] == kinds["forward_inline"] >= 1
    assert found["html_only"] > 0 and found["alternative"] > 0
    assert found["pdf"] > 0 and found["inline_image"] > 0
    assert found["encoded_subject"] >= kinds["non_ascii_subject"] >= 2
    assert found["calendar_request"] == kinds["calendar_request"] >= 3
    assert found["calendar_reply"] == kinds["calendar_reply"] >= 3
    assert found["calendar_cancel"] == kinds["calendar_cancel"] == 1
    assert found["calendar_sequence_1"] == kinds["calendar_update"] >= 1
    assert found["calendar_rrule"] > 0 and found["calendar_windows_tz"] > 0
    prefixes = ("Automatic reply:", "Abwesenheitsnotiz:", "Réponse automatique :", "Canceled:")
    for prefix in prefixes:
        assert any(s.startswith(prefix) for s in subjects), prefix
    assert any(s.startswith(("Accepted:", "Tentative:", "Declined:")) for s in subjects)


def test_customer_stories(stored: list[Stored], now: datetime) -> None:
    messages = [s.msg for s in stored if not _is_broken(s.msg)]
    # A customer who went quiet: mail from them early on, nothing in the last ~70 days.
    quiet = [
        parsedate_to_datetime(str(m["Date"]))
        for m in messages
        if any(a.endswith("@fernhollow-vets.co.uk") for a in _addresses(m, "From", "To", "Cc"))
    ]
    assert quiet and max(quiet) < now - timedelta(days=70)
    # An email awaiting our reply: nothing answers it.
    waiting = [m for m in messages if str(m["Subject"]).startswith("Supply agreement - can you")]
    assert len(waiting) == 1
    waiting_id = str(waiting[0]["Message-ID"])
    assert not [m for m in messages if waiting_id in str(m["In-Reply-To"] or "")]
    # A prospect's enquiry and our quote, which they have not answered: Anna's to chase.
    prospect = [
        m
        for m in messages
        if any(a.endswith("@harbourside-dental.co.uk") for a in _addresses(m, "From", "To"))
    ]
    assert [_addresses(m, "From")[0] for m in sorted(prospect, key=_date)] == [
        "rhiannon.pryce@harbourside-dental.co.uk",
        "anna@" + DOMAIN,
    ]
    # Free-mail contacts and a small customer writing from info@.
    senders = {a for m in messages for a in _addresses(m, "From")}
    for domain in ("gmail.com", "outlook.com", "yahoo.co.uk", "gmx.de"):
        assert any(a.endswith("@" + domain) for a in senders), domain
    assert "info@saltmarsh-bakehouse.co.uk" in senders
    # Replies both ways.
    replies = [m for m in messages if m["In-Reply-To"] is not None]
    assert any(_addresses(m, "From")[0].endswith("@" + DOMAIN) for m in replies)
    assert any(not _addresses(m, "From")[0].endswith("@" + DOMAIN) for m in replies)


def test_accounts_name_every_company_and_its_account_manager(demo: DemoDataset) -> None:
    staff = {m.owner for m in demo.staff}
    assert {a.owner for a in demo.accounts} <= staff
    assert len({a.domain for a in demo.accounts}) == len(demo.accounts) >= 12
    assert [a.name for a in demo.accounts if a.prospect] == ["Harbourside Dental Studio"]
    assert [a.domain for a in demo.accounts if a.quiet_since_days] == ["fernhollow-vets.co.uk"]


def test_bulk_rules_agree_with_the_demo(stored: list[Stored]) -> None:
    """Machine mail in the demo is skipped by the rules; people's mail is not."""
    wrong: list[str] = []
    for item in stored:
        msg = item.msg
        if _is_broken(msg):
            continue
        sender = _addresses(msg, "From")[0]
        machine = (
            sender.endswith(".example")  # every newsletter, list and SaaS sender
            or msg["Auto-Submitted"] is not None
            or msg.get_content_type() == "multipart/report"
        )
        reason = bulk_reason(parse_message(item.raw))
        if (reason is not None) != machine:
            wrong.append(f"{msg['Subject']!s} from {sender}: {reason}")
    assert not wrong, wrong


def test_extra_files(demo: DemoDataset, now: datetime) -> None:
    kinds = {p.suffix for p in demo.extra_files}
    assert kinds == {".mbox", ".eml", ".ics"}
    box = next(p for p in demo.extra_files if p.suffix == ".mbox")
    assert b"\n>From " in box.read_bytes()  # mboxrd quoting of a body line
    messages = _mbox(box)
    assert len(messages) == demo.kinds["archived"] > 0
    for msg in messages:
        assert msg["Message-ID"] and msg["Date"]
        assert parsedate_to_datetime(msg["Date"]) < now - timedelta(days=120)
    for path in demo.extra_files:
        if path.suffix == ".eml":
            parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert parsed["Message-ID"] and parsed["Date"] and not parsed.defects
        elif path.suffix == ".ics":
            cal = icalendar.Calendar.from_ical(path.read_bytes())
            assert list(cal.walk("VEVENT"))


def test_refuses_foreign_folder_and_replaces_its_own(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate_demo(foreign, now=NOW)
    assert (foreign / "notes.txt").read_text() == "mine"
    out = tmp_path / "out"
    first = generate_demo(out, now=NOW)
    second = generate_demo(out, now=NOW.replace(tzinfo=None))  # naive: taken as UTC
    assert second.message_count == first.message_count
    assert sum(1 for _ in (out / "mailboxes").rglob("*:2,S")) <= second.file_count
    with pytest.raises(ValueError, match="scale"):
        generate_demo(tmp_path / "zero", scale=0)


@pytest.mark.slow
def test_scale_multiplies_the_conversations_meetings_and_archive(tmp_path: Path) -> None:
    """Scale 3, not 20: the multiplication is what is tested (scale 20 took 21 s)."""
    one = generate_demo(tmp_path / "one", now=NOW)
    three = generate_demo(tmp_path / "three", now=NOW, scale=3)
    assert three.kinds["archived"] == 3 * one.kinds["archived"]
    assert three.kinds["customer"] >= 2 * one.kinds["customer"]
    assert three.kinds["calendar_request"] > one.kinds["calendar_request"]
    assert three.message_count >= 2 * one.message_count
    assert three.file_count >= three.message_count - three.kinds["archived"]
    written = sum(1 for p in (tmp_path / "three" / "mailboxes").rglob("*") if p.is_file())
    assert written == three.file_count
