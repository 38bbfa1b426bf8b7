"""Tell person-to-person mail from mailing lists, marketing and machine-generated mail.

Rapport only puts conversations between people on the CRM timeline; newsletters, notifications,
out-of-office replies and bounces would drown them. `bulk_reason` decides from the few headers every
source keeps (`KEPT_HEADERS`), the sender's address and the subject, never from the body, so the
decision is the same whatever the source and whatever the capture level.

The rules are deliberately one-sided: a missed newsletter costs a line on a timeline, a skipped
customer email is a lost conversation. So weak signals that CRMs, Outlook and helpdesks also put on
ordinary one-to-one mail (a lone List-Unsubscribe, a lone X-Auto-Response-Suppress, a lone
Feedback-ID or X-SES-Outgoing) never skip a message on their own; they only count together with a
second, independent sign.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from server.crm.addresses import looks_like_no_reply
from server.mail_ingest.items import MailItem

# Headers that only list software puts on mail (RFC 2369/2919, ezmlm, Mailman, Google Groups).
_LIST_HEADERS = ("list-id", "list-post", "mailing-list", "x-beenthere")

# Headers set by marketing platforms (Amazon SES, Mailchimp/Mandrill, Mailgun, Salesforce Marketing
# Cloud, SendGrid, the CSA whitelist...). Several of them are also on transactional or even
# one-to-one mail sent through the same platform, so they only count together with List-Unsubscribe.
_MARKETING_HEADERS = (
    "feedback-id",
    "x-campaign",
    "x-campaign-id",
    "x-mailgun-tag",
    "x-ses-outgoing",
    "x-sfmc-stack",
    "x-mc-user",
    "x-csa-complaints",
    "x-sg-eid",
)

# X-Mailer values of bulk-mail software; like the headers above they need List-Unsubscribe too.
_BULK_MAILERS = re.compile(
    r"mailchimp|mandrill|sendinblue|brevo|campaign ?monitor|constant ?contact|phplist|mailerlite|"
    r"mailjet|getresponse|acymailing|mautic|klaviyo|newsletter|mass ?mail|bulk",
    re.IGNORECASE,
)

# Local parts of senders that send campaigns rather than write to people. Only used together with
# List-Unsubscribe: "info@" and "sales@" are deliberately absent, small customers write from them.
_CAMPAIGN_LOCAL_PARTS = frozenset(
    {
        "newsletter",
        "newsletters",
        "news",
        "marketing",
        "campaign",
        "campaigns",
        "digest",
        "offers",
        "promo",
        "promotions",
        "deals",
        "updates",
        "announcements",
        "mailing",
        "mailer",
    }
)

# Subject prefixes auto-responders put in front of the original subject, in the languages Outlook,
# Exchange, Gmail, Notes and Zimbra localise them to. Matched at the start, with the colon, so a
# person's "Re: Automatic reply: ..." or "Out of office cover next week" is not caught.
_AUTO_REPLY_PREFIXES = (
    "automatic reply",
    "auto reply",
    "auto-reply",
    "autoreply",
    "auto response",
    "auto-response",
    "autoresponse",
    "out of office",
    "out of the office",
    "out of office reply",
    "out of office autoreply",
    "abwesenheitsnotiz",
    "automatische antwort",
    "abwesend",
    "réponse automatique",
    "reponse automatique",
    "absent du bureau",
    "absence du bureau",
    "respuesta automática",
    "respuesta automatica",
    "fuera de la oficina",
    "automatisch antwoord",
    "afwezig",
    "niet aanwezig",
    "automatiskt svar",
    "frånvaro",
    "frånvarande",
    "autosvar",
    "automatisk svar",
    "automatisk besked",
    "fraværende",
    "risposta automatica",
    "fuori sede",
    "resposta automática",
    "resposta automatica",
    "ausente",
    "automaattinen vastaus",
    "poissa",
    "odpowiedź automatyczna",
    "automatická odpověď",
    "automatikus válasz",
    "otomatik yanıt",
    "автоматический ответ",
    "自动回复",
    "自動回覆",
    "自動応答",
    "自動返信",
)
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:\[\s*)?(?:"
    + "|".join(re.escape(p) for p in _AUTO_REPLY_PREFIXES)
    + r")\s*(?:\]|[:：])",
    re.IGNORECASE,
)

# Auto-reply phrases anywhere in the subject ("Out of Office - back on 12 May"), used only together
# with X-Auto-Response-Suppress, which Exchange puts on its own automatic replies but Outlook also
# on meeting requests: neither sign is enough alone.
_AUTO_REPLY_WORDS = re.compile(
    r"out of (?:the )?office|auto[- ]?(?:reply|response)|automatic reply|abwesenheitsnotiz|"
    r"automatische antwort|r[ée]ponse automatique|respuesta autom[aá]tica|automatisch antwoord|"
    r"automatiskt svar",
    re.IGNORECASE,
)

# X-Auto-Response-Suppress values that mean "this message is itself an automatic response".
_SUPPRESS_AUTO = frozenset({"all", "oof", "autoreply"})

_NEGATIVE_VALUES = frozenset({"", "no", "false", "0", "off"})


def _header(headers: Mapping[str, str], name: str) -> str:
    """A kept header's value, unfolded, stripped, lower-cased ("" when absent)."""
    return " ".join(headers.get(name, "").split()).lower()


