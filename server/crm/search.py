"""Search: one box over contacts, companies, deals and captured mail, on SQLite and PostgreSQL.

What a query means, on both backends. The text is cut into words (runs of letters and digits;
everything else separates); every word must occur in one document — a contact's name and
addresses, a company's name and domains, a deal's title, an activity's subject and text (a
note's body, another activity's snippet). In contacts, companies and deals every word matches as
the start of a word ("ann ber" finds Anna Berg). In mail only the last word does (the one the
person is still typing): the earlier ones match whole words, so "pallet thur" finds "pallet
pickup on Thursday" but "pall thursday" does not find "pallets on Thursday". Case and accents do
not matter ("jurg" finds Jürgen). A query that is one token without spaces ("clara@bright",
"bright") is also an address or domain prefix. One-letter words are dropped (a one-letter prefix
matches a good part of the index and costs more than it narrows), and mail is searched by words
of three letters or more; a query of only one-letter words is answered from the address prefix
alone.

Ranking: a name, title, subject, address or domain equal to the query comes first, then a name
that starts with the query's words ("Anna Berg" for "anna"), then one that starts with it at
all ("Annabel"), then the rest; within each, the full-text rank (contacts, companies, deals:
the backend's own, bm25 or ts_rank; mail: the share of the words its subject holds), then the
most recent.

What a viewer may find of mail is what they may see of it (`server.crm.viewer.visible_to`),
at the capture level of the mailboxes through which they see it (as `timeline.viewer_levels`
computes it): words in the text match only activities they may see at level full, words in the
subject those at level subject or full, and a metadata-level activity is never found by words.

The indexes are created by migration 0004 (see its docstring for the design); the two backends
below are the only code that knows them. Their quirks:
  * SQLite FTS5: the MATCH expression has its own syntax; each word goes in as a quoted string,
    with `*` where it is a prefix, so no operator, column filter or NEAR can come from the user.
    Entity kinds share one FTS table, in rowid ranges (kind code << 40). `rank` is the bm25
    configured by the migration (name weighs more than addresses).
  * PostgreSQL: the `to_tsquery` text is built from the same words, each a quoted lexeme, `:*`
    where it is a prefix, then folded by the database's own `rapport_search_fold`, so the query
    is folded exactly as the indexed text was (whatever lower() does under the database's
    locale). Expressions are written exactly as in the index definitions, or the planner does
    not use the index.
  * Mail matches are many (a common word is in a third of all mail), so both backends take the
    newest `MAIL_MATCH_CAP` textual matches first and rank only those, in Python, by their
    subjects. Visibility is checked on those, so a query matching more mail than the cap may
    miss older matches the viewer could see: they narrow it by typing more. What each backend
    can and cannot do fast (measured at a million emails, docs/benchmarks.md):
      - FTS5 hands out an exact word's matches newest first (highest activity id, i.e. the
        most recently captured) straight off its doclists, stopping at the cap. A prefix term of
        more than three letters (`"deliv"*`; `prefix='2 3'` indexes the shorter ones) makes it
        merge the doclists of every word with that prefix in full before the first match
        (20-25 ms for a word in half the mail): hence prefix matching for the last word only.
        bm25 is not used for mail: it counts each word's matches over the whole table (its
        IDF) before the first row, which costs as much again.
      - PostgreSQL matches against the stored `activities.search_doc` (migration 0010), whose
        statistics tell the planner how common each word is: for a common word it walks
        `ix_activities_occurred_at` backwards checking each row's stored vector and stops at
        the cap; for a rare one it reads the GIN index (a bitmap) and sorts the few matches.
        (Before 0010 the words were an expression index without statistics, and the only safe
        plan was the bitmap of every match: a heap fetch each, 0.5 s for a common word.) The
        bitmap is kept exact with a larger `work_mem` for the read: a lossy bitmap would
        recheck every row on the lossy pages.
    The subject-level rule and the ranking are applied to the candidates in Python, from their
    subjects: FTS5 cannot tell cheaply whether a prefix term matched in the subject (a column
    filter per candidate merges the prefix's doclists again each time).
  * Building the activities statement costs milliseconds of Python (visibility needs aliased
    subqueries), so it is built once per viewer and kept; only the words are bound per call.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, ClassVar, NamedTuple, Protocol

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    desc,
    exists,
    false,
    func,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased, selectinload

from server.crm.errors import DomainError
from server.crm.timeline import ActivityView, shown
from server.crm.viewer import Viewer, visible_to
from server.mail_ingest.items import CAPTURE_LEVELS
from server.models import (
    Activity,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    Deal,
    MailboxLink,
    MailboxObservation,
)

TYPES = ("contact", "company", "deal", "activity")
DEFAULT_LIMIT = 20
MAX_LIMIT = 50
MAX_QUERY_CHARS = 500
MAX_WORDS = 8
MAX_WORD_CHARS = 64  # a longer word is cut: its prefix still finds what it would have
MAX_ADDRESS_CHARS = 320
MIN_MAIL_WORD = 3
MAIL_MATCH_CAP = 500
# Enough for an exact bitmap of every row of a table many times a million activities (the
# default 4MB holds ~70,000 heap pages, the size of the million-email benchmark's table).
PG_MAIL_WORK_MEM = "64MB"
STATEMENTS_KEPT = 256  # viewers whose mail statement is kept built
SUBJECTS_KEPT = 8192  # subjects whose words are kept cut, for ranking mail

# Must agree with migrations/versions/0004_search.py (and 0010_search_document.py).
ENTITY_FTS = "search_fts"
ACTIVITY_FTS = "search_activities_fts"
KIND_SPAN = 1 << 40
ENTITY_BASES = {"contact": 1 * KIND_SPAN, "company": 2 * KIND_SPAN, "deal": 3 * KIND_SPAN}
SEARCHED_KINDS = "activities.kind IN ('email', 'meeting', 'note')"
# PostgreSQL: mail's words as stored by migration 0010 (a generated column the models do not map).
PG_ACTIVITY_WORDS: ColumnElement[Any] = literal_column("activities.search_doc")

_WORD = re.compile(r"[^\W_]+")
_HIGHEST_CHARACTER = "\U0010ffff"  # sorts after any character, byte-wise as in code points


# -- the query ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchText:
    """A query cut into what the backends need."""

    words: tuple[str, ...]  # unaccented, case kept, for the full-text indexes
    prefix: str | None  # the whole query, lower-cased, when it can start an address or domain
    key: str  # folded words joined by spaces: what "equal to" and "starts with" compare

    @property
    def empty(self) -> bool:
        return not self.words and self.prefix is None


def unaccented(value: str) -> str:
    """Compatibility forms unfolded and accents dropped (NFKD, then no combining marks), as
    the indexes of both backends do it: "Jürgen" → "Jurgen", "ﬁ" → "fi"."""
    if value.isascii():  # nothing to decompose: the common case, ten times faster
        return value
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def fold(value: str) -> str:
    """Case and accents away ("Jürgen" → "jurgen")."""
    return unaccented(value).casefold()


def comparable(value: str) -> str:
    """Folded words joined by single spaces: "Brightline-Dental Ltd." → "brightline dental ltd"."""
    return " ".join(_WORD.findall(fold(value)))


def parse_query(raw: str) -> SearchText:
    """The words and the address prefix of what someone typed. Too long a query is refused (400);
    anything else, however odd, is only ever data (never query syntax)."""
    if len(raw) > MAX_QUERY_CHARS:
        raise DomainError(
            f"the search text is {len(raw)} characters long; at most {MAX_QUERY_CHARS}",
            field="q",
        )
    text_ = unicodedata.normalize("NFC", raw).strip()
    # Words are cut from the unaccented text, so what the backends receive is already in the
    # form they index (SQL's own fold, applied again to the PostgreSQL query, changes nothing
    # but case, and cannot turn a letter into a quote or a colon).
    words = [w[:MAX_WORD_CHARS] for w in _WORD.findall(unaccented(text_)) if len(w) > 1]
    candidate = text_.strip("<>").lower()
    prefix = (
        candidate
        if candidate
        and len(candidate) <= MAX_ADDRESS_CHARS
        and candidate.isprintable()
        and not any(c.isspace() for c in candidate)
        else None
    )
    return SearchText(tuple(dict.fromkeys(words))[:MAX_WORDS], prefix, comparable(text_))


def fts5_match(words: Sequence[str], *, prefix_last_only: bool = False) -> str:
    """An FTS5 MATCH expression: every word as a quoted string (a `"` inside is doubled, the FTS5
    escape) and a prefix (`*`) — with `prefix_last_only`, the last word only, the earlier ones
    whole words."""
    quoted = ['"' + w.replace('"', '""') + '"' for w in words]
    return " AND ".join(
        q + _prefix_mark("*", i, quoted, prefix_last_only) for i, q in enumerate(quoted)
    )


def tsquery_text(words: Sequence[str], *, prefix_last_only: bool = False) -> str:
    """A `to_tsquery` text: every word as a quoted lexeme, all required, each with a prefix mark
    (`:*`) — with `prefix_last_only`, the last word only."""
    quoted = ["'" + w.replace("\\", "\\\\").replace("'", "''") + "'" for w in words]
    return " & ".join(
        q + _prefix_mark(":*", i, quoted, prefix_last_only) for i, q in enumerate(quoted)
    )


def _prefix_mark(mark: str, index: int, words: Sequence[str], last_only: bool) -> str:
    return mark if index == len(words) - 1 or not last_only else ""


def subject_share(subject: str, words: Sequence[str]) -> float:
    """The share of a mail query's words (as `parse_query` cut them) that this subject holds, as
    the mail search means them: the last word as the start of a word, the others whole. Folded as
    both backends index (accents away, lower-cased)."""
    held = _subject_words(subject)
    if not words or not held:
        return 0.0
    *earlier, last = (w.lower() for w in words)
    found = sum(w in held for w in earlier) + any(h.startswith(last) for h in held)
    return found / len(words)


@lru_cache(maxsize=SUBJECTS_KEPT)
def _subject_words(subject: str) -> frozenset[str]:
    # Kept: a search ranks hundreds of subjects, and threads repeat them ("Re: ...").
    return frozenset(_WORD.findall(unaccented(subject).lower()))


def parse_types(raw: str | Collection[str] | None) -> tuple[str, ...]:
    """ "contact,deal" → ("contact", "deal"); nothing → every type."""
    if raw is None:
        return TYPES
    given = raw.split(",") if isinstance(raw, str) else list(raw)
    wanted = {t.strip().lower() for t in given if t.strip()}
    unknown = sorted(wanted - set(TYPES))
    if unknown:
        raise DomainError(
            f"unknown type {', '.join(repr(u[:40]) for u in unknown)}; use {', '.join(TYPES)}",
            field="types",
        )
    return tuple(t for t in TYPES if t in wanted) or TYPES


# -- what a search finds --------------------------------------------------------------------------


@dataclass(frozen=True)
class CompanyName:
    id: int
    name: str


@dataclass(frozen=True)
class ContactFound:
    """What a hit shows of a contact: read as plain values, never as ORM rows (a search loads
    up to thirty candidates of each kind and shows a few)."""

    name: str
    email: str | None  # the primary address


@dataclass(frozen=True)
class CompanyFound:
    name: str
    domains: tuple[str, ...]


@dataclass(frozen=True)
class SearchHit:
    """One result as a search box shows it; `item` is what the caller renders in full (for an
    activity, the activity as the viewer may see it)."""

    type: str
    id: int
    title: str
    subtitle: str
    snippet: str | None
    when: datetime | None
    item: ContactFound | CompanyFound | Deal | ActivityView
    company: CompanyName | None = None  # a contact's or a deal's


SortKey = tuple[int, float, float, int, int]


@dataclass(frozen=True)
class _Ranked:
    """A candidate with its place in the list; an activity is presented (cut to the viewer's
    level, participants loaded) only if it makes the list."""

    key: SortKey
    hit: SearchHit | None = None
    activity_id: int | None = None


@dataclass(frozen=True)
class _Match:
    id: int
    score: float  # higher is better; comparable within one backend


class _MailMatch(NamedTuple):  # a tuple: hundreds are made per search
    """One of the newest activities whose subject and text hold the words, and how far this
    viewer may see it."""

    id: int
    subject: str
    occurred_at: datetime
    full: bool | None  # True: found by any word; False: by words of its subject only; None: not


class _Backend(Protocol):
    def entities(self, session: Session, kind: str, words: Sequence[str], n: int) -> list[_Match]:
        """Contacts, companies or deals whose document holds every word."""

    def activities(
        self, session: Session, viewer: Viewer, words: Sequence[str]
    ) -> list[_MailMatch]:
        """The newest `MAIL_MATCH_CAP` activities whose document holds the words (the last as a
        prefix) that are on this viewer's timeline."""

    def starting_with(
        self,
        owner: InstrumentedAttribute[int],
        column: InstrumentedAttribute[str],
        prefix: str,
        n: int,
    ) -> Select[int]:
        """The first `n` owners whose `column` starts with `prefix`, read as a range of an index
        in that index's order (no other plan walks the index from its start)."""


