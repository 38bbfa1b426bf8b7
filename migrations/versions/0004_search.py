"""search: full-text indexes over contacts, companies, deals and captured mail

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

What `server.crm.search` reads, one design per backend (the models know nothing of it; the
schema comparison test ignores these objects by name):

SQLite — two FTS5 tables, `tokenize='unicode61 remove_diacritics 2'` (case and accents folded
by SQLite) and `prefix='2 3'` (short prefixes answered from their own index):
  * `search_fts(title, body)` holds contacts (name; addresses), companies (name; domains) and
    deals (title; ''). Each kind has its own rowid range (kind code << 40 | id), so a search of
    one kind seeks straight to its range. It keeps its own copy of the text: a contact's document
    is built from two tables, and SQLite 3.40 (what Debian 12 and Python ship) has no
    `contentless_delete`, so deleting by rowid needs the content.
  * `search_activities_fts(subject, text)`, contentless (`content=''`), rowid = activity id: one
    million emails' text is not stored twice. A contentless table forgets a row only through the
    'delete' command given exactly the values it indexed; the triggers give it the OLD row, which
    holds exactly what the previous trigger indexed. Only email, meeting and note activities that
    are on the timeline (not unlogged, content not removed) are indexed; `text` is a note's body
    and another activity's snippet.
  Triggers, not Python hooks, keep both current: capture writes activities with bulk Core
  statements (INSERT ... ON CONFLICT, UPDATE ... WHERE id IN), which no ORM event sees.
  SQLite quirk for later migrations: `batch_alter_table` on contacts, contact_emails, companies,
  company_domains, deals or activities copies the table and drops the old one, and its triggers
  with it; such a migration must create this revision's triggers again.

PostgreSQL — no extra tables: expression indexes over the rows themselves.
  * GIN indexes on `to_tsvector('simple', rapport_search_words(column))` for contact names,
    contact addresses, company names, company domains and deal titles, and on the subject plus
    text of timeline activities (a partial index: hidden and other kinds of activities are not
    in it). `simple`: names are not English, so no stemming and no stop words.
  * `text_pattern_ops` B-tree indexes on contact_emails.address and company_domains.domain, so
    an address prefix is a byte-wise range scan whatever the database's collation.
  * Accents are folded by `rapport_search_fold`/`rapport_search_words`, IMMUTABLE SQL functions
    (inlined by the planner) over normalize(NFKD) and regexp_replace(), not by the `unaccent`
    extension: creating an extension may need rights the application's role does not have,
    `unaccent()` is only STABLE (so it needs a wrapper to appear in an index anyway), and the
    obvious alternative, translate() with a table of accented letters, costs about a millisecond
    per snippet (it scans its whole table for every character) where this adds ~25 µs to
    to_tsvector's own ~25 µs.
    normalize() needs a UTF8 database. Letters without a decomposition (ø, ł, đ) are kept as
    they are, and lower() under a C-locale database lowers ASCII only, so there non-Latin
    scripts match case-sensitively. `rapport_search_words` also turns punctuation into spaces,
    so the parser of `to_tsvector` sees plain words rather than e-mail addresses, host names
    and hyphenated compounds (which it would index as single tokens that a word prefix cannot
    reach). Both functions are self-contained (no call to another function of ours): a
    pg_restore runs with an empty search_path, and an index whose function called another
    unqualified function would fail to build there.
  Creating an index is the backfill on PostgreSQL; on SQLite the upgrade fills the FTS tables.
"""

# ruff: noqa: S608 - every name and number put into this file's SQL is one of its own constants

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# -- SQLite ---------------------------------------------------------------------------------------

ENTITY_FTS = "search_fts"
ACTIVITY_FTS = "search_activities_fts"
TOKENIZE = "tokenize='unicode61 remove_diacritics 2', prefix='2 3'"
CONTACT_BASE = 1 << 40
COMPANY_BASE = 2 << 40
DEAL_BASE = 3 << 40


def _indexed(row: str = "") -> str:
    """The activities search sees: mail, meetings and notes on the timeline."""
    p = f"{row}." if row else ""
    return (
        f"{p}kind IN ('email', 'meeting', 'note') AND {p}unlogged_at IS NULL "
        f"AND {p}content_removed_reason IS NULL"
    )


def _activity_text(row: str) -> str:
    return (
        f"CASE WHEN {row}.kind = 'note' THEN coalesce({row}.body_text, '') ELSE {row}.snippet END"
    )


def _contact_document(contact_id: str) -> str:
    """Delete and rebuild one contact's document (its name; its addresses)."""
    return f"""
        DELETE FROM {ENTITY_FTS} WHERE rowid = {contact_id} + {CONTACT_BASE};
        INSERT INTO {ENTITY_FTS}(rowid, title, body)
            SELECT c.id + {CONTACT_BASE}, c.name,
                   coalesce((SELECT group_concat(e.address, ' ') FROM contact_emails AS e
                             WHERE e.contact_id = c.id), '')
            FROM contacts AS c WHERE c.id = {contact_id};"""


