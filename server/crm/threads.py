"""Identity and thread keys for mail items.

Two questions, answered without a database:

1. *Is this the same email?* — `message_key`. The same message is seen in several mailboxes
   (sender's Sent Items, each recipient's Inbox) and through several sources (Graph, IMAP, an
   uploaded .eml); it must be stored once. The Message-ID identifies it; without one, a hash of
   headers every copy shares (never the body: providers re-encode bodies, and Bcc: only the
   sender's copy has it).

2. *Which conversation does it belong to?* — `thread_keys`. Each item yields a set of keys:

   * `own`   — `mid:<its message id>`;
   * `refs`  — `mid:` keys of the messages it answers (In-Reply-To, then References newest first);
   * `conversation` — `conv:<id>` when the source assigns conversations (Graph's conversationId),
     else `tix:<hex>` from Outlook's Thread-Index header; `thread_index` always carries the
     `tix:` key when the header parses, since it also matches copies from other sources;
   * `subject` — a guarded fallback, `subj:<normalised subject>|<hash of external participants>`,
     only when the item has no refs and no conversation key and its subject is not generic.

   Algorithm for the capture pipeline (the thread store maps key → thread):

   a. Look up threads by the strong keys (`own`, `refs`, `conversation`, `thread_index`).
   b. One thread found: the item joins it. Several: they are one conversation seen in pieces
      (e.g. two replies arrived before the message both answer): merge them into the oldest.
   c. None found and a `subject` key exists: look it up (the pipeline may bound this by time,
      e.g. 30 days, since a subject match is only a guess); found → join.
   d. Still none: create a thread.
   e. Register every key of the item (strong and subject) on the thread it ended in.

   Because a reply registers its parent's `mid:` key (from its refs) on its thread, a parent that
   arrives *after* its reply finds that thread through its own key in step (a): order of arrival
   does not matter. Likewise a reply whose refs name a message never captured still links to its
   siblings through that shared reference.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from server.crm.addresses import normalise_address
from server.crm.direction import external_participants
from server.mail_ingest.items import MailItem, Participant, pickled_by_fields

__all__ = [
    "ThreadKeys",
    "message_key",
    "normalise_message_id",
    "normalise_subject",
    "parse_thread_index",
    "split_message_ids",
    "thread_keys",
]

# Real ids stay well under 250 characters; a longer one (garbage, or an attack) is no identity we
# can index, so the message is keyed by its header hash instead.
_MAX_MESSAGE_ID_LENGTH = 500
_MAX_REFERENCES = 50  # the newest References are the ones that matter; old chains grow unbounded
_MAX_SUBJECT_IN_KEY = 200


# --------------------------------------------------------------------------------------------
# Message ids


def _id_char_ok(ch: str) -> bool:
    return not (ch.isspace() or ch in "<>" or unicodedata.category(ch) in {"Cc", "Cf", "Cs"})


# Nearly every real id is printable ASCII: one regex match instead of a check per character.
_PLAIN_ASCII_ID = re.compile(r"[!-;=?-~]+")


def normalise_message_id(raw: str) -> str | None:
    """A Message-ID in canonical form: no angle brackets or whitespace, fully lower-cased.

    Lower-casing the left part too is a deliberate deviation from RFC 5322 (which makes it
    case-sensitive): ids are unique through long random tokens, so two ids differing only in
    case are, in practice, one id rewritten by a gateway or a client (some upper-case the domain,
    some the whole id in References), while a real collision by case alone is negligible.
    Ids without '@' are accepted (many real ones lack it); empty values, whitespace inside,
    control characters and values over 500 characters are rejected (None). When several
    bracketed ids are given, the first is used.
    """
    value = raw.strip()
    if value.startswith("<"):
        end = value.find(">")
        value = value[1:end] if end != -1 else value[1:]
    elif value.endswith(">"):
        value = value[:-1]
    value = value.strip()
    if not value or len(value) > _MAX_MESSAGE_ID_LENGTH:
        return None
    if not _PLAIN_ASCII_ID.fullmatch(value) and not all(map(_id_char_ok, value)):
        return None
    return value.lower()


_BRACKETED_ID = re.compile(r"<([^<>]*)>")


def split_message_ids(raw: str) -> list[str]:
    """Every valid id in a header value (`<a@x> <b@y>`, or unbracketed ids separated by space).

    Sources usually hand over one id per list entry, but some pass a whole References header as
    one string; this accepts both. Invalid entries are dropped, order and duplicates are kept.
    """
    parts = _BRACKETED_ID.findall(raw) if "<" in raw else re.split(r"[\s,]+", raw)
    return [n for n in (normalise_message_id(p) for p in parts) if n is not None]


# --------------------------------------------------------------------------------------------
# Subjects

# Reply and forward prefixes as mail clients write them, from the commonly documented table of
# localised abbreviations (Outlook, Thunderbird, Apple Mail, Gmail). Matched case-insensitively
# and only when followed by ':' (or the full-width '：'), optionally with a count: "Re[2]:",
# "RE(3):", "Re^2:".
_PREFIXES = (
    "re",  # English, Latin; used by most clients in every language
    "fw",
    "fwd",  # English forward
    "aw",  # German "Antwort"
    "wg",  # German "Weitergeleitet"
    "sv",  # Danish, Norwegian, Swedish, Icelandic "Svar"
    "vs",  # Finnish "Vastaus", Danish/Norwegian "Videresendt"
    "vb",  # Swedish "Vidarebefordrat"
    "vl",  # Finnish "Välitetty"
    "fs",  # Icelandic "Framsent"
    "antw",  # Dutch "Antwoord"
    "doorst",  # Dutch "Doorgestuurd"
    "r",  # Italian Outlook "Risposta"
    "rif",  # Italian "Riferimento"
    "i",  # Italian Outlook "Inoltro"
    "tr",  # French "Transféré"
    "rv",  # Spanish "Reenviado"
    "res",  # Portuguese "Resposta"
    "enc",  # Portuguese "Encaminhado"
    "odp",  # Polish "Odpowiedź"
    "pd",  # Polish "Przekazanie dalej"
    "vá",  # Hungarian "Válasz"
    "tov",  # Hungarian "Továbbítás"
    "ynt",  # Turkish "Yanıt"
    "ilt",  # Turkish "İlet"
    "İlt",
    "απ",  # Greek "Απάντηση"
    "σχετ",  # Greek "Σχετικά"
    "πρθ",  # Greek "Προώθηση"
    "回复",  # Chinese (simplified) reply
    "答复",  # Chinese (simplified) Outlook reply
    "转发",  # Chinese (simplified) forward
    "回覆",  # Chinese (traditional) reply
    "轉寄",  # Chinese (traditional) forward
    "返信",  # Japanese reply
    "転送",  # Japanese forward
)
_PREFIX = "|".join(re.escape(p) for p in sorted(_PREFIXES, key=len, reverse=True))
# A list or gateway tag such as "[acme-users]" or "[EXTERNAL]", which lists and gateways add in
# front of (or between) the prefixes.
_LEADER = re.compile(
    rf"^\s*(?:(?:{_PREFIX})\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:：]|\[[^\[\]]{{1,80}}\])\s*",
    re.IGNORECASE,
)
_SPACES = re.compile(r"\s+")


def _subject_pass(subject: str) -> str:
    text = unicodedata.normalize("NFKC", subject)
    while True:
        stripped = _LEADER.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    return _SPACES.sub(" ", text).strip().casefold()


def normalise_subject(subject: str) -> str:
    """The subject without reply/forward prefixes and leading list tags, spaces collapsed, casefolded.

    `"RE: AW: [acme-users] Fwd:  Quote   #42"` → `"quote #42"`. Idempotent.
    """
    text = subject
    # NFKC and casefolding can each expose something the other changes (rarely): iterate to a
    # fixed point so that normalising twice gives the same answer. Converges in one or two passes.
    for _ in range(5):
        nxt = _subject_pass(text)
        if nxt == text:
            break
        text = nxt
    return text


def _light_subject(subject: str) -> str:
    """Subject for identity hashing: same text in any spacing or case, prefixes kept."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", subject)).strip().casefold()