def shown_at_least(viewer: Viewer, level: str) -> ColumnElement[bool]:
    """The activity may be shown to this viewer at `level` or more — the SQL form of
    `timeline.viewer_levels`: its own content goes that far, and it was not captured (a note) or
    was seen by a mailbox the viewer may see through with a capture level that far."""
    allowed = list(CAPTURE_LEVELS[CAPTURE_LEVELS.index(level) :])
    observation = aliased(MailboxObservation)
    link = aliased(MailboxLink)
    through_link = exists(
        select(1)
        .select_from(observation)
        .join(link, link.id == observation.link_id)
        .where(
            observation.activity_id == Activity.id,
            link.capture_level.in_(allowed),
            or_(
                link.owner_user_id == viewer.id,
                and_(link.visibility == "team", Activity.is_private.is_(False)),
            ),
        )
    )
    captured = exists(select(1).where(MailboxObservation.activity_id == Activity.id))
    return and_(Activity.content_level.in_(allowed), or_(~captured, through_link))


def _found_by_words(viewer: Viewer) -> ColumnElement[bool | None]:
    """How far the words may find an activity on the viewer's timeline: anywhere at level full
    (true), in the subject at level subject (false), not at all below (null)."""
    return case(
        (shown_at_least(viewer, "full"), true()),
        (shown_at_least(viewer, "subject"), false()),
        else_=null(),
    )