def _company_document(company_id: str) -> str:
    """Delete and rebuild one company's document (its name; its domains)."""
    return f"""
        DELETE FROM {ENTITY_FTS} WHERE rowid = {company_id} + {COMPANY_BASE};
        INSERT INTO {ENTITY_FTS}(rowid, title, body)
            SELECT c.id + {COMPANY_BASE}, c.name,
                   coalesce((SELECT group_concat(d.domain, ' ') FROM company_domains AS d
                             WHERE d.company_id = c.id), '')
            FROM companies AS c WHERE c.id = {company_id};"""


def _deal_document(deal_id: str) -> str:
    return f"""
        DELETE FROM {ENTITY_FTS} WHERE rowid = {deal_id} + {DEAL_BASE};
        INSERT INTO {ENTITY_FTS}(rowid, title, body)
            SELECT d.id + {DEAL_BASE}, d.title, '' FROM deals AS d WHERE d.id = {deal_id};"""


def _forget_activity(row: str) -> str:
    return f"""
        INSERT INTO {ACTIVITY_FTS}({ACTIVITY_FTS}, rowid, subject, text)
            SELECT 'delete', {row}.id, {row}.subject, {_activity_text(row)} WHERE {_indexed(row)};"""


def _index_activity(row: str) -> str:
    return f"""
        INSERT INTO {ACTIVITY_FTS}(rowid, subject, text)
            SELECT {row}.id, {row}.subject, {_activity_text(row)} WHERE {_indexed(row)};"""


SQLITE_TRIGGERS: dict[str, str] = {
    "search_contacts_ai": f"AFTER INSERT ON contacts BEGIN {_contact_document('NEW.id')} END",
    "search_contacts_au": (
        f"AFTER UPDATE OF name ON contacts BEGIN {_contact_document('NEW.id')} END"
    ),
    "search_contacts_ad": (
        f"AFTER DELETE ON contacts BEGIN "
        f"DELETE FROM {ENTITY_FTS} WHERE rowid = OLD.id + {CONTACT_BASE}; END"
    ),
    "search_contact_emails_ai": (
        f"AFTER INSERT ON contact_emails BEGIN {_contact_document('NEW.contact_id')} END"
    ),
    # A merge moves addresses from one contact to another: both documents change.
    "search_contact_emails_au": (
        f"AFTER UPDATE OF address, contact_id ON contact_emails BEGIN "
        f"{_contact_document('OLD.contact_id')} {_contact_document('NEW.contact_id')} END"
    ),
    "search_contact_emails_ad": (
        f"AFTER DELETE ON contact_emails BEGIN {_contact_document('OLD.contact_id')} END"
    ),
    "search_companies_ai": f"AFTER INSERT ON companies BEGIN {_company_document('NEW.id')} END",
    "search_companies_au": (
        f"AFTER UPDATE OF name ON companies BEGIN {_company_document('NEW.id')} END"
    ),
    "search_companies_ad": (
        f"AFTER DELETE ON companies BEGIN "
        f"DELETE FROM {ENTITY_FTS} WHERE rowid = OLD.id + {COMPANY_BASE}; END"
    ),
    "search_company_domains_ai": (
        f"AFTER INSERT ON company_domains BEGIN {_company_document('NEW.company_id')} END"
    ),
    "search_company_domains_au": (
        f"AFTER UPDATE OF domain, company_id ON company_domains BEGIN "
        f"{_company_document('OLD.company_id')} {_company_document('NEW.company_id')} END"
    ),
    "search_company_domains_ad": (
        f"AFTER DELETE ON company_domains BEGIN {_company_document('OLD.company_id')} END"
    ),
    "search_deals_ai": f"AFTER INSERT ON deals BEGIN {_deal_document('NEW.id')} END",
    "search_deals_au": f"AFTER UPDATE OF title ON deals BEGIN {_deal_document('NEW.id')} END",
    "search_deals_ad": (
        f"AFTER DELETE ON deals BEGIN "
        f"DELETE FROM {ENTITY_FTS} WHERE rowid = OLD.id + {DEAL_BASE}; END"
    ),
    "search_activities_ai": f"AFTER INSERT ON activities BEGIN {_index_activity('NEW')} END",
    "search_activities_au": (
        "AFTER UPDATE OF kind, subject, snippet, body_text, unlogged_at, content_removed_reason "
        f"ON activities BEGIN {_forget_activity('OLD')} {_index_activity('NEW')} END"
    ),
    "search_activities_ad": f"AFTER DELETE ON activities BEGIN {_forget_activity('OLD')} END",
}


