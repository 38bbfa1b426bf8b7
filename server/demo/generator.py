"""Write a fictional small business's mailboxes, so the demo and the benchmark import real files.

Northwind Supplies (northwind-supplies.com) is a wholesale supplier of packaging, catering and
cleaning consumables with four staff. `generate_demo` writes one Maildir per staff member, an mbox
archive and a few saved .eml and .ics files, holding ~120 days of what such a business's mail
really looks like: customer threads both ways with quotes and attachments, copies of one message in
several colleagues' mailboxes, Outlook-style and attached forwards, meeting invitations with
replies, an update and a cancellation, and all the noise the capture rules must skip (newsletters,
SaaS notifications, out-of-office replies, a bounce, internal mail) plus a few awkward messages
(no Message-ID, RFC 2047 subjects, HTML only, one that is not an email at all).

The demo is not special-cased anywhere: `rapport demo` imports these files through the same path
as a customer's own export, so what the demo shows is what real mail would show.

Layout (Maildir, one folder per staff member; the mailbox root is the INBOX):

    out_dir/mailboxes/<local-part>/{cur,new,tmp}        INBOX
    out_dir/mailboxes/<local-part>/Sent/{cur,new,tmp}   Sent items, a Maildir nested in the root
    out_dir/extra/archive-2024.mbox                     older correspondence (mboxrd, LF)
    out_dir/extra/saved/*.eml                           messages saved from a mail client
    out_dir/extra/calendar/*.ics                        calendar exports

Sent is a plain nested Maildir rather than a Maildir++ ".Sent" so that a walker which skips dot
folders still finds it, and the folder name the importer records is simply "Sent".

Everything is a pure function of `seed`, `now` and `scale`: names, Message-IDs, MIME boundaries,
file names and modification times, so two runs with the same arguments write identical trees.
Customer companies use invented names under real public suffixes (their domains must group into
companies like real ones do); every machine sender (newsletters, SaaS, banks) uses the reserved
`.example` TLD; UK phone numbers come from Ofcom's ranges reserved for drama.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import random
import shutil
import struct
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import EmailPolicy, Policy, default
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar

__all__ = ["DemoAccount", "DemoDataset", "DemoMailbox", "generate_demo"]

COMPANY_NAME = "Northwind Supplies"
COMPANY_DOMAIN = "northwind-supplies.com"
HISTORY_DAYS = 120


@dataclass(frozen=True)
class DemoMailbox:
    """One staff member's mailbox: a Maildir whose root is the INBOX, with a nested "Sent"."""

    owner: str
    name: str
    path: Path


@dataclass(frozen=True)
class DemoAccount:
    """A customer or prospect company and its account manager: what a sales team would have
    typed into its CRM besides the mail (owners, deals), which `server.demo.crm` records."""

    name: str
    domain: str
    owner: str  # the account manager's address
    products: tuple[str, ...]
    quiet_since_days: int = 0
    prospect: bool = False


@dataclass(frozen=True)
class DemoDataset:
    """What `generate_demo` wrote.

    `message_count` counts distinct messages (one message in three mailboxes counts once), the
    broken one and those in `extra_files` included; .ics files are not messages. `file_count` is
    the number of message files in the Maildirs. `kinds` counts distinct messages by what they
    are, so tests and the demo command can say what to expect without re-deriving it; a message
    can count under several kinds:

    - person mail: "customer" (with a customer or prospect), "internal" (staff only, to skip),
      "archived" (in the mbox), "cc_thread", "awaiting_reply", "attachment",
      "forward_inline", "forward_attached", "no_message_id", "non_ascii_subject";
    - calendar: "calendar_request" (updates included), "calendar_update", "calendar_reply",
      "calendar_cancel";
    - to skip: "newsletter", "mailing_list", "notification", "calendar_notification",
      "auto_reply", "bounce";
    - "broken": not an email at all, for the quarantine.
    """

    company_domain: str
    staff: list[DemoMailbox]
    extra_files: list[Path]
    message_count: int
    file_count: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    accounts: list[DemoAccount] = field(default_factory=list)


class _MessageIdsHeader(UnstructuredHeader, BaseHeader):
    """In-Reply-To and References: folded between message ids and never RFC 2047 encoded.

    The email package treats them as free text and encodes an id longer than a line (Exchange
    Online's are ~90 characters), which no mail client would do and no threading code expects.
    """

    def fold(self, *, policy: Policy) -> str:
        ids = str(self).split()
        return f"{self.name}:" + "".join(f"{policy.linesep} {i}" for i in ids) + policy.linesep


class _Registry(HeaderRegistry):
    """The stdlib registry, remembering the header classes it builds.

    `HeaderRegistry.__getitem__` creates a new class on every call (twice per header set);
    caching them makes building thousands of messages markedly faster.
    """

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = super().__getitem__(key)
        return found


def _policy(linesep: str) -> EmailPolicy[EmailMessage]:
    registry = _Registry()
    registry.map_to_type("in-reply-to", _MessageIdsHeader)
    registry.map_to_type("references", _MessageIdsHeader)
    # 7bit: bodies are quoted-printable or base64 whenever they are not ASCII, as Outlook and
    # Gmail send them, so every file is plain ASCII whatever path it takes.
    return default.clone(header_factory=registry, linesep=linesep, cte_type="7bit")


# Messages are built with LF and written with CRLF (RFC 5322 on the wire, as Maildir tools
# store it); mbox entries keep LF, which is what mbox readers expect.
_POLICY_LF = _policy("\n")
_POLICY_CRLF = _policy("\r\n")


# --- the cast -----------------------------------------------------------------------------------

Client = str  # "outlook", "gmail", "apple", "thunderbird" or "webmail": how a sender's mail looks


@dataclass(frozen=True)
class _Person:
    name: str
    address: str
    title: str = ""
    company: str = ""
    phone: str = ""
    tz: str = "Europe/London"
    client: Client = "outlook"
    lang: str = "en"

    @property
    def first(self) -> str:
        parts = self.name.split()
        return parts[1] if parts[0] in ("Dr", "Dr.") and len(parts) > 1 else parts[0]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def is_staff(self) -> bool:
        return self.domain == COMPANY_DOMAIN

    @property
    def header(self) -> Address:
        local, _, domain = self.address.rpartition("@")
        return Address(self.name, local, domain)


@dataclass(frozen=True)
class _Company:
    name: str
    people: tuple[_Person, ...]
    owner: int  # index into STAFF of the account manager
    products: tuple[str, ...]
    quiet_since_days: int = 0  # >0: nothing from or to them in the last N days


def _staff(name: str, local: str, title: str, phone: str) -> _Person:
    return _Person(name, f"{local}@{COMPANY_DOMAIN}", title, COMPANY_NAME, phone)


STAFF: tuple[_Person, ...] = (
    _staff("Anna Lindqvist", "anna", "Sales Director", "+44 20 7946 0321"),
    _staff("Tom Okafor", "tom", "Account Manager", "+44 20 7946 0345"),
    _staff("Priya Raman", "priya", "Customer Success Manager", "+44 20 7946 0367"),
    _staff("Marco Bellini", "marco", "Operations Director", "+44 20 7946 0300"),
)
ANNA, TOM, PRIYA, MARCO = STAFF


def _company(
    name: str,
    domain: str,
    tz: str,
    lang: str,
    owner: int,
    products: tuple[str, ...],
    people: Sequence[tuple[str, str, str, str, Client]],
    quiet_since_days: int = 0,
) -> _Company:
    cast = tuple(
        _Person(n, f"{local}@{domain}", title, name, phone, tz, client, lang)
        for n, local, title, phone, client in people
    )
    return _Company(name, cast, owner, products, quiet_since_days)


CUSTOMERS: tuple[_Company, ...] = (
    _company(
        "Brightline Dental Care",
        "brightline-dental.co.uk",
        "Europe/London",
        "en",
        0,
        ("nitrile gloves", "disinfectant wipes", "paper couch rolls", "face masks"),
        [
            (
                "Hannah Whitfield",
                "hannah.whitfield",
                "Practice Manager",
                "0161 496 0142",
                "outlook",
            ),
            ("Dr Samuel Adeyemi", "s.adeyemi", "Principal Dentist", "0161 496 0148", "apple"),
            ("Chloe Barnes", "chloe.barnes", "Purchasing Assistant", "0161 496 0155", "outlook"),
        ],
    ),
    _company(
        "Kestrelmoor Logistik GmbH",
        "kestrelmoor-logistik.de",
        "Europe/Berlin",
        "de",
        1,
        ("pallet wrap", "packing tape", "corrugated boxes", "work gloves"),
        [
            ("Jürgen Weiß", "j.weiss", "Leiter Einkauf", "+49 40 555 01873", "outlook"),
            ("Katrin Brandt", "katrin.brandt", "Operations Manager", "+49 40 555 01870", "outlook"),
            ("Mehmet Yıldız", "m.yildiz", "Lagerleiter", "+49 40 555 01877", "outlook"),
            ("Sabine Kröger", "s.kroeger", "Buchhaltung", "+49 40 555 01879", "outlook"),
        ],
    ),
    _company(
        "Maison Clairval Hôtels",
        "clairval-hotels.fr",
        "Europe/Paris",
        "fr",
        3,
        ("paper napkins", "room amenity kits", "glass cleaner", "laundry bags"),
        [
            (
                "Élodie Marchand",
                "e.marchand",
                "Directrice des achats",
                "+33 4 55 50 12 19",
                "outlook",
            ),
            ("Julien Roussel", "j.roussel", "Chef de cuisine", "+33 4 55 50 12 27", "gmail"),
            (
                "Amélie Dupont",
                "a.dupont",
                "Assistante de direction",
                "+33 4 55 50 12 10",
                "outlook",
            ),
        ],
    ),
    _company(
        "Vasquez & Row Architects",
        "vasquezrow-architects.com",
        "America/New_York",
        "en",
        0,
        ("copier paper", "hand towel rolls", "coffee cup lids", "compostable cups"),
        [
            ("Daniela Vásquez", "daniela", "Partner", "+1 617 555 0193", "apple"),
            ("Ethan Row", "ethan", "Office Manager", "+1 617 555 0187", "gmail"),
        ],
    ),
    _company(
        "Tidewater Café Collective",
        "tidewater-cafes.co.uk",
        "Europe/London",
        "en",
        2,
        ("compostable cups", "coffee cup lids", "kraft takeaway boxes", "bamboo cutlery sets"),
        [
            ("Olivia Grant", "olivia", "Founder", "0117 496 0160", "gmail"),
            ("Liam O'Connell", "liam", "Operations Lead", "0117 496 0163", "gmail"),
            ("Aisha Khan", "aisha", "Bookkeeper", "0117 496 0169", "gmail"),
        ],
    ),
    _company(
        "Hollandse Vaart Catering B.V.",
        "hollandsevaart-catering.nl",
        "Europe/Amsterdam",
        "nl",
        1,
        ("food containers", "aprons", "paper napkins", "bin liners"),
        [
            ("Sanne de Vries", "sanne.devries", "Inkoper", "+31 20 555 0134", "outlook"),
            (
                "Pieter van Dijk",
                "pieter.vandijk",
                "Operationeel manager",
                "+31 20 555 0138",
                "outlook",
            ),
            ("Daan Visser", "daan.visser", "Chef-kok", "+31 20 555 0131", "gmail"),
        ],
    ),
    _company(
        "Nordljus Kliniken AB",
        "nordljus-kliniken.se",
        "Europe/Stockholm",
        "sv",
        2,
        ("nitrile gloves", "disinfectant wipes", "hand towel rolls", "bin liners"),
        [
            ("Erik Lindholm", "erik.lindholm", "Inköpschef", "+46 8 555 012 44", "outlook"),
            ("Maja Sjöberg", "maja.sjoberg", "Vårdenhetschef", "+46 8 555 012 47", "outlook"),
            ("Oskar Nilsson", "oskar.nilsson", "Logistiker", "+46 8 555 012 40", "thunderbird"),
        ],
    ),
    _company(
        "Fernhollow Veterinary Group",
        "fernhollow-vets.co.uk",
        "Europe/London",
        "en",
        0,
        ("nitrile gloves", "disinfectant wipes", "bin liners", "paper couch rolls"),
        [
            ("James Porter", "james.porter", "Practice Director", "0117 496 0412", "outlook"),
            ("Rebecca Osei", "rebecca.osei", "Head Nurse", "0117 496 0418", "outlook"),
        ],
        quiet_since_days=72,
    ),
    _company(
        "Quillon Coworking",
        "quillon-cowork.com",
        "Europe/Madrid",
        "es",
        2,
        ("compostable cups", "hand towel rolls", "glass cleaner", "copier paper"),
        [
            ("Sofía Moreno", "sofia.moreno", "Community Lead", "+34 91 555 0177", "gmail"),
            ("Daniel Kim", "daniel.kim", "Facilities Coordinator", "+34 91 555 0172", "gmail"),
            ("Lucía Navarro", "lucia.navarro", "Office Coordinator", "+34 91 555 0175", "apple"),
        ],
    ),
    _company(
        "Saltmarsh Bakehouse",
        "saltmarsh-bakehouse.co.uk",
        "Europe/London",
        "en",
        3,
        ("kraft paper bags", "kraft takeaway boxes", "greaseproof paper", "compostable cups"),
        [
            # A small business: the owner writes from the shop's info@ address.
            ("Rosie Fairbanks", "info", "Owner", "01632 960 419", "webmail"),
            ("Josh Fairbanks", "josh", "Head Baker", "07700 900 418", "apple"),
        ],
    ),
    _company(
        "Aurelio Ristoranti S.r.l.",
        "aurelio-ristoranti.it",
        "Europe/Rome",
        "it",
        1,
        ("food containers", "paper napkins", "aprons", "glass cleaner"),
        [
            (
                "Giulia Ferraro",
                "giulia.ferraro",
                "Responsabile acquisti",
                "+39 06 5550 1288",
                "outlook",
            ),
            ("Matteo Conti", "matteo.conti", "Executive Chef", "+39 06 5550 1281", "gmail"),
            (
                "Francesca Romano",
                "francesca.romano",
                "Amministrazione",
                "+39 06 5550 1280",
                "outlook",
            ),
        ],
    ),
    _company(
        "Pinecrest Student Housing",
        "pinecrest-housing.ie",
        "Europe/Dublin",
        "en",
        2,
        ("bin liners", "hand towel rolls", "toilet rolls", "glass cleaner"),
        [
            ("Ciarán Murphy", "ciaran.murphy", "Facilities Manager", "+353 1 555 0121", "webmail"),
            ("Niamh Walsh", "niamh.walsh", "Accommodation Officer", "+353 1 555 0126", "outlook"),
        ],
    ),
)