class _Sqlite:
    """FTS5 tables `search_fts` (contacts, companies, deals) and `search_activities_fts`."""

    def entities(self, session: Session, kind: str, words: Sequence[str], n: int) -> list[_Match]:
        base = ENTITY_BASES[kind]
        rows = session.execute(
            text(
                f"SELECT f.rowid - :base AS id, f.rank AS rank FROM {ENTITY_FTS} AS f "  # noqa: S608 - constants only
                f"WHERE f.{ENTITY_FTS} MATCH :match AND f.rowid BETWEEN :low AND :high "
                "ORDER BY f.rank LIMIT :n"
            ),
            {
                "base": base,
                "match": fts5_match(words),
                "low": base,
                "high": base + KIND_SPAN - 1,
                "n": n,
            },
        )
        return [_Match(int(row.id), -float(row.rank)) for row in rows]

    @staticmethod
    @lru_cache(maxsize=STATEMENTS_KEPT)
    def _activity_statement(viewer: Viewer) -> Select[int, str, datetime, bool | None]:
        # FTS5 walks its doclists by rowid, so the newest matches cost what the cap costs (but for
        # a prefix term, see the module docstring).
        newest = (
            text(
                f"SELECT m.rowid AS id FROM {ACTIVITY_FTS} AS m "  # noqa: S608 - constants only
                f"WHERE m.{ACTIVITY_FTS} MATCH :match ORDER BY m.rowid DESC LIMIT :cap"
            )
            .columns(id=Integer)
            .subquery("m")
        )
        return (
            select(
                Activity.id,
                Activity.subject,
                Activity.occurred_at,
                _found_by_words(viewer).label("full"),
            )
            .join_from(newest, Activity, Activity.id == newest.c.id)
            .where(visible_to(viewer))
        )

    def activities(
        self, session: Session, viewer: Viewer, words: Sequence[str]
    ) -> list[_MailMatch]:
        rows = session.execute(
            self._activity_statement(viewer),
            {"match": fts5_match(words, prefix_last_only=True), "cap": MAIL_MATCH_CAP},
        )
        return [_MailMatch._make(row) for row in rows]

    def starting_with(
        self,
        owner: InstrumentedAttribute[int],
        column: InstrumentedAttribute[str],
        prefix: str,
        n: int,
    ) -> Select[int]:
        # BINARY collation compares UTF-8 bytes, so the unique index on the column serves a range.
        return (
            select(owner)
            .where(column >= prefix, column < prefix + _HIGHEST_CHARACTER)
            .order_by(column)
            .limit(n)
        )