# Subjects too common to group unrelated emails by (after `normalise_subject`). Deliberately
# short: anything longer or more specific is worth a guarded guess.
GENERIC_SUBJECTS: frozenset[str] = frozenset(
    {
        "",
        "(no subject)",
        "no subject",
        "(kein betreff)",
        "(sans objet)",
        "(sin asunto)",
        "hello",
        "hi",
        "hey",
        "hallo",
        "bonjour",
        "test",
        "question",
        "questions",
        "quick question",
        "meeting",
        "call",
        "invoice",
        "update",
        "follow up",
        "follow-up",
        "thanks",
        "thank you",
        "fyi",
        "info",
        "urgent",
    }
)
_MIN_SUBJECT_LENGTH = 4  # "ok", "re", "123": too short to mean anything


# --------------------------------------------------------------------------------------------
# Keys


def _address_or_raw(raw: str) -> str:
    return normalise_address(raw) or raw.strip().lower()


def _utc_second(value: datetime | None) -> str:
    if value is None:
        return ""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.replace(microsecond=0).isoformat()


def message_key(item: MailItem) -> str:
    """The identity of an email: `mid:<normalised Message-ID>`, or `hash:<sha256 hex>`.

    The hash covers what every copy of one message shares: From, the sorted set of To and Cc
    addresses, Date in UTC to the second, and the subject with whitespace collapsed and casefolded
    (reply prefixes are kept: an answer is a different message). Not Bcc (only the sender's copy
    has it) and not the body (providers re-encode it). Order, case and spacing of the inputs do
    not change the key.
    """
    if item.message_id:
        normalised = normalise_message_id(item.message_id)
        if normalised is not None:
            return f"mid:{normalised}"
    sender = item.sender
    recipients = sorted(
        {_address_or_raw(p.address) for p in item.participants if p.role in ("to", "cc")} - {""}
    )
    material = [
        "v1",
        _address_or_raw(sender.address) if sender is not None else "",
        recipients,
        _utc_second(item.date),
        _light_subject(item.subject),
    ]
    payload = json.dumps(material, ensure_ascii=False, separators=(",", ":"))
    return "hash:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


