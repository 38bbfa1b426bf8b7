"""A deterministic, real-looking mailbox for benchmarks: one person's Maildir at a small business.

Anna Whitfield runs sales at Northwind Supplies (northwind-supplies.com), a wholesaler of
packaging, catering and cleaning consumables. `generate(out_dir, messages=N, seed=S)` writes her
mailbox as a Maildir whose root is the INBOX, with a nested `Sent` Maildir:

    out_dir/{cur,new,tmp}           INBOX: what others sent her (and what she was copied on)
    out_dir/Sent/{cur,new,tmp}      what she sent
    out_dir/.corpus.json            what was generated (parameters, counts, sizes)

The mail is shaped like what a Microsoft 365 mailbox really holds, because capture speed depends
on it: ~60 customer companies (invented names under real public suffixes) and people on free-mail
addresses; threads that go both ways with In-Reply-To/References chains, CCs, forwards and quoted
history that grows down the thread in each client's style (Outlook, Gmail, Apple Mail,
Thunderbird); the trace headers Exchange Online adds (several Received, ARC-*, DKIM-Signature,
Authentication-Results, X-MS-Exchange-*, X-Microsoft-Antispam-*); multipart/alternative with
Outlook's Word-generated HTML, signatures with inline logos, legal disclaimers; ~20% with PDF,
XLSX or image attachments of 20–300 KB; ~15% newsletters and notifications (List-Unsubscribe,
List-Id, Precedence: bulk, ESP headers, no-reply senders, auto-replies); ~10% internal-only mail;
German, French and Polish correspondents with RFC 2047 subjects and names, legacy charsets and
8-bit bodies; a few HTML-only and plain-text-only messages. A few messages exist to exercise the
other capture rules: `NEVER_LOG`, `BLOCK_DOMAINS` and `BLOCK_ADDRESSES` name them for the bench.

Everything is a pure function of (messages, seed, now, lean): the same arguments write the same
bytes, file names and modification times. Messages are rendered and written one at a time (a
thread keeps only its own history), so memory stays small whatever the size. `lean=True` drops
attachments and inline logos and caps quoted history, for very large runs where disk matters.

    python -m bench.corpus OUT_DIR --messages 5000 --seed 1
"""

from __future__ import annotations

import argparse
import base64
import binascii
import html
import json
import os
import random
import shutil
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

__all__ = [
    "BLOCK_ADDRESSES",
    "BLOCK_DOMAINS",
    "INTERNAL_DOMAIN",
    "NEVER_LOG",
    "OWNER",
    "CorpusStats",
    "generate",
    "read_manifest",
]

VERSION = 1
MANIFEST = ".corpus.json"
INTERNAL_DOMAIN = "northwind-supplies.com"
OWNER = "anna@northwind-supplies.com"
# Entries the bench adds as capture rules, so every rule has mail to act on.
NEVER_LOG = ("mark.whitfield84@gmail.com", "elmtree-surgery.co.uk")  # Anna's own never-log list
BLOCK_DOMAINS = ("growth-leads-agency.com",)
BLOCK_ADDRESSES = ("j.harper@talentfinders-recruitment.co.uk",)
DEFAULT_NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# Share of the written messages per kind of episode; the generator steers towards these.
SHARES = {"customer": 0.725, "bulk": 0.15, "internal": 0.10, "ruled": 0.025}

# -- the cast -------------------------------------------------------------------------------------

_TRANSLIT = str.maketrans(
    {
        "ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue",
        "é": "e", "è": "e", "ê": "e", "ë": "e", "É": "E", "à": "a", "â": "a", "ç": "c",
        "î": "i", "ï": "i", "ô": "o", "û": "u", "ù": "u", "Œ": "Oe", "œ": "oe",
        "ą": "a", "ć": "c", "ę": "e", "ł": "l", "Ł": "L", "ń": "n", "ó": "o", "ś": "s",
        "Ś": "S", "ź": "z", "ż": "z", "Ż": "Z", "Ź": "Z", "'": "", " ": "",
    }
)  # fmt: skip

FIRST = {
    "en": [
        "Oliver",
        "Amelia",
        "Harry",
        "Isla",
        "Jack",
        "Sophie",
        "George",
        "Emily",
        "Noah",
        "Grace",
        "Charlie",
        "Lucy",
        "Thomas",
        "Hannah",
        "James",
        "Megan",
        "William",
        "Rebecca",
        "Daniel",
        "Priya",
        "Raj",
        "Aisling",
        "Ciaran",
        "Fiona",
        "Gareth",
        "Rhiannon",
        "Callum",
        "Niamh",
        "Sam",
        "Zainab",
    ],
    "de": [
        "Jürgen",
        "Katrin",
        "Lukas",
        "Sabine",
        "Matthias",
        "Anja",
        "Jörg",
        "Stefanie",
        "Tobias",
        "Julia",
        "Björn",
        "Ute",
        "Florian",
        "Miriam",
        "Dirk",
        "Günther",
    ],
    "fr": [
        "Amélie",
        "François",
        "Hélène",
        "Jérôme",
        "Céline",
        "Stéphane",
        "Élodie",
        "Mathieu",
        "Léa",
        "Benoît",
        "Inès",
        "Grégoire",
        "Chloé",
        "Thierry",
    ],
    "pl": [
        "Katarzyna",
        "Łukasz",
        "Małgorzata",
        "Paweł",
        "Agnieszka",
        "Michał",
        "Zofia",
        "Grzegorz",
        "Joanna",
        "Wojciech",
        "Ewa",
        "Piotr",
        "Bożena",
        "Tomasz",
    ],
}
LAST = {
    "en": [
        "Thompson",
        "Patel",
        "Hughes",
        "Walsh",
        "O'Brien",
        "Clarke",
        "Bennett",
        "Foster",
        "Hussain",
        "Murphy",
        "Evans",
        "Reid",
        "Lloyd",
        "Turner",
        "Jenkins",
        "Kaur",
        "Shaw",
        "Doyle",
        "Fletcher",
        "Morgan",
        "Ní",
        "Bhriain",
    ],
    "de": [
        "Müller",
        "Schröder",
        "Weiß",
        "Becker",
        "Hoffmann",
        "Köhler",
        "Schäfer",
        "Krüger",
        "Wagner",
        "Groß",
        "Fuchs",
        "Neumann",
        "Böhm",
        "Lange",
        "Zimmermann",
    ],
    "fr": [
        "Lefèvre",
        "Dubois",
        "Moreau",
        "Girard",
        "Rousseau",
        "Bérard",
        "Fontaine",
        "Chevalier",
        "Mercier",
        "Lemaître",
        "Gauthier",
        "Faure",
    ],
    "pl": [
        "Mazur",
        "Nowak",
        "Krawczyk",
        "Woźniak",
        "Wójcik",
        "Kaczmarek",
        "Piątek",
        "Pawlak",
        "Michalak",
        "Sikora",
        "Baran",
        "Kubiak",
        "Król",
    ],
}
LAST["en"] = [n for n in LAST["en"] if n not in ("Ní", "Bhriain")] + ["Ní Bhriain"]

# name | domain | language | time zone | city
COMPANIES = """\
Brightline Dental|brightline-dental.co.uk|en|Europe/London|Leeds
Harbour View Café|harbourview-cafe.co.uk|en|Europe/London|Whitby
Oakfield Primary School|oakfield-primary.sch.uk|en|Europe/London|Reading
Greenleaf Catering|greenleaf-catering.co.uk|en|Europe/London|Bristol
Kestrel Office Services|kestrel-office.co.uk|en|Europe/London|Milton Keynes
The Copper Kettle Tearooms|copperkettle-tearooms.co.uk|en|Europe/London|York
Riverside Leisure Centre|riverside-leisure.org.uk|en|Europe/London|Shrewsbury
Marlow & Finch Solicitors|marlowfinch-law.co.uk|en|Europe/London|Oxford
Cedarwood Care Homes|cedarwood-care.co.uk|en|Europe/London|Harrogate
Bluebell Nurseries|bluebell-nurseries.co.uk|en|Europe/London|Norwich
Fenwick Event Hire|fenwick-eventhire.co.uk|en|Europe/London|Newcastle
Saltmarsh Brewing Co|saltmarsh-brewing.com|en|Europe/London|Aldeburgh
Pennine Gym Group|pennine-gyms.co.uk|en|Europe/London|Huddersfield
Hollis Veterinary Practice|hollis-vets.co.uk|en|Europe/London|Cheltenham
Ashgrove Hotel|ashgrove-hotel.co.uk|en|Europe/London|Keswick
Northgate Property Management|northgate-pm.co.uk|en|Europe/London|Manchester
Lighthouse Bakery|lighthouse-bakery.co.uk|en|Europe/London|Brighton
Thornbury Golf Club|thornbury-golfclub.co.uk|en|Europe/London|Thornbury
Castlegate Dental Studio|castlegate-dental.co.uk|en|Europe/London|Nottingham
Wrenfield Academy Trust|wrenfield-academies.org.uk|en|Europe/London|Coventry
Blackwater Marina|blackwater-marina.co.uk|en|Europe/London|Maldon
Cobalt Coworking|cobalt-cowork.com|en|Europe/London|London
Meadowbank Farm Shop|meadowbank-farmshop.co.uk|en|Europe/London|Ludlow
St Brigid's Clinic|stbrigids-clinic.ie|en|Europe/Dublin|Kilkenny
Liffey Street Kitchen|liffeystreet-kitchen.ie|en|Europe/Dublin|Dublin
Galway Bay Seafoods|galwaybay-seafoods.ie|en|Europe/Dublin|Galway
Quayside Physio|quayside-physio.co.uk|en|Europe/London|Cardiff
Redfern Print & Design|redfern-print.co.uk|en|Europe/London|Sheffield
Hamlet Street Deli|hamletstreet-deli.co.uk|en|Europe/London|Edinburgh
Ivybridge Community Trust|ivybridge-ct.org.uk|en|Europe/London|Ivybridge
Harbourfreight Logistics GmbH|harbourfreight-logistics.de|de|Europe/Berlin|Hamburg
Bäckerei Sonnenkorn|baeckerei-sonnenkorn.de|de|Europe/Berlin|Münster
Gasthaus Lindenhof|gasthaus-lindenhof.de|de|Europe/Berlin|Freiburg
Praxis Dr. Albrecht|praxis-albrecht.de|de|Europe/Berlin|Köln
Kühne Gastro Service GmbH|kuehne-gastroservice.de|de|Europe/Berlin|Düsseldorf
Rheinblick Hotel & Spa|rheinblick-hotel.de|de|Europe/Berlin|Koblenz
Alpenkäserei Hofer|alpenkaeserei-hofer.at|de|Europe/Vienna|Innsbruck
Brauhaus am Markt|brauhaus-am-markt.de|de|Europe/Berlin|Bamberg
Grünwerk Reinigungsdienste|gruenwerk-reinigung.de|de|Europe/Berlin|Leipzig
Kantine Service Nord|kantine-service-nord.de|de|Europe/Berlin|Bremen
Boulangerie Levain Doré|levain-dore.fr|fr|Europe/Paris|Lyon
Brasserie du Vieux Port|brasserie-vieuxport.fr|fr|Europe/Paris|Marseille
Clinique Vétérinaire des Tilleuls|clinique-tilleuls.fr|fr|Europe/Paris|Nantes
Hôtel Les Mouettes|hotel-lesmouettes.fr|fr|Europe/Paris|Saint-Malo
Traiteur Saveurs & Cie|saveurs-et-cie.fr|fr|Europe/Paris|Bordeaux
Cave Lefèvre Frères|cave-lefevre.fr|fr|Europe/Paris|Reims
Crèche Les Petits Loups|petits-loups-creche.fr|fr|Europe/Paris|Lille
Atelier Nettoyage Provence|atelier-nettoyage.fr|fr|Europe/Paris|Avignon
Pracownia Smaków|pracownia-smakow.pl|pl|Europe/Warsaw|Kraków
Hotel Pod Złotym Lwem|hotel-zlotylew.pl|pl|Europe/Warsaw|Gdańsk
Kawiarnia Miodowa|kawiarnia-miodowa.pl|pl|Europe/Warsaw|Wrocław
Gabinet Stomatologiczny Uśmiech|gabinet-usmiech.pl|pl|Europe/Warsaw|Poznań
Piekarnia Żytnia|piekarnia-zytnia.com.pl|pl|Europe/Warsaw|Łódź
Czyste Biuro Sp. z o.o.|czystebiuro.pl|pl|Europe/Warsaw|Warszawa
Van Dijk Horeca BV|vandijk-horeca.nl|en|Europe/Amsterdam|Utrecht
Nordlys Kaffebar|nordlys-kaffebar.dk|en|Europe/Copenhagen|Aarhus
Brasserie De Gouden Leeuw|goudenleeuw.be|en|Europe/Brussels|Gent
Fjord Events AS|fjordevents.no|en|Europe/Oslo|Bergen
Tallinn Harbour Hostel|harbourhostel.ee|en|Europe/Tallinn|Tallinn
Lisbon Surf Lodge|lisbonsurflodge.pt|en|Europe/Lisbon|Lisboa
"""

# Private customers and sole traders on free mail: (name, address, language, client)
FREEMAIL = """\
Rosie Fairbairn|rosie.fairbairn@gmail.com|en|gmail
Dev Malhotra|devmalhotra.catering@gmail.com|en|gmail
Tom Ashdown|tomashdown71@btinternet.com|en|apple
Kerry Quinn|kerryquinn@outlook.com|en|outlook
Jo Pritchard|jo.pritchard@yahoo.co.uk|en|web
Megan Lewis|meganlewiscakes@hotmail.co.uk|en|outlook
Alfie Barker|alfie.barker@icloud.com|en|apple
Sinead Walsh|sinead.walsh@gmail.com|en|gmail
Hugo Tan|hugo.tan.events@gmail.com|en|gmail
Claire Dunn|claire.dunn@outlook.com|en|outlook
Heike Brandt|heike.brandt@web.de|de|thunderbird
Uwe Kessler|uwe.kessler@gmx.de|de|thunderbird
Sophie Lambert|sophie.lambert@orange.fr|fr|web
Marc Giraud|marc.giraud@laposte.net|fr|thunderbird
Kasia Zielińska|kasia.zielinska@wp.pl|pl|web
Marek Sobczak|marek.sobczak@o2.pl|pl|thunderbird
Nadia Rahman|nadia.rahman.home@gmail.com|en|gmail
Pete Holloway|peteholloway@btinternet.com|en|outlook
"""