def _pg_document(expression: str) -> ColumnElement[str]:
    """The indexed tsvector of a column expression, spelled as in the index definition."""
    return literal_column(f"to_tsvector('simple', rapport_search_words({expression}))")


def _pg_query() -> ColumnElement[str]:
    """The bound `tsquery` text, folded by the database as the indexed text was."""
    folded = func.rapport_search_fold(bindparam("tsquery", type_=String))
    return func.to_tsquery(literal_column("'simple'"), folded)


class _Postgres:
    """GIN expression indexes and `text_pattern_ops` B-trees (migration 0004)."""

    DOCUMENTS: ClassVar[dict[str, tuple[tuple[InstrumentedAttribute[int], str], ...]]] = {
        "contact": ((Contact.id, "contacts.name"), (ContactEmail.contact_id, "contact_emails.address")),
        "company": ((Company.id, "companies.name"), (CompanyDomain.company_id, "company_domains.domain")),
        "deal": ((Deal.id, "deals.title"),),
    }  # fmt: skip

    def entities(self, session: Session, kind: str, words: Sequence[str], n: int) -> list[_Match]:
        found: list[_Match] = []
        for owner, column in self.DOCUMENTS[kind]:
            rows = session.execute(
                self._entity_statement(owner, column), {"tsquery": tsquery_text(words), "n": n}
            )
            found += [_Match(int(row.id), float(row.score)) for row in rows]
        return found

    @staticmethod
    @lru_cache(maxsize=8)
    def _entity_statement(
        owner: InstrumentedAttribute[int], column: str
    ) -> Select[int, float | Decimal]:
        """Built once (a statement costs more to build than to run at these sizes)."""
        # The shorter the text that holds the words, the closer the match (as bm25 ranks on
        # SQLite). Not ts_rank: it parses the text again for every match (9 ms for the 1,350
        # addresses starting with 'jack' in 50,000), and without length normalisation gives
        # every one-word match the same score anyway.
        score = func.max(1.0 / (1 + func.length(literal_column(column)))).label("score")
        return (
            select(owner.label("id"), score)
            .where(_pg_document(column).op("@@")(_pg_query()))
            .group_by(owner)
            .order_by(desc("score"), owner)
            .limit(bindparam("n", type_=Integer))
        )

    @staticmethod
    @lru_cache(maxsize=STATEMENTS_KEPT)
    def _activity_statement(viewer: Viewer) -> Select[int, str, datetime, bool | None]:
        newest = (
            select(Activity.id)
            .where(
                PG_ACTIVITY_WORDS.op("@@")(_pg_query()),
                # The partial index's own predicate, so the planner may use that index.
                text(SEARCHED_KINDS),
                Activity.unlogged_at.is_(None),
                Activity.content_removed_reason.is_(None),
            )
            # No fence: the planner knows from the column's statistics whether to walk the
            # date index backwards (a common word) or read the GIN index (a rare one).
            .order_by(Activity.occurred_at.desc())
            .limit(bindparam("cap"))
            .subquery("newest")
        )
        return (
            select(
                Activity.id,
                Activity.subject,
                Activity.occurred_at,
                _found_by_words(viewer).label("full"),
            )
            .join(newest, newest.c.id == Activity.id)
            .where(visible_to(viewer))
        )

    def activities(
        self, session: Session, viewer: Viewer, words: Sequence[str]
    ) -> list[_MailMatch]:
        # The bitmap of a word in most mail must stay exact (module docstring); SET LOCAL lasts
        # until the end of this transaction, the caller's read.
        session.execute(text(f"SET LOCAL work_mem = '{PG_MAIL_WORK_MEM}'"))
        rows = session.execute(
            self._activity_statement(viewer),
            {"tsquery": tsquery_text(words, prefix_last_only=True), "cap": MAIL_MATCH_CAP},
        )
        return [_MailMatch._make(row) for row in rows]

    def starting_with(
        self,
        owner: InstrumentedAttribute[int],
        column: InstrumentedAttribute[str],
        prefix: str,
        n: int,
    ) -> Select[int]:
        # text_pattern_ops compares bytes whatever the collation; `<`/`>=` under a linguistic
        # collation would neither use that index nor mean "starts with". Ordered by the same
        # operator class: ordered by the column's collation, the planner walks the unique index
        # from its start and filters (16,844 rows read for 'jack' in 50,000 addresses).
        name = f"{column.table.name}.{column.name}"
        return (
            select(owner)
            .where(
                column.op("~>=~", is_comparison=True)(prefix),
                column.op("~<~", is_comparison=True)(prefix + _HIGHEST_CHARACTER),
            )
            .order_by(text(f"{name} USING ~<~"))
            .limit(n)
        )