def parse_thread_index(value: str) -> str | None:
    """The conversation part of an Outlook Thread-Index header as hex, or None when unusable.

    The header is base64 of a 22-byte header block (a reserved byte, a FILETIME fragment and a
    GUID, fixed for the whole conversation) followed by one 5-byte block per reply. Whitespace
    from header folding and missing padding are tolerated; anything shorter than 22 bytes, not
    base64 or all zeros is rejected.
    """
    compact = "".join(value.split())
    if not compact:
        return None
    try:
        data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    head = data[:22]
    if len(head) < 22 or not any(head):
        return None
    return head.hex()


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class ThreadKeys:
    """The keys an item contributes to its thread (see the module docstring for their use)."""

    own: str | None
    refs: list[str]
    conversation: str | None
    subject: str | None
    thread_index: str | None = None

    def strong_keys(self) -> list[str]:
        """`own`, `refs`, `conversation`, `thread_index`: deduplicated, in that order."""
        keys = [self.own, *self.refs, self.conversation, self.thread_index]
        return list(dict.fromkeys(k for k in keys if k))

    def all_keys(self) -> list[str]:
        """The strong keys, then the subject key when there is one."""
        return [*self.strong_keys(), *([self.subject] if self.subject else [])]


def _ref_keys(item: MailItem, own: str | None) -> list[str]:
    ids: list[str] = []
    for entry in item.in_reply_to:
        ids.extend(split_message_ids(entry))
    references: list[str] = []
    for entry in item.references:
        references.extend(split_message_ids(entry))
    # Newest first: the end of References is the nearest ancestor.
    ids.extend(reversed(references[-_MAX_REFERENCES:]))
    keys = (f"mid:{i}" for i in ids)
    return [k for k in dict.fromkeys(keys) if k != own]


def _participant_hash(participants: Iterable[Participant]) -> str:
    addresses = sorted({_address_or_raw(p.address) for p in participants} - {""})
    return hashlib.sha256("\n".join(addresses).encode("utf-8")).hexdigest()[:16]


def thread_keys(
    item: MailItem,
    *,
    internal_domains: Collection[str] = (),
    owner_addresses: Collection[str] = (),
) -> ThreadKeys:
    """The thread keys of `item`.

    `internal_domains` and `owner_addresses` only shape the subject fallback: its participant hash
    covers the external From/To/Cc addresses (so the owner's colleagues joining or leaving the Cc
    does not split a thread); with none given, or none external, all From/To/Cc addresses count.
    """
    own_id = normalise_message_id(item.message_id) if item.message_id else None
    own = f"mid:{own_id}" if own_id else None
    refs = _ref_keys(item, own)

    tix_hex = parse_thread_index(item.headers.get("thread-index", ""))
    thread_index = f"tix:{tix_hex}" if tix_hex else None
    conv_id = (item.conversation_id or "").strip()
    conversation = f"conv:{conv_id}" if conv_id else thread_index

    subject_key: str | None = None
    if not refs and conversation is None:
        normalised = normalise_subject(item.subject)
        if len(normalised) >= _MIN_SUBJECT_LENGTH and normalised not in GENERIC_SUBJECTS:
            visible = [p for p in item.participants if p.role in ("from", "to", "cc")]
            external = external_participants(visible, internal_domains, owner_addresses)
            people = external or visible
            if people:
                digest = _participant_hash(people)
                subject_key = f"subj:{normalised[:_MAX_SUBJECT_IN_KEY]}|{digest}"
    return ThreadKeys(
        own=own,
        refs=refs,
        conversation=conversation,
        subject=subject_key,
        thread_index=thread_index,
    )
