"""Bulk/automated mail detection: the labelled set and one case per header rule.

The labelled set (tests/data/labelled, written by make_labelled.py) is where the rules are measured,
on items from the real MIME parser: no person message may be skipped, and almost every bulk one
must be. The table tests pin each rule and the negatives that must stay person mail.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.crm.bulk import bulk_reason
from server.mail_ingest.items import MailItem, Participant
from server.mail_ingest.mime import parse_message

LABELLED = Path(__file__).resolve().parents[1] / "data" / "labelled"


@dataclass(frozen=True)
class Labelled:
    file: str
    label: str
    note: str


def _labelled() -> list[Labelled]:
    with (LABELLED / "labels.csv").open(encoding="utf-8", newline="") as fh:
        return [Labelled(r["file"], r["label"], r["note"]) for r in csv.DictReader(fh)]


def test_labelled_set_is_big_enough_and_complete() -> None:
    rows = _labelled()
    labels = [r.label for r in rows]
    assert set(labels) == {"person", "bulk"}
    assert labels.count("person") >= 100
    assert labels.count("bulk") >= 100
    files = {p.name for p in LABELLED.glob("*.eml")}
    assert files == {r.file for r in rows}


def test_labelled_set_confusion() -> None:
    false_positive: list[str] = []  # person mail skipped: must never happen
    missed: list[str] = []  # bulk mail let through
    true_positive = true_negative = 0
    for row in _labelled():
        item = parse_message((LABELLED / row.file).read_bytes())
        reason = bulk_reason(item)
        if row.label == "person":
            if reason is None:
                true_negative += 1
            else:
                false_positive.append(f"{row.file} ({reason})")
        elif reason is None:
            missed.append(row.file)
        else:
            true_positive += 1
    bulk_total = true_positive + len(missed)
    summary = (
        f"person kept={true_negative} person skipped={len(false_positive)} "
        f"bulk skipped={true_positive} bulk kept={len(missed)}; "
        f"false positives: {false_positive}; missed bulk: {missed}"
    )
    assert not false_positive, summary
    assert true_positive >= 0.95 * bulk_total, summary


PERSON = "hannah.whitfield@brightline-dental.co.uk"


def _item(
    headers: dict[str, str] | None = None,
    *,
    sender: str = PERSON,
    subject: str = "Delivery schedule for PO-4821",
) -> MailItem:
    return MailItem(
        message_id="abc@example.com",
        subject=subject,
        date=None,
        participants=[
            Participant(sender, "from", "Someone"),
            Participant("anna@northwind-supplies.com", "to", "Anna Lindqvist"),
        ],
        headers=headers or {},
    )


U = "<https://x.example/u>"  # a List-Unsubscribe value

HEADER_CASES = [
    # mailing lists
    ("list-id", {"list-id": "<members.lists.example.org>"}, "mailing_list"),
    ("list-post", {"list-post": "<mailto:x@lists.example.org>"}, "mailing_list"),
    ("mailing-list", {"mailing-list": "list x@groups.example"}, "mailing_list"),
    ("x-beenthere", {"x-beenthere": "x@lists.example.org"}, "mailing_list"),
    ("precedence-list", {"precedence": "list"}, "mailing_list"),
    ("precedence-list-spaced", {"precedence": " List "}, "mailing_list"),
    # bulk
    ("precedence-bulk", {"precedence": "bulk"}, "bulk"),
    ("precedence-junk", {"precedence": "junk"}, "bulk"),
    ("unsub+feedback-id", {"list-unsubscribe": U, "feedback-id": "1:ses"}, "bulk"),
    ("unsub+x-campaign", {"list-unsubscribe": U, "x-campaign": "c1"}, "bulk"),
    ("unsub+x-campaign-id", {"list-unsubscribe": U, "x-campaign-id": "c1"}, "bulk"),
    ("unsub+mailgun", {"list-unsubscribe": U, "x-mailgun-tag": "n"}, "bulk"),
    ("unsub+ses", {"list-unsubscribe": U, "x-ses-outgoing": "2025.03"}, "bulk"),
    ("unsub+sfmc", {"list-unsubscribe": U, "x-sfmc-stack": "50"}, "bulk"),
    ("unsub+mc-user", {"list-unsubscribe": U, "x-mc-user": "abc"}, "bulk"),
    ("unsub+csa", {"list-unsubscribe": U, "x-csa-complaints": "c@x.example"}, "bulk"),
    ("unsub+sendgrid", {"list-unsubscribe": U, "x-sg-eid": "abc"}, "bulk"),
    ("unsub+bulk-mailer", {"list-unsubscribe": U, "x-mailer": "phplist v3.6"}, "bulk"),
    # automated senders
    ("auto-generated", {"auto-submitted": "auto-generated"}, "automated_sender"),
    (
        "auto-replied+params",
        {"auto-submitted": 'auto-replied; owner-email="a@b.example"'},
        "automated_sender",
    ),
    ("x-autoreply", {"x-autoreply": "yes"}, "automated_sender"),
    ("x-autorespond", {"x-autorespond": "vacation"}, "automated_sender"),
    (
        "exchange-generated",
        {"x-ms-exchange-generated-message-source": "Mailbox Rules Agent"},
        "automated_sender",
    ),
    ("precedence-auto-reply", {"precedence": "auto_reply"}, "automated_sender"),
    ("null-return-path", {"return-path": "<>"}, "automated_sender"),
    ("null-return-path-spaced", {"return-path": " < > "}, "automated_sender"),
    (
        "multipart-report",
        {"content-type": "multipart/report; report-type=delivery-status"},
        "automated_sender",
    ),
    # person mail carrying one weak sign
    ("none", {}, None),
    ("lone-list-unsubscribe", {"list-unsubscribe": "<mailto:unsub@crm.example>"}, None),
    (
        "one-click-unsubscribe",
        {"list-unsubscribe": U, "list-unsubscribe-post": "List-Unsubscribe=One-Click"},
        None,
    ),
    ("lone-suppress", {"x-auto-response-suppress": "All"}, None),
    ("lone-feedback-id", {"feedback-id": "workmail:1"}, None),
    ("lone-ses", {"x-ses-outgoing": "2025.03.05"}, None),
    ("lone-campaign-header", {"x-campaign": "spring"}, None),
    ("auto-submitted-no", {"auto-submitted": "no"}, None),
    ("auto-submitted-empty", {"auto-submitted": ""}, None),
    ("x-autoreply-no", {"x-autoreply": "no"}, None),
    ("return-path-person", {"return-path": f"<{PERSON}>"}, None),
    ("precedence-normal", {"precedence": "normal"}, None),
    ("outlook-mailer", {"x-mailer": "Microsoft Outlook 16.0"}, None),
    ("plain-alternative", {"content-type": "multipart/alternative; boundary=x"}, None),
]


@pytest.mark.parametrize(
    ("headers", "expected"), [pytest.param(h, want, id=name) for name, h, want in HEADER_CASES]
)
def test_header_rules(headers: dict[str, str], expected: str | None) -> None:
    assert bulk_reason(_item(headers)) == expected


SUBJECT_CASES = [
    ("Automatic reply: Delivery", {}, "automated_sender"),
    ("Out of Office: Delivery", {}, "automated_sender"),
    ("Abwesenheitsnotiz: Lieferung", {}, "automated_sender"),
    ("Automatische Antwort: Lieferung", {}, "automated_sender"),
    ("Réponse automatique : Échantillons", {}, "automated_sender"),
    ("Respuesta automática: Presupuesto", {}, "automated_sender"),
    ("Automatisch antwoord: Offerte", {}, "automated_sender"),
    ("Automatiskt svar: Beställning", {}, "automated_sender"),
    ("Risposta automatica: Consegna", {}, "automated_sender"),
    ("自动回复：交货", {}, "automated_sender"),
    ("[Auto-Reply] Delivery", {}, "automated_sender"),
    ("Out of office until Monday", {"x-auto-response-suppress": "All"}, "automated_sender"),
    ("Out of office until Monday", {"x-auto-response-suppress": "OOF"}, "automated_sender"),
    # person subjects that sound automated
    ("Out of office until Monday", {}, None),
    ("Out of office until Monday", {"x-auto-response-suppress": "RN, NRN"}, None),
    ("Re: Automatic reply: Delivery", {}, None),
    ("RE: Out of Office: Delivery", {}, None),
    ("Out of office cover next week", {}, None),
    ("Quarterly supply review", {"x-auto-response-suppress": "RN, NRN, OOF"}, None),
    ("Absence cover planning", {"x-auto-response-suppress": "All"}, None),
    ("Auto-renewal of our contract?", {}, None),
]


@pytest.mark.parametrize(
    ("subject", "headers", "expected"),
    [pytest.param(s, h, want, id=f"{s}|{sorted(h)}") for s, h, want in SUBJECT_CASES],
)
def test_subject_rules(subject: str, headers: dict[str, str], expected: str | None) -> None:
    assert bulk_reason(_item(headers, subject=subject)) == expected


SENDER_CASES = [
    ("noreply@bank.example", {}, "automated_sender"),
    ("no-reply@shop.example", {}, "automated_sender"),
    ("DoNotReply@insure.example", {}, "automated_sender"),
    ("do-not-reply@books.example", {}, "automated_sender"),
    ("billing-noreply@cloud.example", {}, "automated_sender"),
    ("mailer-daemon@mx.example", {}, "automated_sender"),
    ("postmaster@mx.example", {}, "automated_sender"),
    ("notifications@forge.example", {}, "automated_sender"),
    ("calendar-notification@calendar.example", {}, "automated_sender"),
    ("bounce-mc.us5_123@mail.example", {}, "automated_sender"),
    ("newsletter@shop.example", {"list-unsubscribe": U}, "bulk"),
    ("news@magazine.example", {"list-unsubscribe": U}, "bulk"),
    # people, including role addresses of small customers
    ("newsletter@shop.example", {}, None),
    ("info@saltmarsh-bakehouse.co.uk", {}, None),
    ("sales@carterandsons-joinery.co.uk", {}, None),
    ("office@schulz-zahntechnik.de", {}, None),
    ("info@saltmarsh-bakehouse.co.uk", {"list-unsubscribe": "<mailto:u@crm.example>"}, None),
    ("events@quillon-cowork.com", {"list-unsubscribe": U}, None),
    ("noah@williams-recruitment.co.uk", {}, None),
    ("support@hughes-it-services.co.uk", {}, None),
]


@pytest.mark.parametrize(
    ("sender", "headers", "expected"),
    [pytest.param(s, h, want, id=f"{s}|{sorted(h)}") for s, h, want in SENDER_CASES],
)
def test_sender_rules(sender: str, headers: dict[str, str], expected: str | None) -> None:
    assert bulk_reason(_item(headers, sender=sender)) == expected


def test_list_first_when_several_rules_match() -> None:
    item = _item({"list-id": "<x.lists.example>", "precedence": "bulk", "auto-submitted": "yes"})
    assert bulk_reason(item) == "mailing_list"


def test_own_team_alias_is_not_a_mailing_list() -> None:
    """Mail to sales@ run as a Google/M365 group carries list headers but is person mail."""
    headers = {
        "list-id": "<sales.northwind-supplies.com>",
        "mailing-list": "list sales@northwind-supplies.com",
        "precedence": "list",
    }
    item = _item(headers)
    assert bulk_reason(item) == "mailing_list"
    assert bulk_reason(item, own_domains=["northwind-supplies.com"]) is None
    other = _item({"list-id": "<members.lists.trade-association.example>"})
    assert bulk_reason(other, own_domains=["northwind-supplies.com"]) == "mailing_list"


def test_item_without_sender_or_subject() -> None:
    item = MailItem(message_id=None, subject="", date=None, participants=[])
    assert bulk_reason(item) is None