def _first_token(value: str) -> str:
    """The value before any parameters: "auto-replied; owner-email=..." gives "auto-replied"."""
    return value.split(";", 1)[0].strip()


def _list_is_own(headers: Mapping[str, str], own_domains: Collection[str]) -> bool:
    """Whether the list is one of our own team aliases (sales@ run as a Google or M365 group).

    Mail a customer sends to such an alias comes with list headers but is person mail.
    """
    if not own_domains:
        return False
    list_id = _header(headers, "list-id")
    if not list_id:
        return False
    # List-Id: "Sales team <sales.northwind-supplies.com>"; the id is the part in angle brackets.
    match = re.search(r"<([^>]+)>", list_id)
    ident = (match.group(1) if match else list_id).strip().rstrip(".")
    return any(ident == d.lower() or ident.endswith("." + d.lower()) for d in own_domains)


def _mailing_list(headers: Mapping[str, str], own_domains: Collection[str]) -> bool:
    listed = any(headers.get(name) is not None for name in _LIST_HEADERS)
    if not listed and _header(headers, "precedence") != "list":
        return False
    return not _list_is_own(headers, own_domains)


def _bulk(headers: Mapping[str, str], sender: str) -> bool:
    precedence = _first_token(_header(headers, "precedence"))
    if precedence in ("bulk", "junk"):
        return True
    if not _header(headers, "list-unsubscribe"):
        return False
    # List-Unsubscribe alone is also added by some CRMs to one-to-one mail: ask for a second sign.
    if any(headers.get(name) is not None for name in _MARKETING_HEADERS):
        return True
    if _BULK_MAILERS.search(_header(headers, "x-mailer")):
        return True
    local = sender.rpartition("@")[0].lower().split("+", 1)[0]
    return local in _CAMPAIGN_LOCAL_PARTS


def _automated(item: MailItem, headers: Mapping[str, str], sender: str) -> bool:
    auto_submitted = _first_token(_header(headers, "auto-submitted"))
    if auto_submitted and auto_submitted != "no":
        return True
    for name in ("x-autoreply", "x-autorespond", "x-autogenerated"):
        if name in headers and _header(headers, name) not in _NEGATIVE_VALUES:
            return True
    if _header(headers, "x-ms-exchange-generated-message-source"):
        return True
    if _first_token(_header(headers, "precedence")) in ("auto_reply", "auto-reply"):
        return True
    if _header(headers, "return-path").replace(" ", "") == "<>":
        return True
    if _first_token(_header(headers, "content-type")) == "multipart/report":
        return True
    subject = item.subject or ""
    if _AUTO_REPLY_SUBJECT.match(subject):
        return True
    suppress = {v.strip() for v in _header(headers, "x-auto-response-suppress").split(",")}
    if suppress & _SUPPRESS_AUTO and _AUTO_REPLY_WORDS.search(subject):
        return True
    return bool(sender) and looks_like_no_reply(sender)


def bulk_reason(item: MailItem, *, own_domains: Collection[str] = ()) -> str | None:
    """Why `item` is not person-to-person mail, or None when it is.

    Returns "mailing_list", "bulk" or "automated_sender" (the first rule that matches, in that
    order). `own_domains` are the business's own domains: list headers naming a list there are a
    team alias (sales@ as a Google Group), not a mailing list.
    """
    headers = item.headers
    from_ = item.sender
    sender = from_.address.lower() if from_ else ""
    if _mailing_list(headers, own_domains):
        return "mailing_list"
    if _bulk(headers, sender):
        return "bulk"
    if _automated(item, headers, sender):
        return "automated_sender"
    return None