# A prospect, not yet a customer: one enquiry and our quote (`_Demo.quiet_prospect`).
HARBOURSIDE = _company(
    "Harbourside Dental Studio",
    "harbourside-dental.co.uk",
    "Europe/London",
    "en",
    0,
    ("nitrile gloves", "disinfectant wipes"),
    [("Rhiannon Pryce", "rhiannon.pryce", "Practice Manager", "+44 29 2018 0457", "outlook")],
)


def _private(name: str, address: str, note: str, tz: str, client: Client, lang: str) -> _Company:
    person = _Person(name, address, note, "", "", tz, client, lang)
    return _Company("", (person,), 3, ("compostable cups", "paper napkins", "kraft takeaway boxes"))


# People who buy privately or for a tiny business, from free-mail addresses.
PRIVATE: tuple[_Company, ...] = (
    _private(
        "Lucy Hartley", "lucy.hartley.events@gmail.com", "Events", "Europe/London", "gmail", "en"
    ),
    _private(
        "Mike Brennan", "mbrennan72@outlook.com", "The Old Anchor", "Europe/London", "webmail", "en"
    ),
    _private(
        "Sarah Pemberton", "sarah_pemberton@yahoo.co.uk", "", "Europe/London", "webmail", "en"
    ),
    _private(
        "Klaus Hoffmann", "k.hoffmann@gmx.de", "TSV Eichenau", "Europe/Berlin", "thunderbird", "de"
    ),
)

BRIGHTLINE, KESTRELMOOR, CLAIRVAL, VASQUEZ, TIDEWATER, VAART = CUSTOMERS[:6]
NORDLJUS, FERNHOLLOW, QUILLON, SALTMARSH, AURELIO, PINECREST = CUSTOMERS[6:]

_GREETINGS = {
    "en": ("Hi {first},", "Best regards", "Kind regards", "Many thanks", "Thanks"),
    "de": ("Hallo {first},", "Viele Grüße", "Beste Grüße", "Freundliche Grüße"),
    "fr": ("Bonjour {first},", "Cordialement", "Bien à vous", "Merci d'avance"),
    "nl": ("Hoi {first},", "Met vriendelijke groet", "Groeten"),
    "sv": ("Hej {first},", "Vänliga hälsningar", "Med vänlig hälsning"),
    "it": ("Ciao {first},", "Cordiali saluti", "Grazie mille"),
    "es": ("Hola {first},", "Un saludo", "Saludos"),
}

# --- conversation material ----------------------------------------------------------------------

# Each topic: a subject, then its messages in order, each "C text" (customer) or "S text" (staff);
# "S:quote text" also attaches a generated document of that kind (see `_Demo.attachment`).
TOPICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Quote for {qty} {product}",
        (
            "C Could you send us a quote for {qty} {product}? We'd need them by {day}.",
            "S:quote Thanks for the enquiry. Please find our quote {quote} attached - the price "
            "includes delivery to your site. Lead time is currently 5 working days.",
            "C Thanks, that looks fine. Can you hold the price until the end of the month while I "
            "get sign-off?",
            "S Yes, no problem - I've held the price until the end of the month.",
            "C:po Sign-off received, our purchase order {po} is attached.",
        ),
    ),
    (
        "Delivery schedule for PO {po}",
        (
            "C Can you confirm when PO {po} will be delivered? Our storeroom is closed on {day}.",
            "S PO {po} is booked on our van for Thursday morning, between 8 and 12. I'll make "
            "sure the driver knows about {day}.",
            "C Perfect, thank you.",
        ),
    ),
    (
        "Invoice {inv} query",
        (
            "C Invoice {inv} shows last year's unit price for the {product}. Could you check and "
            "send a corrected invoice?",
            "S You're right, apologies - that was the 2024 price. I've asked our accounts team to "
            "issue a credit note and a corrected invoice today.",
            "C Thanks. Please copy our accounts address when you send it.",
            "S:invoice Done - the corrected invoice is attached.",
        ),
    ),
    (
        "Short delivery on {day}",
        (
            "C We were two cases short of {product} on {day}'s delivery. The delivery note says "
            "12 but we counted 10.",
            "S Sorry about that. I've checked with the warehouse and the two cases will go out on "
            "tomorrow's van at no charge.",
            "C Great, thanks for sorting it so quickly.",
        ),
    ),
    (
        "Price list 2025",
        (
            "S:pricelist Please find attached our 2025 price list. Most lines are unchanged; "
            "{product} go up by 3% from next month.",
            "C Thanks. Is the 3% increase fixed for the rest of the year?",
            "S Yes, we've agreed the price with our mill until December.",
        ),
    ),
    (
        "Samples of the {product}",
        (
            "S As promised, samples of the {product} went out today. Let me know what the team "
            "thinks.",
            "C The samples arrived and the team liked them. Could we start with {qty} next month?",
            "S Great news. I'll put {qty} on your order for next month and send a confirmation.",
            "C Thanks!",
        ),
    ),
    (
        "Standing order - {product}",
        (
            "C We'd like to set up a standing order for {qty} {product} every fortnight. Is that "
            "possible?",
            "S Absolutely. I've set it up from next week; you'll get a confirmation before each "
            "delivery and you can pause it any time.",
        ),
    ),
    (
        "Change of delivery address",
        (
            "C Please note our new delivery address from {date}: Unit 7, Harbour Road. The old "
            "site closes the same week.",
            "S Thanks, I've updated your account. The first delivery to Harbour Road will be on "
            "{date}.",
            "C Thank you.",
        ),
    ),
    (
        "Following up on our call",
        (
            "S Thanks for your time on the phone today. As discussed, I'll send samples of the "
            "{product} and a quote for {qty}.",
            "C Thanks - one more thing: can you include your cleaning range in the quote?",
            "S:quote Of course, I'll add it. Quote {quote} attached.",
        ),
    ),
    (
        "Returns for order {po}",
        (
            "C We received the wrong lids with order {po} - they don't fit the 12oz cups. How do "
            "we return them?",
            "S Sorry for the mix-up. Our driver will collect them on the next delivery and bring "
            "the right lids. No need to repack them.",
            "C Great, they're by the back door.",
        ),
    ),
    (
        "Credit account application",
        (
            "C:form I've filled in the credit account form, see attached.",
            "S Thanks, I've passed it to our accounts team; approval usually takes two working "
            "days.",
            "S Good news - your credit account is approved with 30-day terms.",
            "C Brilliant, thank you.",
        ),
    ),
    (
        "Volumes for next quarter",
        (
            "S I'm planning our stock for next quarter - roughly how many {product} do you expect "
            "to need?",
            "C About {qty} a month, a little more in the summer.",
            "S Thanks, that's really helpful.",
        ),
    ),
    (
        "Damaged pallet",
        (
            "C:photo One pallet arrived damaged this morning, photo attached. The top two layers "
            "of {product} are crushed.",
            "S Thanks for the photo. I've raised a claim with the carrier and a replacement is on "
            "its way.",
            "C Thanks. Can you send the credit note when it's done?",
            "S:credit Credit note attached.",
        ),
    ),
    (
        "Trial of the eco range",
        (
            "C The team liked the trial of the eco range. What would it cost to switch all our "
            "{product} over?",
            "S:quote Switching everything would be about 8% more than today, but a 12-month "
            "agreement offsets most of that. Quote {quote} attached.",
            "C Let me take that to our director and come back to you.",
        ),
    ),
)