def _backend(session: Session) -> _Backend:
    return _Sqlite() if session.get_bind().dialect.name == "sqlite" else _Postgres()


# -- the service ----------------------------------------------------------------------------------


def search(
    session: Session,
    viewer: Viewer,
    q: str,
    *,
    types: Collection[str] = TYPES,
    limit: int = DEFAULT_LIMIT,
) -> list[SearchHit]:
    """The best `limit` hits for `q` among `types`, as this viewer may see them."""
    wanted = parse_types(types)
    if not 1 <= limit <= MAX_LIMIT:
        raise DomainError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    query = parse_query(q)
    if query.empty:
        return []
    backend = _backend(session)
    n = limit + 10  # candidates per kind: room for an exact match the text rank put lower
    ranked: list[_Ranked] = []
    if "contact" in wanted:
        ranked += _contacts(session, backend, query, n)
    if "company" in wanted:
        ranked += _companies(session, backend, query, n)
    if "deal" in wanted:
        ranked += _deals(session, backend, query, n)
    if "activity" in wanted:
        ranked += _activities(session, viewer, backend, query, n)
    ranked.sort(key=lambda r: r.key)
    chosen = ranked[:limit]
    ids = [r.activity_id for r in chosen if r.activity_id is not None]
    views = {v.id: v for v in shown(session, viewer, ids)}
    hits = []
    for r in chosen:
        if r.hit is not None:
            hits.append(r.hit)
        elif r.activity_id is not None:
            hits.append(_activity_hit(views[r.activity_id]))
    return hits