STAFF = (
    ("Anna Whitfield", "anna", "Sales Manager"),
    ("Ben Okafor", "ben", "Operations Manager"),
    ("Chloe Brennan", "chloe", "Accounts"),
    ("David Nowak", "david", "Warehouse Supervisor"),
    ("Emma Lindqvist", "emma", "Customer Service"),
)

PRODUCTS = {
    "en": [
        "12oz compostable coffee cups", "kraft takeaway boxes", "nitrile gloves (size M)",
        "blue centrefeed rolls", "90L black bin liners", "2-ply white napkins",
        "wooden cutlery sets", "hand soap refills", "microfibre cloths", "paper straws",
        "PLA salad bowls", "450mm cling film", "dishwasher tablets", "5L surface sanitiser",
        "thermal till rolls", "sip-through lids", "greaseproof sheets", "aprons (blue, 100)",
    ],
    "de": [
        "Kaffeebecher 300 ml (kompostierbar)", "Kraft-Menüboxen", "Nitrilhandschuhe Größe M",
        "Servietten 2-lagig", "Müllbeutel 120 l", "Holzbesteck-Sets", "Flächendesinfektion 5 l",
        "Spülmaschinentabs", "Mikrofasertücher",
    ],
    "fr": [
        "gobelets compostables 30 cl", "boîtes repas kraft", "gants nitrile taille M",
        "serviettes 2 plis", "sacs poubelle 100 L", "couverts en bois", "essuie-mains dévidage central",
        "pastilles lave-vaisselle", "désinfectant surfaces 5 L",
    ],
    "pl": [
        "kubki kompostowalne 300 ml", "pudełka kraft na wynos", "rękawice nitrylowe rozmiar M",
        "serwetki dwuwarstwowe", "worki na śmieci 120 l", "drewniane sztućce",
        "ręczniki w roli", "tabletki do zmywarki", "płyn do dezynfekcji 5 l",
    ],
}  # fmt: skip
DAYS = {
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
    "de": ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag"],
    "fr": ["lundi", "mardi", "mercredi", "jeudi", "vendredi"],
    "pl": ["poniedziałek", "wtorek", "środę", "czwartek", "piątek"],
}
QUANTITIES = {
    "en": ["500", "1,000", "2,000", "5,000", "12 cases of", "40 boxes of"],
    "de": ["500", "1.000", "2.000", "12 Kartons", "40 Kartons"],
    "fr": ["500", "1 000", "2 000", "12 cartons de", "40 cartons de"],
    "pl": ["500 szt.", "1000 szt.", "2000 szt.", "12 kartonów", "40 kartonów"],
}
PHONES = {"en": "+44 113 496 0", "de": "+49 30 23125 ", "fr": "+33 4 72 00 0", "pl": "+48 22 100 0"}
MONTHS_EN = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
GREETINGS = {
    "en": ["Hi {first},", "Hello {first},", "Dear {first},", "Morning {first},", "{first},"],
    "de": ["Hallo {first},", "Guten Tag {first} {last},", "Liebe Grüße vorab, {first} –"],
    "fr": ["Bonjour {first},", "Bonjour Madame, Monsieur,", "Chère {first},"],
    "pl": ["Dzień dobry,", "Dzień dobry Pani {first},", "Cześć {first},"],
}
GREETINGS["de"][2] = "Sehr geehrte Frau {last},"
CLOSINGS = {
    "en": ["Kind regards,", "Many thanks,", "Best wishes,", "Thanks,", "Cheers,", "Regards,"],
    "de": ["Viele Grüße", "Mit freundlichen Grüßen", "Beste Grüße"],
    "fr": ["Cordialement,", "Bien à vous,", "Bonne journée,"],
    "pl": ["Pozdrawiam", "Z poważaniem", "Miłego dnia"],
}

# English, by topic: subjects, the customer's opening lines, our replies, the customer's follow-ups.
EN: dict[str, dict[str, list[str]]] = {
    "order": {
        "subject": [
            "Order {po}", "Purchase order {po} – {product}", "Order for {day}", "Repeat order please",
            "Urgent: {product} needed by {day}", "Stock order {month}",
        ],
        "customer": [
            "Please find attached our purchase order {po} for {qty} {product}.",
            "Could we order {qty} {product} for delivery on {day}, please?",
            "We'd like to repeat last month's order, with an extra {qty} {product}.",
            "Can you confirm you have {product} in stock? We will need {qty} by {day}.",
            "Our usual order please, plus {qty} {product} – we have a big event at the weekend.",
            "Same delivery address as before, and the invoice to accounts as usual.",
            "If the {product} are not available, the {product2} would be fine as a substitute.",
            "We're running low on {product2} as well, so please add two cases of those.",
        ],
        "supplier": [
            "Thanks for your order – I've passed it to the warehouse and it will go out on {day}.",
            "Everything is in stock, so delivery is booked for {day} between 8 and 12.",
            "The {product} are on back order until {day}; shall I send the rest now and follow "
            "up with those separately?",
            "I've attached the order confirmation {so} for your records.",
            "Just to confirm, that's {qty} {product} at {price} per case, as per your price list.",
            "Our driver will call ahead about 30 minutes before arrival.",
            "I've added the {product2} to the same delivery, so there's no extra carriage charge.",
        ],
        "follow": [
            "That's great, thank you for sorting it so quickly.",
            "Could the driver use the rear entrance, please? The front is being resurfaced.",
            "Would it be possible to bring the delivery forward to {day}?",
            "Please go ahead and send the rest now; the back-ordered items can follow.",
            "Received this morning, all present and correct.",
            "One more thing – could you add {qty} {product2} to that?",
        ],
    },
    "quote": {
        "subject": [
            "Quote request – {product}", "Pricing for {qty} {product}",
            "Price for larger volumes?", "Quotation {quote}", "Switching suppliers",
        ],
        "customer": [
            "We're reviewing our suppliers for {product} and would appreciate a quote for {qty} "
            "a month.",
            "Could you quote for {qty} {product}, delivered to our {city} site?",
            "Do you offer a better price if we commit to a twelve-month agreement?",
            "We currently pay {price} per case elsewhere, so that's the figure to beat, I'm afraid.",
            "A colleague at {company2} recommended you, so I thought I'd ask.",
        ],
        "supplier": [
            "Please find our quotation {quote} attached; prices are held for 30 days.",
            "For {qty} a month we can do {price} per case, including delivery.",
            "On a twelve-month agreement I could take another 5% off the list price.",
            "I can also send samples so your team can try them before you decide.",
            "Delivery to {city} is free on orders over £250, otherwise it's £12.50.",
        ],
        "follow": [
            "Thanks – I'll run this past {boss} and come back to you by {day}.",
            "That looks competitive. Could you hold that price until the end of the month?",
            "We'd like to go ahead; what do you need from us to open an account?",
            "Could you split the quote into the cups and the lids separately?",
        ],
    },
    "delivery": {
        "subject": [
            "Delivery {so} – missing items", "Damaged boxes on today's delivery",
            "Delivery not arrived", "Short delivery {so}", "Wrong items delivered",
        ],
        "customer": [
            "Today's delivery was missing {qty} {product}.",
            "Two of the boxes were crushed and the {product} inside are unusable – photos attached.",
            "We were expecting our delivery yesterday and nothing has arrived yet.",
            "The driver left the pallet outside in the rain, which isn't ideal.",
            "We received {product2} instead of the {product} we ordered.",
        ],
        "supplier": [
            "I'm sorry about that – the missing items will go out on {day} at no charge.",
            "Thank you for the photos; I've raised a credit note for the damaged cases.",
            "I've spoken to the courier and they've confirmed the delivery is on the van today.",
            "I've passed your feedback to our logistics team so it doesn't happen again.",
            "The driver will collect the wrong items when he drops off the replacements.",
        ],
        "follow": [
            "Thanks, appreciated.",
            "The replacement arrived this morning, thank you.",
            "Could you send the credit note to our accounts team, please?",
            "Still nothing here I'm afraid – could you chase it again?",
        ],
    },
    "invoice": {
        "subject": [
            "Invoice {inv}", "Query on invoice {inv}", "Statement of account – {month}",
            "Remittance advice", "Overdue invoice {inv}",
        ],
        "customer": [
            "We've received invoice {inv} but the total doesn't match our purchase order {po}.",
            "Could you resend invoice {inv}? It seems to have gone astray.",
            "Please find attached our remittance advice for invoices {inv} and {inv2}.",
            "Our accounts team would like a statement of account for {month}.",
            "Our bank details have changed – please don't act on any email that says otherwise "
            "without calling us first.",
        ],
        "supplier": [
            "Apologies, the invoice included a delivery charge that shouldn't have been there; a "
            "corrected copy is attached.",
            "I've attached a copy of invoice {inv}.",
            "Thank you, payment has been received and allocated.",
            "Our records show invoice {inv} is now 14 days overdue; could you let me know when we "
            "can expect payment?",
            "I've copied in Chloe from our accounts team, who can help with the statement.",
        ],
        "follow": [
            "Payment will be made in this week's run.",
            "Thanks, that's all sorted now.",
            "Could you address future invoices to accounts@ rather than to me?",
        ],
    },
    "samples": {
        "subject": ["Samples of {product}", "Trying the new {product}", "Sample pack"],
        "customer": [
            "Could you send us a few samples of the {product}? We're thinking of switching.",
            "We liked the samples; how quickly could you deliver {qty}?",
            "The kitchen team weren't keen on the {product2}, but the {product} were fine.",
        ],
        "supplier": [
            "Samples are in the post today; they should arrive by {day}.",
            "Happy to – I'll add some of the {product2} as well, which a lot of cafés prefer.",
            "Let me know what the team thinks and I'll put a quote together.",
        ],
        "follow": [
            "They arrived today, thank you – we'll try them over the weekend.",
            "Great, we'll go with the {product}.",
        ],
    },
    "account": {
        "subject": [
            "Catch-up on your account", "Visit on {day}?", "Price changes from {month}",
            "New compostable range", "Holiday delivery schedule", "Your account review",
        ],
        "supplier": [
            "I'll be in {city} on {day} and wondered if you had half an hour for a quick catch-up.",
            "I wanted to give you advance notice that some prices will change from {month}; the "
            "updated price list is attached.",
            "We've added a range of compostable {product} that might suit your customers.",
            "Our holiday delivery schedule is attached; the last delivery before the break will "
            "be on {day}.",
            "You've ordered {product} every month this year, so I can offer a fixed price for "
            "the next twelve months.",
        ],
        "customer": [
            "{day} works for us – shall we say 10 o'clock?",
            "Thanks for letting us know. Is there any flexibility on the {product}?",
            "Could you send a sample pack of the new range?",
            "Ask for {boss} at reception when you arrive.",
        ],
        "follow": [
            "Thanks, see you then.",
            "Noted, thank you.",
            "That would be really helpful, thank you.",
        ],
    },
}  # fmt: skip
EN_GENERIC = [
    "Many thanks for getting back to me so quickly.",
    "Let me know if you need anything else from our side.",
    "I've copied in {colleague}, who looks after purchasing for us.",
    "We're very busy at the moment, so reliable delivery matters more than ever.",
    "Hope you had a good weekend.",
    "Sorry for the slow reply – it's been a hectic week.",
    "I'll be out of the office on {day}, so please copy {colleague} in if anything is urgent.",
    "Give me a call if it's easier to talk it through.",
    "Our opening hours for deliveries are 7am to 3pm, Monday to Friday.",
    "Thanks again for your help with this.",
    "Just following up on my email below.",
    "Apologies if you've already seen this.",
]

FOREIGN: dict[str, dict[str, list[str]]] = {
    "de": {
        "subject": [
            "Bestellung {po}", "Anfrage: {product}", "Lieferung {so} – fehlende Artikel",
            "Rechnung {inv} – Rückfrage", "Angebot für {qty} {product}",
            "Lieferverzögerung – bitte um Rückmeldung", "Muster für unsere Küche",
        ],
        "text": [
            "anbei erhalten Sie unsere Bestellung {po} über {qty} {product}.",
            "Könnten Sie uns bitte ein Angebot für {qty} {product} pro Monat schicken?",
            "Die Lieferung von heute war leider unvollständig: es fehlen {qty} {product}.",
            "Zwei Kartons waren beschädigt, Fotos haben wir beigefügt.",
            "Bitte bestätigen Sie uns den Liefertermin am {day}.",
            "Die Rechnung {inv} stimmt leider nicht mit unserer Bestellung überein.",
            "Wir möchten die Bestellung vom letzten Monat gerne wiederholen.",
            "Für Rückfragen stehe ich Ihnen gerne zur Verfügung.",
            "Vielen Dank für die schnelle Rückmeldung!",
            "Unsere Warenannahme ist Montag bis Freitag von 7 bis 15 Uhr besetzt.",
            "Gibt es bei größeren Mengen einen Rabatt?",
            "Die Muster sind gut angekommen, die Qualität überzeugt uns.",
            "Bitte liefern Sie ab sofort an unsere neue Adresse in der Königstraße 12.",
            "Ich bin ab {day} im Urlaub, bitte wenden Sie sich dann an meine Kollegin.",
        ],
    },
    "fr": {
        "subject": [
            "Commande {po}", "Demande de devis – {product}", "Livraison {so} – articles manquants",
            "Facture {inv} – question", "Échantillons", "Retard de livraison",
        ],
        "text": [
            "Veuillez trouver ci-joint notre bon de commande {po} pour {qty} {product}.",
            "Pourriez-vous nous faire parvenir un devis pour {qty} {product} par mois ?",
            "La livraison de ce matin était incomplète : il manque {qty} {product}.",
            "Deux cartons étaient abîmés à la réception, vous trouverez les photos en pièce jointe.",
            "Merci de nous confirmer la date de livraison prévue pour {day}.",
            "La facture {inv} ne correspond pas à notre commande, pourriez-vous vérifier ?",
            "Nous souhaiterions renouveler la commande du mois dernier.",
            "Je reste à votre disposition pour tout complément d'information.",
            "Merci beaucoup pour votre réactivité !",
            "Notre réception des marchandises est ouverte du lundi au vendredi de 7h à 15h.",
            "Est-il possible d'obtenir une remise pour des volumes plus importants ?",
            "Les échantillons sont bien arrivés, l'équipe en cuisine est très satisfaite.",
        ],
    },
    "pl": {
        "subject": [
            "Zamówienie {po}", "Zapytanie ofertowe – {product}",
            "Dostawa {so} – brakujące pozycje", "Faktura {inv} – pytanie", "Próbki produktów",
            "Opóźnienie dostawy",
        ],
        "text": [
            "w załączniku przesyłam zamówienie {po} na {qty} {product}.",
            "Czy mogliby Państwo przesłać ofertę na {qty} {product} miesięcznie?",
            "Dzisiejsza dostawa była niekompletna – brakuje {qty} {product}.",
            "Dwa kartony zostały uszkodzone w transporcie, zdjęcia w załączniku.",
            "Proszę o potwierdzenie terminu dostawy na {day}.",
            "Faktura {inv} nie zgadza się z naszym zamówieniem, czy mogą Państwo to sprawdzić?",
            "Chcielibyśmy powtórzyć zamówienie z zeszłego miesiąca.",
            "W razie pytań pozostaję do dyspozycji.",
            "Dziękuję bardzo za szybką odpowiedź!",
            "Towar przyjmujemy od poniedziałku do piątku w godzinach 7–15.",
            "Czy przy większych ilościach możliwy jest rabat?",
            "Próbki dotarły, jakość bardzo nam odpowiada.",
        ],
    },
}  # fmt: skip

