"""Message identity keys, subject normalisation and thread keys."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.crm.threads import (
    ThreadKeys,
    message_key,
    normalise_message_id,
    normalise_subject,
    parse_thread_index,
    split_message_ids,
    thread_keys,
)
from server.mail_ingest.items import MailItem, Participant

T0 = datetime(2024, 5, 1, 9, 30, 15, tzinfo=UTC)
CONV_HEAD = bytes(range(1, 23))  # 22 bytes identifying a conversation
THREAD_INDEX = base64.b64encode(CONV_HEAD).decode()
THREAD_INDEX_REPLY = base64.b64encode(CONV_HEAD + b"\x00\x01\x02\x03\x04").decode()


def mail(
    *,
    message_id: str | None = None,
    subject: str = "Quote for 40 widgets",
    date: datetime | None = T0,
    participants: list[Participant] | None = None,
    in_reply_to: list[str] | None = None,
    references: list[str] | None = None,
    conversation_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> MailItem:
    return MailItem(
        message_id=message_id,
        subject=subject,
        date=date,
        participants=participants
        if participants is not None
        else [
            Participant("jane@customer.com", "from", "Jane"),
            Participant("sam@acme.com", "to", "Sam"),
        ],
        in_reply_to=in_reply_to or [],
        references=references or [],
        conversation_id=conversation_id,
        headers=headers or {},
    )


# --- message ids -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("<abc@mail.acme.com>", "abc@mail.acme.com", id="brackets"),
        pytest.param("  <ABC.Def@Mail.ACME.com>\r\n", "abc.def@mail.acme.com", id="case-space"),
        pytest.param("abc@acme.com", "abc@acme.com", id="no-brackets"),
        pytest.param("< abc@acme.com >", "abc@acme.com", id="space-inside-brackets"),
        pytest.param("<a@x> <b@y>", "a@x", id="first-of-several"),
        pytest.param("<1234567890.ABCDEF>", "1234567890.abcdef", id="no-at-accepted"),
        pytest.param("<abc@acme.com", "abc@acme.com", id="unclosed-bracket"),
        pytest.param("", None, id="empty"),
        pytest.param("<>", None, id="empty-brackets"),
        pytest.param("   ", None, id="blank"),
        pytest.param("abc def@acme.com", None, id="space-inside"),
        pytest.param("abc\x00@acme.com", None, id="control"),
        pytest.param("x" * 999, None, id="too-long"),
    ],
)
def test_normalise_message_id(raw: str, expected: str | None) -> None:
    assert normalise_message_id(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("<a@x> <B@Y>\r\n\t<c@z>", ["a@x", "b@y", "c@z"], id="folded-header"),
        pytest.param("<a@x><b@y>", ["a@x", "b@y"], id="no-space"),
        pytest.param("a@x b@y", ["a@x", "b@y"], id="unbracketed"),
        pytest.param("<> <a@x>", ["a@x"], id="drops-empty"),
        pytest.param("", [], id="empty"),
    ],
)
def test_split_message_ids(raw: str, expected: list[str]) -> None:
    assert split_message_ids(raw) == expected


# --- message key -----------------------------------------------------------------------------


def test_message_key_uses_message_id() -> None:
    assert message_key(mail(message_id="<ABC@acme.com>")) == "mid:abc@acme.com"


def test_message_key_invalid_id_falls_back_to_hash() -> None:
    assert message_key(mail(message_id="   ")).startswith("hash:")


_BASE_PARTICIPANTS = [
    Participant("jane@customer.com", "from", "Jane"),
    Participant("sam@acme.com", "to", "Sam"),
    Participant("lee@acme.com", "to"),
    Participant("kim@partner.com", "cc"),
]


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(mail(participants=list(reversed(_BASE_PARTICIPANTS))), id="order"),
        pytest.param(
            mail(
                participants=[
                    Participant("JANE@Customer.com", "from", "J. Doe"),
                    Participant("<Sam@ACME.com>", "to"),
                    Participant("lee@acme.com", "to"),
                    Participant("Kim@Partner.com", "cc"),
                ]
            ),
            id="case-brackets-names",
        ),
        pytest.param(
            mail(participants=[*_BASE_PARTICIPANTS, Participant("boss@acme.com", "bcc")]),
            id="bcc-only-in-sender-copy",
        ),
        pytest.param(
            mail(
                participants=[
                    *_BASE_PARTICIPANTS,
                    Participant("sam@acme.com", "to"),  # duplicated recipient
                ]
            ),
            id="duplicate-recipient",
        ),
        pytest.param(
            mail(participants=_BASE_PARTICIPANTS, subject="  quote FOR 40\twidgets "),
            id="subject-case-whitespace",
        ),
        pytest.param(
            mail(
                participants=_BASE_PARTICIPANTS,
                date=T0.astimezone(timezone(timedelta(hours=-5))),
            ),
            id="other-time-zone",
        ),
        pytest.param(
            mail(participants=_BASE_PARTICIPANTS, date=T0 + timedelta(microseconds=999)),
            id="sub-second",
        ),
        pytest.param(
            mail(participants=_BASE_PARTICIPANTS, date=T0.replace(tzinfo=None)),
            id="naive-taken-as-utc",
        ),
    ],
)
def test_hash_key_is_stable_across_copies(variant: MailItem) -> None:
    base = mail(participants=_BASE_PARTICIPANTS)
    variant.text = "re-encoded body"  # never part of the key
    assert message_key(variant) == message_key(base)
    assert message_key(base).startswith("hash:")
    assert len(message_key(base)) == len("hash:") + 64


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(
            mail(participants=_BASE_PARTICIPANTS, subject="RE: Quote for 40 widgets"),
            id="reply-subject",
        ),
        pytest.param(
            mail(participants=_BASE_PARTICIPANTS, date=T0 + timedelta(seconds=1)),
            id="one-second-later",
        ),
        pytest.param(mail(participants=_BASE_PARTICIPANTS[:3]), id="cc-dropped"),
        pytest.param(
            mail(participants=[Participant("other@customer.com", "from"), *_BASE_PARTICIPANTS[1:]]),
            id="other-sender",
        ),
    ],
)
def test_hash_key_distinguishes_messages(variant: MailItem) -> None:
    assert message_key(variant) != message_key(mail(participants=_BASE_PARTICIPANTS))


# --- subjects ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        pytest.param("Quote for 40 widgets", "quote for 40 widgets", id="plain"),
        pytest.param("RE: Quote", "quote", id="en-re"),
        pytest.param("Re: re: RE:Quote", "quote", id="en-repeated"),
        pytest.param("FW: Quote", "quote", id="en-fw"),
        pytest.param("Fwd: Quote", "quote", id="en-fwd"),
        pytest.param("Re[2]: Quote", "quote", id="re-count-brackets"),
        pytest.param("RE(3): Quote", "quote", id="re-count-parens"),
        pytest.param("Re : Quote", "quote", id="fr-space-before-colon"),
        pytest.param("TR: Devis", "devis", id="fr-tr"),
        pytest.param("AW: WG: Angebot", "angebot", id="de-aw-wg"),
        pytest.param("SV: VB: Offert", "offert", id="sv"),
        pytest.param("VS: Tarjous", "tarjous", id="fi"),
        pytest.param("Antw: Doorst: Offerte", "offerte", id="nl"),
        pytest.param("R: I: Preventivo", "preventivo", id="it-outlook"),
        pytest.param("RIF: Preventivo", "preventivo", id="it-rif"),
        pytest.param("RES: ENC: Orçamento", "orçamento", id="pt"),
        pytest.param("RV: Presupuesto", "presupuesto", id="es-rv"),
        pytest.param("Odp: PD: Oferta", "oferta", id="pl"),
        pytest.param("ΑΠ: Προσφορά", "προσφορά", id="el"),
        pytest.param("回复：报价", "报价", id="zh-cn-fullwidth-colon"),
        pytest.param("转发: 报价", "报价", id="zh-cn-forward"),
        pytest.param("答复: 报价", "报价", id="zh-cn-outlook"),
        pytest.param("回覆: 報價", "報價", id="zh-tw"),
        pytest.param("轉寄: 報價", "報價", id="zh-tw-forward"),
        pytest.param("返信: 見積もり", "見積もり", id="ja"),
        pytest.param("[acme-users] Re: Release 2.0", "release 2.0", id="list-tag"),
        pytest.param("Re: [acme-users] Release 2.0", "release 2.0", id="tag-after-prefix"),
        pytest.param("[EXTERNAL] RE: [acme-users] FW: Release", "release", id="tags-and-prefixes"),
        pytest.param("  Quote   for\t\n40  ", "quote for 40", id="whitespace"),
        pytest.param("ＲＥ： Quote", "quote", id="fullwidth-prefix"),
        pytest.param("Re:", "", id="prefix-only"),
        pytest.param("", "", id="empty"),
        pytest.param("Regarding the quote", "regarding the quote", id="re-inside-word-kept"),
        pytest.param("Review: Q3 plan", "review: q3 plan", id="no-false-prefix"),
        pytest.param("Meeting re: budget", "meeting re: budget", id="prefix-not-at-start"),
        pytest.param("STRASSE", "strasse", id="casefold"),
        pytest.param("Straße", "strasse", id="casefold-eszett"),
    ],
)
def test_normalise_subject(subject: str, expected: str) -> None:
    assert normalise_subject(subject) == expected


@given(st.text(max_size=60))
def test_normalise_subject_is_idempotent(subject: str) -> None:
    once = normalise_subject(subject)
    assert normalise_subject(once) == once


@given(st.text(max_size=40), st.sampled_from(["Re: ", "AW: ", "FW: ", "回复：", "[list] "]))
def test_prefixes_do_not_change_the_normalised_subject(subject: str, prefix: str) -> None:
    assert normalise_subject(prefix + subject) == normalise_subject(subject)


# --- thread-index ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(THREAD_INDEX, CONV_HEAD.hex(), id="conversation-start"),
        pytest.param(THREAD_INDEX_REPLY, CONV_HEAD.hex(), id="reply-same-conversation"),
        pytest.param(THREAD_INDEX_REPLY.rstrip("="), CONV_HEAD.hex(), id="missing-padding"),
        pytest.param(
            THREAD_INDEX_REPLY[:10] + "\r\n " + THREAD_INDEX_REPLY[10:],
            CONV_HEAD.hex(),
            id="folded",
        ),
        pytest.param(base64.b64encode(CONV_HEAD[:21]).decode(), None, id="too-short"),
        pytest.param(base64.b64encode(bytes(22)).decode(), None, id="all-zero"),
        pytest.param("not base64!!", None, id="garbage"),
        pytest.param("", None, id="empty"),
    ],
)
def test_parse_thread_index(value: str, expected: str | None) -> None:
    assert parse_thread_index(value) == expected


# --- thread keys -------------------------------------------------------------------------------


def test_reply_before_parent_shares_a_key() -> None:
    parent = mail(message_id="<p1@customer.com>")
    reply = mail(
        message_id="<r1@acme.com>",
        subject="RE: Quote for 40 widgets",
        in_reply_to=["<P1@customer.com>"],
        references=["<p1@customer.com>"],
    )
    reply_keys = thread_keys(reply)  # processed first
    parent_keys = thread_keys(parent)
    assert reply_keys.own == "mid:r1@acme.com"
    assert reply_keys.refs == ["mid:p1@customer.com"]
    assert parent_keys.own in reply_keys.strong_keys()


def test_siblings_share_their_parent_key() -> None:
    first = mail(message_id="<r1@x>", references=["<root@x>", "<p@x>"], in_reply_to=["<p@x>"])
    second = mail(message_id="<r2@x>", references=["<root@x>", "<p@x>"], in_reply_to=["<p@x>"])
    assert set(thread_keys(first).refs) & set(thread_keys(second).refs) == {
        "mid:p@x",
        "mid:root@x",
    }


def test_refs_order_dedupe_cap_and_self_reference() -> None:
    references = [f"<m{i}@x>" for i in range(80)]
    item = mail(
        message_id="<m79@x>",
        in_reply_to=["<m78@x>"],
        references=[" ".join(references[:40]), *references[40:]],  # one entry holds 40 ids
    )
    keys = thread_keys(item)
    assert keys.refs[0] == "mid:m78@x"  # In-Reply-To first
    assert keys.refs[1] == "mid:m77@x"  # then References, newest first
    assert "mid:m79@x" not in keys.refs  # never itself
    assert "mid:m29@x" not in keys.refs  # only the last 50 references
    assert "mid:m30@x" in keys.refs
    assert len(keys.refs) == len(set(keys.refs)) == 49


@pytest.mark.parametrize(
    ("item", "conversation", "thread_index"),
    [
        pytest.param(mail(conversation_id="AAQkADk="), "conv:AAQkADk=", None, id="source-conv"),
        pytest.param(
            mail(headers={"thread-index": THREAD_INDEX_REPLY}),
            f"tix:{CONV_HEAD.hex()}",
            f"tix:{CONV_HEAD.hex()}",
            id="thread-index-only",
        ),
        pytest.param(
            mail(conversation_id="AAQkADk=", headers={"thread-index": THREAD_INDEX}),
            "conv:AAQkADk=",
            f"tix:{CONV_HEAD.hex()}",
            id="both",
        ),
        pytest.param(mail(headers={"thread-index": "garbage!"}), None, None, id="bad-thread-index"),
    ],
)
def test_conversation_keys(
    item: MailItem, conversation: str | None, thread_index: str | None
) -> None:
    keys = thread_keys(item)
    assert keys.conversation == conversation
    assert keys.thread_index == thread_index
    if conversation:
        assert keys.subject is None


def test_outlook_reply_from_another_source_matches_by_thread_index() -> None:
    graph_copy = mail(
        message_id="<a@x>", conversation_id="AAQk", headers={"thread-index": THREAD_INDEX}
    )
    imap_reply = mail(message_id="<b@x>", headers={"thread-index": THREAD_INDEX_REPLY})
    assert set(thread_keys(graph_copy).strong_keys()) & set(thread_keys(imap_reply).strong_keys())


def test_subject_fallback_joins_reply_without_references() -> None:
    original = mail(
        message_id="<o@customer.com>",
        participants=[
            Participant("jane@customer.com", "from"),
            Participant("sam@acme.com", "to"),
        ],
    )
    reply = mail(
        message_id="<r@acme.com>",
        subject="AW: Quote for 40 widgets",
        participants=[
            Participant("sam@acme.com", "from"),
            Participant("jane@customer.com", "to"),
            Participant("lee@acme.com", "cc"),  # a colleague joined
        ],
    )
    kwargs = {"internal_domains": ["acme.com"], "owner_addresses": ["sam@acme.com"]}
    original_keys = thread_keys(original, **kwargs)
    reply_keys = thread_keys(reply, **kwargs)
    assert original_keys.subject is not None
    assert original_keys.subject.startswith("subj:quote for 40 widgets|")
    assert original_keys.subject == reply_keys.subject
    assert original_keys.all_keys()[-1] == original_keys.subject


def test_subject_fallback_separates_other_people() -> None:
    one = mail(participants=[Participant("jane@customer.com", "from")])
    other = mail(participants=[Participant("bob@rival.com", "from")])
    assert thread_keys(one).subject != thread_keys(other).subject


@pytest.mark.parametrize(
    "item",
    [
        pytest.param(mail(subject="Hello"), id="generic-hello"),
        pytest.param(mail(subject="RE: Meeting"), id="generic-meeting"),
        pytest.param(mail(subject="(no subject)"), id="no-subject"),
        pytest.param(mail(subject="Invoice"), id="invoice"),
        pytest.param(mail(subject="ok"), id="too-short"),
        pytest.param(mail(subject=""), id="empty"),
        pytest.param(mail(in_reply_to=["<p@x>"]), id="has-refs"),
        pytest.param(mail(conversation_id="C1"), id="has-conversation"),
        pytest.param(mail(participants=[]), id="nobody"),
    ],
)
def test_no_subject_key(item: MailItem) -> None:
    assert thread_keys(item).subject is None


def test_item_without_message_id() -> None:
    keys = thread_keys(mail(message_id=None))
    assert keys.own is None
    assert keys.refs == []
    assert keys.subject is not None
    assert keys.strong_keys() == []


def test_thread_keys_is_a_frozen_value() -> None:
    keys = ThreadKeys(own="mid:a", refs=["mid:b"], conversation=None, subject=None)
    with pytest.raises(AttributeError):
        keys.own = "mid:c"  # type: ignore[misc]
    assert keys.strong_keys() == ["mid:a", "mid:b"]