def _tier(query: SearchText, names: Sequence[str], addresses: Sequence[str] = ()) -> int:
    """0: a name or address equals the query; 1: a name starts with its words ("anna" → "Anna
    Berg"); 2: a name or address starts with it ("anna" → "Annabel"); 3: the words match."""
    keys = [comparable(n) for n in names if n]
    key, prefix = query.key, query.prefix
    if (key and key in keys) or (prefix and prefix in addresses):
        return 0
    if key and any(k.startswith(key + " ") for k in keys):
        return 1
    if (key and any(k.startswith(key) for k in keys)) or (
        prefix and any(a.startswith(prefix) for a in addresses)
    ):
        return 2
    return 3


def _sort_key(tier: int, score: float, when: datetime | None, kind: str, ident: int) -> SortKey:
    recency = when.timestamp() if when is not None else float("-inf")
    return (tier, -score, -recency, TYPES.index(kind), ident)


def _scores(matches: Sequence[_Match]) -> dict[int, float]:
    scores: dict[int, float] = {}
    for m in matches:
        scores[m.id] = max(scores.get(m.id, m.score), m.score)
    return scores


def _with_prefix(session: Session, scores: dict[int, float], owners: Select[int]) -> None:
    """Add the owners whose address (or domain) starts with the query; their tier ranks them."""
    for ident in session.scalars(owners):
        scores.setdefault(ident, 0.0)