DISCLAIMERS = {
    "en": "This email and any attachments are confidential and intended solely for the addressee. "
    "If you have received it in error, please tell the sender and delete it; you must not copy, "
    "forward or act on it. {company} is registered in England and Wales (No. {regno}). Emails are "
    "not secure and may contain viruses; we accept no liability for any damage they cause.",
    "de": "Diese E-Mail enthält vertrauliche und/oder rechtlich geschützte Informationen. Wenn Sie "
    "nicht der richtige Adressat sind oder diese E-Mail irrtümlich erhalten haben, informieren Sie "
    "bitte sofort den Absender und vernichten Sie diese Mail. {company} · Sitz: {city} · "
    "Amtsgericht {city} HRB {regno} · Geschäftsführer: {boss}",
    "fr": "Ce message et toutes les pièces jointes sont confidentiels et établis à l'intention "
    "exclusive de ses destinataires. Toute utilisation ou diffusion non autorisée est interdite. "
    "Si vous avez reçu ce message par erreur, merci d'en avertir immédiatement l'expéditeur. "
    "{company} – SIRET {regno} – {city}",
    "pl": "Treść tej wiadomości jest poufna i prawnie chroniona. Jeśli nie jest Pani/Pan jej "
    "adresatem, prosimy o niezwłoczne powiadomienie nadawcy i usunięcie wiadomości. {company}, "
    "KRS {regno}, {city}. Przed wydrukowaniem tej wiadomości pomyśl o środowisku.",
}
QUOTE_HEADER = {  # Outlook's localised header block above the quoted message
    "en": ("From:", "Sent:", "To:", "Cc:", "Subject:"),
    "de": ("Von:", "Gesendet:", "An:", "Cc:", "Betreff:"),
    "fr": ("De :", "Envoyé :", "À :", "Cc :", "Objet :"),
    "pl": ("Od:", "Wysłano:", "Do:", "DW:", "Temat:"),
}
REPLY_PREFIX = {"en": "RE: ", "de": "AW: ", "fr": "RE : ", "pl": "Odp: "}
FORWARD_PREFIX = {"en": "FW: ", "de": "WG: ", "fr": "TR : ", "pl": "PD: "}
LEGACY_CHARSET = {"de": "iso-8859-1", "fr": "windows-1252", "pl": "iso-8859-2"}

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EU_REGIONS = ("eurprd01", "eurprd02", "eurprd03", "eurprd04", "eurprd05", "eurprd06", "eurprd07")
_MS_PODS = ("AM9PR", "DB9PR", "AS8PR", "PA4PR", "DU0PR", "GV1PR", "VI1PR", "AM6PR", "LO2P")
_OUR_MBX = "LO2P265MB5471"  # Anna's mailbox server
_TENANT = "5c9e3b1a-7f42-4d8e-9a61-0b2f4c8d7e13"


@dataclass
class Company:
    name: str
    domain: str
    lang: str
    tz: ZoneInfo
    city: str
    client: str  # outlook, gmail, apple, thunderbird, web
    people: list[Person] = field(default_factory=list)
    weight: float = 1.0
    logo: bytes | None = None
    disclaimer: bool = False
    legacy: bool = False  # writes legacy 8-bit charsets instead of UTF-8
    regno: str = ""
    ip: str = ""
    pod: str = ""


@dataclass
class Person:
    name: str
    address: str
    lang: str
    client: str
    company: Company | None
    title: str = ""
    phone: str = ""

    @property
    def first(self) -> str:
        return self.name.split(" ", 1)[0]

    @property
    def last(self) -> str:
        return self.name.split(" ", 1)[-1]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def internal(self) -> bool:
        return self.domain == INTERNAL_DOMAIN


@dataclass
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Sent:
    """One message of a thread, as the next message quotes it."""

    sender: Person
    to: list[Person]
    cc: list[Person]
    subject: str
    when: datetime
    message_id: str
    text: str  # the whole plain-text body, quoted history included
    html: str  # the HTML body's inner content, quoted history included
    attachments: list[Attachment]


@dataclass
class Thread:
    topic: str
    subject: str
    lang: str
    messages: list[Sent] = field(default_factory=list)
    index: bytes = b""  # Outlook's Thread-Index: 22 bytes, plus 5 per reply


@dataclass
class CorpusStats:
    messages: int = 0
    bytes: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    folders: Counter[str] = field(default_factory=Counter)
    features: Counter[str] = field(default_factory=Counter)
    sizes: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, object]:
        sizes = sorted(self.sizes)

        def pct(p: float) -> int:
            return sizes[min(len(sizes) - 1, int(p * len(sizes)))] if sizes else 0

        return {
            "messages": self.messages,
            "bytes": self.bytes,
            "size_median": int(statistics.median(sizes)) if sizes else 0,
            "size_p10": pct(0.10),
            "size_p90": pct(0.90),
            "size_max": sizes[-1] if sizes else 0,
            "kinds": dict(sorted(self.kinds.items())),
            "folders": dict(sorted(self.folders.items())),
            "features": dict(sorted(self.features.items())),
            "seconds": round(self.seconds, 2),
        }


# -- encoding helpers -----------------------------------------------------------------------------

_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")


def _q_bytes(data: bytes) -> str:
    return "".join(chr(b) if b in _Q_SAFE else "_" if b == 0x20 else f"={b:02X}" for b in data)


def encode_words(text: str, charset: str = "utf-8", mode: str = "B") -> str:
    """RFC 2047 encoded-words for a header value, split on character boundaries and folded."""
    if text.isascii():
        return text
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        charset = "utf-8"
    limit = 45 if mode == "B" else 58
    words: list[str] = []
    chunk: list[bytes] = []
    size = 0

    def flush() -> None:
        data = b"".join(chunk)
        payload = base64.b64encode(data).decode() if mode == "B" else _q_bytes(data)
        words.append(f"=?{charset}?{mode}?{payload}?=")

    for ch in text:
        encoded = ch.encode(charset)
        cost = len(encoded) if mode == "B" else len(_q_bytes(encoded))
        if chunk and size + cost > limit:
            flush()
            chunk, size = [], 0
        chunk.append(encoded)
        size += cost
    if chunk:
        flush()
    return "\r\n ".join(words).replace("\r\n", "\n")


def format_address(person: Person, mode: str = "B", charset: str = "utf-8") -> str:
    name = person.name
    if not name.isascii():
        return f"{encode_words(name, charset, mode)} <{person.address}>"
    if any(c in name for c in ',.()<>@:;"[]'):
        return f'"{name}" <{person.address}>'
    return f"{name} <{person.address}>"


def fold(name: str, value: str, sep: str = " ") -> str:
    """`Name: value`, folded at `sep` to stay under 78 characters per line where it can."""
    line = f"{name}: {value}"
    if len(line) <= 78 or "\n" in value:
        return line
    parts = value.split(sep)
    out: list[str] = []
    current = f"{name}:"
    for i, part in enumerate(parts):
        piece = part + (sep.rstrip() if i < len(parts) - 1 else "")
        if len(current) + 1 + len(piece) > 78 and current.strip() != f"{name}:":
            out.append(current)
            current = "\t" + piece
        else:
            current = f"{current} {piece}" if current else piece
    out.append(current)
    return "\n".join(out)


def address_header(name: str, people: Sequence[Person], mode: str = "B", cs: str = "utf-8") -> str:
    values = [format_address(p, mode, cs) for p in people]
    line = f"{name}: " + ", ".join(values)
    if len(line) <= 78:
        return line
    return f"{name}: " + ",\n\t".join(values)


def rfc_date(dt: datetime, two_digit_day: bool = False) -> str:
    offset = dt.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    day = f"{dt.day:02d}" if two_digit_day else str(dt.day)
    return (
        f"{_WEEKDAYS[dt.weekday()]}, {day} {_MONTHS[dt.month - 1]} {dt.year} "
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}"
    )


def _wrap(text: str, width: int = 72) -> str:
    """Plain hard wrapping for the odd client that still does it (format=flowed style)."""
    out: list[str] = []
    for line in text.split("\n"):
        while len(line) > width:
            cut = line.rfind(" ", 0, width)
            if cut <= 0:
                break
            out.append(line[: cut + 1])
            line = line[cut + 1 :]
        out.append(line)
    return "\n".join(out)


def quote_lines(text: str) -> str:
    return "\n".join(
        (">" + line) if line.startswith(">") else ("> " + line) for line in text.split("\n")
    )


def esc(text: str) -> str:
    return html.escape(text, quote=False)


# -- Outlook's HTML -------------------------------------------------------------------------------

OUTLOOK_HEAD = """<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" xmlns:w="urn:schemas-microsoft-com:office:word" xmlns:m="http://schemas.microsoft.com/office/2004/12/omml" xmlns="http://www.w3.org/TR/REC-html40">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=%CHARSET%">
<meta name="Generator" content="Microsoft Word 15 (filtered medium)">
<!--[if !mso]><style>v\\:* {behavior:url(#default#VML);}
o\\:* {behavior:url(#default#VML);}
w\\:* {behavior:url(#default#VML);}
.shape {behavior:url(#default#VML);}
</style><![endif]--><style><!--
/* Font Definitions */
@font-face
\t{font-family:"Cambria Math";
\tpanose-1:2 4 5 3 5 4 6 3 2 4;}
@font-face
\t{font-family:Calibri;
\tpanose-1:2 15 5 2 2 2 4 3 2 4;}
@font-face
\t{font-family:Aptos;}
@font-face
\t{font-family:"Segoe UI";
\tpanose-1:2 11 5 2 4 2 4 2 2 3;}
/* Style Definitions */
p.MsoNormal, li.MsoNormal, div.MsoNormal
\t{margin:0cm;
\tfont-size:11.0pt;
\tfont-family:"Aptos",sans-serif;
\tmso-ligatures:standardcontextual;
\tmso-fareast-language:EN-US;}
a:link, span.MsoHyperlink
\t{mso-style-priority:99;
\tcolor:#467886;
\ttext-decoration:underline;}
p.MsoListParagraph, li.MsoListParagraph, div.MsoListParagraph
\t{mso-style-priority:34;
\tmargin-top:0cm;
\tmargin-right:0cm;
\tmargin-bottom:0cm;
\tmargin-left:36.0pt;
\tfont-size:11.0pt;
\tfont-family:"Aptos",sans-serif;}
span.EmailStyle19
\t{mso-style-type:personal-reply;
\tfont-family:"Aptos",sans-serif;
\tcolor:windowtext;}
.MsoChpDefault
\t{mso-style-type:export-only;
\tfont-size:10.0pt;
\tmso-ligatures:none;}
@page WordSection1
\t{size:612.0pt 792.0pt;
\tmargin:72.0pt 72.0pt 72.0pt 72.0pt;}
div.WordSection1
\t{page:WordSection1;}
--></style><!--[if gte mso 9]><xml>
<o:shapedefaults v:ext="edit" spidmax="1026" />
</xml><![endif]--><!--[if gte mso 9]><xml>
<o:shapelayout v:ext="edit">
<o:idmap v:ext="edit" data="1" />
</o:shapelayout></xml><![endif]-->
</head>
<body lang="%LANG%" link="#467886" vlink="#96607D" style="word-wrap:break-word">
<div class="WordSection1">
"""
OUTLOOK_TAIL = "</div>\n</body>\n</html>\n"
_SPAN = '<span style="font-size:11.0pt;font-family:&quot;Aptos&quot;,sans-serif;mso-fareast-language:EN-US">'
_SIG_SPAN = (
    '<span style="font-size:9.0pt;font-family:&quot;Segoe UI&quot;,sans-serif;color:#1F3864">'
)
_DISC_SPAN = '<span style="font-size:7.5pt;font-family:&quot;Arial&quot;,sans-serif;color:gray">'
_BLANK = '<p class="MsoNormal"><o:p>&nbsp;</o:p></p>\n'
GMAIL_QUOTE_STYLE = (
    "margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex"
)


# -- the generator --------------------------------------------------------------------------------