INTERNAL_TOPICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Stock count on Friday",
        (
            "Reminder that we're doing the stock count on Friday from 3pm.",
            "I'll be there, can someone bring the scanner chargers?",
        ),
    ),
    (
        "Holiday cover",
        (
            "I'm off next week - Tom, could you cover my accounts?",
            "Yes, forward me anything urgent.",
        ),
    ),
    (
        "Pipeline review notes",
        (
            "Notes from this morning's pipeline review are below. Main "
            "actions: chase the two open quotes and book the Lyon visit.",
        ),
    ),
    (
        "Van booking",
        ("Can we get the second van on Thursday? Two big deliveries in Salford.", "Booked."),
    ),
    (
        "Greenleaf price increase",
        (
            "Greenleaf are putting kraft up by 4% in May - we should tell customers this month.",
            "Agreed, I'll draft something.",
        ),
    ),
    ("Lunch on Thursday?", ("Team lunch on Thursday at 12:30?", "Count me in.")),
)

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_QUANTITIES = ("500", "1,000", "2,000", "5,000", "12 cases of", "40 boxes of", "3 pallets of")


def _split_line(line: str) -> tuple[str, str, str]:
    """ "S:quote Thanks..." -> ("S", "quote", "Thanks...")."""
    tag, _, text = line.partition(" ")
    speaker, _, attachment = tag.partition(":")
    return speaker, attachment, text


def _fill(text: str, values: dict[str, str]) -> str:
    return text.format(**values)


# --- small generated attachments ----------------------------------------------------------------


def _pdf(lines: Sequence[str]) -> bytes:
    """A small but valid one-page PDF showing `lines` (real readers open it)."""

    def esc(s: str) -> str:
        ascii_text = s.encode("ascii", "replace").decode("ascii")
        return ascii_text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    text = "BT /F1 11 Tf 72 770 Td 14 TL " + " ".join(f"({esc(x)}) '" for x in lines) + " ET"
    stream = text.encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid solid-colour PNG (a signature logo, a "photo")."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height, 9))
        + chunk(b"IEND", b"")
    )


_LOGO = _png(24, 8, (31, 78, 121))
_LOGO_CID = "image001.png@01DB8F00.5A2C1E40"


@dataclass(frozen=True)
class _Attachment:
    filename: str
    maintype: str
    subtype: str
    content: bytes


# --- Maildir writing ----------------------------------------------------------------------------