def _contacts(session: Session, backend: _Backend, query: SearchText, n: int) -> list[_Ranked]:
    scores = _scores(backend.entities(session, "contact", query.words, n) if query.words else [])
    if query.prefix:
        owners = backend.starting_with(
            ContactEmail.contact_id, ContactEmail.address, query.prefix, n
        )
        _with_prefix(session, scores, owners)
    if not scores:
        return []
    ids = list(scores)
    addresses: dict[int, list[str]] = {}
    for contact_id, address in session.execute(
        select(ContactEmail.contact_id, ContactEmail.address)
        .where(ContactEmail.contact_id.in_(ids))
        .order_by(ContactEmail.contact_id, ContactEmail.is_primary.desc(), ContactEmail.id)
    ):
        addresses.setdefault(contact_id, []).append(address)
    rows = session.execute(
        select(
            Contact.id,
            Contact.name,
            Contact.last_contacted_at,
            Contact.updated_at,
            Company.id.label("company_id"),
            Company.name.label("company_name"),
        )
        .outerjoin(Company, Company.id == Contact.company_id)
        .where(Contact.id.in_(ids))
    )
    ranked = []
    for row in rows:
        known = addresses.get(row.id, [])
        primary = known[0] if known else None
        company = CompanyName(row.company_id, row.company_name) if row.company_id else None
        hit = SearchHit(
            type="contact",
            id=row.id,
            title=row.name or primary or f"Contact {row.id}",
            subtitle=" · ".join(
                x for x in (company and company.name, primary if row.name else None) if x
            ),
            snippet=None,
            when=row.last_contacted_at or row.updated_at,
            item=ContactFound(row.name, primary),
            company=company,
        )
        tier = _tier(query, [row.name], known)
        ranked.append(_Ranked(_sort_key(tier, scores[row.id], hit.when, "contact", row.id), hit))
    return ranked