class Corpus:
    def __init__(self, out: Path, messages: int, seed: int, now: datetime, lean: bool) -> None:
        self.out = out
        self.target = messages
        self.rng = random.Random(seed)
        self.now = now
        self.lean = lean
        self.stats = CorpusStats()
        self.seq = 0
        self.counters: Counter[str] = Counter()
        self.pod = _OUR_MBX  # the sending mailbox server of the message being rendered
        span_days = min(max(messages / 30, 60.0), 2200.0)
        self.start = now - timedelta(days=span_days + 10)
        self.clock = self.start
        self.end = now - timedelta(days=7)
        self.gap = span_days * 86400 / messages  # seconds between messages, on average
        self.london = ZoneInfo("Europe/London")
        self._build_cast()

    # -- the cast --------------------------------------------------------------------------------

    def _person(self, lang: str, domain: str, client: str, company: Company | None) -> Person:
        rng = self.rng
        first, last = rng.choice(FIRST[lang]), rng.choice(LAST[lang])
        a, b = first.translate(_TRANSLIT).lower(), last.translate(_TRANSLIT).lower()
        local = rng.choice([f"{a}.{b}", f"{a[0]}.{b}", a, f"{a}{b[0]}", f"{a[0]}{b}"])
        return Person(f"{first} {last}", f"{local}@{domain}", lang, client, company)

    def _build_cast(self) -> None:
        rng = self.rng
        self.companies: list[Company] = []
        for line in COMPANIES.strip().splitlines():
            name, domain, lang, tz, city = line.split("|")
            client = rng.choices(
                ["outlook", "gmail", "apple", "thunderbird"], [0.55, 0.25, 0.1, 0.1]
            )[0]
            company = Company(name, domain, lang, ZoneInfo(tz), city, client)
            company.weight = rng.paretovariate(1.2)  # a few big accounts, a long tail
            company.logo = self._logo(rng.randint(3, 14) * 1024) if rng.random() < 0.5 else None
            company.disclaimer = rng.random() < (0.7 if lang in ("de", "pl") else 0.35)
            company.legacy = client == "thunderbird" or (lang != "en" and rng.random() < 0.3)
            company.regno = str(rng.randint(1000000, 9999999))
            company.ip = f"203.0.113.{rng.randint(2, 250)}"
            company.pod = (
                rng.choice(_MS_PODS) + f"{rng.randint(1, 9):02d}MB{rng.randint(1000, 9999)}"
            )
            seen: set[str] = set()
            for _ in range(rng.randint(2, 6)):
                person = self._person(lang, domain, client, company)
                if person.address in seen:
                    continue
                seen.add(person.address)
                person.title = rng.choice(
                    ["Office Manager", "Head Chef", "Purchasing", "Practice Manager", "Owner",
                     "Operations", "Facilities Manager", "Accounts Payable", "General Manager"]
                )  # fmt: skip
                person.phone = f"{PHONES[lang]}{rng.randint(100, 999)}"
                company.people.append(person)
            if rng.random() < 0.4:
                role = rng.choice(["orders", "accounts", "info", "office"])
                company.people.append(
                    Person(
                        f"{company.name} {role.title()}", f"{role}@{domain}", lang, client, company
                    )
                )
            self.companies.append(company)
        self.freemail: list[Person] = []
        for line in FREEMAIL.strip().splitlines():
            name, address, lang, client = line.split("|")
            self.freemail.append(Person(name, address, lang, client, None, "", ""))
        self.us = Company(
            "Northwind Supplies", INTERNAL_DOMAIN, "en", self.london, "Leeds", "outlook",
            logo=self._logo(9 * 1024), disclaimer=True, regno="09876543", pod=_OUR_MBX,
        )  # fmt: skip
        for name, local, title in STAFF:
            p = Person(name, f"{local}@{INTERNAL_DOMAIN}", "en", "outlook", self.us, title)
            p.phone = f"+44 113 496 0{self.rng.randint(100, 999)}"
            self.us.people.append(p)
        self.anna = self.us.people[0]
        self.colleagues = self.us.people[1:]

    def _logo(self, size: int) -> bytes:
        return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + self.rng.randbytes(size)

    # -- numbers, dates ---------------------------------------------------------------------------

    def number(self, kind: str) -> str:
        self.counters[kind] += 1
        n = self.counters[kind]
        return {
            "po": f"PO-{20000 + n * 7}" if n % 3 else f"4500{310000 + n:06d}",
            "so": f"SO-{104000 + n}",
            "inv": f"INV-{230000 + n}",
            "quote": f"Q-{5100 + n}",
        }[kind]

    def values(self, lang: str, company: Company | None) -> dict[str, str]:
        rng = self.rng
        products = PRODUCTS[lang]
        p1, p2 = rng.sample(products, 2)
        other = rng.choice(self.companies)
        return {
            "po": self.number("po"),
            "so": self.number("so"),
            "inv": self.number("inv"),
            "inv2": self.number("inv"),
            "quote": self.number("quote"),
            "qty": rng.choice(QUANTITIES[lang]),
            "product": p1,
            "product2": p2,
            "day": rng.choice(DAYS[lang]),
            "month": rng.choice(MONTHS_EN),
            "price": f"£{rng.randint(8, 60)}.{rng.randint(0, 99):02d}",
            "city": company.city if company else "Leeds",
            "colleague": rng.choice(FIRST["en"]),
            "boss": f"{rng.choice(FIRST[lang])} {rng.choice(LAST[lang])}",
            "company2": other.name,
        }

    def working_time(self, when: datetime, tz: ZoneInfo) -> datetime:
        """Move `when` into someone's working day (most mail is written 8:00-18:30, Mon-Fri)."""
        local = when.astimezone(tz)
        rng = self.rng
        if rng.random() < 0.06:
            return local  # evenings and weekends happen
        if local.weekday() >= 5:
            local = (local + timedelta(days=7 - local.weekday())).replace(
                hour=8 + rng.randint(0, 2), minute=rng.randint(0, 59)
            )
        elif local.hour < 8:
            local = local.replace(hour=8, minute=rng.randint(0, 59))
        elif local.hour >= 18:
            local = (local + timedelta(days=1)).replace(hour=8 + rng.randint(0, 2))
            if local.weekday() >= 5:
                local += timedelta(days=7 - local.weekday())
        return local.replace(second=rng.randint(0, 59))

    def advance(self, n: int) -> datetime:
        """The start of the next episode of `n` messages: the clock moves on by about n gaps.

        Should the clock run past the end of the history (small corpora, unlucky draws), the
        remaining episodes land in its last days rather than in the future.
        """
        self.clock += timedelta(seconds=self.rng.expovariate(1 / (self.gap * n)))
        if self.clock > self.end:
            self.clock = self.end - timedelta(hours=self.rng.uniform(0, 72))
        return self.clock

    # -- identifiers ------------------------------------------------------------------------------

    def hex(self, n: int) -> str:
        return self.rng.randbytes((n + 1) // 2).hex()[:n]

    def uuid(self) -> str:
        return str(uuid.UUID(bytes=self.rng.randbytes(16)))

    def noise(self, n: int) -> str:
        return base64.b64encode(self.rng.randbytes(n * 3 // 4 + 3)).decode()[:n]

    def message_id(self, sender: Person, when: datetime) -> str:
        rng = self.rng
        client = sender.client
        if client == "outlook" or sender.internal:
            pod = (sender.company.pod if sender.company and sender.company.pod else
                   rng.choice(_MS_PODS) + f"0{rng.randint(1, 9)}MB{rng.randint(1000, 9999)}")  # fmt: skip
            region = rng.choice(_EU_REGIONS)
            return f"<{pod}{self.hex(18).upper()}@{pod}.{region}.prod.outlook.com>"
        if client == "gmail":
            tail = self.noise(40).replace("/", "_").replace("+", "-")
            return f"<CA{tail}@mail.gmail.com>"
        if client == "apple":
            return f"<{self.uuid().upper()}@{sender.domain}>"
        if client == "thunderbird":
            return f"<{self.uuid()}@{sender.domain}>"
        return f"<{when.strftime('%Y%m%d%H%M%S')}.{self.hex(12)}@{sender.domain}>"

    def thread_index(self, thread: Thread) -> str:
        thread.index = (
            thread.index + self.rng.randbytes(5) if thread.index else self.rng.randbytes(22)
        )
        return base64.b64encode(thread.index).decode()

    # -- bodies -------------------------------------------------------------------------------------

    def paragraphs(self, lang: str, sentences: list[str], vals: dict[str, str]) -> list[str]:
        rng = self.rng
        chosen = [s.format_map(vals) for s in sentences]
        chosen[1:] = [c[:1].upper() + c[1:] for c in chosen[1:]]
        out: list[str] = []
        while chosen:
            take = min(len(chosen), rng.randint(1, 3))
            out.append(" ".join(chosen[:take]))
            chosen = chosen[take:]
        return out

    def letter(
        self, sender: Person, recipient: Person | None, lang: str, paras: list[str]
    ) -> tuple[list[str], list[str]]:
        """(greeting + paragraphs + closing, signature lines) of a new message."""
        rng = self.rng
        greet = rng.choice(GREETINGS[lang]).format(
            first=recipient.first if recipient else "all", last=recipient.last if recipient else ""
        )
        if recipient is None or (
            recipient.company and recipient.name.endswith(("Orders", "Accounts", "Info", "Office"))
        ):
            greet = {"en": "Hello,", "de": "Guten Tag,", "fr": "Bonjour,", "pl": "Dzień dobry,"}[
                lang
            ]
        body = [greet, *paras, rng.choice(CLOSINGS[lang]) + "\n" + sender.first]
        company = sender.company
        sig: list[str] = []
        if company is not None and rng.random() < 0.9:
            sig = [sender.name]
            if sender.title:
                sig.append(sender.title)
            sig.append(company.name)
            if sender.phone:
                sig.append(f"T: {sender.phone}")
            sig.append(f"www.{company.domain}")
        return body, sig

    def disclaimer(self, company: Company | None) -> str | None:
        if company is None or not company.disclaimer:
            return None
        return DISCLAIMERS[company.lang if company is not self.us else "en"].format(
            company=company.name, regno=company.regno, city=company.city,
            boss=f"{FIRST[company.lang][0]} {LAST[company.lang][0]}",
        )  # fmt: skip

    def render_body(
        self,
        sender: Person,
        body: list[str],
        sig: list[str],
        quoted: Sent | None,
        forward: bool,
        lang: str,
        logo_cid: str | None,
    ) -> tuple[str, str]:
        """(plain text, inner HTML) in the sender's client's style, with the quoted history."""
        client = "outlook" if sender.internal else sender.client
        disclaimer = self.disclaimer(sender.company)
        # plain text
        text_parts = ["\n\n".join(body)]
        if sig:
            text_parts.append(
                ("-- \n" if client in ("gmail", "thunderbird") else "") + "\n".join(sig)
            )
        if disclaimer:
            text_parts.append(disclaimer)
        text = "\n\n".join(text_parts) + "\n"
        # HTML
        if client == "outlook":
            h = [
                f'<p class="MsoNormal">{_SPAN}{esc(p).replace(chr(10), "<br>")}<o:p></o:p></span></p>\n{_BLANK}'
                for p in body
            ]
            if sig:
                cells = "<br>\n".join(esc(s) for s in sig)
                img = (
                    f'<img width="120" height="48" style="width:1.25in;height:.5in" id="Picture_x0020_1" '
                    f'src="cid:{logo_cid}" alt="{esc(sender.company.name if sender.company else "")}">'
                    if logo_cid
                    else ""
                )
                h.append(
                    '<table class="MsoNormalTable" border="0" cellspacing="0" cellpadding="0" '
                    'style="border-collapse:collapse">\n<tr>\n<td valign="top" style="padding:0cm 5.4pt 0cm 0cm">\n'
                    f'<p class="MsoNormal"><b>{_SIG_SPAN}{cells}</span></b><o:p></o:p></p>\n</td>\n'
                    f'<td valign="top" style="padding:0cm 0cm 0cm 5.4pt"><p class="MsoNormal">{img}<o:p></o:p></p></td>\n'
                    "</tr>\n</table>\n"
                )
            if disclaimer:
                h.append(
                    f'{_BLANK}<p class="MsoNormal">{_DISC_SPAN}{esc(disclaimer)}<o:p></o:p></span></p>\n'
                )
        elif client == "gmail":
            h = ['<div dir="ltr">'] + [
                f"<div>{esc(p).replace(chr(10), '<br>')}</div><div><br></div>" for p in body
            ]
            if sig:
                h.append(
                    '<span class="gmail_signature_prefix">-- </span><br><div dir="ltr" class="gmail_signature" data-smartmail="gmail_signature"><div dir="ltr">'
                )
                h.append("<br>".join(esc(s) for s in sig))
                if logo_cid:
                    h.append(f'<br><img src="cid:{logo_cid}" width="120" height="48">')
                h.append("</div></div>")
            if disclaimer:
                h.append(
                    f'<div><br></div><div><font size="1" color="#888888">{esc(disclaimer)}</font></div>'
                )
            h.append("</div>\n")
        elif client == "apple":
            h = [f"<div>{esc(p).replace(chr(10), '<br>')}</div><div><br></div>" for p in body]
            if sig:
                h.append(
                    '<div><div style="font-family: Helvetica; font-size: 12px;">'
                    + "<br>".join(esc(s) for s in sig)
                    + "</div></div>"
                )
            if disclaimer:
                h.append(
                    f'<div style="font-size: 9px; color: rgb(128, 128, 128);">{esc(disclaimer)}</div>'
                )
            h.append("\n")
        else:  # thunderbird, webmail
            h = [f"<p>{esc(p).replace(chr(10), '<br>')}</p>\n" for p in body]
            if sig:
                h.append(
                    '<div class="moz-signature">-- <br>'
                    + "<br>\n".join(esc(s) for s in sig)
                    + "</div>\n"
                )
            if disclaimer:
                h.append(f'<p style="font-size:8pt;color:#777">{esc(disclaimer)}</p>\n')
        inner = "".join(h)
        if quoted is not None:
            qt, qh = self.quote(quoted, client, lang, forward)
            text += qt
            inner += qh
        return text, inner

    def quote(self, prev: Sent, client: str, lang: str, forward: bool) -> tuple[str, str]:
        """How `client` puts the previous message under a reply or forward."""
        if self.lean and prev.text.count("\n") > 120:
            prev = Sent(prev.sender, prev.to, prev.cc, prev.subject, prev.when, prev.message_id,
                        prev.text[:4000], prev.html[:12000], [])  # fmt: skip
        when = prev.when
        sender = f"{prev.sender.name} <{prev.sender.address}>"
        to = "; ".join(p.name for p in prev.to)
        cc = "; ".join(p.name for p in prev.cc)
        if client == "outlook":
            f, s, t, c, subj = QUOTE_HEADER[lang if lang in QUOTE_HEADER else "en"]
            stamp = f"{when:%A}, {when.day} {MONTHS_EN[when.month - 1]} {when.year} {when:%H:%M}"
            lines = [f"{f} {sender}", f"{s} {stamp}", f"{t} {to}"]
            if cc:
                lines.append(f"{c} {cc}")
            lines.append(f"{subj} {prev.subject}")
            lead = (
                "________________________________\n" if forward and self.rng.random() < 0.3 else ""
            )
            text = "\n\n" + lead + "\n".join(lines) + "\n\n" + prev.text
            rows = "<br>\n".join(
                f"<b>{esc(line.split(' ', 1)[0])}</b> {esc(line.split(' ', 1)[1])}"
                for line in lines
            )
            qh = (
                '<div>\n<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">\n'
                f'<p class="MsoNormal"><span lang="EN-US" style="font-size:11.0pt;font-family:&quot;Calibri&quot;,sans-serif">{rows}<o:p></o:p></span></p>\n'
                f"</div>\n</div>\n{_BLANK}{prev.html}"
            )
            return text, qh
        stamp = f"{_WEEKDAYS[when.weekday()]}, {when.day} {_MONTHS[when.month - 1]} {when.year} at {when:%H:%M}"
        if forward:
            head = (
                "---------- Forwarded message ---------\n"
                f"From: {sender}\nDate: {stamp}\nSubject: {prev.subject}\nTo: {to}\n"
            )
            text = "\n\n" + head + "\n\n" + prev.text
            qh = (
                f'<br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">{esc(head).replace(chr(10), "<br>")}</div><br><br>'
                f"{prev.html}</div>\n"
            )
            return text, qh
        if lang == "de":
            attr = f"Am {_WEEKDAYS[when.weekday()]}., {when.day}. {_MONTHS[when.month - 1]}. {when.year} um {when:%H:%M} Uhr schrieb {sender}:"
        elif lang == "fr":
            attr = f"Le {when.day}/{when.month:02d}/{when.year} à {when:%H:%M}, {sender} a écrit :"
        elif lang == "pl":
            attr = f"{when.day}.{when.month:02d}.{when.year} o {when:%H:%M} {sender} napisał(a):"
        else:
            attr = f"On {stamp}, {sender} wrote:"
        text = "\n\n" + attr + "\n\n" + quote_lines(prev.text.rstrip("\n")) + "\n"
        if client == "gmail":
            qh = (
                f'<br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">{esc(attr)}<br></div>'
                f'<blockquote class="gmail_quote" style="{GMAIL_QUOTE_STYLE}">{prev.html}</blockquote></div>\n'
            )
        elif client == "apple":
            qh = (
                f'<div><br><blockquote type="cite"><div>{esc(attr)}</div><br class="Apple-interchange-newline">'
                f"{prev.html}</blockquote></div>\n"
            )
        else:
            qh = (
                f'<div class="moz-cite-prefix">{esc(attr)}<br></div>\n'
                f'<blockquote type="cite" cite="mid:{esc(prev.message_id.strip("<>"))}">{prev.html}</blockquote>\n'
            )
        return text, qh

    # -- MIME -------------------------------------------------------------------------------------

    def boundary(self, client: str, n: int) -> str:
        if client == "outlook":
            return f"_00{n}_{self.pod}{self.hex(12).upper()}_"
        if client == "gmail":
            return "000000000000" + self.hex(12)
        if client == "apple":
            return f"Apple-Mail={self.uuid().upper()}"
        return "------------" + self.hex(24)

    def text_part(self, text: str, client: str, charset: str, flowed: bool) -> bytes:
        if client == "thunderbird":
            data = (_wrap(text) if flowed else text).encode(charset)
            cte = "7bit" if data.isascii() else "8bit"
            params = f"; charset={charset.upper() if charset == 'utf-8' else charset}" + (
                "; format=flowed" if flowed else ""
            )
            return (
                f"Content-Type: text/plain{params}\nContent-Transfer-Encoding: {cte}\n\n".encode()
                + data
            )
        data = text.encode(charset)
        cs = "UTF-8" if client == "gmail" and charset == "utf-8" else charset
        if client == "gmail" and data.isascii():
            return f'Content-Type: text/plain; charset="{cs}"\n\n'.encode() + data
        body = binascii.b2a_qp(data, istext=True)
        return (
            f'Content-Type: text/plain; charset="{cs}"\nContent-Transfer-Encoding: quoted-printable\n\n'.encode()
            + body
        )

    def html_part(self, doc: str, client: str, charset: str) -> bytes:
        data = doc.encode(charset, "xmlcharrefreplace")
        if client == "thunderbird":
            cte = "7bit" if data.isascii() else "8bit"
            return (
                f"Content-Type: text/html; charset={charset.upper() if charset == 'utf-8' else charset}\nContent-Transfer-Encoding: {cte}\n\n".encode()
                + data
            )
        cs = "UTF-8" if client == "gmail" and charset == "utf-8" else charset
        if client == "gmail" and self.rng.random() < 0.1:
            return (
                f'Content-Type: text/html; charset="{cs}"\nContent-Transfer-Encoding: base64\n\n'.encode()
                + base64.encodebytes(data)
            )
        return (
            f'Content-Type: text/html; charset="{cs}"\nContent-Transfer-Encoding: quoted-printable\n\n'.encode()
            + binascii.b2a_qp(data, istext=True)
        )

    @staticmethod
    def multipart(
        subtype: str, boundary: str, parts: Sequence[bytes], extra: str = ""
    ) -> tuple[str, bytes]:
        header = f'Content-Type: multipart/{subtype};\n\tboundary="{boundary}"{extra}'
        b = boundary.encode()
        body = (
            b"".join(b"--" + b + b"\n" + p.rstrip(b"\n") + b"\n\n" for p in parts)
            + b"--"
            + b
            + b"--\n"
        )
        return header, body

    def attachment_part(self, att: Attachment, client: str, when: datetime) -> bytes:
        name = att.filename
        if name.isascii():
            qname = f'"{name}"'
            disp = f'attachment;\n\tfilename="{name}"'
        elif client == "outlook":
            qname = f'"{encode_words(name)}"'
            disp = f'attachment;\n\tfilename="{encode_words(name)}"'
        else:
            qname = f'"{encode_words(name, mode="Q")}"'
            disp = "attachment;\n\tfilename*=utf-8''" + "".join(
                chr(b) if chr(b).isalnum() or chr(b) in ".-_" else f"%{b:02X}"
                for b in name.encode()
            )
        if client == "outlook":
            stamp = rfc_date(when.astimezone(UTC), True).replace("+0000", "GMT")
            disp += f'; size={len(att.data)};\n\tcreation-date="{stamp}";\n\tmodification-date="{stamp}"'
            head = f"Content-Type: {att.content_type}; name={qname}\nContent-Description: {qname.strip(chr(34))}\nContent-Disposition: {disp}\nContent-Transfer-Encoding: base64\n\n"
        elif client == "gmail":
            head = f"Content-Type: {att.content_type}; name={qname}\nContent-Disposition: {disp}\nContent-Transfer-Encoding: base64\nContent-ID: <f_{self.hex(10)}0>\nX-Attachment-Id: f_{self.hex(10)}0\n\n"
        else:
            head = f"Content-Type: {att.content_type};\n\tname={qname}\nContent-Disposition: {disp}\nContent-Transfer-Encoding: base64\n\n"
        return head.encode() + base64.encodebytes(att.data)

    def body_entity(
        self,
        client: str,
        text: str | None,
        html_doc: str | None,
        charset: str,
        logo: tuple[str, bytes] | None,
        attachments: Sequence[Attachment],
        when: datetime,
        extra_parts: Sequence[bytes] = (),
    ) -> tuple[str, bytes]:
        """(Content-Type header lines, body bytes) of the whole message body."""
        flowed = client == "thunderbird" and self.rng.random() < 0.5
        if text is not None and html_doc is not None:
            ctype, body = self.multipart(
                "alternative",
                self.boundary(client, 1),
                [
                    self.text_part(text, client, charset, flowed),
                    self.html_part(html_doc, client, charset),
                ],
            )
            entity_bytes = (ctype + "\n\n").encode() + body
        elif html_doc is not None:
            entity_bytes = self.html_part(html_doc, client, charset)
        else:
            entity_bytes = self.text_part(text or "", client, charset, flowed)
        if logo is not None:
            cid, data = logo
            img = (
                f'Content-Type: image/png; name="image001.png"\nContent-Description: image001.png\n'
                f'Content-Disposition: inline; filename="image001.png"; size={len(data)}\n'
                f"Content-ID: <{cid}>\nContent-Transfer-Encoding: base64\n\n"
            ).encode() + base64.encodebytes(data)
            ctype, body = self.multipart(
                "related",
                self.boundary(client, 2),
                [entity_bytes, img],
                ';\n\ttype="multipart/alternative"',
            )
            entity_bytes = (ctype + "\n\n").encode() + body
        if attachments or extra_parts:
            parts = [
                entity_bytes,
                *(self.attachment_part(a, client, when) for a in attachments),
                *extra_parts,
            ]
            ctype, body = self.multipart("mixed", self.boundary(client, 4), parts)
            extra = (
                "\nThis is a multi-part message in MIME format.\n"
                if client == "thunderbird"
                else ""
            )
            return ctype, (extra.encode() + body) if extra else body
        head, _, payload = entity_bytes.partition(b"\n\n")
        return head.decode(), payload

    # -- headers ----------------------------------------------------------------------------------

    def folded_noise(self, n: int) -> str:
        data = self.noise(n)
        return "\n\t".join(data[i : i + 76] for i in range(0, len(data), 76))

    def q_noise(self, n: int) -> str:
        data = self.noise(n)
        return "\n".join(f" =?us-ascii?Q?{data[i : i + 60]}?=" for i in range(0, len(data), 60))

    def ms_host(self) -> str:
        rng = self.rng
        return f"{rng.choice(_MS_PODS)}{rng.randint(1, 9):02d}CA{rng.randint(1000, 9999)}.{rng.choice(_EU_REGIONS)}.prod.outlook.com"

    def v6(self) -> str:
        return f"2603:10a6:{self.hex(3)}:{self.hex(2)}::{self.hex(2)}"

    def received_ms(self, frm: str, by: str, when: datetime, mapi: bool = False) -> str:
        via = (
            "mapi"
            if mapi
            else "Microsoft SMTP Server (version=TLS1_2,\n cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)"
        )
        return (
            f"Received: from {frm} ({self.v6()}) by\n {by} ({self.v6()}) with {via} id\n"
            f" 15.20.{self.rng.randint(7000, 8999)}.{self.rng.randint(10, 40)}; {rfc_date(when.astimezone(UTC))}"
        )

    def sender_trace(self, sender: Person, when: datetime) -> list[str]:
        """Trace headers the sender's own systems put on a message."""
        rng = self.rng
        domain = sender.domain
        ts = int(when.timestamp())
        if sender.client == "outlook" or sender.internal:
            pod = (
                sender.company.pod
                if sender.company and sender.company.pod
                else self.ms_host().split(".")[0]
            )
            region = rng.choice(_EU_REGIONS)
            host = f"{pod}.{region}.prod.outlook.com"
            return [
                "ARC-Seal: i=1; a=rsa-sha256; s=arcselector10001; d=microsoft.com; cv=none;\n b="
                + self.folded_noise(344),
                "ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=microsoft.com;\n s=arcselector10001;\n"
                " h=From:Date:Subject:Message-ID:Content-Type:MIME-Version:X-MS-Exchange-AntiSpam-MessageData-ChunkCount:X-MS-Exchange-AntiSpam-MessageData-0:X-MS-Exchange-AntiSpam-MessageData-1;\n"
                f" bh={self.noise(43)}=;\n b=" + self.folded_noise(344),
                f"ARC-Authentication-Results: i=1; mx.microsoft.com 1; spf=pass\n smtp.mailfrom={domain}; dmarc=pass action=none header.from={domain};\n dkim=pass header.d={domain}; arc=none",
                f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain};\n s=selector1;\n"
                " h=From:Date:Subject:Message-ID:Content-Type:MIME-Version:X-MS-Exchange-SenderADCheck;\n"
                f" bh={self.noise(43)}=;\n b=" + self.folded_noise(344),
                self.received_ms(host, host, when + timedelta(seconds=1), mapi=True),
            ]
        if sender.client == "gmail":
            d = "gmail.com" if sender.company is None else domain
            host = (
                f"mail-{rng.choice(['wr1', 'wm1', 'ej1', 'lf1'])}-f{rng.randint(41, 99)}.google.com"
            )
            return [
                f"Received: by {host} with SMTP id\n {self.hex(16)}-{self.hex(4)}.{rng.randint(1, 9)}\n"
                f" for <{OWNER}>; {rfc_date(when.astimezone(UTC) + timedelta(seconds=2))}",
                f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\n d={d}; s={'20230601' if d == 'gmail.com' else 'google'}; t={ts}; x={ts + 604800}; darn={INTERNAL_DOMAIN};\n"
                " h=to:subject:message-id:date:from:in-reply-to:references\n :mime-version:from:to:cc:subject:date:message-id:reply-to;\n"
                f" bh={self.noise(43)}=;\n b=" + self.folded_noise(344),
                f"X-Google-DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\n d=1e100.net; s=20230601; t={ts}; x={ts + 604800};\n"
                " h=to:subject:message-id:date:from:in-reply-to:references\n :mime-version:x-gm-message-state:from:to:cc:subject:date:message-id\n :reply-to;\n"
                f" bh={self.noise(43)}=;\n b=" + self.folded_noise(344),
                "X-Gm-Message-State: AOJu0Y" + self.folded_noise(160),
                "X-Google-Smtp-Source: AGHT+IF" + self.noise(80),
                f"X-Received: by 2002:a05:6000:{self.hex(4)}:b0:{self.hex(3)}:{self.hex(4)}:{self.hex(4)} with SMTP id\n"
                f" {self.hex(16)}mr{rng.randint(1000000, 9999999)}wrx.{rng.randint(1, 99)}.{ts}{rng.randint(100, 999)};\n"
                f" {rfc_date(when.astimezone(UTC) + timedelta(seconds=1))}",
            ]
        lan = f"192.168.{rng.randint(0, 5)}.{rng.randint(2, 250)}"
        mta = f"mail.{domain}" if sender.company else f"smtp.{domain}"
        return [
            f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain};\n s=default; t={ts};\n"
            f" bh={self.noise(43)}=;\n h=Date:From:To:Subject:From;\n b=" + self.folded_noise(344),
            f"Received: from [{lan}] (unknown [198.51.100.{rng.randint(2, 250)}])\n"
            f" (Authenticated sender: {sender.address})\n by {mta} (Postfix) with ESMTPSA id {self.hex(10).upper()}\n"
            f" for <{OWNER}>; {rfc_date(when + timedelta(seconds=1))}",
        ]

    def inbound_trace(self, sender: Person, when: datetime) -> tuple[list[str], list[str]]:
        """Exchange Online's headers on mail arriving from outside: (above, below) the message's own."""
        rng = self.rng
        domain = sender.domain
        arrive = when + timedelta(seconds=rng.randint(2, 40))
        eop = f"DB{rng.randint(1, 9)}PEPF0000{self.hex(4).upper()}"
        fe = self.ms_host()
        helo = (
            f"mail-{rng.choice(['wr1', 'ej1'])}-f{rng.randint(41, 99)}.google.com" if sender.client == "gmail"
            else f"{sender.company.pod}.{rng.choice(_EU_REGIONS)}.prod.outlook.com" if sender.client == "outlook" and sender.company
            else f"mail.{domain}"
        )  # fmt: skip
        ip = sender.company.ip if sender.company else f"198.51.100.{rng.randint(2, 250)}"
        netid = self.uuid()
        above = [
            self.received_ms(
                f"{_OUR_MBX}.GBRP265.PROD.OUTLOOK.COM",
                "CWXP265MB3397.GBRP265.PROD.OUTLOOK.COM",
                arrive + timedelta(seconds=1),
            ).replace(
                "Microsoft SMTP Server (version=TLS1_2,\n cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)",
                "HTTPS",
            ),
            self.received_ms(fe, f"{_OUR_MBX}.GBRP265.PROD.OUTLOOK.COM", arrive),
            self.received_ms(f"{eop}.{rng.choice(_EU_REGIONS)}.prod.outlook.com", fe, arrive),
            f"Authentication-Results: spf=pass (sender IP is {ip})\n smtp.mailfrom={domain}; dkim=pass (signature was verified)\n"
            f" header.d={domain};dmarc=pass action=none\n header.from={domain};compauth=pass reason=100",
            f"Received-SPF: Pass (protection.outlook.com: domain of {domain} designates\n {ip} as permitted sender) receiver=protection.outlook.com;\n client-ip={ip}; helo={helo}; pr=C",
            f"Received: from {helo} ({ip}) by\n {eop}.mail.protection.outlook.com (10.167.{rng.randint(1, 254)}.{rng.randint(1, 254)}) with Microsoft SMTP Server\n"
            f" (version=TLS1_3, cipher=TLS_AES_256_GCM_SHA384) id 15.20.{rng.randint(7000, 8999)}.{rng.randint(10, 40)}\n via Frontend Transport; {rfc_date(arrive.astimezone(UTC))}",
        ]
        country = {"de": "DE", "fr": "FR", "pl": "PL"}.get(sender.lang, "GB")
        below = [
            f"Return-Path: {sender.address}",
            f"X-MS-Exchange-Organization-ExpirationStartTime: {arrive.astimezone(UTC):%d %b %Y %H:%M:%S}.{rng.randint(1000, 9999)}\n (UTC)",
            "X-MS-Exchange-Organization-ExpirationStartTimeReason: OriginalSubmit",
            "X-MS-Exchange-Organization-ExpirationInterval: 1:00:00:00.0000000",
            "X-MS-Exchange-Organization-ExpirationIntervalReason: OriginalSubmit",
            f"X-MS-Exchange-Organization-Network-Message-Id:\n {netid}",
            "X-EOPAttributedMessage: 0",
            f"X-EOPTenantAttributedMessage: {_TENANT}:0",
            "X-MS-Exchange-Organization-MessageDirectionality: Incoming",
            "X-MS-PublicTrafficType: Email",
            f"X-MS-TrafficTypeDiagnostic:\n {eop}:EE_|{_OUR_MBX}:EE_|CWXP265MB3397:EE_",
            f"X-MS-Exchange-Organization-AuthSource:\n {eop}.{rng.choice(_EU_REGIONS)}.prod.outlook.com",
            "X-MS-Exchange-Organization-AuthAs: Anonymous",
            f"X-MS-Office365-Filtering-Correlation-Id: {self.uuid()}",
            "X-MS-Exchange-Organization-SCL: 1",
            "X-Microsoft-Antispam:\n BCL:0;ARA:13230040|2066899003|4022899009|35042699022|12012899012|8096899003;",
            f"X-Forefront-Antispam-Report:\n CIP:{ip};CTRY:{country};LANG:{sender.lang};SCL:1;SRV:;IPV:NLI;SFV:NSPM;H:{helo};PTR:{helo};CAT:NONE;SFS:(13230040)(2066899003)(4022899009)(35042699022)(12012899012)(8096899003);DIR:INB;",
            f"X-MS-Exchange-CrossTenant-OriginalArrivalTime: {arrive.astimezone(UTC):%d %b %Y %H:%M:%S}.{rng.randint(1000, 9999)}\n (UTC)",
            f"X-MS-Exchange-CrossTenant-Network-Message-Id: {netid}",
            f"X-MS-Exchange-CrossTenant-Id: {_TENANT}",
            f"X-MS-Exchange-CrossTenant-AuthSource:\n {eop}.{rng.choice(_EU_REGIONS)}.prod.outlook.com",
            "X-MS-Exchange-CrossTenant-AuthAs: Anonymous",
            "X-MS-Exchange-CrossTenant-FromEntityHeader: Internet",
            "X-MS-Exchange-Transport-CrossTenantHeadersStamped: CWXP265MB3397",
            f"X-MS-Exchange-Transport-EndToEndLatency: 00:00:0{rng.randint(1, 9)}.{rng.randint(1000000, 9999999)}",
            "X-MS-Exchange-Processed-By-BccFoldering: 15.20.8422.010",
            "X-Microsoft-Antispam-Mailbox-Delivery:\n ucf:0;jmr:0;auth:0;dest:I;ENG:(910005)(944506478)(944626604)(920097)(930097)(3100021)(140003)(1420103);",
            "X-Microsoft-Antispam-Message-Info:\n\t" + self.folded_noise(rng.randint(1800, 3200)),
        ]
        return above, below

    def sent_items_headers(self, when: datetime, has_attach: bool) -> tuple[list[str], list[str]]:
        """What an Exchange Online Sent Items copy carries, as an IMAP export shows it."""
        rng = self.rng
        host = f"{_OUR_MBX}.GBRP265.PROD.OUTLOOK.COM"
        above = [
            f"Received: from {host}\n ([fe80::{self.hex(4)}:{self.hex(4)}:{self.hex(4)}:{self.hex(4)}]) by {host}\n"
            f" ([fe80::{self.hex(4)}:{self.hex(4)}:{self.hex(4)}:{self.hex(4)}%6]) with mapi id 15.20.{rng.randint(7000, 8999)}.{rng.randint(10, 40)};\n"
            f" {rfc_date(when.astimezone(UTC))}",
        ]
        middle = [
            "Accept-Language: en-GB, en-US",
            "Content-Language: en-GB",
            f"X-MS-Has-Attach: {'yes' if has_attach else ''}",
            "X-MS-TNEF-Correlator:",
            "msip_labels:",
            "x-ms-publictraffictype: Email",
            f"x-ms-traffictypediagnostic: {_OUR_MBX}:EE_|CWXP265MB3397:EE_",
            f"x-ms-office365-filtering-correlation-id: {self.uuid()}",
            "x-ms-exchange-senderadcheck: 1",
            "x-ms-exchange-antispam-relay: 0",
            "x-microsoft-antispam:\n BCL:0;ARA:13230040|366016|376014|1800799024|38070700018;",
            "x-microsoft-antispam-message-info:\n " + self.folded_noise(rng.randint(900, 1600)),
            f"x-forefront-antispam-report:\n CIP:255.255.255.255;CTRY:;LANG:en;SCL:1;SRV:;IPV:NLI;SFV:NSPM;H:{host};PTR:;CAT:NONE;SFS:(13230040)(366016)(376014)(1800799024)(38070700018);DIR:OUT;SFP:1102;",
            "x-ms-exchange-antispam-messagedata-chunkcount: 1",
            "x-ms-exchange-antispam-messagedata-0:\n" + self.q_noise(rng.randint(800, 2000)),
        ]
        below = [
            "MIME-Version: 1.0",
            f"X-OriginatorOrg: {INTERNAL_DOMAIN}",
            "X-MS-Exchange-CrossTenant-AuthAs: Internal",
            f"X-MS-Exchange-CrossTenant-AuthSource: {host}",
            f"X-MS-Exchange-CrossTenant-Network-Message-Id: {self.uuid()}",
            f"X-MS-Exchange-CrossTenant-originalarrivaltime: {when.astimezone(UTC):%d %b %Y %H:%M:%S}.{rng.randint(1000, 9999)}\n (UTC)",
            "X-MS-Exchange-CrossTenant-fromentityheader: Hosted",
            f"X-MS-Exchange-CrossTenant-id: {_TENANT}",
            "X-MS-Exchange-CrossTenant-mailboxtype: HOSTED",
            f"X-MS-Exchange-CrossTenant-userprincipalname: {self.noise(60)}",
            "X-MS-Exchange-Transport-CrossTenantHeadersStamped: CWXP265MB3397",
        ]
        return above, middle + below

    # -- posting one message ------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        return self.stats.messages >= self.target

    def post(
        self,
        kind: str,
        sender: Person,
        to: list[Person],
        cc: list[Person],
        subject: str,
        when: datetime,
        text: str | None,
        html_inner: str | None,
        *,
        thread: Thread | None = None,
        reply_to: Sent | None = None,
        lang: str = "en",
        attachments: Sequence[Attachment] = (),
        extra: Sequence[str] = (),
        logo: bytes | None = None,
        html_doc: str | None = None,
        attached_message: bytes | None = None,
        message_id: str | None = None,
    ) -> Sent:
        """Render one message, write it into the mailbox when Anna is on it, and return it."""
        rng = self.rng
        client = "outlook" if sender.internal else sender.client
        message_id = message_id or self.message_id(sender, when)
        lang_ui = sender.lang if sender.lang in QUOTE_HEADER else "en"
        is_sent = sender.address == OWNER
        is_ours = is_sent or any(p.address == OWNER for p in (*to, *cc))
        sent = Sent(
            sender,
            to,
            cc,
            subject,
            when,
            message_id,
            text or "",
            html_inner or "",
            list(attachments),
        )
        self.pod = sender.company.pod if sender.company and sender.company.pod else _OUR_MBX
        if thread is not None:
            thread.messages.append(sent)
        if not is_ours or self.full:
            return sent
        # charset and header encoding
        company = sender.company
        legacy = company is not None and company.legacy and lang in LEGACY_CHARSET
        if sender.company is None and client == "thunderbird" and lang in LEGACY_CHARSET:
            legacy = True
        charset = "utf-8"
        if legacy:
            try:
                ((text or "") + (html_inner or "")).encode(LEGACY_CHARSET[lang])
                charset = LEGACY_CHARSET[lang]
            except UnicodeEncodeError:
                charset = "utf-8"
        all_ascii = (text or "").isascii() and (html_inner or "").isascii()
        if client == "outlook" and all_ascii:
            charset = "us-ascii"
        mode = "Q" if client in ("gmail", "thunderbird") else "B"
        hcs = charset if charset != "us-ascii" else "utf-8"
        # body
        cid = None
        logo_pair = None
        if logo is not None and not self.lean and html_inner is not None:
            cid = f"image001.png@01D{self.hex(5).upper()}.{self.hex(8).upper()}"
            logo_pair = (cid, logo)
            html_inner = html_inner.replace("cid:LOGO", f"cid:{cid}")
        if html_doc is None and html_inner is not None:
            if client == "outlook":
                html_doc = (
                    OUTLOOK_HEAD.replace("%CHARSET%", charset).replace(
                        "%LANG%", {"en": "EN-GB", "de": "DE", "fr": "FR", "pl": "PL"}[lang_ui]
                    )
                    + html_inner
                    + OUTLOOK_TAIL
                )
            elif client == "gmail":
                html_doc = html_inner
            elif client == "apple":
                html_doc = (
                    f'<html aria-label="message body"><head><meta http-equiv="content-type" content="text/html; charset={charset}"></head>'
                    '<body style="overflow-wrap: break-word; -webkit-nbsp-mode: space; line-break: after-white-space;">'
                    + html_inner
                    + "</body></html>"
                )
            else:
                html_doc = (
                    f'<!DOCTYPE html>\n<html>\n  <head>\n    <meta http-equiv="Content-Type" content="text/html; charset={charset}">\n  </head>\n  <body>\n'
                    + html_inner
                    + "  </body>\n</html>\n"
                )
        extra_parts: list[bytes] = []
        if attached_message is not None:
            extra_parts.append(
                b'Content-Type: message/rfc822\nContent-Disposition: attachment;\n\tfilename="Original message.eml"\n\n'
                + attached_message
            )
        ctype, body = self.body_entity(
            client, text, html_doc, charset, logo_pair, attachments, when, extra_parts
        )
        # the message's own headers
        own = [address_header("From", [sender], mode, hcs), address_header("To", to, mode, hcs)]
        if cc:
            own.append(address_header("CC" if client == "outlook" else "Cc", cc, mode, hcs))
        enc_subject = encode_words(subject, hcs, mode)
        own.append(
            fold("Subject", enc_subject) if "\n" not in enc_subject else f"Subject: {enc_subject}"
        )
        if client == "outlook" and thread is not None:
            own.append(f"Thread-Topic: {encode_words(thread.subject, hcs, mode)}")
            own.append(f"Thread-Index: {self.thread_index(thread)}")
        own.append(f"Date: {rfc_date(when)}")
        own.append(f"Message-ID: {message_id}")
        if reply_to is not None and thread is not None:
            ids = [m.message_id for m in thread.messages[:-1]][-12:]
            if reply_to.message_id not in ids:
                ids.append(reply_to.message_id)
            own.append(fold("References", " ".join(ids)))
            own.append(f"In-Reply-To: {reply_to.message_id}")
        if client == "apple":
            own.append("X-Mailer: Apple Mail (2.3826.500.181.1.5)")
        elif client == "thunderbird":
            own.append("User-Agent: Mozilla Thunderbird")
            own.append(
                f"Content-Language: {lang_ui}-{lang_ui.upper() if lang_ui != 'en' else 'GB'}"
            )
        own.extend(extra)
        has_attach = bool(attachments) or attached_message is not None
        if is_sent:
            above, below = self.sent_items_headers(when, has_attach)
            headers = [*above, *own, ctype, *below]
            folder = "Sent"
        else:
            if sender.internal:
                above = [
                    self.received_ms(
                        f"{sender.company.pod if sender.company else _OUR_MBX}.GBRP265.PROD.OUTLOOK.COM",
                        f"{_OUR_MBX}.GBRP265.PROD.OUTLOOK.COM",
                        when + timedelta(seconds=1),
                        mapi=True,
                    ),
                ]
                below = [
                    "X-MS-Exchange-Organization-AuthAs: Internal",
                    "X-MS-Exchange-Organization-AuthMechanism: 04",
                    f"X-MS-Exchange-Organization-AuthSource: {_OUR_MBX}.GBRP265.PROD.OUTLOOK.COM",
                    f"X-MS-Has-Attach: {'yes' if has_attach else ''}",
                    "X-MS-Exchange-Organization-Network-Message-Id:\n " + self.uuid(),
                    "X-MS-Exchange-Organization-SCL: -1",
                    "X-MS-TNEF-Correlator:",
                    "X-MS-Exchange-Organization-RecordReviewCfmType: 0",
                    "X-MS-Exchange-Organization-MessageDirectionality: Originating",
                    "x-ms-exchange-antispam-messagedata-chunkcount: 1",
                    "x-ms-exchange-antispam-messagedata-0:\n"
                    + self.q_noise(rng.randint(600, 1500)),
                    "X-MS-Exchange-Transport-EndToEndLatency: 00:00:00.6189227",
                    "X-MS-Exchange-Processed-By-BccFoldering: 15.20.8422.010",
                    "X-Microsoft-Antispam-Mailbox-Delivery:\n ucf:0;jmr:0;auth:0;dest:I;ENG:(910005)(944506478)(944626604)(920097)(425001)(930097)(140003);",
                    "X-Microsoft-Antispam-Message-Info:\n\t"
                    + self.folded_noise(rng.randint(1200, 2400)),
                ]
            else:
                above, below = self.inbound_trace(sender, when)
                above = above + self.sender_trace(sender, when)
                if client == "outlook":
                    below = [
                        "Accept-Language: en-GB, en-US",
                        f"Content-Language: {lang_ui}-{lang_ui.upper() if lang_ui != 'en' else 'GB'}",
                        f"X-MS-Has-Attach: {'yes' if has_attach else ''}",
                        "X-MS-TNEF-Correlator:",
                        *below,
                    ]
            headers = [*above, *own, ctype, "MIME-Version: 1.0", *below]
            folder = "INBOX"
        raw = "\n".join(headers).encode("ascii", "replace") + b"\n\n" + body
        self.write(raw, folder, when, unread=folder == "INBOX" and rng.random() < 0.04)
        st = self.stats
        st.kinds[kind] += 1
        f = st.features
        f["attachments"] += bool(attachments) or attached_message is not None
        f["attached_message"] += attached_message is not None
        f["html_only"] += text is None
        f["text_only"] += html_doc is None
        f["rfc2047_subject"] += not subject.isascii()
        f["non_ascii_names"] += not all(p.name.isascii() for p in (sender, *to, *cc))
        f["legacy_charset"] += charset in ("iso-8859-1", "iso-8859-2", "windows-1252")
        f["8bit_body"] += client == "thunderbird" and not all_ascii
        f["inline_logo"] += logo_pair is not None
        f["reply"] += reply_to is not None
        f["with_cc"] += bool(cc)
        f[f"client_{client}"] += 1
        return sent

    def write(self, raw: bytes, folder: str, when: datetime, unread: bool) -> None:
        self.seq += 1
        ts = int(when.timestamp())
        size = len(raw)
        crlf_size = size + raw.count(b"\n")
        name = f"{ts}.M{self.rng.randint(100000, 999999)}P{self.seq}.nw-mx01,S={size},W={crlf_size}"
        sub = "new" if unread else "cur"
        base = self.out if folder == "INBOX" else self.out / folder
        path = base / sub / (name if unread else name + ":2,S")
        with open(path, "wb") as fh:
            fh.write(raw)
        os.utime(path, (ts, ts))
        st = self.stats
        st.messages += 1
        st.bytes += size
        st.sizes.append(size)
        st.folders[folder] += 1

    # -- attachments ------------------------------------------------------------------------------

    _KINDS: ClassVar[dict[str, tuple[str, bytes]]] = {
        "pdf": ("application/pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
        "xlsx": (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            b"PK\x03\x04\x14\x00\x06\x00",
        ),
        "png": ("image/png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        "jpg": ("image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
    }

    def attachment(self, kind: str, filename: str) -> Attachment:
        """Incompressible bytes (like real PDFs and photos) of 20-300 KB, log-uniform."""
        size = int(20_000 * (15 ** self.rng.random()))
        ctype, magic = self._KINDS[kind]
        return Attachment(filename, ctype, magic + self.rng.randbytes(size - len(magic)))

    def attachments_for(
        self, topic: str, side: str, first: bool, vals: dict[str, str], lang: str
    ) -> list[Attachment]:
        if self.lean:
            return []
        rng = self.rng
        r = rng.random()
        if side == "customer":
            if topic == "order" and first and r < 0.45:
                name = {"de": f"Bestellung {vals['po']}.pdf", "fr": f"Bon de commande {vals['po']}.pdf",
                        "pl": f"Zamówienie {vals['po']}.pdf"}.get(lang, f"{vals['po']}.pdf")  # fmt: skip
                return [self.attachment("pdf", name)]
            if topic == "delivery" and first and r < 0.6:
                return [
                    self.attachment("jpg", f"IMG_{rng.randint(1000, 9999)}.JPG")
                    for _ in range(rng.randint(1, 3))
                ]
            if topic == "invoice" and r < 0.25:
                return [self.attachment("pdf", "Remittance advice.pdf")]
            return [self.attachment("pdf", "Scan_" + self.hex(6) + ".pdf")] if r < 0.05 else []
        if topic in ("quote", "invoice", "order") and r < 0.35:
            name = {"quote": f"Quotation {vals['quote']}.pdf", "invoice": f"Invoice {vals['inv']}.pdf",
                    "order": f"Order confirmation {vals['so']}.pdf"}[topic]  # fmt: skip
            return [self.attachment("pdf", name)]
        if topic == "account" and first and r < 0.5:
            return [self.attachment("xlsx", f"Northwind price list {vals['month']} 2026.xlsx")]
        return [self.attachment("png", "image002.png")] if r < 0.04 else []

    # -- episodes -----------------------------------------------------------------------------------

    def reply_subject(self, sender: Person, base: str, forward: bool = False) -> str:
        lang = sender.lang if sender.lang in REPLY_PREFIX else "en"
        client = "outlook" if sender.internal else sender.client
        if client == "outlook":
            prefix = (FORWARD_PREFIX if forward else REPLY_PREFIX)[lang]
        else:
            prefix = (
                "Fwd: "
                if forward
                else ("AW: " if lang == "de" and client == "thunderbird" else "Re: ")
            )
        return prefix + base

    def compose(
        self,
        thread: Thread | None,
        sender: Person,
        to: list[Person],
        cc: list[Person],
        when: datetime,
        lang: str,
        sentences: list[str],
        vals: dict[str, str],
        *,
        kind: str,
        reply_to: Sent | None = None,
        forward: bool = False,
        subject: str | None = None,
        attachments: Sequence[Attachment] = (),
        html_only: bool = False,
        text_only: bool = False,
        extra: Sequence[str] = (),
    ) -> Sent:
        paras = self.paragraphs(lang, sentences, vals)
        body, sig = self.letter(sender, to[0] if to else None, lang, paras)
        company = sender.company
        logo = (
            company.logo
            if company is not None and sig and (sender.client == "outlook" or sender.internal)
            else None
        )
        if logo is not None and self.rng.random() < 0.85:
            cid: str | None = "LOGO"
        else:
            cid, logo = None, None
        text, inner = self.render_body(sender, body, sig, reply_to, forward, lang, cid)
        if subject is None:
            assert thread is not None
            subject = (
                self.reply_subject(sender, thread.subject, forward) if reply_to else thread.subject
            )
        return self.post(
            kind, sender, to, cc, subject, when,
            None if html_only else text, None if text_only else inner,
            thread=thread, reply_to=None if forward else reply_to, lang=lang,
            attachments=attachments, logo=logo, extra=extra,
        )  # fmt: skip

    def later(self, when: datetime, tz: ZoneInfo, hours: float) -> datetime:
        return self.working_time(
            when + timedelta(hours=self.rng.lognormvariate(0, 1.1) * hours), tz
        )

    def customer_thread(self) -> None:
        rng = self.rng
        if rng.random() < 0.85:
            company: Company | None = rng.choices(
                self.companies, [c.weight for c in self.companies]
            )[0]
            assert company is not None
            people = company.people
            contact = people[min(int(rng.expovariate(1.0)), len(people) - 1)]
            colleagues = [p for p in people if p is not contact]
            tz = company.tz
        else:
            company = None
            contact = rng.choice(self.freemail)
            colleagues = []
            tz = self.london
        lang = contact.lang if contact.lang != "en" and rng.random() < 0.65 else "en"
        topic = rng.choices(list(EN), [35, 15, 15, 15, 8, 12])[0]
        ours = self.anna if rng.random() < 0.85 else rng.choice(self.colleagues)
        our_cc = (
            [self.anna]
            if ours is not self.anna
            else ([rng.choice(self.colleagues)] if rng.random() < 0.2 else [])
        )
        their_cc = [rng.choice(colleagues)] if colleagues and rng.random() < 0.25 else []
        n = min(12, 1 + int(rng.expovariate(1 / 2.3)))
        side = "supplier" if topic == "account" or rng.random() < 0.15 else "customer"
        vals = self.values(lang, company)
        en_vals = vals if lang == "en" else self.values("en", company)
        if side == "customer" and lang != "en":
            base = rng.choice(FOREIGN[lang]["subject"]).format_map(vals)
        else:
            base = rng.choice(EN[topic]["subject"]).format_map(en_vals)
        thread = Thread(topic, base, lang)
        when = self.working_time(self.advance(n), tz)
        prev: Sent | None = None
        for i in range(n):
            if self.full or when > self.now:
                return
            if side == "customer":
                sender = (
                    contact if not colleagues or rng.random() < 0.85 else rng.choice(colleagues)
                )
                to = [ours] if prev is None or prev.sender is not ours else [prev.sender]
                cc = [p for p in (*their_cc, *our_cc) if p is not sender]
                if lang != "en":
                    sentences = rng.sample(FOREIGN[lang]["text"], rng.randint(2, 4))
                    use_vals = vals
                else:
                    pool = EN[topic]["customer" if i == 0 else "follow"]
                    sentences = rng.sample(pool, min(len(pool), rng.randint(1, 3)))
                    sentences += rng.sample(EN_GENERIC, rng.randint(0, 2))
                    use_vals = en_vals
                msg_lang = lang
            else:
                sender = ours
                to = [contact] if prev is None or prev.sender.internal else [prev.sender]
                cc = [p for p in (*their_cc, *our_cc) if p is not sender and p not in to]
                pool = EN[topic]["supplier"]
                sentences = rng.sample(pool, min(len(pool), rng.randint(1, 3)))
                sentences += rng.sample(EN_GENERIC, rng.randint(0, 1))
                use_vals = en_vals
                msg_lang = "en"
            atts = self.attachments_for(topic, side, i == 0, use_vals, lang)
            html_only = sender.client == "web" and rng.random() < 0.5
            text_only = sender.client == "thunderbird" and rng.random() < 0.3
            prev = self.compose(
                thread, sender, to, cc, when, msg_lang, sentences, use_vals, kind="customer",
                reply_to=prev, attachments=atts, html_only=html_only, text_only=text_only,
            )  # fmt: skip
            if sender is self.anna and rng.random() < 0.03:
                self.auto_reply(prev, to[0])
            if rng.random() < 0.85:
                side = "supplier" if side == "customer" else "customer"
            when = self.later(when, tz if side == "customer" else self.london, 5)
        if prev is not None and rng.random() < 0.12 and not self.full:
            self.forward(thread, prev, company)

    def forward(self, thread: Thread, prev: Sent, company: Company | None) -> None:
        """Anna passes the latest message on: to a colleague, or to another contact there."""
        rng = self.rng
        when = self.later(prev.when, self.london, 2)
        others = [
            p
            for p in (company.people if company else [])
            if p is not prev.sender and p not in prev.to
        ]
        if others and rng.random() < 0.5:
            to = [rng.choice(others)]
            sentences = ["Please see below – forwarding as discussed with your colleague."]
            if prev.attachments:
                sentences.append("I've attached the documents again for your records.")
        else:
            to = [rng.choice(self.colleagues)]
            sentences = [
                "Can you pick this up please?",
                "FYI – see below.",
                "Could you check stock for this and let me know?",
            ]
            sentences = rng.sample(sentences, 1)
        vals = self.values("en", company)
        if rng.random() < 0.15 and not self.lean:
            # Outlook's "Forward as attachment": the original message travels whole.
            original = (
                f"From: {prev.sender.address}\nTo: {OWNER}\nSubject: {encode_words(prev.subject)}\nDate: {rfc_date(prev.when)}\nMessage-ID: {prev.message_id}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n".encode()
                + prev.text.encode()
            )
            body, sig = self.letter(self.anna, to[0], "en", self.paragraphs("en", sentences, vals))
            text, inner = self.render_body(self.anna, body, sig, None, False, "en", None)
            self.post("customer", self.anna, to, [], self.reply_subject(self.anna, thread.subject, True), when,
                      text, inner, thread=thread, attached_message=original)  # fmt: skip
            return
        self.compose(thread, self.anna, to, [], when, "en", sentences, vals, kind="customer",
                     reply_to=prev, forward=True, attachments=prev.attachments)  # fmt: skip

    def auto_reply(self, original: Sent, person: Person) -> None:
        when = original.when + timedelta(seconds=self.rng.randint(3, 30))
        first = person.first
        text = (f"Thank you for your email. I am out of the office until {self.rng.choice(DAYS['en'])} "
                f"with limited access to email. For anything urgent please contact "
                f"{person.company.people[0].address if person.company else 'me by phone'}.\n\n{first}\n")  # fmt: skip
        inner = f"<div><p>{esc(text)}</p></div>"
        self.post(
            "bulk", person, [self.anna], [], f"Automatic reply: {original.subject}", when, text, inner,
            extra=["Auto-Submitted: auto-replied", "X-Auto-Response-Suppress: All",
                   "X-MS-Exchange-Inbox-Rules-Loop: " + person.address],
        )  # fmt: skip

    INTERNAL_SUBJECTS = (
        "Stock report – week {week}", "{company2} account", "Holiday cover", "Van booking for {day}",
        "Lunch on Friday?", "Credit note for {company2}", "Price list update", "Warehouse rota",
        "Team meeting notes", "Samples for {company2}",
    )  # fmt: skip
    INTERNAL_LINES = (
        "Can you check we have enough {product} for the {company2} order on {day}?",
        "Stock report attached – we're low on {product} and {product2}.",
        "I'm off on {day}; Emma is covering my inbox.",
        "{company2} have asked for a credit note on {inv}; can you approve?",
        "The van is booked for {day} morning for the {city} run.",
        "Who's in for lunch on Friday?",
        "Updated price list attached; please use this from {month}.",
        "Notes from this morning's meeting are below.",
        "Can you give {company2} a call? They've been chasing.",
        "Approved – go ahead.",
        "Thanks, will do.",
        "Done – it's on the system now.",
    )  # fmt: skip

    def internal_thread(self) -> None:
        rng = self.rng
        people = [self.anna, *rng.sample(self.colleagues, rng.randint(1, 2))]
        vals = self.values("en", None)
        vals["week"] = str(rng.randint(1, 52))
        base = rng.choice(self.INTERNAL_SUBJECTS).format_map(vals)
        thread = Thread("internal", base, "en")
        n = min(6, 1 + int(rng.expovariate(1 / 1.2)))
        when = self.working_time(self.advance(n), self.london)
        prev: Sent | None = None
        sender = rng.choice(people)
        for i in range(n):
            if self.full:
                return
            others = [p for p in people if p is not sender]
            to, cc = others[:1], others[1:]
            atts: list[Attachment] = []
            if not self.lean and i == 0 and rng.random() < 0.3:
                atts = [self.attachment("xlsx", f"Stock report week {vals['week']}.xlsx")]
            sentences = rng.sample(self.INTERNAL_LINES, rng.randint(1, 3))
            prev = self.compose(thread, sender, to, cc, when, "en", sentences, vals, kind="internal",
                                reply_to=prev, attachments=atts)  # fmt: skip
            sender = rng.choice(others)
            when = self.later(when, self.london, 1.5)

    NEWSLETTERS = (
        ("Packaging Insider", "news@packaging-insider.co.uk", "mailchimp"),
        ("Catering Trade Weekly", "newsletter@cateringtradeweekly.com", "sendgrid"),
        ("EcoCup Wholesale", "offers@ecocup-wholesale.com", "mailchimp"),
        ("Hospitality Buyer", "digest@hospitality-buyer.com", "ses"),
        ("Leeds Business Events", "updates@leedsbiz-events.co.uk", "mailgun"),
        ("Cleanline Trade Supplies", "marketing@cleanline-trade.de", "sendgrid"),
    )  # fmt: skip
    NOTIFICATIONS = (
        ("SwiftParcel", "noreply@track.swiftparcel-couriers.com", "Your parcel {so} has been delivered"),
        ("Xentro Books", "no-reply@notifications.xentro-books.com", "Invoice {inv} has been paid"),
        ("Barclay & Hale Business", "alerts@secure.barclayhale-bank.co.uk", "Your statement is ready"),
        ("TeamDesk", "notifications@teamdesk-app.io", "Your weekly summary"),
        ("ReviewHub", "noreply@reviewhub-mail.com", "New 5-star review for Northwind Supplies"),
        ("Fleetwise", "donotreply@fleetwise-telematics.com", "Vehicle report: {day}"),
    )  # fmt: skip
    HEADLINES = (
        "Plastic packaging tax: what changes in April", "Five ways cafés are cutting waste",
        "Paper cup recycling: the new rules explained", "Why wholesale prices are finally easing",
        "Meet the bakery that went fully compostable", "Webinar: selling to schools and councils",
        "Energy costs: a survival guide for hospitality", "New: the 2026 buyers' guide is out",
        "Trade show season – our pick of the stands", "Spring offers on cleaning essentials",
    )  # fmt: skip

    def bulk(self) -> None:
        rng = self.rng
        when = self.advance(1)
        if rng.random() < 0.55:
            self.newsletter(when)
        else:
            self.notification(when)

    def newsletter(self, when: datetime) -> None:
        rng = self.rng
        brand, address, esp = rng.choice(self.NEWSLETTERS)
        domain = address.rpartition("@")[2]
        sender = Person(brand, address, "en", "web", None)
        when = when.astimezone(self.london).replace(
            hour=rng.choice([6, 7, 10, 14]), minute=rng.randint(0, 59)
        )
        uid, lid, cid = self.hex(25), self.hex(10), self.hex(10)
        unsubscribe = f"https://{domain.split('.')[0]}.us21.list-manage.com/unsubscribe?u={uid}&id={lid}&e={self.hex(10)}&c={cid}"
        extra = [
            f"List-Unsubscribe: <{unsubscribe}>,\n <mailto:unsubscribe-{self.hex(20)}@{domain}?subject=unsubscribe>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            f"Reply-To: {brand} <hello@{domain}>",
        ]
        if esp == "mailchimp":
            extra += [f"X-Mailer: Mailchimp Mailer - **CID{cid}{self.hex(10)}**", f"X-Campaign: mailchimp{uid}.{cid}",
                      f"X-campaignid: mailchimp{uid}.{cid}", f"X-MC-User: {uid}", f"Feedback-ID: 123456:123456.{lid}:us21:mc",
                      f"List-ID: {brand} <{uid}.{lid}.list-id.mcsv.net>", "Precedence: bulk"]  # fmt: skip
        elif esp == "sendgrid":
            extra += [
                f"X-SG-EID:\n =?us-ascii?Q?{self.noise(60)}?=",
                f"X-SG-ID: {self.noise(40)}",
                f"X-Entity-ID: {self.noise(24)}",
            ]
        elif esp == "ses":
            extra += [f"X-SES-Outgoing: 2026.01.{rng.randint(10, 28)}-54.240.{rng.randint(1, 9)}.{rng.randint(1, 250)}",
                      f"Feedback-ID: ::1.eu-west-1.{self.noise(40)}=:AmazonSES", "Precedence: bulk"]  # fmt: skip
        else:
            extra += ["X-Mailgun-Tag: newsletter", f"X-Mailgun-Sid: {self.noise(60)}", "Precedence: bulk",
                      f"List-Id: <newsletter.{domain}>"]  # fmt: skip
        title = rng.choice(self.HEADLINES)
        blocks = []
        texts = [f"{brand}\n{title}\n"]
        for i in range(rng.randint(5, 12)):
            headline = rng.choice(self.HEADLINES)
            link = f"https://{domain.split('.')[0]}.us21.list-manage.com/track/click?u={uid}&id={self.hex(10)}&e={self.hex(10)}&a={i}"
            summary = " ".join(rng.sample(EN_GENERIC, 3)).format_map(self.values("en", None))
            blocks.append(
                '<table border="0" cellpadding="0" cellspacing="0" width="100%" class="mcnCaptionBlock"><tbody class="mcnCaptionBlockOuter"><tr>'
                '<td class="mcnCaptionBlockInner" valign="top" style="padding:9px;">'
                f'<a href="{link}" target="_blank"><img alt="" src="https://mcusercontent.com/{uid}/images/{self.hex(32)}.jpg" width="264" style="max-width:600px;border:0;height:auto;outline:none;text-decoration:none;vertical-align:bottom;" class="mcnImage"></a>'
                f'<h2 style="display:block;margin:0;padding:0;color:#202020;font-family:Helvetica;font-size:22px;font-style:normal;font-weight:bold;line-height:125%;letter-spacing:normal;text-align:left;">{esc(headline)}</h2>'
                f'<p style="margin:10px 0;padding:0;color:#202020;font-family:Helvetica;font-size:16px;line-height:150%;text-align:left;">{esc(summary)}</p>'
                f'<a class="mcnButton" title="Read more" href="{link}" target="_blank" style="font-weight:bold;letter-spacing:normal;line-height:100%;text-align:center;text-decoration:none;color:#FFFFFF;">Read more</a>'
                "</td></tr></tbody></table>\n"
            )
            texts.append(f"** {headline}\n{summary}\nRead more ({link})\n")
        doc = (
            '<!doctype html>\n<html xmlns="http://www.w3.org/1999/xhtml" xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office">\n<head>\n'
            '<meta charset="UTF-8"><meta http-equiv="X-UA-Compatible" content="IE=edge"><meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{esc(title)}</title>\n<style type="text/css">p{{margin:10px 0;padding:0;}}table{{border-collapse:collapse;}}h1,h2,h3,h4,h5,h6{{display:block;margin:0;padding:0;}}img,a img{{border:0;height:auto;outline:none;text-decoration:none;}}body,#bodyTable,#bodyCell{{height:100%;margin:0;padding:0;width:100%;}}.mcnPreviewText{{display:none !important;}}#outlook a{{padding:0;}}img{{-ms-interpolation-mode:bicubic;}}table{{mso-table-lspace:0pt;mso-table-rspace:0pt;}}.ReadMsgBody{{width:100%;}}.ExternalClass{{width:100%;}}p,a,li,td,blockquote{{mso-line-height-rule:exactly;}}a[href^=tel],a[href^=sms]{{color:inherit;cursor:default;text-decoration:none;}}@media only screen and (max-width: 480px){{.mcnImage{{width:100% !important;}}.mcnCaptionBlockInner{{padding:18px !important;}}}}</style>\n'
            '</head>\n<body><center><table align="center" border="0" cellpadding="0" cellspacing="0" height="100%" width="100%" id="bodyTable"><tr><td align="center" valign="top" id="bodyCell">\n'
            + "".join(blocks)
            + f'<p style="font-size:12px;color:#656565">You are receiving this email because you opted in at our website.<br><a href="{unsubscribe}">unsubscribe from this list</a> | <a href="{unsubscribe.replace("unsubscribe", "profile")}">update subscription preferences</a></p>\n'
            "</td></tr></table></center></body>\n</html>\n"
        )
        text = "\n".join(texts) + f"\nUnsubscribe: {unsubscribe}\n"
        self.post(
            "bulk",
            sender,
            [self.anna],
            [],
            f"{brand}: {title}",
            when,
            text,
            None,
            html_doc=doc,
            extra=extra,
        )

    def notification(self, when: datetime) -> None:
        rng = self.rng
        brand, address, subject = rng.choice(self.NOTIFICATIONS)
        vals = self.values("en", None)
        sender = Person(brand, address, "en", "web", None)
        subject = subject.format_map(vals)
        link = f"https://{address.rpartition('@')[2]}/v/{self.hex(32)}?utm_source=email&utm_medium=notification"
        text = f"{subject}\n\nHello Anna,\n\n{subject}. View the details here: {link}\n\nThis is an automated message, please do not reply.\n"
        doc = (
            '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"><style>body{font-family:Arial,sans-serif;color:#333}.btn{background:#0b5fff;color:#fff;padding:10px 18px;border-radius:4px;text-decoration:none}</style></head><body>'
            f'<table width="600" align="center"><tr><td><h1 style="font-size:20px">{esc(subject)}</h1><p>Hello Anna,</p><p>{esc(subject)}.</p>'
            f'<p><a class="btn" href="{link}">View details</a></p><p style="font-size:11px;color:#999">This is an automated message, please do not reply.</p></td></tr></table>'
            f'<img src="https://{address.rpartition("@")[2]}/open/{self.hex(40)}.gif" width="1" height="1" alt=""></body></html>'
        )
        extra = [
            "Auto-Submitted: auto-generated",
            "X-Auto-Response-Suppress: All",
            "Precedence: bulk" if rng.random() < 0.5 else "X-Priority: 3",
        ]
        atts = (
            [self.attachment("pdf", f"Statement {vals['month']}.pdf")]
            if "statement" in subject and not self.lean
            else []
        )
        html_only = rng.random() < 0.4
        self.post("bulk", sender, [self.anna], [], subject, when, None if html_only else text, None,
                  html_doc=doc, extra=extra, attachments=atts)  # fmt: skip

    def ruled(self) -> None:
        """Mail the bench's extra rules act on: Anna's never-log list and blocked senders."""
        rng = self.rng
        when = self.working_time(self.advance(1), self.london)
        vals = self.values("en", None)
        r = rng.random()
        if r < 0.35:
            mark = Person("Mark Whitfield", NEVER_LOG[0], "en", "gmail", None)
            subject = rng.choice(
                ["Dinner tonight?", "Car MOT booked", "Kids' pick-up Thursday", "Holiday flights"]
            )
            thread = Thread("personal", subject, "en")
            first = self.compose(
                thread,
                mark,
                [self.anna],
                [],
                when,
                "en",
                rng.sample(EN_GENERIC, 2),
                vals,
                kind="ruled",
            )
            if rng.random() < 0.6 and not self.full:
                self.compose(thread, self.anna, [mark], [], self.later(when, self.london, 1), "en",
                             rng.sample(EN_GENERIC, 1), vals, kind="ruled", reply_to=first)  # fmt: skip
        elif r < 0.55:
            surgery = Person("Elm Tree Surgery", f"reception@{NEVER_LOG[1]}", "en", "web", None)
            text = f"Dear Anna,\n\nThis is a reminder of your appointment on {vals['day']} at 9:40.\n\nElm Tree Surgery\n"
            self.post(
                "ruled",
                surgery,
                [self.anna],
                [],
                "Appointment reminder",
                when,
                text,
                f"<p>{esc(text)}</p>",
            )
        elif r < 0.8:
            sam = Person("Sam Carter", f"sam@{BLOCK_DOMAINS[0]}", "en", "gmail", None)
            thread = Thread("spam", "Quick question about Northwind's growth", "en")
            text = ["I noticed Northwind Supplies is growing fast – congratulations!",
                    "We help wholesalers book 20+ qualified meetings a month. Worth a 15-minute call this week?"]  # fmt: skip
            self.compose(thread, sam, [self.anna], [], when, "en", text, vals, kind="ruled")
        else:
            jo = Person("Jo Harper", BLOCK_ADDRESSES[0], "en", "outlook", None)
            thread = Thread("spam", "Sales roles – are you hiring?", "en")
            text = ["We have several experienced field sales candidates available immediately.",
                    "Would you be open to a quick chat about your hiring plans?"]  # fmt: skip
            self.compose(thread, jo, [self.anna], [], when, "en", text, vals, kind="ruled")

    # -- the run ------------------------------------------------------------------------------------

    def run(self) -> CorpusStats:
        started = time.monotonic()
        for folder in (self.out, self.out / "Sent"):
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
        episodes: dict[str, Callable[[], None]] = {
            "customer": self.customer_thread,
            "bulk": self.bulk,
            "internal": self.internal_thread,
            "ruled": self.ruled,
        }
        while not self.full:
            written = self.stats.messages + 1
            # the kind furthest below its share goes next (with a little noise)
            kind = max(
                SHARES,
                key=lambda k: SHARES[k] * written - self.stats.kinds[k] + self.rng.random() * 2,
            )
            episodes[kind]()
        self.stats.seconds = time.monotonic() - started
        return self.stats


def generate(
    out_dir: Path,
    *,
    messages: int = 5000,
    seed: int = 1,
    now: datetime = DEFAULT_NOW,
    lean: bool = False,
    force: bool = False,
) -> CorpusStats:
    """Write the corpus into `out_dir` (which must be empty, or a corpus when `force`)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not force:
            raise FileExistsError(f"{out_dir} is not empty (use force=True / --force)")
        if not (out_dir / MANIFEST).exists() and not (out_dir / "cur").is_dir():
            raise FileExistsError(f"{out_dir} does not look like a corpus; not removing it")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = Corpus(out_dir, messages, seed, now, lean).run()
    manifest = {
        "version": VERSION,
        "messages": messages,
        "seed": seed,
        "now": now.isoformat(),
        "lean": lean,
        "owner": OWNER,
        **stats.summary(),
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return stats


def read_manifest(out_dir: Path) -> dict[str, object] | None:
    try:
        data = json.loads((Path(out_dir) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.corpus", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--now", default=DEFAULT_NOW.isoformat(), help="end of the mailbox's history"
    )
    parser.add_argument(
        "--lean", action="store_true", help="no attachments or logos, capped quotes"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing corpus")
    args = parser.parse_args(argv)
    now = datetime.fromisoformat(args.now)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    try:
        stats = generate(
            args.out_dir,
            messages=args.messages,
            seed=args.seed,
            now=now,
            lean=args.lean,
            force=args.force,
        )
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(stats.summary(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