def _tz(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass
class _Thread:
    """State of one conversation while it is being written."""

    subject: str
    last_id: str | None = None
    references: list[str] = field(default_factory=list)
    thread_index: bytes = b""
    last_text: str = ""
    last_sender: _Person | None = None
    last_date: datetime | None = None
    last_to: tuple[_Person, ...] = ()
    last_cc: tuple[_Person, ...] = ()
    count: int = 0


@dataclass
class _Meeting:
    """One meeting while its invitation, replies, update or cancellation are written."""

    organizer: _Person
    attendees: tuple[_Person, ...]
    summary: str
    start: datetime
    uid: str
    join: str
    style: str = "outlook"  # "outlook" (IANA zones), "windows" (Windows zone ids) or "google"
    rrule: dict[str, object] | None = None
    sequence: int = 0


_OUTLOOK_PRODID = "-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN"
_GOOGLE_PRODID = "-//Google Inc//Google Calendar 70.9054//EN"


class _Writer:
    """Builds messages and files them into the staff mailboxes, deterministically."""

    def __init__(self, out_dir: Path, rng: random.Random, now: datetime) -> None:
        self.out_dir = out_dir
        self.rng = rng
        self.now = now
        self.kinds: Counter[str] = Counter()
        self.distinct = 0
        self.files = 0
        self._seq = 0
        self.roots: dict[str, Path] = {}
        for person in STAFF:
            root = out_dir / "mailboxes" / person.address.partition("@")[0]
            for folder in (root, root / "Sent"):
                for sub in ("cur", "new", "tmp"):
                    (folder / sub).mkdir(parents=True, exist_ok=True)
            self.roots[person.address] = root
        self._headers: dict[tuple[str, str], str] = {}

    # identifiers ---------------------------------------------------------------------------

    def hex(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"

    def message_id(self, sender: _Person, when: datetime) -> str:
        """A Message-ID shaped like the one the sender's mail system would write."""
        if sender.client == "outlook":
            # Exchange Online: the id names the mailbox server, which is fixed per sender.
            digest = hashlib.sha256(sender.address.encode()).digest()
            prefix = ("DB9PR07MB", "AM6PR03MB", "PAXPR08MB", "VI1PR04MB")[digest[0] % 4]
            server = f"{prefix}{1000 + int.from_bytes(digest[1:3], 'big') % 9000}"
            region = f"eurprd0{digest[3] % 9 + 1}"
            return f"<{server}{self.hex(24).upper()}@{server}.{region}.prod.outlook.com>"
        if sender.client == "gmail":
            token = base64.urlsafe_b64encode(self.rng.randbytes(33)).decode().rstrip("=")
            return f"<CA{token}@mail.gmail.com>"
        if sender.client == "apple":
            h = self.hex(32).upper()
            return f"<{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}@{sender.domain}>"
        if sender.client == "thunderbird":
            h = self.hex(32)
            return f"<{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}@{sender.domain}>"
        stamp = when.astimezone(UTC).strftime("%Y%m%d%H%M%S")
        return f"<{stamp}.{self.hex(12)}@{sender.domain}>"

    # composing -----------------------------------------------------------------------------

    def header(self, name: str, value: object) -> str:
        """A parsed header object, shared between messages that carry the same value.

        Parsing headers is most of the cost of building a message, and the same From, To,
        Subject and X- headers recur all the time; header objects are immutable strings.
        """
        key = (name, repr(value))  # Address is not hashable; its repr names every field
        found = self._headers.get(key)
        if found is None:
            found = _POLICY_LF.header_factory(name, value)
            if len(self._headers) < 50_000:
                self._headers[key] = found
        return found

    def compose(
        self,
        sender: _Person | Address,
        to: Sequence[_Person | Address | str],
        subject: str,
        text: str,
        when: datetime,
        *,
        cc: Sequence[_Person] = (),
        html_mode: str = "alternative",  # "plain", "alternative" or "html"
        attachments: Sequence[_Attachment | EmailMessage] = (),
        headers: Sequence[tuple[str, str]] = (),
        html_body: str | None = None,
        message_id: str | None = "auto",
        tz: str | None = None,
        logo: bool = False,
        return_path: str | None = None,
    ) -> EmailMessage:
        msg = EmailMessage(policy=_POLICY_LF)
        if return_path:  # added by the receiving server, so it comes first
            msg["Return-Path"] = self.header("Return-Path", f"<{return_path}>")
        msg["From"] = self.header("From", sender.header if isinstance(sender, _Person) else sender)
        msg["To"] = self.header("To", tuple(t.header if isinstance(t, _Person) else t for t in to))
        if cc:
            msg["Cc"] = self.header("Cc", tuple(c.header for c in cc))
        msg["Subject"] = self.header("Subject", subject)
        zone = tz or (sender.tz if isinstance(sender, _Person) else "UTC")
        msg["Date"] = format_datetime(when.astimezone(_tz(zone)))
        if message_id == "auto":
            if isinstance(sender, _Person):
                message_id = self.message_id(sender, when)
            else:
                message_id = f"<{self.hex(20)}@{sender.domain}>"
        if message_id:
            msg["Message-ID"] = message_id
        msg["MIME-Version"] = self.header("MIME-Version", "1.0")
        for name, value in headers:
            if value:
                msg[name] = self.header(name, value)
        body_html = html_body if html_body is not None else _to_html(text, logo=logo)
        if html_mode == "html":
            msg.set_content(body_html, subtype="html")
        else:
            msg.set_content(text)
            if html_mode == "alternative":
                msg.add_alternative(body_html, subtype="html")
                html_part = msg.get_body(("html",))
                if logo and isinstance(html_part, EmailMessage):
                    # Outlook signatures carry their logo as an inline, related image.
                    html_part.add_related(
                        _LOGO,
                        maintype="image",
                        subtype="png",
                        cid=f"<{_LOGO_CID}>",
                        filename="image001.png",
                        disposition="inline",
                    )
        for att in attachments:
            if isinstance(att, EmailMessage):
                msg.add_attachment(att)
            else:
                msg.add_attachment(
                    att.content, maintype=att.maintype, subtype=att.subtype, filename=att.filename
                )
        return msg

    def serialise(self, msg: EmailMessage, policy_lf: bool = False) -> bytes:
        """Bytes of `msg`, with MIME boundaries from the seeded generator rather than `random`."""
        seed = self.hex(16)
        for n, part in enumerate(msg.walk()):
            if part.get_content_maintype() == "multipart":
                part.set_boundary(f"_{n:03d}_{seed}_")
        return msg.as_bytes(policy=_POLICY_LF if policy_lf else _POLICY_CRLF)

    # delivery ------------------------------------------------------------------------------

    def _write(self, folder: Path, raw: bytes, when: datetime, unread: bool) -> None:
        self._seq += 1
        stamp = int(when.timestamp())
        base = f"{stamp}.M{self._seq:06d}P{4000 + self._seq % 997}.rapport-demo"
        path = folder / "new" / base if unread else folder / "cur" / f"{base}:2,S"
        path.write_bytes(raw)
        os.utime(path, (stamp, stamp))
        self.files += 1

    def deliver(
        self,
        msg: EmailMessage | bytes,
        when: datetime,
        sender: _Person | None,
        recipients: Iterable[_Person],
        kinds: Iterable[str],
    ) -> bytes:
        """File one message: a Sent copy for a staff sender, an INBOX copy per staff recipient."""
        raw = msg if isinstance(msg, bytes) else self.serialise(msg)
        self.distinct += 1
        self.kinds.update(kinds)
        if sender is not None and sender.is_staff:
            self._write(self.roots[sender.address] / "Sent", raw, when, unread=False)
        unread = self.now - when < timedelta(hours=30)
        seen: list[str] = []
        for person in recipients:
            if person.is_staff and person.address not in seen and person != sender:
                seen.append(person.address)
                self._write(self.roots[person.address], raw, when, unread)
        return raw

    # threads -------------------------------------------------------------------------------

    def post(
        self,
        thread: _Thread,
        sender: _Person,
        to: Sequence[_Person],
        cc: Sequence[_Person],
        text: str,
        when: datetime,
        *,
        kinds: Iterable[str] = ("customer",),
        attachments: Sequence[_Attachment | EmailMessage] = (),
        html_mode: str | None = None,
        message_id: str | None = "auto",
        subject: str | None = None,
        extra_headers: Sequence[tuple[str, str]] = (),
    ) -> bytes:
        """Write the next message of `thread`: reply prefix, quote, threading headers.

        A message that would be dated after `now` is not written (b"" is returned): working
        hours can push a reply past the end of the history, and the demo has no future mail.
        """
        if when > self.now:
            return b""
        outlook = sender.client == "outlook"
        if subject is None:
            subject = thread.subject if thread.count == 0 else f"{'RE' if outlook else 'Re'}: "
            if thread.count:
                subject += thread.subject
        body = text
        if thread.count and thread.last_sender is not None and thread.last_date is not None:
            body += "\n\n" + _quote(thread, sender.client)
        headers: list[tuple[str, str]] = list(extra_headers)
        if thread.last_id:
            headers.append(("In-Reply-To", thread.last_id))
            headers.append(("References", " ".join(thread.references[-8:])))
        if outlook:
            if not thread.thread_index:
                thread.thread_index = self.rng.randbytes(22)
            elif thread.count:
                thread.thread_index += self.rng.randbytes(5)
            headers.append(("Thread-Topic", thread.subject))
            headers.append(("Thread-Index", base64.b64encode(thread.thread_index).decode()))
            headers.append(("X-MS-Has-Attach", "yes" if attachments else ""))
        elif sender.client == "apple":
            headers.append(("X-Mailer", "Apple Mail (2.3826.400.131.1.6)"))
        elif sender.client == "thunderbird":
            headers.append(("User-Agent", "Mozilla Thunderbird"))
        mode = html_mode or _CLIENT_HTML[sender.client]
        msg = self.compose(
            sender,
            to,
            subject,
            body,
            when,
            cc=cc,
            html_mode=mode,
            attachments=attachments,
            headers=[h for h in headers if h[1]],
            message_id=message_id,
            logo=sender == ANNA and mode == "alternative",
            return_path=None if sender.is_staff else sender.address,
        )
        mid = msg["Message-ID"]
        thread.count += 1
        thread.last_text = body
        thread.last_sender, thread.last_date = sender, when
        thread.last_to, thread.last_cc = tuple(to), tuple(cc)
        if mid:
            thread.last_id = str(mid)
            thread.references.append(str(mid))
        return self.deliver(msg, when, sender, [*to, *cc], kinds)


_CLIENT_HTML = {
    "outlook": "alternative",
    "gmail": "alternative",
    "apple": "alternative",
    "thunderbird": "plain",
    "webmail": "html",
}


def _to_html(text: str, *, logo: bool = False) -> str:
    blocks = []
    for block in text.split("\n\n"):
        lines = block.split("\n")
        if all(line.startswith(">") for line in lines if line):
            inner = "<br>".join(html.escape(line.lstrip("> ")) for line in lines)
            blocks.append(
                f'<blockquote style="margin:0 0 0 .8ex;border-left:1px #ccc solid;'
                f'padding-left:1ex">{inner}</blockquote>'
            )
        else:
            blocks.append("<p>" + "<br>".join(html.escape(line) for line in lines) + "</p>")
    signature = f'<p><img src="cid:{_LOGO_CID}" alt="Northwind"></p>' if logo else ""
    return (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head>'
        '<body><div style="font-family:Calibri,Arial,sans-serif;font-size:11pt">'
        + "\n".join(blocks)
        + signature
        + "</div></body></html>\n"
    )


def _quote(thread: _Thread, client: Client) -> str:
    """The previous message quoted the way the replying client does it."""
    prev = thread.last_sender
    assert prev is not None and thread.last_date is not None
    text = "\n".join(thread.last_text.splitlines()[:60])
    when = thread.last_date.astimezone(_tz(prev.tz))
    if client == "outlook":
        to = "; ".join(f"{p.name} <{p.address}>" for p in thread.last_to)
        lines = [
            "________________________________",
            f"From: {prev.name} <{prev.address}>",
            f"Sent: {when.strftime('%A, %d %B %Y %H:%M')}",
            f"To: {to}",
        ]
        if thread.last_cc:
            lines.append("Cc: " + "; ".join(f"{p.name} <{p.address}>" for p in thread.last_cc))
        lines += [f"Subject: {thread.subject}", "", text]
        return "\n".join(lines)
    header = f"On {when.strftime('%a, %d %b %Y at %H:%M')}, {prev.name} <{prev.address}> wrote:"
    return header + "\n" + "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _signature(person: _Person, full: bool) -> str:
    if not full:
        return person.first
    lines = [person.name]
    if person.title:
        lines.append(person.title)
    if person.company:
        lines.append(person.company)
    if person.phone:
        lines.append(f"T: {person.phone}")
    if person.is_staff:
        lines.append(f"www.{COMPANY_DOMAIN}")
    return "\n".join(lines)


def _letter(sender: _Person, recipient: _Person | None, text: str, rng: random.Random) -> str:
    """Greeting, text, sign-off and signature in the sender's usual style."""
    greet, *sign_offs = _GREETINGS.get(sender.lang, _GREETINGS["en"])
    first = recipient.first if recipient else "all"
    full = sender.client == "outlook" or rng.random() < 0.4
    body = f"{greet.format(first=first)}\n\n{text}\n\n{rng.choice(sign_offs)},\n"
    body += _signature(sender, full)
    if sender.client == "apple" and rng.random() < 0.5:
        body += "\n\nSent from my iPhone"
    return body + "\n"


# --- the generator ------------------------------------------------------------------------------


class _Demo:
    """Writes the whole dataset: the stories first, then the bulk of threads, noise and extras."""

    def __init__(self, out_dir: Path, seed: int, now: datetime, scale: int) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.scale = scale
        self.out_dir = out_dir
        self.w = _Writer(out_dir, self.rng, now)
        self.numbers = Counter[str]()
        self.extra_files: list[Path] = []
        self.saved_copy = b""

    # helpers -------------------------------------------------------------------------------

    def number(self, kind: str, fmt: str, base: int) -> str:
        self.numbers[kind] += 1
        return fmt.format(base + self.numbers[kind] * 7 + self.rng.randrange(7))

    def working_time(self, when: datetime, tz: str) -> datetime:
        """Move `when` forward into the sender's working hours (Mon-Fri, 8:00-18:00 local)."""
        local = when.astimezone(_tz(tz))
        if local.hour < 8:
            local = local.replace(hour=8 + self.rng.randrange(2), minute=self.rng.randrange(60))
        elif local.hour >= 18:
            local = (local + timedelta(days=1)).replace(
                hour=8 + self.rng.randrange(2), minute=self.rng.randrange(60)
            )
        while local.weekday() >= 5:
            local += timedelta(days=1)
        local = local.replace(second=self.rng.randrange(60), microsecond=0)
        return local.astimezone(UTC)

    def day(self, days_ago: float, tz: str = "Europe/London") -> datetime:
        """A working-hours time about `days_ago` days before `now`, and never after it."""
        when = self.now - timedelta(days=days_ago)
        when = when.replace(hour=9, minute=0) + timedelta(minutes=self.rng.randrange(540))
        when = self.working_time(when, tz)
        if when > self.now:  # a weekend or evening pushed it past the end of the history
            when = self.now - timedelta(minutes=self.rng.randrange(30, 240))
        return when

    def values(self, company: _Company) -> dict[str, str]:
        when = self.now + timedelta(days=self.rng.randrange(7, 30))
        return {
            "product": self.rng.choice(company.products),
            "qty": self.rng.choice(_QUANTITIES),
            "po": self.number("po", "PO-{}", 48000),
            "inv": self.number("inv", "INV-2025-{:04d}", 100),
            "quote": self.number("quote", "Q-2025-{:04d}", 140),
            "day": self.rng.choice(_DAYS),
            "date": f"{when.day} {when.strftime('%B')}",
        }

    def attachment(self, kind: str, values: dict[str, str], company: _Company) -> _Attachment:
        buyer = company.name or "Private customer"
        if kind == "quote":
            lines = [
                f"{COMPANY_NAME} - Quotation {values['quote']}",
                f"For: {buyer}",
                f"{values['qty']} {values['product']}",
                "Valid 30 days. Prices excl. VAT.",
            ]
            return _Attachment(f"{values['quote']}.pdf", "application", "pdf", _pdf(lines))
        if kind in ("invoice", "credit"):
            title = "Invoice" if kind == "invoice" else "Credit note"
            number = values["inv"] if kind == "invoice" else f"CN-{values['inv'][4:]}"
            lines = [f"{COMPANY_NAME} - {title} {number}", f"To: {buyer}", f"{values['product']}"]
            return _Attachment(f"{number}.pdf", "application", "pdf", _pdf(lines))
        if kind == "po":
            lines = [
                f"{buyer} - Purchase order {values['po']}",
                f"{values['qty']} {values['product']}",
                f"Supplier: {COMPANY_NAME}",
            ]
            return _Attachment(f"{values['po']}.pdf", "application", "pdf", _pdf(lines))
        if kind == "form":
            lines = ["Credit account application", f"Company: {buyer}", "Terms requested: 30 days"]
            return _Attachment("Credit application form.pdf", "application", "pdf", _pdf(lines))
        if kind == "photo":
            return _Attachment("IMG_4821.png", "image", "png", _png(32, 24, (150, 110, 60)))
        rows = ["sku,description,unit,price_gbp"] + [
            f"NW-{100 + i},{p},case,{12 + i * 3.5:.2f}" for i, p in enumerate(company.products)
        ]
        return _Attachment(
            "Northwind price list 2025.csv", "text", "csv", ("\r\n".join(rows) + "\r\n").encode()
        )

    # customer threads ----------------------------------------------------------------------

    def customer_thread(
        self, company: _Company, earliest: float, latest: float, *, customer_first: bool = False
    ) -> None:
        """One conversation from TOPICS between a customer and their account manager.

        It starts between `earliest` and `latest` days ago and runs until `now`, or for a quiet
        customer until `latest` days ago (their last message).
        """
        topics = [t for t in TOPICS if t[1][0].startswith("C")] if customer_first else TOPICS
        subject_tpl, lines = self.rng.choice(topics)
        values = self.values(company)
        contact = self.rng.choice(company.people)
        others = [p for p in company.people if p != contact]
        customer_cc = [self.rng.choice(others)] if others and self.rng.random() < 0.25 else []
        owner = STAFF[company.owner]
        staff_cc = (
            [self.rng.choice([s for s in STAFF if s != owner])] if self.rng.random() < 0.25 else []
        )
        thread = _Thread(_fill(subject_tpl, values))
        when = self.day(self.rng.uniform(latest, earliest), contact.tz)
        until = self.now - timedelta(days=latest) if company.quiet_since_days else self.now
        length = self.rng.randint(1, len(lines)) if self.rng.random() < 0.3 else len(lines)
        for line in lines[:length]:
            speaker, attach, text = _split_line(line)
            if speaker == "C":
                sender, to, cc = contact, [owner], [*staff_cc, *customer_cc]
            else:
                # A cc'd colleague sometimes answers instead of the account manager.
                sender = staff_cc[0] if staff_cc and self.rng.random() < 0.2 else owner
                colleagues = [s for s in (owner, *staff_cc) if s != sender]
                to, cc = [contact], [*customer_cc, *colleagues]
            if when > until:
                return
            recipient = to[0]
            body = _letter(sender, recipient, _fill(text, values), self.rng)
            atts = [self.attachment(attach, values, company)] if attach else []
            self.w.post(
                thread,
                sender,
                to,
                cc,
                body,
                when,
                attachments=atts,
                kinds=["customer", *(["attachment"] if atts else [])],
            )
            when = self.working_time(when + timedelta(hours=self.rng.uniform(0.5, 60)), (to[0]).tz)

    # the specific stories ------------------------------------------------------------------

    def cc_story(self) -> None:
        """A customer writes to Anna with Tom in cc; the whole thread sits in both mailboxes."""
        hannah, samuel = BRIGHTLINE.people[0], BRIGHTLINE.people[1]
        thread = _Thread("Second practice opening in Salford")
        when = self.day(24)
        steps: list[tuple[_Person, list[_Person], list[_Person], str]] = [
            (
                hannah,
                [ANNA],
                [TOM],
                "We're opening a second practice in Salford in June and will need a full opening "
                "order. Could we meet to go through it? Tom, I've copied you as you handled our "
                "last delivery.",
            ),
            (
                ANNA,
                [hannah],
                [TOM, samuel],
                "Congratulations! Yes, let's meet - I've copied "
                "Samuel so we can agree the clinical consumables at the same time. Tom will bring "
                "the delivery plan.",
            ),
            (hannah, [ANNA], [TOM, samuel], "Great. Next Tuesday afternoon works for us."),
            (
                TOM,
                [hannah],
                [ANNA, samuel],
                "Tuesday is fine. I'll bring the delivery slots for the first six weeks.",
            ),
        ]
        for sender, to, cc, text in steps:
            body = _letter(sender, to[0], text, self.rng)
            raw = self.w.post(thread, sender, to, cc, body, when, kinds=["customer", "cc_thread"])
            if sender == ANNA:
                self.saved_copy = raw  # Hannah also saved Anna's answer as an .eml
            when = self.working_time(
                when + timedelta(hours=self.rng.uniform(2, 20)), "Europe/London"
            )

    def awaiting_reply(self) -> None:
        """The latest word is the customer's and it asks for an answer: nobody has replied."""
        daniela = VASQUEZ.people[0]
        thread = _Thread("Supply agreement - can you confirm by Friday?")
        body = _letter(
            daniela,
            ANNA,
            "We've reviewed the supply agreement and only have one "
            "question, on the delivery window in clause 4. Could you confirm by Friday "
            "whether 48 hours is possible? Then we can sign.",
            self.rng,
        )
        self.w.post(
            thread,
            daniela,
            [ANNA],
            [],
            body,
            self.day(3, daniela.tz),
            kinds=["customer", "awaiting_reply"],
        )
        # And one we sent that the customer has not answered for two weeks.
        niamh = PINECREST.people[1]
        thread = _Thread("Summer term order")
        body = _letter(
            PRIYA,
            niamh,
            "Before the summer term, would you like us to repeat last "
            "September's order? If you let me know by the end of the month I can "
            "reserve the stock.",
            self.rng,
        )
        self.w.post(thread, PRIYA, [niamh], [], body, self.day(15), kinds=["customer"])

    def quiet_prospect(self) -> None:
        """A prospect asked for a quote, got it, and has not answered for a week: Anna's to chase."""
        buyer = HARBOURSIDE.people[0]
        thread = _Thread("Quote request - gloves and wipes for two practices")
        ask = _letter(
            buyer,
            ANNA,
            "We're opening a second practice in January and are looking for a new supplier of "
            "nitrile gloves and surface wipes for both sites. Could you send us a quote for "
            "monthly deliveries?",
            self.rng,
        )
        self.w.post(thread, buyer, [ANNA], [], ask, self.day(9, buyer.tz), kinds=["customer"])
        quote = _letter(
            ANNA,
            buyer,
            "Thank you for thinking of us. Attached is our quote for monthly deliveries to both "
            "practices, with the first month at the trial price. Shall we set up a short call "
            "to go through it?",
            self.rng,
        )
        self.w.post(
            thread,
            ANNA,
            [buyer],
            [],
            quote,
            self.day(7),
            attachments=[self.attachment("quote", self.values(HARBOURSIDE), HARBOURSIDE)],
            kinds=["customer", "attachment"],
        )

    def role_address(self) -> None:
        """A small customer's owner writes from the shop's info@ address: still person mail."""
        rosie = SALTMARSH.people[0]
        thread = _Thread("Extra bags for Friday")
        when = self.day(6, rosie.tz)
        ask = "Could we add another box of the large paper bags to Friday's order? Busy weekend!"
        self.w.post(thread, rosie, [MARCO], [], _letter(rosie, MARCO, ask, self.rng), when)
        done = "Added - it'll be on Friday's van with the rest."
        later = self.working_time(when + timedelta(hours=1), "Europe/London")
        self.w.post(thread, MARCO, [rosie], [], _letter(MARCO, rosie, done, self.rng), later)

    def out_of_office(self) -> None:
        """Outgoing mail answered by autoresponders in several languages, then by the person."""
        cases = [
            (
                ANNA,
                BRIGHTLINE.people[0],
                "Automatic reply: ",
                "I'm out of the office until Monday with limited access to email. For urgent "
                "orders please contact Chloe Barnes.",
                [
                    ("Auto-Submitted", "auto-replied"),
                    ("X-Auto-Response-Suppress", "All"),
                    ("X-MS-Exchange-Inbox-Rules-Loop", BRIGHTLINE.people[0].address),
                ],
                40,
            ),
            (
                TOM,
                KESTRELMOOR.people[0],
                "Abwesenheitsnotiz: ",
                "Vielen Dank für Ihre Nachricht. Ich bin bis einschließlich Freitag nicht im "
                "Büro. In dringenden Fällen wenden Sie sich bitte an Katrin Brandt.",
                [("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All")],
                33,
            ),
            (
                MARCO,
                CLAIRVAL.people[0],
                "Réponse automatique : ",
                "Je suis absente du bureau jusqu'au 14. Pour toute urgence, merci de contacter "
                "Amélie Dupont.",
                [("Auto-Submitted", "auto-replied")],
                52,
            ),
            (
                MARCO,
                PRIVATE[0].people[0],
                "",
                "Hi! I'm at a wedding fair until Thursday and will reply when I'm back. Lucy",
                [("Auto-Submitted", "auto-replied")],
                18,
            ),
        ]
        for staff, contact, prefix, text, headers, days_ago in cases:
            thread = _Thread("Your order this week")
            sent = self.day(days_ago)
            body = _letter(
                staff,
                contact,
                "Just to confirm your order goes out on Thursday. Let "
                "me know if anything needs to change.",
                self.rng,
            )
            self.w.post(thread, staff, [contact], [], body, sent, kinds=["customer"])
            auto_at = sent + timedelta(minutes=self.rng.randrange(1, 4))
            subject = f"{prefix}Your order this week" if prefix else "Away until Thursday"
            auto = self.w.compose(
                contact,
                [staff],
                subject,
                text + "\n",
                auto_at,
                html_mode="plain" if contact.client != "outlook" else "alternative",
                headers=[("In-Reply-To", thread.last_id or ""), *headers],
                return_path=contact.address,
            )
            self.w.deliver(auto, auto_at, contact, [staff], ["auto_reply"])
            later = self.working_time(sent + timedelta(days=4), contact.tz)
            reply = _letter(
                contact,
                staff,
                "Sorry for the slow reply, I was away. Thursday is fine, thank you.",
                self.rng,
            )
            self.w.post(thread, contact, [staff], [], reply, later, kinds=["customer"])

    def forwards(self) -> None:
        # A customer forwards an internal note of theirs, Outlook-style, inline.
        katrin, mehmet = KESTRELMOOR.people[1], KESTRELMOOR.people[2]
        when = self.day(47, katrin.tz)
        original_at = when - timedelta(hours=3)
        original = (
            "-----Original Message-----\n"
            f"From: {mehmet.name} <{mehmet.address}>\n"
            f"Sent: {original_at.astimezone(_tz(katrin.tz)).strftime('%A, %d %B %Y %H:%M')}\n"
            f"To: {katrin.name} <{katrin.address}>\n"
            "Subject: Schaden Palette 3 / pallet damage\n\n"
            "Katrin, Palette 3 von Northwind war beschädigt - two layers of boxes crushed, "
            "photos on the shared drive. Mehmet\n"
        )
        body = (
            _letter(
                katrin,
                TOM,
                "Please see below from our warehouse - could you arrange a "
                "credit for the damaged boxes?",
                self.rng,
            )
            + "\n"
            + original
        )
        thread = _Thread("FW: Schaden Palette 3 / pallet damage")
        self.w.post(thread, katrin, [TOM], [], body, when, kinds=["customer", "forward_inline"])
        reply = _letter(TOM, katrin, "Sorry to hear that - credit note to follow today.", self.rng)
        self.w.post(
            thread,
            TOM,
            [katrin],
            [],
            reply,
            self.working_time(when + timedelta(hours=2), "Europe/London"),
            kinds=["customer"],
        )
        # A carrier's notification forwarded to the customer as an attached message.
        olivia = TIDEWATER.people[0]
        pod_at = self.day(12)
        pod = self.w.compose(
            Address("Parcelpath", "no-reply", "parcelpath.example"),
            [PRIYA],
            "Delivered: consignment NW48213",
            "Your consignment NW48213 was delivered at 10:42 and signed for by O. GRANT.\n",
            pod_at,
            html_mode="alternative",
            headers=[("Auto-Submitted", "auto-generated")],
        )
        self.w.deliver(pod, pod_at, None, [PRIYA], ["notification"])
        fwd_at = self.working_time(pod_at + timedelta(hours=1), "Europe/London")
        thread = _Thread("Fwd: Delivered: consignment NW48213")
        body = _letter(
            PRIYA,
            olivia,
            "Here's the proof of delivery from the carrier - it was "
            "signed for at 10:42. Could it be in the back store?",
            self.rng,
        )
        self.w.post(
            thread,
            PRIYA,
            [olivia],
            [],
            body,
            fwd_at,
            attachments=[pod],
            kinds=["customer", "forward_attached", "attachment"],
        )
        found = _letter(olivia, PRIYA, "Found it, it was in the back store. Sorry!", self.rng)
        self.w.post(
            thread, olivia, [PRIYA], [], found, fwd_at + timedelta(hours=3), kinds=["customer"]
        )
        # A staff member forwards a customer's mail to a colleague (internal, inline).
        sanne = VAART.people[0]
        asked = self.day(30, sanne.tz)
        thread = _Thread("Aprons with our logo?")
        ask = _letter(
            sanne, TOM, "Could you supply aprons printed with our logo? Around 80.", self.rng
        )
        self.w.post(thread, sanne, [TOM], [], ask, asked, kinds=["customer"])
        inner = (
            f"-----Original Message-----\nFrom: {sanne.name} <{sanne.address}>\n"
            f"Sent: {asked.strftime('%A, %d %B %Y %H:%M')}\nTo: {TOM.name} <{TOM.address}>\n"
            f"Subject: Aprons with our logo?\n\n{ask}"
        )
        fw = _Thread("FW: Aprons with our logo?")
        note = (
            _letter(TOM, MARCO, "Marco, do we still work with the printer in Leeds?", self.rng)
            + "\n"
            + inner
        )
        self.w.post(
            fw,
            TOM,
            [MARCO],
            [],
            note,
            asked + timedelta(hours=1),
            kinds=["internal", "forward_inline"],
        )

    def awkward_messages(self) -> None:
        # No Message-ID: an old webmail system that leaves it to a server that never added one.
        ciaran = PINECREST.people[0]
        thread = _Thread("Keys for the store room")
        body = _letter(
            ciaran,
            PRIYA,
            "Your driver can collect the store room keys from reception on Monday.",
            self.rng,
        )
        self.w.post(
            thread,
            ciaran,
            [PRIYA],
            [],
            body,
            self.day(20, ciaran.tz),
            message_id=None,
            kinds=["customer", "no_message_id"],
        )
        # Non-ASCII subjects (RFC 2047 encoded on the wire).
        juergen = KESTRELMOOR.people[0]
        thread = _Thread("Bestellung für KW 12 – Größen prüfen")
        body = _letter(
            juergen,
            TOM,
            "Could you check the glove sizes on our order for KW 12 "
            "before it ships? Größe M und L, bitte.",
            self.rng,
        )
        self.w.post(
            thread,
            juergen,
            [TOM],
            [],
            body,
            self.day(9, juergen.tz),
            kinds=["customer", "non_ascii_subject"],
        )
        reply = _letter(TOM, juergen, "Checked - 20 cases M and 10 cases L, as ordered.", self.rng)
        self.w.post(
            thread, TOM, [juergen], [], reply, self.day(8), kinds=["customer", "non_ascii_subject"]
        )
        elodie = CLAIRVAL.people[0]
        thread = _Thread("Réunion à Lyon – échantillons")
        body = _letter(
            elodie,
            MARCO,
            "Pour notre réunion à Lyon, pourriez-vous apporter les "
            "échantillons de serviettes ? Merci !",
            self.rng,
        )
        self.w.post(
            thread,
            elodie,
            [MARCO],
            [],
            body,
            self.day(26, elodie.tz),
            kinds=["customer", "non_ascii_subject"],
        )
        # One file that is not an email at all: the quarantine must show it.
        junk = self.rng.randbytes(700)
        junk = b"\x00\x00\xff\xfeRapport-demo\x00" + junk.replace(b"\n", b"\x00")
        self.w.deliver(junk, self.day(5), None, [MARCO], ["broken"])

    def meeting_start(self, days_from_now: int, hour: int, tz: str) -> datetime:
        """A meeting start on a working day near `days_from_now` (negative: in the past)."""
        day = (self.now + timedelta(days=days_from_now)).date()
        while day.weekday() >= 5:
            day += timedelta(days=1)
        return datetime.combine(day, time(hour, 0), _tz(tz))

    def new_meeting(
        self,
        organizer: _Person,
        attendees: Sequence[_Person],
        summary: str,
        start: datetime,
        *,
        style: str = "outlook",
        rrule: dict[str, object] | None = None,
    ) -> _Meeting:
        if style == "google":
            uid = f"{self.w.hex(26)}@google.com"
        else:  # Outlook's global object id: a fixed prefix and a random tail
            uid = f"040000008200E00074C5B7101A82E008000000{self.w.hex(36).upper()}"
        join = f"https://meet.{organizer.domain}/j/{self.w.hex(10)}"
        return _Meeting(organizer, tuple(attendees), summary, start, uid, join, style, rrule)

    def meetings(self) -> None:
        hannah, samuel = BRIGHTLINE.people[0], BRIGHTLINE.people[1]
        # 1. Anna invites Brightline (Tom attends too); replies; then an update (SEQUENCE 1).
        review = self.new_meeting(
            ANNA,
            [hannah, samuel, TOM],
            "Quarterly supply review",
            self.meeting_start(6, 14, "Europe/London"),
        )
        invited = self.day(21)
        self.invite(review, invited)
        self.meeting_reply(review, hannah, "ACCEPTED", invited + timedelta(hours=2))
        self.meeting_reply(
            review,
            samuel,
            "TENTATIVE",
            invited + timedelta(hours=5),
            comment="I may be in surgery until 2:30.",
        )
        review.start += timedelta(hours=1, minutes=30)
        review.sequence = 1
        updated = self.day(10)
        self.invite(review, updated, kinds=["calendar_update"])
        self.meeting_reply(review, samuel, "ACCEPTED", updated + timedelta(hours=1))
        # 2. Tom invites Kestrelmoor (Outlook with a Windows zone id); one declines; cancelled.
        juergen, katrin = KESTRELMOOR.people[0], KESTRELMOOR.people[1]
        walkthrough = self.new_meeting(
            TOM,
            [juergen, katrin],
            "Eco range walkthrough",
            self.meeting_start(-16, 10, "Europe/Berlin"),
            style="windows",
        )
        invited = self.day(30)
        self.invite(walkthrough, invited)
        self.meeting_reply(walkthrough, juergen, "ACCEPTED", invited + timedelta(hours=3))
        self.meeting_reply(
            walkthrough,
            katrin,
            "DECLINED",
            invited + timedelta(hours=4),
            comment="Ich bin diese Woche in Polen.",
        )
        walkthrough.sequence = 1
        self.invite(walkthrough, invited + timedelta(days=4), method="CANCEL")
        # 3. A customer invites Priya from Google Calendar; Priya accepts from Outlook.
        olivia = TIDEWATER.people[0]
        bath = self.new_meeting(
            olivia,
            [PRIYA, TIDEWATER.people[1]],
            "Opening order for the Bath café",
            self.meeting_start(3, 11, "Europe/London"),
            style="google",
        )
        invited = self.day(8)
        self.invite(bath, invited)
        self.meeting_reply(bath, PRIYA, "ACCEPTED", invited + timedelta(hours=1))
        # 4. A monthly check-in series with Quillon, starting on a first Thursday.
        sofia = QUILLON.people[0]
        first = (self.now - timedelta(days=75)).date().replace(day=1)
        first += timedelta(days=(3 - first.weekday()) % 7)
        series = self.new_meeting(
            PRIYA,
            [sofia],
            "Monthly account check-in",
            datetime.combine(first, time(16, 0), _tz("Europe/Madrid")),
            rrule={"FREQ": "MONTHLY", "BYDAY": "+1TH", "COUNT": 6},
        )
        invited = self.day(80)
        self.invite(series, invited)
        self.meeting_reply(series, sofia, "ACCEPTED", invited + timedelta(hours=6))
        # More ordinary meetings as the dataset grows.
        summaries = ("Supply review", "Product walkthrough", "Delivery planning", "Pricing")
        for _ in range(3 * self.scale - 1):
            company = self.rng.choice([c for c in CUSTOMERS if not c.quiet_since_days])
            guests = self.rng.sample(company.people, min(len(company.people), 2))
            invited = self.day(self.rng.uniform(2, HISTORY_DAYS - 5))
            days = round((invited - self.now) / timedelta(days=1)) + self.rng.randrange(2, 14)
            meeting = self.new_meeting(
                STAFF[company.owner],
                guests,
                f"{self.rng.choice(summaries)} - {company.name}",
                self.meeting_start(days, self.rng.choice((9, 10, 11, 14, 15)), "Europe/London"),
            )
            self.invite(meeting, invited)
            for guest in guests:
                if self.rng.random() < 0.8:
                    answer = self.rng.choice(("ACCEPTED", "ACCEPTED", "TENTATIVE"))
                    sent = invited + timedelta(hours=self.rng.uniform(1, 30))
                    self.meeting_reply(meeting, guest, answer, sent)

    def _calendar(self, method: str, google: bool) -> icalendar.Calendar:
        cal = icalendar.Calendar()
        cal.add("prodid", _GOOGLE_PRODID if google else _OUTLOOK_PRODID)
        cal.add("version", "2.0")
        cal.add("method", method)
        return cal

    def _event(
        self,
        meeting: _Meeting,
        attendees: Sequence[_Person],
        stamp: datetime,
        *,
        utc: bool = False,
        partstat: str = "NEEDS-ACTION",
    ) -> icalendar.Event:
        event = icalendar.Event()
        start, end = meeting.start, meeting.start + timedelta(hours=1)
        if meeting.style == "windows":
            # Outlook on Windows writes Windows zone names; the importer has to map them.
            for name, value in (("dtstart", start), ("dtend", end)):
                event.add(name, value.replace(tzinfo=None), parameters={"TZID": _WINDOWS_TZ})
        elif utc or meeting.style == "google":
            event.add("dtstart", start.astimezone(UTC))
            event.add("dtend", end.astimezone(UTC))
        else:
            event.add("dtstart", start)
            event.add("dtend", end)
        event.add("dtstamp", stamp.astimezone(UTC))
        event.add("uid", meeting.uid)
        event.add("sequence", meeting.sequence)
        event.add("summary", meeting.summary)
        organizer = icalendar.vCalAddress(f"mailto:{meeting.organizer.address}")
        organizer.params["CN"] = meeting.organizer.name
        event.add("organizer", organizer)
        for person in attendees:
            attendee = icalendar.vCalAddress(f"mailto:{person.address}")
            attendee.params["CN"] = person.name
            attendee.params["ROLE"] = "REQ-PARTICIPANT"
            attendee.params["PARTSTAT"] = partstat
            if partstat == "NEEDS-ACTION":
                attendee.params["RSVP"] = "TRUE"
            event.add("attendee", attendee)
        event.add("location", meeting.join if meeting.style == "google" else "Online meeting")
        event.add("description", f"Join online: {meeting.join}")
        if meeting.rrule:
            event.add("rrule", meeting.rrule)
        return event

    def invite(
        self,
        meeting: _Meeting,
        sent: datetime,
        *,
        method: str = "REQUEST",
        kinds: Sequence[str] = (),
    ) -> None:
        """The organizer's REQUEST (or CANCEL), as Outlook or Google Calendar sends it."""
        google = meeting.style == "google"
        cal = self._calendar(method, google)
        if meeting.style == "windows":
            cal.add_component(_windows_vtimezone())
        event = self._event(meeting, meeting.attendees, sent)
        event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
        cal.add_component(event)
        if meeting.style == "outlook":
            around = meeting.start.date()
            cal.add_missing_timezones(
                first_date=around - timedelta(days=400), last_date=around + timedelta(days=400)
            )
        organizer = meeting.organizer
        local = meeting.start.astimezone(_tz(organizer.tz))
        when_text = local.strftime("%A %d %B %Y, %H:%M") + f" ({organizer.tz})"
        if method == "CANCEL":
            subject = f"Canceled: {meeting.summary}"
            text = f"This meeting has been cancelled.\n\n{meeting.summary}\n{when_text}\n"
        elif google:
            subject = f"Invitation: {meeting.summary} @ {local:%a %d %b %Y %H:%M}"
            text = f"{organizer.name} has invited you to {meeting.summary}\nWhen: {when_text}\n"
        else:
            subject = meeting.summary
            text = f"{meeting.summary}\nWhen: {when_text}\n\nJoin online: {meeting.join}\n"
        msg = self.w.compose(
            organizer,
            meeting.attendees,
            subject,
            text,
            sent,
            # Outlook sets this on meeting mail: a sign the capture rules must not trip over.
            headers=[] if google else [("X-Auto-Response-Suppress", "RN, NRN, OOF")],
        )
        ics = cal.to_ical().decode()
        msg.add_alternative(ics, subtype="calendar", params={"method": method})
        if not google:
            msg.add_attachment(
                ics.encode(), maintype="application", subtype="ics", filename="invite.ics"
            )
        internal = organizer.is_staff and all(a.is_staff for a in meeting.attendees)
        kind = "calendar_cancel" if method == "CANCEL" else "calendar_request"
        audience = "internal" if internal else "customer"
        self.w.deliver(msg, sent, organizer, meeting.attendees, [kind, *kinds, audience])

    def meeting_reply(
        self,
        meeting: _Meeting,
        attendee: _Person,
        partstat: str,
        sent: datetime,
        comment: str = "",
    ) -> None:
        """An attendee's REPLY to the organizer, from whatever calendar the attendee uses."""
        cal = self._calendar("REPLY", google=attendee.client == "gmail")
        event = self._event(meeting, [attendee], sent, utc=True, partstat=partstat)
        if comment:
            event.add("comment", comment)
        cal.add_component(event)
        word = {"ACCEPTED": "Accepted", "TENTATIVE": "Tentative", "DECLINED": "Declined"}[partstat]
        subject = f"{word}: {meeting.summary}"
        if meeting.style == "google":
            subject += f" @ {meeting.start:%a %d %b %Y %H:%M}"
        sent = self.working_time(sent, attendee.tz)
        if sent > self.now:
            return
        msg = self.w.compose(
            attendee, [meeting.organizer], subject, comment + "\n", sent, html_mode="plain"
        )
        msg.add_alternative(cal.to_ical().decode(), subtype="calendar", params={"method": "REPLY"})
        self.w.deliver(msg, sent, attendee, [meeting.organizer], ["calendar_reply", "customer"])

    # noise ---------------------------------------------------------------------------------

    def newsletters(self) -> None:
        feeds = [
            (ANNA, "Packaging Insider", "news@packaging-insider.example", "mailchimp", 7),
            (ANNA, "Hospitality Buyer Digest", "digest@hospitality-buyer.example", "ses", 14),
            (TOM, "Logistics Today", "newsletter@logistics-today.example", "sfmc", 7),
            (TOM, "Northern Chamber members", "members@lists.northern-chamber.example", "list", 14),
            (PRIYA, "Café Trade Weekly", "hello@cafe-trade-weekly.example", "mailchimp", 7),
            (PRIYA, "Bookwise tips", "tips@bookwise.example", "sendgrid", 30),
            (MARCO, "Greenleaf Paper Co", "offers@e.greenleaf-paper.example", "sfmc", 14),
            (MARCO, "UK Wholesale Forum", "uk-wholesale@groups.forumhost.example", "group", 10),
        ]
        topics = (
            "Spring offers inside",
            "5 trends for the year ahead",
            "Your monthly update",
            "Last chance: 20% off",
            "New in: compostable range",
            "Events this quarter",
            "Supply chain outlook",
            "Customer story: a café goes plastic-free",
        )
        for staff, brand, address, kind, every in feeds:
            local, _, domain = address.partition("@")
            days = float(HISTORY_DAYS - self.rng.randrange(every))
            issue = 0
            while days > 0.5:
                issue += 1
                when = self.day(days)
                title = topics[(issue + len(brand)) % len(topics)]
                unsub = f"<https://{domain}/u/{self.w.hex(20)}>, <mailto:unsubscribe@{domain}>"
                headers: list[tuple[str, str]] = [("List-Unsubscribe", unsub)]
                subject = f"{brand}: {title}"
                sender: Address = Address(brand, local, domain)
                if kind == "mailchimp":
                    headers += [
                        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                        ("X-MC-User", self.w.hex(25)),
                        ("X-Campaign", f"mc{self.w.hex(10)}.{self.w.hex(10)}"),
                        ("List-Id", f"{brand} <{self.w.hex(12)}.list-id.esp.example>"),
                    ]
                elif kind == "ses":
                    headers += [
                        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                        ("Feedback-ID", f"1.eu-west-1.{self.w.hex(16)}:AmazonSES"),
                        ("X-SES-Outgoing", when.strftime("%Y.%m.%d") + "-54.240.4.1"),
                    ]
                elif kind == "sfmc":
                    headers += [
                        ("X-SFMC-Stack", "50"),
                        ("X-CSA-Complaints", "csa@eco.example"),
                        ("Precedence", "bulk"),
                    ]
                elif kind == "sendgrid":
                    headers += [("X-SG-EID", self.w.hex(40))]
                elif kind == "list":  # a Mailman list: a member's post, not a campaign
                    poster = self.rng.choice(("Helen Marsh", "Raj Patel", "Owen Jones"))
                    sender = Address(f"{poster} via {brand}", local, domain)
                    subject = f"[Members] {title}"
                    headers = [
                        ("List-Id", f"{brand} <members.lists.{domain}>"),
                        ("List-Post", f"<mailto:{address}>"),
                        ("X-BeenThere", address),
                        ("Precedence", "list"),
                        ("List-Unsubscribe", f"<mailto:members-leave@{domain}>"),
                    ]
                elif kind == "group":
                    poster = self.rng.choice(("Graham Cole", "Nadia Hussain", "Peter Quinn"))
                    sender = Address(f"{poster} via {brand}", local, domain)
                    subject = f"[{brand}] {title}"
                    headers = [
                        ("List-ID", f"<{local}.{domain}>"),
                        ("Mailing-list", f"list {address}; contact {local}+owners@{domain}"),
                        ("Precedence", "list"),
                        ("List-Unsubscribe", f"<mailto:{local}+unsubscribe@{domain}>"),
                    ]
                if kind in ("list", "group"):
                    body = (
                        f"Has anyone else looked at this? {title}.\n\n-- \nYou received this "
                        f"message because you are subscribed to {brand}.\n"
                    )
                else:
                    body = (
                        f"{title}\n\nRead this issue online: https://{domain}/i/{issue}\n\n"
                        f"You are receiving this email because you subscribed at {domain}.\n"
                        f"Unsubscribe: https://{domain}/u\n"
                    )
                page = _newsletter_html(brand, title, domain)
                msg = self.w.compose(
                    sender,
                    [address if kind in ("list", "group") else staff.address],
                    subject,
                    body,
                    when,
                    html_body=page if kind not in ("list", "group") else None,
                    headers=headers,
                    tz="UTC",
                )
                self.w.deliver(
                    msg,
                    when,
                    None,
                    [staff],
                    ["mailing_list" if kind in ("list", "group") else "newsletter"],
                )
                days -= every + self.rng.uniform(-0.5, 0.5)

    def notifications(self) -> None:
        """Machine mail from SaaS tools, a tender portal, a bounce and a calendar reminder."""
        for _ in range(6 * self.scale):
            company = self.rng.choice(CUSTOMERS)
            contact = self.rng.choice(company.people)
            staff = STAFF[company.owner]
            when = self.day(self.rng.uniform(1, HISTORY_DAYS - 1))
            inv = self.number("inv", "INV-2025-{:04d}", 100)
            choice = self.rng.randrange(3)
            if choice == 0:
                sender = Address("Ledgerly", "notifications", "ledgerly.example")
                subject = f"Invoice {inv} was viewed by {company.name}"
                text = f"{contact.name} viewed invoice {inv} at {when:%H:%M}."
                headers: list[tuple[str, str]] = []
            elif choice == 1:
                sender = Address("Ledgerly", "notifications", "ledgerly.example")
                subject = f"Payment received: {inv}"
                text = f"{company.name} paid invoice {inv} in full."
                headers = []
            else:
                sender = Address("Parcelpath", "no-reply", "parcelpath.example")
                subject = f"Out for delivery: consignment NW{self.rng.randrange(40000, 60000)}"
                text = f"Your consignment to {company.name} is out for delivery today."
                headers = [("Auto-Submitted", "auto-generated")]
            msg = self.w.compose(
                sender,
                [staff],
                subject,
                text + "\n",
                when,
                headers=headers,
                tz="UTC",
                html_mode="html" if choice == 2 else "alternative",
            )
            self.w.deliver(msg, when, None, [staff], ["notification"])
        for days in range(HISTORY_DAYS - 3, 0, -9):
            when = self.day(days)
            msg = self.w.compose(
                Address("TenderWatch alerts", "alerts", "tenderwatch.example"),
                [MARCO],
                "3 new tenders match 'catering supplies'",
                "New tenders matching your saved search are waiting for you.\n",
                when,
                headers=[("Precedence", "bulk")],
                tz="UTC",
            )
            self.w.deliver(msg, when, None, [MARCO], ["notification"])
        for days in range(HISTORY_DAYS - 5, 0, -7):
            when = self.day(days)
            msg = self.w.compose(
                Address("Teamboard", "noreply", "teamboard.example"),
                [ANNA],
                "Your weekly Teamboard digest",
                "You have 4 tasks due this week.\n",
                when,
                tz="UTC",
                html_mode="html",
            )
            self.w.deliver(msg, when, None, [ANNA], ["notification"])
        # A calendar reminder from the booking tool the team uses for demos.
        when = self.day(2)
        msg = self.w.compose(
            Address("Bookwise", "calendar-notification", "bookwise.example"),
            [PRIYA],
            "Reminder: Opening order for the Bath café @ 11:00",
            "This is a reminder for your upcoming event.\n",
            when,
            headers=[("Auto-Submitted", "auto-generated")],
            tz="UTC",
        )
        self.w.deliver(msg, when, None, [PRIYA], ["notification", "calendar_notification"])
        # A bounce for a mistyped address.
        when = self.day(37)
        bad = "hannah.whitfeld@brightline-dental.co.uk"
        body = _letter(
            ANNA, BRIGHTLINE.people[0], "Here are the delivery slots for June.", self.rng
        )
        msg = self.w.compose(ANNA, [bad], "Delivery slots for June", body, when)
        self.w.deliver(msg, when, ANNA, [], ["customer"])
        self.w.deliver(
            _bounce(self.w, bad, msg, when + timedelta(minutes=1)),
            when + timedelta(minutes=1),
            None,
            [ANNA],
            ["bounce"],
        )

    def internal(self) -> None:
        for n in range(5 * self.scale):
            subject, lines = INTERNAL_TOPICS[n % len(INTERNAL_TOPICS)]
            sender = STAFF[n % len(STAFF)]
            others = [s for s in STAFF if s != sender]
            to = self.rng.sample(others, self.rng.randint(1, len(others)))
            thread = _Thread(subject)
            when = self.day(self.rng.uniform(1, HISTORY_DAYS - 1))
            for i, text in enumerate(lines):
                author = sender if i % 2 == 0 else to[0]
                recipients = to if author == sender else [sender]
                cc = [] if author == sender else list(to[1:])
                body = _letter(
                    author, recipients[0] if len(recipients) == 1 else None, text, self.rng
                )
                self.w.post(thread, author, recipients, cc, body, when, kinds=["internal"])
                when = self.working_time(
                    when + timedelta(hours=self.rng.uniform(0.2, 5)), "Europe/London"
                )

    # extra files ---------------------------------------------------------------------------

    def extras(self) -> None:
        extra = self.out_dir / "extra"
        (extra / "saved").mkdir(parents=True, exist_ok=True)
        (extra / "calendar").mkdir(parents=True, exist_ok=True)
        # An archive of older correspondence, as Thunderbird or Apple Mail export it (mboxrd).
        chunks: list[bytes] = []
        for n in range(6 * self.scale):
            company = self.rng.choice(CUSTOMERS)
            contact = self.rng.choice(company.people)
            staff = STAFF[company.owner]
            values = self.values(company)
            subject_tpl, lines = self.rng.choice(TOPICS)
            thread = _Thread(_fill(subject_tpl, values))
            when = self.day(self.rng.uniform(HISTORY_DAYS + 10, HISTORY_DAYS + 300))
            for line in lines[:2]:
                speaker, _attach, text = _split_line(line)
                sender, to = (contact, staff) if speaker == "C" else (staff, contact)
                content = _fill(text, values)
                if n == 0 and thread.count == 0:
                    # A body line starting "From " that the mbox must escape (">From ").
                    content = "From next month our warehouse is closed on Saturdays.\n" + content
                body = _letter(sender, to, content, self.rng)
                msg = self.w.compose(
                    sender,
                    [to],
                    thread.subject if thread.count == 0 else f"Re: {thread.subject}",
                    body,
                    when,
                    html_mode="plain",
                    headers=[("In-Reply-To", thread.last_id)] if thread.last_id else [],
                )
                thread.last_id = str(msg["Message-ID"])
                thread.count += 1
                raw = self.w.serialise(msg, policy_lf=True)
                chunks.append(_mbox_entry(sender.address, when, raw))
                self.w.distinct += 1
                self.w.kinds.update(["customer", "archived"])
                when = self.working_time(when + timedelta(hours=self.rng.uniform(2, 30)), to.tz)
        mbox = extra / "archive-2024.mbox"
        mbox.write_bytes(b"".join(chunks))
        self.extra_files.append(mbox)
        # Saved messages: a copy of one already in a mailbox (the importer must not duplicate
        # it), a prospect's enquiry saved from a trade fair, and one saved with LF line ends.
        first_saved = extra / "saved" / "Re Second practice opening in Salford.eml"
        first_saved.write_bytes(self.saved_copy)
        prospect = _Person(
            "Tomasz Wiśniewski",
            "t.wisniewski@baltyk-hostele.pl",
            "Właściciel",
            "Bałtyk Hostele",
            "+48 58 555 0132",
            "Europe/Warsaw",
            "gmail",
            "en",
        )
        when = self.day(HISTORY_DAYS + 40)
        msg = self.w.compose(
            prospect,
            [ANNA],
            "Nice to meet you at Packaging Expo",
            _letter(
                prospect,
                ANNA,
                "It was good to meet you at the expo. Could "
                "you send me your catalogue and prices for hostels?",
                self.rng,
            ),
            when,
        )
        path = extra / "saved" / "Nice to meet you at Packaging Expo.eml"
        path.write_bytes(self.w.serialise(msg))
        self.w.distinct += 1
        self.w.kinds.update(["customer"])
        when = self.day(HISTORY_DAYS + 35)
        msg = self.w.compose(
            ANNA,
            [prospect],
            "Re: Nice to meet you at Packaging Expo",
            _letter(ANNA, prospect, "Lovely to meet you too - catalogue attached.", self.rng),
            when,
            attachments=[
                _Attachment(
                    "Northwind catalogue 2025.pdf",
                    "application",
                    "pdf",
                    _pdf(["Northwind Supplies", "Catalogue"]),
                )
            ],
        )
        lf = extra / "saved" / "Re Nice to meet you at Packaging Expo.eml"
        lf.write_bytes(self.w.serialise(msg, policy_lf=True))
        self.w.distinct += 1
        self.w.kinds.update(["customer", "attachment"])
        self.extra_files += [first_saved, path, lf]
        # Calendar exports: a trade fair (all-day, two days) and a customer visit with a zone.
        fair = icalendar.Calendar()
        fair.add("prodid", "-//Northwind Supplies//Rapport demo//EN")
        fair.add("version", "2.0")
        fair.add("method", "PUBLISH")
        event = icalendar.Event()
        fair_day = (self.now + timedelta(days=18)).date()
        event.add("uid", f"packaging-expo-{fair_day.year}@northwind-supplies.com")
        event.add("dtstamp", self.now.astimezone(UTC).replace(microsecond=0))
        event.add("dtstart", fair_day)
        event.add("dtend", fair_day + timedelta(days=2))
        event.add("summary", "Packaging Expo - stand B14")
        event.add("location", "Exhibition Centre, Birmingham")
        fair.add_component(event)
        fair_path = extra / "calendar" / "packaging-expo.ics"
        fair_path.write_bytes(fair.to_ical())
        visit = icalendar.Calendar()
        visit.add("prodid", _OUTLOOK_PRODID)
        visit.add("version", "2.0")
        meeting = self.new_meeting(
            MARCO,
            CLAIRVAL.people[:2],
            "Visite - Maison Clairval Lyon",
            self.meeting_start(-40, 11, "Europe/Paris"),
        )
        start = meeting.start
        event = self._event(
            meeting, meeting.attendees, start - timedelta(days=10), partstat="ACCEPTED"
        )
        visit.add_component(event)
        visit.add_missing_timezones(
            first_date=start.date() - timedelta(days=400),
            last_date=start.date() + timedelta(days=400),
        )
        visit_path = extra / "calendar" / "clairval-visit.ics"
        visit_path.write_bytes(visit.to_ical())
        self.extra_files += [fair_path, visit_path]

    # ---------------------------------------------------------------------------------------

    def run(self) -> DemoDataset:
        self.cc_story()
        self.awaiting_reply()
        self.quiet_prospect()
        self.role_address()
        self.out_of_office()
        self.forwards()
        self.awkward_messages()
        self.meetings()
        for company in CUSTOMERS:
            quiet = company.quiet_since_days
            for _ in range(4 * self.scale if not quiet else 3 * self.scale):
                self.customer_thread(company, HISTORY_DAYS - 1, quiet or 1)
        for company in PRIVATE:
            # Each private buyer writes at least once: the demo shows free-mail contacts.
            self.customer_thread(company, HISTORY_DAYS - 1, 5, customer_first=True)
            for _ in range(2 * self.scale - 1):
                self.customer_thread(company, HISTORY_DAYS - 1, 1)
        self.newsletters()
        self.notifications()
        self.internal()
        self.extras()
        return DemoDataset(
            company_domain=COMPANY_DOMAIN,
            staff=[DemoMailbox(p.address, p.name, self.w.roots[p.address]) for p in STAFF],
            extra_files=self.extra_files,
            message_count=self.w.distinct,
            file_count=self.w.files,
            kinds=dict(sorted(self.w.kinds.items())),
            accounts=[
                DemoAccount(
                    c.name,
                    c.people[0].domain,
                    STAFF[c.owner].address,
                    c.products,
                    c.quiet_since_days,
                    prospect=c is HARBOURSIDE,
                )
                for c in (*CUSTOMERS, HARBOURSIDE)
            ],
        )


_WINDOWS_TZ = "W. Europe Standard Time"


def _windows_vtimezone() -> icalendar.Timezone:
    """The VTIMEZONE Outlook writes for Central Europe (Windows id, yearly rules)."""
    tz = icalendar.Timezone()
    tz.add("tzid", _WINDOWS_TZ)
    standard = icalendar.TimezoneStandard()
    standard.add("dtstart", datetime(1601, 1, 1, 3, 0))
    standard.add("rrule", {"FREQ": "YEARLY", "BYDAY": "-1SU", "BYMONTH": 10})
    standard.add("tzoffsetfrom", timedelta(hours=2))
    standard.add("tzoffsetto", timedelta(hours=1))
    daylight = icalendar.TimezoneDaylight()
    daylight.add("dtstart", datetime(1601, 1, 1, 2, 0))
    daylight.add("rrule", {"FREQ": "YEARLY", "BYDAY": "-1SU", "BYMONTH": 3})
    daylight.add("tzoffsetfrom", timedelta(hours=1))
    daylight.add("tzoffsetto", timedelta(hours=2))
    tz.add_component(standard)
    tz.add_component(daylight)
    return tz


def _newsletter_html(brand: str, title: str, domain: str) -> str:
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:0">'
        '<table role="presentation" width="100%"><tr><td align="center">'
        '<table width="600" style="font-family:Arial,sans-serif">'
        f'<tr><td style="background:#1f4e79;color:#fff;padding:16px"><h1>{html.escape(brand)}'
        f'</h1></td></tr><tr><td style="padding:16px"><h2>{html.escape(title)}</h2>'
        "<p>Our pick of the news, offers and ideas this week.</p>"
        f'<p><a href="https://{domain}/read">Read more</a></p></td></tr>'
        f'<tr><td style="font-size:11px;color:#888;padding:16px">'
        f'<a href="https://{domain}/u">Unsubscribe</a> | '
        f'<a href="https://{domain}/prefs">Preferences</a></td></tr>'
        "</table></td></tr></table></body></html>\n"
    )


def _bounce(w: _Writer, recipient: str, original: EmailMessage, when: datetime) -> bytes:
    """A delivery status notification (RFC 3464) as Northwind's mail relay would send it."""
    relay = f"mail-relay.{COMPANY_DOMAIN}"
    boundary = f"_dsn_{w.hex(16)}_"
    headers_part = "".join(
        f"{name}: {original[name]}\r\n" for name in ("From", "To", "Subject", "Date", "Message-ID")
    )
    raw = (
        "Return-Path: <>\r\n"
        f"From: Mail Delivery System <MAILER-DAEMON@{relay}>\r\n"
        f"To: {ANNA.address}\r\n"
        f"Subject: Undeliverable: {original['Subject']}\r\n"
        f"Date: {format_datetime(when)}\r\n"
        f"Message-ID: <{w.hex(20)}@{relay}>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"Delivery has failed to these recipients or groups:\r\n\r\n{recipient}\r\n"
        "The email address couldn't be found. Check the address and try again.\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {relay}\r\n"
        f"Arrival-Date: {format_datetime(when)}\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"{headers_part}\r\n"
        f"--{boundary}--\r\n"
    )
    return raw.encode("utf-8")


def _mbox_entry(sender: str, when: datetime, raw: bytes) -> bytes:
    """One mboxrd entry: the "From " separator line, the message with From-quoting, a blank line."""
    stamp = when.astimezone(UTC).strftime("%a %b %d %H:%M:%S %Y")
    lines = raw.split(b"\n")
    quoted = [b">" + line if line.lstrip(b">").startswith(b"From ") else line for line in lines]
    body = b"\n".join(quoted)
    if not body.endswith(b"\n"):
        body += b"\n"
    return f"From {sender} {stamp}\n".encode() + body + b"\n"


_MARKER = ".rapport-demo"


def _prepare(out_dir: Path) -> None:
    """Make `out_dir` ready: create it, or clear what an earlier (perhaps interrupted) run wrote.

    Anything else in a non-empty folder is refused: mixing two runs would leave messages with the
    same Message-ID and different bytes side by side, and we never delete files we did not write.
    """
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / _MARKER).is_file():
            raise FileExistsError(f"{out_dir} is not empty and holds no earlier demo data")
        for name in ("mailboxes", "extra"):
            if (out_dir / name).is_dir():
                shutil.rmtree(out_dir / name)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / _MARKER).write_text("written by rapport's demo generator; safe to delete\n")


def generate_demo(
    out_dir: Path, *, seed: int = 7, now: datetime | None = None, scale: int = 1
) -> DemoDataset:
    """Write the demo mailboxes and extra files under `out_dir` and describe them.

    `out_dir` must be missing, empty, or hold an earlier run's output (which is replaced).

    `now` is the end of the ~120 days of history (default: the current time, to the minute; a
    naive value is taken as UTC). `scale` multiplies the customer conversations, meetings,
    notifications and internal mail: 1 gives a few hundred messages, 20 several thousand.
    """
    if scale < 1:
        raise ValueError("scale must be at least 1")
    _prepare(out_dir)
    if now is None:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    demo = _Demo(out_dir, seed, now.astimezone(UTC), scale)
    return demo.run()