def _companies(session: Session, backend: _Backend, query: SearchText, n: int) -> list[_Ranked]:
    scores = _scores(backend.entities(session, "company", query.words, n) if query.words else [])
    if query.prefix:
        owners = backend.starting_with(
            CompanyDomain.company_id, CompanyDomain.domain, query.prefix, n
        )
        _with_prefix(session, scores, owners)
    if not scores:
        return []
    ids = list(scores)
    domains: dict[int, list[str]] = {}
    for company_id, domain in session.execute(
        select(CompanyDomain.company_id, CompanyDomain.domain)
        .where(CompanyDomain.company_id.in_(ids))
        .order_by(CompanyDomain.company_id, CompanyDomain.id)
    ):
        domains.setdefault(company_id, []).append(domain)
    rows = session.execute(
        select(Company.id, Company.name, Company.updated_at).where(Company.id.in_(ids))
    )
    ranked = []
    for row in rows:
        known = domains.get(row.id, [])
        hit = SearchHit(
            type="company",
            id=row.id,
            title=row.name,
            subtitle=known[0] if known else "",
            snippet=None,
            when=row.updated_at,
            item=CompanyFound(row.name, tuple(known)),
        )
        tier = _tier(query, [row.name], known)
        ranked.append(_Ranked(_sort_key(tier, scores[row.id], hit.when, "company", row.id), hit))
    return ranked


def _deals(session: Session, backend: _Backend, query: SearchText, n: int) -> list[_Ranked]:
    if not query.words:
        return []
    scores = _scores(backend.entities(session, "deal", query.words, n))
    if not scores:
        return []
    deals = list(
        session.scalars(
            select(Deal).where(Deal.id.in_(list(scores))).options(selectinload(Deal.stage))
        )
    )
    company_ids = {d.company_id for d in deals if d.company_id is not None}
    companies = (
        {
            row.id: CompanyName(row.id, row.name)
            for row in session.execute(
                select(Company.id, Company.name).where(Company.id.in_(company_ids))
            )
        }
        if company_ids
        else {}
    )
    ranked = []
    for deal in deals:
        company = companies.get(deal.company_id) if deal.company_id is not None else None
        amount = f"{deal.amount} {deal.currency}" if deal.amount is not None else None
        hit = SearchHit(
            type="deal",
            id=deal.id,
            title=deal.title,
            subtitle=" · ".join(
                x for x in (deal.stage.name, amount, company and company.name) if x
            ),
            snippet=None,
            when=deal.updated_at,
            item=deal,
            company=company,
        )
        tier = _tier(query, [deal.title])
        ranked.append(_Ranked(_sort_key(tier, scores[deal.id], hit.when, "deal", deal.id), hit))
    return ranked


def _activities(
    session: Session, viewer: Viewer, backend: _Backend, query: SearchText, n: int
) -> list[_Ranked]:
    words = [w for w in query.words if len(w) >= MIN_MAIL_WORD]
    if not words:
        return []
    chosen = []
    for match in backend.activities(session, viewer, words):
        share = subject_share(match.subject, words)
        # At level subject, only words of the subject find it.
        if match.full or (match.full is not None and share == 1.0):
            chosen.append((share, match.occurred_at, match))
    chosen.sort(key=lambda c: (c[0], c[1], c[2].id), reverse=True)
    # Only activities the viewer may see at level subject or more are found by words, so the
    # subject compared here is one they may read.
    return [
        _Ranked(
            _sort_key(_tier(query, [m.subject]), share, m.occurred_at, "activity", m.id),
            activity_id=m.id,
        )
        for share, _, m in chosen[:n]
    ]


_KIND_LABELS = {"email": "Email", "meeting": "Meeting", "note": "Note"}


def _activity_hit(view: ActivityView) -> SearchHit:
    label = _KIND_LABELS.get(view.kind, view.kind.capitalize())
    who = view.sender_name or view.sender_address
    preposition = "by" if view.kind == "note" else "from"
    return SearchHit(
        type="activity",
        id=view.id,
        title=view.subject or (label if view.kind == "note" else f"{label} (no subject)"),
        subtitle=f"{label} {preposition} {who}" if who else label,
        snippet=view.snippet or None,
        when=view.occurred_at,
        item=view,
    )