def _upgrade_sqlite() -> None:
    op.execute(f"CREATE VIRTUAL TABLE {ENTITY_FTS} USING fts5(title, body, {TOKENIZE})")
    op.execute(
        f"CREATE VIRTUAL TABLE {ACTIVITY_FTS} USING fts5(subject, text, content='', {TOKENIZE})"
    )
    # A name match outweighs an address match; a subject match outweighs one in the text.
    op.execute(f"INSERT INTO {ENTITY_FTS}({ENTITY_FTS}, rank) VALUES ('rank', 'bm25(10.0, 1.0)')")
    op.execute(
        f"INSERT INTO {ACTIVITY_FTS}({ACTIVITY_FTS}, rank) VALUES ('rank', 'bm25(4.0, 1.0)')"
    )
    op.execute(
        f"""INSERT INTO {ENTITY_FTS}(rowid, title, body)
            SELECT c.id + {CONTACT_BASE}, c.name,
                   coalesce((SELECT group_concat(e.address, ' ') FROM contact_emails AS e
                             WHERE e.contact_id = c.id), '')
            FROM contacts AS c"""
    )
    op.execute(
        f"""INSERT INTO {ENTITY_FTS}(rowid, title, body)
            SELECT c.id + {COMPANY_BASE}, c.name,
                   coalesce((SELECT group_concat(d.domain, ' ') FROM company_domains AS d
                             WHERE d.company_id = c.id), '')
            FROM companies AS c"""
    )
    op.execute(
        f"INSERT INTO {ENTITY_FTS}(rowid, title, body) SELECT id + {DEAL_BASE}, title, '' "
        "FROM deals"
    )
    op.execute(
        f"""INSERT INTO {ACTIVITY_FTS}(rowid, subject, text)
            SELECT a.id, a.subject, {_activity_text("a")} FROM activities AS a
            WHERE {_indexed("a")}"""
    )
    for name, body in SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def _downgrade_sqlite() -> None:
    for name in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute(f"DROP TABLE IF EXISTS {ACTIVITY_FTS}")
    op.execute(f"DROP TABLE IF EXISTS {ENTITY_FTS}")


# -- PostgreSQL -----------------------------------------------------------------------------------

# Combining marks, removed after NFKD has split "ü" into "u" + U+0308: the Combining Diacritical
# Marks block and its supplements. Written as regex escapes so the SQL text is plain ASCII.
COMBINING_MARKS = r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+"
# ASCII punctuation (by ranges, so no quote or percent sign is written out), Latin-1's
# punctuation and symbols, and General Punctuation (dashes, typographic quotes, odd spaces).
PUNCTUATION = r"[!-/:-@[-`{-~\u00a0-\u00bf\u2000-\u206f]+"


def _fold_sql(value: str) -> str:
    """Compatibility forms unfolded (NFKD: "ﬁ" → "fi", "²" → "2"), accents dropped, lower-cased.
    Lower-casing comes last so that under a C-locale database, whose lower() only knows ASCII,
    "Ü" still ends as "u"."""
    return f"lower(regexp_replace(normalize({value}, NFKD), '{COMBINING_MARKS}', '', 'g'))"


def _words_sql(value: str) -> str:
    return f"regexp_replace({_fold_sql(value)}, '{PUNCTUATION}', ' ', 'g')"


def _words(column: str) -> str:
    return f"to_tsvector('simple', rapport_search_words({column}))"


ACTIVITY_DOCUMENT = (
    "subject || ' ' || CASE WHEN kind = 'note' THEN coalesce(body_text, '') ELSE snippet END"
)
PG_INDEXES: dict[str, str] = {
    "ix_search_contacts_name": f"ON contacts USING gin ({_words('name')})",
    "ix_search_contact_emails_words": f"ON contact_emails USING gin ({_words('address')})",
    "ix_search_contact_emails_prefix": "ON contact_emails (address text_pattern_ops)",
    "ix_search_companies_name": f"ON companies USING gin ({_words('name')})",
    "ix_search_company_domains_words": f"ON company_domains USING gin ({_words('domain')})",
    "ix_search_company_domains_prefix": "ON company_domains (domain text_pattern_ops)",
    "ix_search_deals_title": f"ON deals USING gin ({_words('title')})",
    "ix_search_activities_text": (
        f"ON activities USING gin ({_words(ACTIVITY_DOCUMENT)}) WHERE {_indexed()}"
    ),
}


def _upgrade_postgresql() -> None:
    op.execute(
        "CREATE FUNCTION rapport_search_fold(value text) RETURNS text "
        f"LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT {_fold_sql('value')} $$"
    )
    op.execute(
        "CREATE FUNCTION rapport_search_words(value text) RETURNS text "
        f"LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT {_words_sql('value')} $$"
    )
    for name, definition in PG_INDEXES.items():
        op.execute(f"CREATE INDEX {name} {definition}")


def _downgrade_postgresql() -> None:
    for name in PG_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.execute("DROP FUNCTION IF EXISTS rapport_search_words(text)")
    op.execute("DROP FUNCTION IF EXISTS rapport_search_fold(text)")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _upgrade_sqlite()
    else:
        _upgrade_postgresql()


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _downgrade_sqlite()
    else:
        _downgrade_postgresql()
