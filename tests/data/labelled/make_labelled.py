"""Write the labelled person/bulk message set that tests/unit/test_bulk.py measures the rules on.

The messages are the project's own, written to look like what a small business's mailbox really
holds, with the header combinations that make the person/bulk call hard: CRMs that add
List-Unsubscribe to one-to-one mail, Outlook meeting requests with X-Auto-Response-Suppress, people
writing from info@ or sales@, localised out-of-office replies, DSNs, list traffic, ESP newsletters.

The generated files are committed so the test data is stable; rerun this script (deterministic,
stdlib only) after changing it and commit the result:

    .venv/bin/python tests/data/labelled/make_labelled.py
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, default
from email.utils import format_datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE = datetime(2025, 3, 3, 8, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Sample:
    slug: str
    label: str  # "person" or "bulk"
    note: str
    message: EmailMessage


@dataclass(frozen=True)
class Person:
    name: str
    address: str
    title: str = ""
    company: str = ""
    phone: str = ""


# Our side: the mailbox owners these messages were delivered to.
STAFF = [
    Person("Anna Lindqvist", "anna@northwind-supplies.com", "Sales Director", "Northwind Supplies"),
    Person("Tom Okafor", "tom@northwind-supplies.com", "Account Manager", "Northwind Supplies"),
    Person("Priya Raman", "priya@northwind-supplies.com", "Customer Success", "Northwind Supplies"),
]

CUSTOMERS = [
    Person(
        "Hannah Whitfield",
        "hannah.whitfield@brightline-dental.co.uk",
        "Practice Manager",
        "Brightline Dental Care",
        "+44 161 555 0142",
    ),
    Person(
        "Samuel Adeyemi",
        "s.adeyemi@brightline-dental.co.uk",
        "Principal Dentist",
        "Brightline Dental Care",
        "+44 161 555 0148",
    ),
    Person(
        "Jürgen Weiß",
        "j.weiss@kestrelmoor-logistik.de",
        "Leiter Einkauf",
        "Kestrelmoor Logistik GmbH",
        "+49 40 5550 1873",
    ),
    Person(
        "Katrin Brandt",
        "katrin.brandt@kestrelmoor-logistik.de",
        "Operations Manager",
        "Kestrelmoor Logistik GmbH",
        "+49 40 5550 1870",
    ),
    Person(
        "Élodie Marchand",
        "e.marchand@clairval-hotels.fr",
        "Directrice des achats",
        "Maison Clairval Hôtels",
        "+33 4 55 50 12 19",
    ),
    Person(
        "Daniela Vásquez",
        "daniela@vasquezrow-architects.com",
        "Partner",
        "Vasquez & Row Architects",
        "+1 617 555 0193",
    ),
    Person(
        "Olivia Grant",
        "olivia@tidewater-cafes.co.uk",
        "Founder",
        "Tidewater Café Collective",
        "+44 117 555 0160",
    ),
    Person(
        "Sanne de Vries",
        "sanne.devries@hollandsevaart-catering.nl",
        "Inkoper",
        "Hollandse Vaart Catering B.V.",
        "+31 20 555 0134",
    ),
    Person(
        "Erik Lindholm",
        "erik.lindholm@nordljus-kliniken.se",
        "Inköpschef",
        "Nordljus Kliniken AB",
        "+46 8 555 012 44",
    ),
    Person(
        "Giulia Ferraro",
        "giulia.ferraro@aurelio-ristoranti.it",
        "Responsabile acquisti",
        "Aurelio Ristoranti S.r.l.",
        "+39 02 5550 1288",
    ),
    Person(
        "Sofia Moreno",
        "sofia.moreno@quillon-cowork.com",
        "Community Lead",
        "Quillon Coworking",
        "+34 91 555 0177",
    ),
    Person(
        "Ciarán Murphy",
        "ciaran.murphy@pinecrest-housing.ie",
        "Facilities Manager",
        "Pinecrest Student Housing",
        "+353 1 555 0121",
    ),
]

# Small customers whose people write from a role address: still person mail.
ROLE_SENDERS = [
    Person(
        "Rosie Fairbanks",
        "info@saltmarsh-bakehouse.co.uk",
        "Owner",
        "Saltmarsh Bakehouse",
        "+44 1273 555 019",
    ),
    Person("Ben Carter", "sales@carterandsons-joinery.co.uk", "Director", "Carter & Sons Joinery"),
    Person("Mia Schulz", "office@schulz-zahntechnik.de", "Inhaberin", "Schulz Zahntechnik"),
    Person("Lars Eklund", "hello@eklund-kaffe.se", "Ägare", "Eklund Kaffe"),
    Person("Chloé Martin", "contact@atelier-martin-fleurs.fr", "Gérante", "Atelier Martin Fleurs"),
    Person("Dev Patel", "accounts@patel-pharmacy-group.co.uk", "Finance", "Patel Pharmacy Group"),
    Person("Nora Byrne", "admin@byrne-physio.ie", "Practice Administrator", "Byrne Physio"),
    Person("Lucas Romero", "reservas@casa-romero-tapas.es", "Encargado", "Casa Romero Tapas"),
    Person("Femke Bakker", "info@bakker-bloemen.nl", "Eigenaar", "Bakker Bloemen"),
    Person("Tom Hughes", "support@hughes-it-services.co.uk", "Engineer", "Hughes IT Services"),
]

FREEMAIL = [
    Person("Lucy Hartley", "lucy.hartley.events@gmail.com", "Event planner"),
    Person("Mike Brennan", "mbrennan72@outlook.com", "Landlord, The Old Anchor"),
    Person("Sarah Pemberton", "sarah_pemberton@yahoo.co.uk"),
    Person("Klaus Hoffmann", "k.hoffmann@gmx.de", "Hausmeister"),
    Person("Ingrid Svensson", "ingrid.svensson@hotmail.com"),
    Person("Pablo Ortega", "pablo.ortega.bcn@gmail.com"),
    Person("Aoife Kelly", "aoifekelly@icloud.com"),
    Person("Wim Jansen", "wim.jansen@ziggo.nl"),
    Person("Marie Lefèvre", "marie.lefevre@orange.fr"),
    Person("Stefan Maier", "stefan.maier@web.de"),
    Person("Grace Liu", "graceliu.design@gmail.com", "Freelance designer"),
    Person("Oliver Shaw", "oliver.shaw@outlook.com"),
]

TOPICS = [
    ("Quote for 2,000 compostable cups", "could you send us a quote for 2,000 compostable cups"),
    ("Delivery schedule for PO-4821", "can you confirm the delivery schedule for PO-4821"),
    ("Invoice 2025-0113 query", "we think invoice 2025-0113 has the old unit price on it"),
    ("Nitrile gloves - sizes", "we need to change the size split on the nitrile gloves"),
    ("Samples of the kraft boxes", "thanks for the samples of the kraft boxes, they look good"),
    ("Change of delivery address", "please note our new delivery address from next month"),
    ("Price list 2025", "do you have the 2025 price list for the cleaning range"),
    ("Damaged pallet on Tuesday", "one pallet arrived damaged on Tuesday, photos attached"),
    ("Standing order - napkins", "we'd like to set up a standing order for the napkins"),
    ("Credit account application", "I've filled in the credit account form, see attached"),
    ("Hand towel dispensers", "are the hand towel dispensers compatible with the refills"),
    ("Trial of the eco range", "the team liked the trial of the eco range"),
    ("Payment remittance", "payment for March has gone out today, remittance attached"),
    ("Urgent: short delivery", "we were short two cases of bin liners on today's delivery"),
    ("Meeting next week?", "would you have time to meet next week to go through volumes"),
    ("Returns for order 55810", "how do we return the wrong lids from order 55810"),
]

SIGN_OFFS = ["Best regards", "Kind regards", "Many thanks", "Thanks", "Cheers", "Best wishes"]

_rng = random.Random(20250303)


def _hex(n: int) -> str:
    return "".join(_rng.choice("0123456789abcdef") for _ in range(n))


def _message_id(domain: str) -> str:
    return f"<{_hex(16)}.{_hex(8)}@{domain}>"


def _addr(p: Person) -> Address:
    user, _, domain = p.address.partition("@")
    return Address(p.name, user, domain)


def _signature(p: Person) -> str:
    lines = [p.name]
    if p.title:
        lines.append(p.title)
    if p.company:
        lines.append(p.company)
    if p.phone:
        lines.append(f"T: {p.phone}")
    return "\n".join(lines)


def _html(text: str) -> str:
    paragraphs = "".join(
        "<p>" + block.replace("&", "&amp;").replace("<", "&lt;").replace("\n", "<br>") + "</p>"
        for block in text.split("\n\n")
    )
    return f'<html><body style="font-family:Calibri,sans-serif">{paragraphs}</body></html>'


def message(
    sender: Person | Address | str,
    to: list[Person] | list[str],
    subject: str,
    body: str,
    *,
    when: datetime,
    headers: list[tuple[str, str]] | None = None,
    cc: list[Person] | None = None,
    html: bool | str = False,
    msgid_domain: str | None = None,
) -> EmailMessage:
    """A message with the usual headers; `html` True adds an HTML alternative, a str is the HTML."""
    msg = EmailMessage()
    from_domain = "localhost"
    if isinstance(sender, Person):
        msg["From"] = _addr(sender)
        from_domain = sender.address.partition("@")[2]
    elif isinstance(sender, Address):
        msg["From"] = sender
        from_domain = sender.domain
    else:
        msg["From"] = sender
        from_domain = sender.rpartition("@")[2].rstrip(">")
    msg["To"] = [_addr(t) if isinstance(t, Person) else t for t in to]
    if cc:
        msg["Cc"] = [_addr(c) for c in cc]
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = _message_id(msgid_domain or from_domain)
    msg["MIME-Version"] = "1.0"
    for name, value in headers or []:
        msg[name] = value
    msg.set_content(body)
    if html is True:
        msg.add_alternative(_html(body), subtype="html")
    elif isinstance(html, str):
        msg.add_alternative(html, subtype="html")
    return msg


def html_only(msg: EmailMessage, html: str) -> EmailMessage:
    msg.set_content(html, subtype="html")
    return msg


def _when(i: int) -> datetime:
    """A working-hours time within a month of BASE, spread by the sample number."""
    return BASE + timedelta(days=(i * 7) % 30, hours=(i * 5) % 9, minutes=(i * 13) % 60)


OUTLOOK = ("X-Mailer", "Microsoft Outlook 16.0")


# --- person mail --------------------------------------------------------------------------------


def person_company_new() -> Iterator[Sample]:
    for i, p in enumerate(CUSTOMERS):
        subject, line = TOPICS[i % len(TOPICS)]
        staff = STAFF[i % len(STAFF)]
        body = (
            f"Hi {staff.name.split()[0]},\n\nHope you're well. {line[0].upper()}{line[1:]}? "
            "Ideally before the end of the month.\n\n"
            f"{SIGN_OFFS[i % len(SIGN_OFFS)]},\n{_signature(p)}\n"
        )
        hdrs = [OUTLOOK, ("Thread-Topic", subject)] if i % 2 == 0 else []
        yield Sample(
            f"person-company-{i:02d}",
            "person",
            f"customer writes from company address ({p.company})",
            message(p, [staff], subject, body, when=_when(i), headers=hdrs, html=i % 3 != 2),
        )


def person_replies() -> Iterator[Sample]:
    for i, p in enumerate(CUSTOMERS + FREEMAIL[:4]):
        subject, line = TOPICS[(i + 5) % len(TOPICS)]
        staff = STAFF[(i + 1) % len(STAFF)]
        sent = _when(i + 40) - timedelta(days=1)
        quoted_text = (
            f"Hello {p.name.split()[0]},\n\nThanks for getting in touch - {line}, "
            "I'll check with the warehouse.\n\n"
            f"{staff.name}\n{staff.title}\nNorthwind Supplies\n"
        )
        if i % 2 == 0:
            quote = (
                f"On {format_datetime(sent)}, {staff.name} <{staff.address}> wrote:\n"
                + "".join(f"> {ln}\n" for ln in quoted_text.splitlines())
            )
        else:
            quote = (
                "________________________________\n"
                f"From: {staff.name} <{staff.address}>\nSent: {format_datetime(sent)}\n"
                f"To: {p.name} <{p.address}>\nSubject: {subject}\n\n{quoted_text}"
            )
        body = (
            f"Thanks {staff.name.split()[0]}, that works for us. "
            "Please go ahead and book it in.\n\n"
            f"{SIGN_OFFS[(i + 2) % len(SIGN_OFFS)]},\n{p.name.split()[0]}\n\n{quote}"
        )
        msg = message(
            p,
            [staff],
            f"{'RE' if i % 2 else 'Re'}: {subject}",
            body,
            when=_when(i + 40),
            html=i % 2 == 1,
            cc=[STAFF[(i + 2) % len(STAFF)]] if i % 4 == 0 else None,
        )
        msg["In-Reply-To"] = _message_id("northwind-supplies.com")
        msg["References"] = msg["In-Reply-To"]
        yield Sample(f"person-reply-{i:02d}", "person", "customer reply with quote", msg)


def person_freemail() -> Iterator[Sample]:
    asks = [
        "Do you deliver to private addresses? I'm organising a wedding for 120 guests.",
        "Could I pick up the order from your warehouse on Saturday morning?",
        "I run a small B&B and would like to open an account with you.",
        "Wir brauchen für unser Vereinsheim 500 Becher, geht das bis Freitag?",
        "Is the biodegradable cutlery suitable for hot food?",
        "Necesito un presupuesto para 300 cajas de cartón, ¿es posible?",
        "My invoice shows VAT twice, could you check?",
        "Kan jullie ook naar Utrecht leveren?",
        "Pourriez-vous m'envoyer le catalogue ?",
        "Wann kommt die Lieferung ungefähr an?",
        "Thanks for the quick delivery last week, everything arrived fine.",
        "Can you send me the product sheet for the kraft bags?",
    ]
    for i, p in enumerate(FREEMAIL):
        staff = STAFF[i % len(STAFF)]
        body = f"Hi,\n\n{asks[i % len(asks)]}\n\nThanks,\n{p.name}\n"
        if p.title:
            body += f"{p.title}\n"
        if i % 3 == 0:
            body += "\nSent from my iPhone\n"
        mailer = [("X-Mailer", "iPhone Mail (22D82)")] if i % 3 == 0 else []
        yield Sample(
            f"person-freemail-{i:02d}",
            "person",
            f"private contact writes from {p.address.partition('@')[2]}",
            message(
                p,
                [staff],
                "Enquiry" if i % 2 else "Question",
                body,
                when=_when(i + 80),
                headers=mailer,
                html=i % 2 == 0,
            ),
        )


def person_crm_unsubscribe() -> Iterator[Sample]:
    """One-to-one mail from a supplier's or partner's CRM, which adds List-Unsubscribe anyway."""
    senders = [
        Person(
            "Rachel Dunn",
            "rachel.dunn@greenleaf-paper.co.uk",
            "Key Account Manager",
            "Greenleaf Paper Co",
            "+44 113 555 0111",
        ),
        Person("Henrik Vogel", "h.vogel@vogel-verpackung.de", "Vertrieb", "Vogel Verpackung"),
        Person("Amy Chen", "amy.chen@fleetwise-routing.com", "Account Executive", "Fleetwise"),
        Person("Paul Mercer", "paul@mercer-insurance-brokers.co.uk", "Broker", "Mercer Brokers"),
        Person("Lena Fischer", "lena.fischer@printhaus-online.de", "Kundenberatung", "Printhaus"),
        Person("Jack Doyle", "jack@doyle-signs.ie", "Owner", "Doyle Signs"),
        Person(
            "Emma Stone",
            "emma.stone@brightline-dental.co.uk",
            "Practice Owner",
            "Brightline Dental Care",
        ),
        Person(
            "Noah Williams", "noah@williams-recruitment.co.uk", "Consultant", "Williams Recruitment"
        ),
        Person("Isabel Ruiz", "isabel.ruiz@quillon-cowork.com", "Events", "Quillon Coworking"),
    ]
    for i, p in enumerate(senders):
        staff = STAFF[i % len(STAFF)]
        domain = p.address.partition("@")[2]
        hdrs = [("List-Unsubscribe", f"<mailto:unsubscribe+{_hex(10)}@crm-mail.{domain}>")]
        if i % 3 == 0:
            hdrs.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
            hdrs[0] = ("List-Unsubscribe", f"<https://crm.{domain}/u/{_hex(24)}>")
        if i % 4 == 1:
            hdrs.append(("X-Mailer", "Microsoft Outlook 16.0"))
        body = (
            f"Hi {staff.name.split()[0]},\n\nFollowing our call on Thursday, here are the next "
            "steps we agreed. Let me know if I missed anything.\n\n"
            f"Best,\n{_signature(p)}\n"
        )
        yield Sample(
            f"person-crm-unsub-{i:02d}",
            "person",
            "one-to-one mail with List-Unsubscribe added by the sender's CRM",
            message(
                p,
                [staff],
                "Following up on our call",
                body,
                when=_when(i + 120),
                headers=hdrs,
                html=True,
            ),
        )


def _ics(
    method: str,
    organizer: Person,
    attendees: list[Person],
    summary: str,
    start: datetime,
    partstat: str = "NEEDS-ACTION",
    sequence: int = 0,
) -> str:
    end = start + timedelta(hours=1)
    fmt = "%Y%m%dT%H%M%SZ"
    lines = [
        "BEGIN:VCALENDAR",
        "PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN",
        "VERSION:2.0",
        f"METHOD:{method}",
        "BEGIN:VEVENT",
        f'ORGANIZER;CN="{organizer.name}":mailto:{organizer.address}',
    ]
    for a in attendees:
        lines.append(
            f'ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT={partstat};RSVP=TRUE;CN="{a.name}":'
            f"mailto:{a.address}"
        )
    lines += [
        f"UID:040000008200E00074C5B7101A82E008{_hex(32).upper()}",
        f"SUMMARY:{summary}",
        f"DTSTART:{start.strftime(fmt)}",
        f"DTEND:{end.strftime(fmt)}",
        f"DTSTAMP:{(start - timedelta(days=3)).strftime(fmt)}",
        f"SEQUENCE:{sequence}",
        "LOCATION:Microsoft Teams Meeting",
        "STATUS:CONFIRMED",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "".join(_fold(line) + "\r\n" for line in lines)


def _fold(line: str) -> str:
    """RFC 5545 line folding: at most 75 octets a line, continuation lines start with a space."""
    out, rest = [], line
    while len(rest) > 75:
        out.append(rest[:75])
        rest = " " + rest[75:]
    return "\r\n".join([*out, rest])


def person_meetings() -> Iterator[Sample]:
    summaries = [
        "Quarterly supply review",
        "Eco range walkthrough",
        "Pricing 2025",
        "Warehouse visit",
        "Onboarding call",
        "Delivery issues - catch up",
        "Absence cover planning",
        "Contract renewal",
    ]
    suppress = ["All", "RN, NRN, OOF", "DR, RN, NRN, OOF, AutoReply", "All"]
    for i, summary in enumerate(summaries):
        organizer = CUSTOMERS[(i * 3) % len(CUSTOMERS)]
        staff = STAFF[i % len(STAFF)]
        start = _when(i + 200) + timedelta(days=7)
        msg = message(
            organizer,
            [staff],
            summary,
            f"{summary}\n\nJoin the meeting: https://meet.{organizer.address.partition('@')[2]}"
            f"/j/{_hex(10)}\n",
            when=_when(i + 200),
            headers=[
                ("X-Auto-Response-Suppress", suppress[i % len(suppress)]),
                OUTLOOK,
                ("Thread-Topic", summary),
            ],
        )
        msg.add_alternative(
            _ics("REQUEST", organizer, [staff], summary, start),
            subtype="calendar",
            params={"method": "REQUEST"},
        )
        yield Sample(
            f"person-meeting-request-{i:02d}",
            "person",
            "Outlook meeting request with X-Auto-Response-Suppress",
            msg,
        )
    for i, (prefix, partstat) in enumerate(
        [
            ("Accepted", "ACCEPTED"),
            ("Tentative", "TENTATIVE"),
            ("Declined", "DECLINED"),
            ("Accepted", "ACCEPTED"),
            ("Accepted", "ACCEPTED"),
        ]
    ):
        attendee = CUSTOMERS[(i * 5 + 1) % len(CUSTOMERS)]
        staff = STAFF[i % len(STAFF)]
        summary = summaries[i]
        start = _when(i + 220) + timedelta(days=5)
        msg = message(
            attendee,
            [staff],
            f"{prefix}: {summary}",
            "" if i % 2 else "See you then.\n",
            when=_when(i + 220),
            headers=[("X-Auto-Response-Suppress", "All")] if i % 2 == 0 else [],
        )
        msg.add_alternative(
            _ics("REPLY", staff, [attendee], summary, start, partstat=partstat),
            subtype="calendar",
            params={"method": "REPLY"},
        )
        yield Sample(f"person-meeting-reply-{i:02d}", "person", "attendee's meeting response", msg)


def person_role_addresses() -> Iterator[Sample]:
    lines = [
        "Could we add another box of the large paper bags to Friday's order?",
        "The new shelving is ready, when can your driver collect the old pallets?",
        "Bitte schicken Sie uns die Rechnung noch einmal als PDF.",
        "Vi skulle vilja beställa 300 kaffekoppar till nästa vecka.",
        "Pourriez-vous livrer mardi au lieu de mercredi ?",
        "Remittance for invoice 2025-0210 attached, paid in full.",
        "Our treatment rooms need the smaller glove size from now on.",
        "¿Podéis enviarnos 200 servilletas más para el sábado?",
        "Kunnen we de bestelling van volgende week verdubbelen?",
        "Your account portal shows an error when I log in, can you have a look?",
    ]
    for i, p in enumerate(ROLE_SENDERS):
        staff = STAFF[i % len(STAFF)]
        body = f"Hello {staff.name.split()[0]},\n\n{lines[i]}\n\nThanks,\n{_signature(p)}\n"
        yield Sample(
            f"person-role-address-{i:02d}",
            "person",
            f"person at a small customer writing from {p.address.partition('@')[0]}@",
            message(
                p,
                [staff],
                TOPICS[(i + 3) % len(TOPICS)][0],
                body,
                when=_when(i + 240),
                html=i % 2 == 0,
            ),
        )


def person_tricky_subjects() -> Iterator[Sample]:
    cases = [
        (
            "Re: Automatic reply: Delivery schedule for PO-4821",
            "Sorry, I was away - back now. Tuesday is fine for the delivery.",
        ),
        (
            "Out of office cover next week",
            "I'm away from Monday; Katrin will handle our orders while I'm out.",
        ),
        (
            "Newsletter draft for review",
            "Attached is the draft of our customer newsletter, can you check the product names?",
        ),
        (
            "Notification of price change",
            "Just a heads-up that our budget for consumables changes from April.",
        ),
        (
            "RE: Undeliverable: Invoice 2025-0113",
            "Your email bounced off our old address, please use this one from now on.",
        ),
        (
            "Fwd: Your order has shipped",
            "This is the shipping notice from the courier - it says delivered but nothing came.",
        ),
        (
            "Re: Out of Office",
            "Ha, your out of office says back on the 3rd - call me when you're in.",
        ),
        (
            "Auto-renewal of our contract?",
            "Does our supply contract renew automatically in May or do we need to sign again?",
        ),
        (
            "Unsubscribe me from the paper invoices please",
            "We would like all invoices by email from now on instead of post.",
        ),
        ("No reply needed - just FYI", "The loading bay will be closed on Friday for resurfacing."),
    ]
    for i, (subject, text) in enumerate(cases):
        p = CUSTOMERS[(i * 7) % len(CUSTOMERS)]
        staff = STAFF[i % len(STAFF)]
        body = f"Hi {staff.name.split()[0]},\n\n{text}\n\nRegards,\n{_signature(p)}\n"
        yield Sample(
            f"person-tricky-subject-{i:02d}",
            "person",
            "person mail whose subject sounds automated",
            message(p, [staff], subject, body, when=_when(i + 260), html=i % 2 == 0),
        )


def person_platform_headers() -> Iterator[Sample]:
    """Person mail sent through hosted mail that runs on an ESP (no List-Unsubscribe)."""
    senders = [CUSTOMERS[5], CUSTOMERS[10], CUSTOMERS[6], CUSTOMERS[11], ROLE_SENDERS[1]]
    variants = [
        [("Feedback-ID", "1.eu-west-1.aBcD1234efGh:AmazonSES"), ("X-SES-Outgoing", "2025.03.04")],
        [("X-SES-Outgoing", "2025.03.05-54.240.4.1")],
        [("Feedback-ID", "workmail:12345:eu")],
        [("X-Mailgun-Tag", "helpdesk-reply")],
        [("Auto-Submitted", "no"), ("Precedence", "normal")],
    ]
    for i, p in enumerate(senders):
        staff = STAFF[i % len(STAFF)]
        body = (
            f"Hi {staff.name.split()[0]},\n\nQuick one: can you move our delivery to the "
            "afternoon slot?\n\nThanks,\n" + _signature(p) + "\n"
        )
        yield Sample(
            f"person-platform-headers-{i:02d}",
            "person",
            "one-to-one mail carrying a lone ESP/transport header",
            message(p, [staff], "Delivery slot", body, when=_when(i + 280), headers=variants[i]),
        )


def person_non_ascii() -> Iterator[Sample]:
    cases = [
        (
            CUSTOMERS[2],
            "Bestellung für nächste Woche – Größen prüfen",
            "Hallo Anna,\n\nkönnten Sie die Größen für die Handschuhe prüfen? Danke!",
        ),
        (
            CUSTOMERS[4],
            "Réunion à Lyon – prévoir l'échantillon",
            "Bonjour,\n\nPour notre réunion à Lyon, pourriez-vous apporter les échantillons ?",
        ),
        (
            CUSTOMERS[8],
            "Beställning – leverans på fredag?",
            "Hej,\n\nKan ni leverera vår beställning på fredag förmiddag?",
        ),
        (
            CUSTOMERS[10],
            "Presupuesto – cajas ecológicas",
            "Hola,\n\n¿Nos podéis mandar el presupuesto actualizado de las cajas?",
        ),
        (
            CUSTOMERS[7],
            "Offerte – bekers en deksels",
            "Hoi,\n\nKunnen jullie de offerte voor de bekers nog aanpassen?",
        ),
        (
            CUSTOMERS[9],
            "Consegna di lunedì – conferma",
            "Buongiorno,\n\nconfermate la consegna di lunedì mattina?",
        ),
        (
            CUSTOMERS[11],
            "Invoice query – €420 difference",
            "Hi,\n\nThe last invoice is €420 more than the quote, can you check?",
        ),
        (
            FREEMAIL[8],
            "Commande n° 2231 – merci !",
            "Bonjour,\n\nTout est bien arrivé, merci beaucoup !",
        ),
    ]
    for i, (p, subject, text) in enumerate(cases):
        staff = STAFF[i % len(STAFF)]
        yield Sample(
            f"person-non-ascii-{i:02d}",
            "person",
            "customer mail with RFC 2047 subject and names",
            message(
                p,
                [staff],
                subject,
                f"{text}\n\n{_signature(p)}\n",
                when=_when(i + 300),
                html=i % 2 == 1,
            ),
        )


def person_forwards() -> Iterator[Sample]:
    for i in range(5):
        p = CUSTOMERS[(i * 2 + 1) % len(CUSTOMERS)]
        staff = STAFF[i % len(STAFF)]
        original = message(
            Person("Dispatch", f"dispatch@{p.address.partition('@')[2]}"),
            [p],
            "Goods received note 7731",
            "Goods received: 14 cases, 2 missing lids.\n",
            when=_when(i + 320) - timedelta(hours=3),
        )
        if i % 2 == 0:
            msg = message(
                p,
                [staff],
                "FW: Goods received note 7731",
                f"See below from our dispatch team.\n\n{p.name}\n\n-----Original Message-----\n"
                f"From: Dispatch <dispatch@{p.address.partition('@')[2]}>\n"
                "Subject: Goods received note 7731\n\nGoods received: 14 cases, 2 missing lids.\n",
                when=_when(i + 320),
                headers=[OUTLOOK],
            )
        else:
            msg = message(
                p,
                [staff],
                "Fwd: Goods received note 7731",
                f"Forwarding this, see attached.\n\n{p.name}\n",
                when=_when(i + 320),
            )
            msg.add_attachment(original)
        yield Sample(f"person-forward-{i:02d}", "person", "customer forwards a message", msg)


def person_misc() -> Iterator[Sample]:
    # A helpdesk agent at a supplier answering by hand (support@, ticket number in subject).
    agent = Person("Tom Hughes", "support@hughes-it-services.co.uk", "Engineer", "Hughes IT")
    yield Sample(
        "person-misc-00",
        "person",
        "helpdesk agent's personal reply from support@",
        message(
            agent,
            [STAFF[0]],
            "[Ticket #4471] Printer on the first floor",
            "Hi Anna,\n\nI've ordered the new fuser, I'll fit it on Monday.\n\nTom\n",
            when=_when(340),
        ),
    )
    # A sender's X-Auto-Response-Suppress on an ordinary mail (some Outlook add-ins set it).
    yield Sample(
        "person-misc-01",
        "person",
        "ordinary mail with X-Auto-Response-Suppress only",
        message(
            CUSTOMERS[3],
            [STAFF[1]],
            "Order for the Hamburg depot",
            "Hi Tom,\n\nPlease find the order for the Hamburg depot below.\n\nKatrin\n",
            when=_when(341),
            headers=[("X-Auto-Response-Suppress", "All"), OUTLOOK],
        ),
    )
    # High importance from a customer.
    yield Sample(
        "person-misc-02",
        "person",
        "high importance person mail",
        message(
            CUSTOMERS[0],
            [STAFF[2]],
            "URGENT - no gloves left",
            "Priya, we have no medium gloves left for tomorrow's list. Can anyone help?\n",
            when=_when(342),
            headers=[("Importance", "high"), ("X-Priority", "1")],
        ),
    )
    # A person mailing several of us and a colleague, HTML only.
    msg = message(
        CUSTOMERS[6],
        [STAFF[0], STAFF[1]],
        "New café opening in Bath",
        "",
        when=_when(343),
        cc=[CUSTOMERS[0]],
    )
    html_only(
        msg,
        "<html><body><p>Hi both,</p><p>We're opening in Bath in May and will need "
        "a full opening order. Can we talk this week?</p><p>Olivia</p></body></html>",
    )
    yield Sample("person-misc-03", "person", "HTML-only person mail to several people", msg)
    # Exchange sensitivity header, customer's legal team.
    yield Sample(
        "person-misc-04",
        "person",
        "confidential person mail",
        message(
            CUSTOMERS[5],
            [STAFF[0]],
            "Supply agreement - redlines",
            "Anna, our comments on the supply agreement are attached.\n\nDaniela\n",
            when=_when(344),
            headers=[("Sensitivity", "Company-Confidential"), OUTLOOK],
        ),
    )
    # A customer's reply that ended up quoting an auto-reply header block.
    yield Sample(
        "person-misc-05",
        "person",
        "person with a name that looks like a role",
        message(
            Person("Notifications Team (Maria)", "maria.silva@quillon-cowork.com"),
            [STAFF[1]],
            "Member notice boards",
            "Hi Tom, can we order 4 more cork boards for the member areas?\n",
            when=_when(345),
        ),
    )
    # One-to-one mail with a person-looking "updates" style subject and List-Unsubscribe from CRM.
    yield Sample(
        "person-misc-06",
        "person",
        "sales rep using a CRM with tracking, no campaign headers",
        message(
            Person("Chris Young", "chris.young@fleetwise-routing.com"),
            [STAFF[0]],
            "Quick question about your van routes",
            "Hi Anna,\n\nWould a 15 minute call next Tuesday work?\n\nChris\n",
            when=_when(346),
            headers=[
                ("List-Unsubscribe", "<https://app.crm-sequences.example/u/8841>"),
                ("X-Mailer", "Sequences CRM 4.2"),
            ],
        ),
    )


# --- bulk mail ----------------------------------------------------------------------------------


def _newsletter_html(title: str, lines: list[str]) -> str:
    items = "".join(f'<tr><td style="padding:8px">{ln}</td></tr>' for ln in lines)
    return (
        '<!DOCTYPE html><html><body><table width="600" align="center">'
        f"<tr><td><h1>{title}</h1></td></tr>{items}"
        '<tr><td><a href="https://example.com/unsubscribe">Unsubscribe</a> | '
        '<a href="https://example.com/prefs">Update preferences</a></td></tr>'
        "</table></body></html>"
    )


def bulk_esp_newsletters() -> Iterator[Sample]:
    brands = [
        ("Packaging Insider", "news@packaging-insider.example", "mailchimp"),
        ("Hospitality Buyer Digest", "digest@hospitality-buyer.example", "ses"),
        ("Greenleaf Paper Co", "offers@e.greenleaf-paper.example", "sfmc"),
        ("CleanPro Wholesale", "hello@cleanpro-wholesale.example", "sendgrid"),
        ("Fleetwise Routing", "marketing@fleetwise-routing.example", "mailgun"),
        ("OfficeWorld Deals", "deals@officeworld-shop.example", "sfmc"),
        ("Café Trade Weekly", "newsletter@cafe-trade-weekly.example", "mailchimp"),
        ("Logistics Today", "editor@logistics-today.example", "ses"),
        ("The Dental Buyer", "team@dental-buyer-magazine.example", "mailchimp"),
        ("EcoPack Summit", "events@ecopack-summit.example", "sendgrid"),
        ("Northern Chamber of Commerce", "comms@northern-chamber.example", "mailchimp"),
        ("Vogel Verpackung", "newsletter@vogel-verpackung.example", "brevo"),
    ]
    titles = [
        "Spring offers inside",
        "5 trends for 2025",
        "Your March update",
        "Last chance: 20% off",
        "New in: compostable range",
    ]
    n = 0
    for i, (brand, address, esp) in enumerate(brands):
        for j in range(3 if i < 6 else 2):
            staff = STAFF[(i + j) % len(STAFF)]
            title = titles[(i + j) % len(titles)]
            domain = address.partition("@")[2]
            unsub = f"<https://{domain}/u/{_hex(20)}>, <mailto:unsub-{_hex(12)}@{domain}>"
            hdrs: list[tuple[str, str]] = [("List-Unsubscribe", unsub)]
            if esp == "mailchimp":
                hdrs += [
                    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                    ("X-MC-User", _hex(25)),
                    ("X-Campaign", f"mailchimp{_hex(10)}.{_hex(10)}"),
                    ("X-Campaign-Id", _hex(10)),
                ]
                if j == 0:
                    hdrs.append(("List-Id", f"{brand} <{_hex(20)}.list-id.esp-mail.example>"))
            elif esp == "ses":
                hdrs += [
                    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                    ("Feedback-ID", f"1.eu-west-1.{_hex(20)}=:AmazonSES"),
                    ("X-SES-Outgoing", "2025.03.04-23.251.234.10"),
                ]
            elif esp == "sfmc":
                hdrs += [("X-SFMC-Stack", "50"), ("x-CSA-Complaints", "csa-complaints@eco.de")]
            elif esp == "sendgrid":
                # SendGrid stamps X-SG-EID on everything it sends, one-to-one mail included.
                hdrs += [("X-SG-EID", _hex(40))]
                hdrs += [("Precedence", "bulk")] if j % 2 == 0 else []
            elif esp == "mailgun":
                hdrs += [("X-Mailgun-Tag", "newsletter-march")]
            elif esp == "brevo":
                hdrs += [("X-Mailer", "Sendinblue"), ("Feedback-ID", f"{_hex(6)}:brevo")]
            msg = message(
                Address(brand, *address.split("@")),
                [staff.address],
                f"{brand}: {title}",
                f"{title}\n\nRead this issue online: https://{domain}/issues/{_hex(6)}\n\n"
                "You are receiving this because you subscribed. Unsubscribe: "
                f"https://{domain}/u\n",
                when=_when(n + 400),
                headers=hdrs,
                html=_newsletter_html(title, ["Article one", "Article two", "Offer"]),
            )
            n += 1
            yield Sample(
                f"bulk-newsletter-{esp}-{i:02d}-{j}", "bulk", f"{esp}-style newsletter", msg
            )


def bulk_dev_notifications() -> Iterator[Sample]:
    repos = ["northwind/warehouse-app", "northwind/website", "northwind/edi-bridge"]
    for i in range(8):
        repo = repos[i % len(repos)]
        num = 100 + i * 7
        hdrs = [
            ("List-ID", f"{repo.split('/')[1]} <{repo.split('/')[1]}.northwind.gitforge.example>"),
            ("List-Archive", f"https://gitforge.example/{repo}"),
            ("List-Unsubscribe", f"<mailto:unsub+{_hex(20)}@reply.gitforge.example>"),
            ("X-Auto-Response-Suppress", "All"),
        ]
        msg = message(
            Address("Sam Porter", "notifications", "gitforge.example"),
            [f"{repo.split('/')[1]} <{repo.split('/')[1]}@noreply.gitforge.example>"],
            f"Re: [{repo}] Fix stock sync for SKU variants (PR #{num})",
            f"@anna-lindqvist approved this pull request.\n\n-- \nReply to this email directly "
            f"or view it on GitForge: https://gitforge.example/{repo}/pull/{num}\n",
            when=_when(i + 500),
            headers=hdrs,
            msgid_domain="gitforge.example",
        )
        yield Sample(
            f"bulk-gitforge-{i:02d}", "bulk", "code-hosting notification (list headers)", msg
        )
    for i in range(6):
        key = f"OPS-{210 + i}"
        hdrs = [("Auto-Submitted", "auto-generated"), ("Precedence", "bulk")]
        if i % 2:
            hdrs = [("Auto-Submitted", "auto-generated")]
        msg = message(
            Address("Tom Okafor (Trackly)", "trackly", "northwind.trackly.example"),
            [STAFF[i % len(STAFF)]],
            f"[Trackly] ({key}) Update carrier rates for Q2",
            f"Tom Okafor changed the status of {key} to In Progress.\n\nView issue: "
            f"https://northwind.trackly.example/browse/{key}\n",
            when=_when(i + 510),
            headers=hdrs,
        )
        yield Sample(f"bulk-tracker-{i:02d}", "bulk", "issue-tracker notification", msg)
    for i in range(5):
        sender = [
            "notification@chatter.example",
            "no-reply@chatter.example",
            "feedback@chatter.example",
            "notification@chatter.example",
            "notifications@chatter.example",
        ][i]
        hdrs = [("Auto-Submitted", "auto-generated")] if sender.startswith("feedback") else []
        msg = message(
            Address("Chatter", *sender.split("@")),
            [STAFF[i % len(STAFF)]],
            [
                "[Chatter] New message from Priya Raman",
                "Your weekly summary from Northwind",
                "[Chatter] You were mentioned in #sales",
                "[Chatter] 3 unread messages",
                "Reminder: update your status",
            ][i],
            "You have new activity in the Northwind workspace.\n\nOpen Chatter: "
            "https://northwind.chatter.example\n",
            when=_when(i + 520),
            headers=hdrs,
            html=True,
        )
        yield Sample(f"bulk-chat-{i:02d}", "bulk", "team chat notification", msg)


def bulk_receipts() -> Iterator[Sample]:
    senders = [
        ("Harbour Bank", "noreply@alerts.harbour-bank.example", "Your statement is ready"),
        ("Harbour Bank", "no-reply@harbour-bank.example", "Payment of £1,240.00 sent"),
        ("ShopRight", "auto-confirm@shopright.example", "Your ShopRight order #204-5581 "),
        ("ShopRight", "shipment-tracking@shopright.example", "Your package was delivered"),
        ("Parcelpath", "donotreply@parcelpath.example", "Tracking update for NW48213"),
        ("Ledgerly", "do-not-reply@ledgerly-books.example", "Invoice INV-2025-0142 was viewed"),
        ("FuelCard", "no_reply@fuelcard-services.example", "Your monthly fuel card statement"),
        ("CloudStore", "billing-noreply@cloudstore.example", "Receipt for your subscription"),
        ("Taxi Go", "receipts@taxigo.example", "Your Tuesday evening trip with Taxi Go"),
        ("Telco One", "noreply@telco-one.example", "Your bill is ready"),
        ("Insurewell", "DoNotReply@insurewell.example", "Your policy documents"),
        ("Rail Tickets", "no.reply@railtickets.example", "Your e-ticket for 14 March"),
        ("PayFlow", "service-noreply@payflow.example", "You received a payment"),
        ("Office World", "orders-noreply@officeworld-shop.example", "Order confirmation 88120"),
    ]
    for i, (brand, address, subject) in enumerate(senders):
        hdrs: list[tuple[str, str]] = []
        if brand == "Taxi Go":
            hdrs = [("Auto-Submitted", "auto-generated")]
        msg = message(
            Address(brand, *address.split("@")),
            [STAFF[i % len(STAFF)]],
            subject.strip(),
            f"{subject.strip()}.\n\nThis is an automated message, please do not reply.\n",
            when=_when(i + 600),
            headers=hdrs,
            html=i % 2 == 0,
        )
        if i % 4 == 0:
            msg.add_attachment(
                b"%PDF-1.4\n% receipt\n",
                maintype="application",
                subtype="pdf",
                filename="receipt.pdf",
            )
        yield Sample(f"bulk-receipt-{i:02d}", "bulk", f"{brand} receipt/alert from no-reply", msg)


def bulk_out_of_office() -> Iterator[Sample]:
    cases: list[tuple[Person, str, str, list[tuple[str, str]]]] = [
        (
            CUSTOMERS[0],
            "Automatic reply: Delivery schedule for PO-4821",
            "I am out of the office until Monday 10 March with limited access to email.",
            [
                ("Auto-Submitted", "auto-replied"),
                ("X-Auto-Response-Suppress", "All"),
                ("X-MS-Exchange-Inbox-Rules-Loop", "hannah.whitfield@brightline-dental.co.uk"),
            ],
        ),
        (
            CUSTOMERS[5],
            "Automatic reply: Quote for 2,000 compostable cups",
            "Thanks for your email. I'm travelling this week and will reply when I'm back.",
            [("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All")],
        ),
        (
            CUSTOMERS[6],
            "Out of Office: Price list 2025",
            "I'm on leave until the 17th. For urgent orders call the café on 0117 555 0160.",
            [],
        ),
        (
            CUSTOMERS[11],
            "Auto Reply: Returns for order 55810",
            "I'm out of the office today.",
            [("X-Autoreply", "yes")],
        ),
        (
            CUSTOMERS[2],
            "Automatische Antwort: Lieferung KW 11",
            "Ich bin bis einschließlich 14.03. nicht im Büro. In dringenden Fällen wenden Sie "
            "sich bitte an Katrin Brandt.",
            [("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All")],
        ),
        (
            CUSTOMERS[3],
            "Abwesenheitsnotiz: Angebot Handschuhe",
            "Vielen Dank für Ihre Nachricht. Ich bin derzeit nicht im Büro.",
            [],
        ),
        (
            CUSTOMERS[4],
            "Réponse automatique : Échantillons",
            "Je suis absente du bureau jusqu'au 12 mars. Pour toute urgence, contactez "
            "Julien Roussel.",
            [("Auto-Submitted", "auto-replied")],
        ),
        (
            CUSTOMERS[10],
            "Respuesta automática: Presupuesto cajas",
            "Estoy fuera de la oficina hasta el lunes. Responderé a mi regreso.",
            [],
        ),
        (
            CUSTOMERS[7],
            "Automatisch antwoord: Offerte bekers",
            "Ik ben afwezig tot en met vrijdag. Voor spoedzaken: bel 020 555 0134.",
            [("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All")],
        ),
        (
            CUSTOMERS[8],
            "Automatiskt svar: Beställning vecka 12",
            "Jag är på semester till den 20 mars och läser inte min e-post.",
            [],
        ),
        (
            FREEMAIL[0],
            "Away until 14 March",
            "Hi! I'm at a wedding fair until the 14th and will reply when I'm back. Lucy",
            [("Auto-Submitted", "auto-replied")],
        ),
        (
            CUSTOMERS[9],
            "Risposta automatica: Consegna",
            "Sono fuori ufficio fino al 15 marzo.",
            [("X-Autorespond", "vacation")],
        ),
        (
            CUSTOMERS[1],
            "Out of office",
            "I'm out of the office until Thursday.",
            [("X-Auto-Response-Suppress", "All")],
        ),
        (
            FREEMAIL[4],
            "Vacation reply",
            "I'm on holiday with no access to email.",
            [("Precedence", "bulk")],
        ),
        (
            CUSTOMERS[9],
            "Re: Consegna",
            "Sono in ferie, rispondo al mio rientro.",
            [("X-MS-Exchange-Generated-Message-Source", "Mailbox Rules Agent")],
        ),
        (ROLE_SENDERS[2], "Abwesend: Rechnung", "Unser Büro ist bis 10.03. geschlossen.", []),
        (
            FREEMAIL[5],
            "Re: Presupuesto",
            "Gracias por tu correo. Estoy de vacaciones.",
            [("Auto-Submitted", 'auto-replied; owner-email="pablo.ortega.bcn@gmail.com"')],
        ),
        (CUSTOMERS[8], "Frånvaro: Beställning", "Jag är ledig och tillbaka måndag.", []),
    ]
    for i, (p, subject, text, hdrs) in enumerate(cases):
        msg = message(
            p,
            [STAFF[i % len(STAFF)]],
            subject,
            text + "\n",
            when=_when(i + 700),
            headers=hdrs,
            html=i % 3 == 0,
        )
        msg["In-Reply-To"] = _message_id("northwind-supplies.com")
        yield Sample(f"bulk-out-of-office-{i:02d}", "bulk", "out-of-office reply", msg)


def _dsn(recipient: str, original_subject: str, mta: str, i: int) -> EmailMessage:
    """A delivery status notification (RFC 3464), written out as a bounce server sends it."""
    staff = STAFF[i % len(STAFF)]
    sender = "MAILER-DAEMON" if i % 2 else "postmaster"
    subject = (
        f"Undeliverable: {original_subject}" if i % 2 else "Mail delivery failed: returning message"
    )
    boundary = f"dsn-{_hex(16)}"
    extra = ""
    if i % 3 != 2:
        extra += "Return-Path: <>\n"
    if i % 4 == 0:
        extra += "Auto-Submitted: auto-replied\n"
    raw = (
        f"{extra}From: Mail Delivery System <{sender}@{mta}>\n"
        f"To: {staff.address}\n"
        f"Subject: {subject}\n"
        f"Date: {format_datetime(_when(i + 800))}\n"
        f"Message-ID: {_message_id(mta)}\n"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\n'
        "\n"
        f"--{boundary}\n"
        "Content-Type: text/plain; charset=us-ascii\n\n"
        f"Delivery has failed to these recipients or groups:\n\n{recipient}\n"
        "The email address you entered couldn't be found.\n\n"
        f"--{boundary}\n"
        "Content-Type: message/delivery-status\n\n"
        f"Reporting-MTA: dns; {mta}\n\n"
        f"Final-Recipient: rfc822; {recipient}\nAction: failed\nStatus: 5.1.1\n\n"
        f"--{boundary}\n"
        "Content-Type: text/rfc822-headers\n\n"
        f"From: {staff.address}\nTo: {recipient}\nSubject: {original_subject}\n\n"
        f"--{boundary}--\n"
    )
    parsed = message_from_bytes(raw.encode(), policy=default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def bulk_bounces() -> Iterator[Sample]:
    targets = [
        ("h.whitfeld@brightline-dental.co.uk", "Delivery schedule for PO-4821"),
        ("info@old-supplier.example", "Price list 2025"),
        ("k.brandt@kestrelmoor-logistik.de", "Lieferung KW 11"),
        ("daniela@vasquez-row.example", "Supply agreement"),
        ("olivia@tidewater-cafe.example", "Opening order Bath"),
        ("ciaran@pinecrest.example", "Hand towel dispensers"),
        ("sales@closed-business.example", "Samples"),
    ]
    mtas = ["mx1.northwind-supplies.com", "AM6PR07MB1234.eurprd07.prod.mailhost.example"]
    for i, (rcpt, subject) in enumerate(targets):
        yield Sample(
            f"bulk-bounce-{i:02d}",
            "bulk",
            "delivery status notification",
            _dsn(rcpt, subject, mtas[i % 2], i),
        )
    # A read receipt (MDN) is a report too.
    mdn = message(
        CUSTOMERS[2],
        [STAFF[0]],
        "Gelesen: Angebot Handschuhe",
        "Ihre Nachricht wurde gelesen.\n",
        when=_when(820),
    )
    mdn.make_mixed()
    mdn.replace_header("Content-Type", "multipart/report; report-type=disposition-notification")
    mdn.set_boundary(f"mdn-{_hex(12)}")
    yield Sample("bulk-bounce-mdn", "bulk", "read receipt (multipart/report MDN)", mdn)


def bulk_lists() -> Iterator[Sample]:
    groups = [
        ("Packaging Buyers Forum", "packaging-buyers@groups.forumhost.example"),
        ("UK Cafe Owners", "uk-cafe-owners@groups.forumhost.example"),
        ("Northern Logistics Network", "nln-members@groups.forumhost.example"),
    ]
    for i in range(6):
        name, addr = groups[i % len(groups)]
        local, _, domain = addr.partition("@")
        poster = CUSTOMERS[(i * 5) % len(CUSTOMERS)]
        hdrs = [
            ("List-ID", f"<{local}.{domain}>"),
            ("Mailing-list", f"list {addr}; contact {local}+owners@{domain}"),
            ("Precedence", "list"),
            ("List-Post", f"<https://{domain}/group/{local}/post>, <mailto:{addr}>"),
            ("List-Help", f"<https://support.{domain}/groups>, <mailto:{local}+help@{domain}>"),
            ("List-Unsubscribe", f"<mailto:{local}+unsubscribe@{domain}>"),
        ]
        msg = message(
            Address(f"{poster.name} via {name}", local, domain),
            [addr],
            f"[{name}] Anyone else seeing longer lead times on cups?",
            "Our usual supplier quoted 6 weeks. Is that normal now?\n\n-- \nYou received this "
            f"message because you are subscribed to the {name} group.\n",
            when=_when(i + 900),
            headers=hdrs,
        )
        yield Sample(f"bulk-group-{i:02d}", "bulk", "discussion group (Google Groups-style)", msg)
    lists = [("members", "trade-association.example"), ("announce", "eco-packaging.example")]
    for i in range(6):
        local, domain = lists[i % len(lists)]
        poster = FREEMAIL[(i * 3) % len(FREEMAIL)]
        hdrs = [
            ("List-Id", f"Members discussion <{local}.lists.{domain}>"),
            ("X-BeenThere", f"{local}@lists.{domain}"),
            ("List-Post", f"<mailto:{local}@lists.{domain}>"),
            ("List-Archive", f"<https://lists.{domain}/archives/{local}>"),
            ("Precedence", "list"),
            ("X-Mailman-Version", "2.1.39"),
        ]
        if i % 3 == 2:  # some list servers only set a few of these
            hdrs = [("X-BeenThere", f"{local}@lists.{domain}")]
        msg = message(
            poster,
            [f"{local}@lists.{domain}"],
            f"[{local.title()}] AGM minutes and next meeting",
            "Minutes from the AGM are attached to the archive.\n",
            when=_when(i + 910),
            headers=hdrs,
        )
        yield Sample(f"bulk-mailman-{i:02d}", "bulk", "Mailman list traffic", msg)


def bulk_calendar_notifications() -> Iterator[Sample]:
    cases = [
        (
            "calendar-notification@calendarly.example",
            "Notification: Weekly pipeline review @ Mon 10 Mar 2025 09:00 - 09:30 (GMT)",
            [("Auto-Submitted", "auto-generated")],
        ),
        (
            "calendar-notification@calendarly.example",
            "Reminder: Quarterly supply review @ Thu 13 Mar 2025 14:00 - 15:00 (GMT)",
            [],
        ),
        ("notifications@bookwise-scheduling.example", "New event: Olivia Grant - 30 min intro", []),
        ("no-reply@meetlane-video.example", "Cloud recording is now available", []),
        (
            "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@northwind-supplies.com",
            "Meeting Forward Notification: Pricing 2025",
            [
                ("Auto-Submitted", "auto-generated"),
                ("X-MS-Exchange-Generated-Message-Source", "Calendar Repair Assistant"),
            ],
        ),
    ]
    for i, (sender, subject, hdrs) in enumerate(cases):
        msg = message(
            Address("Calendar", *sender.split("@")),
            [STAFF[i % len(STAFF)]],
            subject,
            f"{subject}\n\nView your event: https://calendar.example/event/{_hex(12)}\n",
            when=_when(i + 950),
            headers=hdrs,
            html=True,
        )
        yield Sample(f"bulk-calendar-{i:02d}", "bulk", "calendar notification", msg)


def bulk_marketing_misc() -> Iterator[Sample]:
    """Marketing that looks like other things: a webinar invitation, product updates, surveys."""
    start = _when(960) + timedelta(days=10)
    host = Person("Fleetwise Events", "webinars@fleetwise-routing.example")
    msg = message(
        host,
        [STAFF[0]],
        "Webinar: Cutting last-mile costs in 2025",
        "Join our live webinar. Add it to your calendar with the attached invitation.\n",
        when=_when(960),
        headers=[
            ("List-Unsubscribe", f"<https://fleetwise-routing.example/u/{_hex(16)}>"),
            ("X-Campaign-Id", "webinar-q1"),
            ("Feedback-ID", "webinar-q1:fleetwise:esp"),
        ],
    )
    msg.add_alternative(
        _ics("REQUEST", host, [STAFF[0]], "Cutting last-mile costs in 2025", start),
        subtype="calendar",
        params={"method": "REQUEST"},
    )
    yield Sample("bulk-marketing-webinar", "bulk", "ESP webinar invitation with an iTIP part", msg)
    products = [
        ("Ledgerly", "updates@ledgerly-books.example", "What's new in Ledgerly: bank rules"),
        ("Chatter", "product@chatter.example", "Chatter product update - March"),
        ("Parcelpath", "hello@parcelpath.example", "How did we do? 1-minute survey"),
        ("CloudStore", "team@cloudstore.example", "Your storage plan changes on 1 April"),
        ("Bookwise", "news@bookwise-scheduling.example", "Bookwise tips: fewer no-shows"),
    ]
    for i, (brand, address, subject) in enumerate(products):
        domain = address.partition("@")[2]
        hdrs = [
            ("List-Unsubscribe", f"<https://{domain}/unsub/{_hex(16)}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
        hdrs.append(
            [
                ("X-SES-Outgoing", "2025.03.10-54.240.1.1"),
                ("X-SG-EID", _hex(40)),
                ("Feedback-ID", f"{_hex(8)}:{brand.lower()}:customerio"),
                ("X-Mailgun-Tag", "product-update"),
                ("X-Campaign", "tips-03"),
            ][i]
        )
        yield Sample(
            f"bulk-marketing-{i:02d}",
            "bulk",
            "SaaS product update / survey",
            message(
                Address(brand, *address.split("@")),
                [STAFF[(i + 1) % len(STAFF)]],
                subject,
                f"{subject}\n\nRead more: https://{domain}/blog\n",
                when=_when(961 + i),
                headers=hdrs,
                html=_newsletter_html(subject, ["Feature one", "Feature two"]),
            ),
        )


def bulk_hard() -> Iterator[Sample]:
    """Bulk that carries nothing the rules may safely read: expected misses, kept honest."""
    yield Sample(
        "bulk-hard-00",
        "bulk",
        "small shop newsletter from a person's address, List-Unsubscribe only (expected miss)",
        message(
            Person("Maggie Reed", "maggie@reeds-craft-shop.example"),
            [STAFF[0]],
            "March at Reed's: new yarns are in!",
            "Hello lovely customers,\n\nOur new spring yarns have arrived...\n",
            when=_when(990),
            headers=[("List-Unsubscribe", "<mailto:maggie@reeds-craft-shop.example?subject=stop>")],
            html=True,
        ),
    )
    yield Sample(
        "bulk-hard-01",
        "bulk",
        "webshop order confirmation from orders@ with no automation headers (expected miss)",
        message(
            Address("Papier & Co", "orders", "papier-und-co.example"),
            [STAFF[1]],
            "Thank you for your order #10442",
            "We have received your order and will ship it within 2 working days.\n",
            when=_when(991),
        ),
    )


GENERATORS: list[Callable[[], Iterator[Sample]]] = [
    person_company_new,
    person_replies,
    person_freemail,
    person_crm_unsubscribe,
    person_meetings,
    person_role_addresses,
    person_tricky_subjects,
    person_platform_headers,
    person_non_ascii,
    person_forwards,
    person_misc,
    bulk_esp_newsletters,
    bulk_dev_notifications,
    bulk_receipts,
    bulk_out_of_office,
    bulk_bounces,
    bulk_lists,
    bulk_calendar_notifications,
    bulk_marketing_misc,
    bulk_hard,
]


def _stable_boundaries(msg: EmailMessage, slug: str) -> None:
    """Name every multipart boundary after the sample: the email package would pick random ones."""
    for n, part in enumerate(msg.walk()):
        if part.get_content_maintype() == "multipart":
            digest = hashlib.sha256(f"{slug}/{n}".encode()).hexdigest()[:24]
            part.set_boundary(f"----=_Part_{n}_{digest}")


def main() -> None:
    for old in HERE.glob("*.eml"):
        old.unlink()
    rows: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for generate in GENERATORS:
        for sample in generate():
            name = f"{sample.slug}.eml"
            assert name not in seen, name
            seen.add(name)
            _stable_boundaries(sample.message, sample.slug)
            (HERE / name).write_bytes(sample.message.as_bytes(policy=SMTP))
            rows.append((name, sample.label, sample.note))
    rows.sort()
    with (HERE / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("file", "label", "note"))
        writer.writerows(rows)
    digest = hashlib.sha256("".join(r[0] for r in rows).encode()).hexdigest()[:12]
    persons = sum(1 for r in rows if r[1] == "person")
    print(f"wrote {len(rows)} messages ({persons} person, {len(rows) - persons} bulk) [{digest}]")


if __name__ == "__main__":
    main()
