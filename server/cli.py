"""The `rapport` command. Each subcommand parses its options, calls a service, prints the outcome.

Configuration is loaded when a command needs it (so `--help` always works); a configuration error
prints one line naming the variable and exits with code 2; a refused request (a domain error)
prints its message and exits with code 1.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from server.config import ConfigError, Settings, load_settings
from server.crm.errors import DomainError
from server.crm.timeparse import parse_duration, parse_since
from server.logs import configure_logging

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from server.db import Database


class RapportGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"rapport: {exc.variable}: {exc.message}", err=True)
            ctx.exit(2)
        except DomainError as exc:
            click.echo(f"rapport: {exc.message}", err=True)
            ctx.exit(1)


class Context:
    """Settings and database, created once per command on first use."""

    def __init__(self) -> None:
        self.demo = False
        self._settings: Settings | None = None
        self._db: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(demo=self.demo)
            configure_logging(self._settings.log_level, self._settings.log_format)
        return self._settings

    @property
    def db(self) -> Database:
        if self._db is None:
            from server.db import Database  # imports SQLAlchemy: `rapport import` starts first

            self._db = Database(self.settings.database_url)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.db.session() as session:
            yield session


pass_ctx = click.make_pass_decorator(Context, ensure=True)


@click.group(cls=RapportGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rapport")
@click.pass_context
def main(click_ctx: click.Context) -> None:
    """Rapport: an Outlook-centric CRM that captures your team's email and meetings."""
    click_ctx.call_on_close(click_ctx.ensure_object(Context).close)


@contextmanager
def _collector_off() -> Iterator[None]:
    """For a big import (the capture core): its hundreds of thousands of new objects, none of
    them garbage, set off collection after collection that walk them (0.06-0.09 s of 0.6)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# -- serve ---------------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port.")
@click.option("--workers", default=2, show_default=True, type=int, help="Worker processes.")
@pass_ctx
def serve(ctx: Context, host: str, port: int, workers: int) -> None:
    """Run the API, the task pane and the admin pages (gunicorn)."""
    from server.serve import run_server

    settings = ctx.settings
    _require_current_schema(ctx.db)
    run_server(settings, host=host, port=port, workers=workers)


def _require_current_schema(db: Database) -> None:
    if db.current_revision() != db.head_revision():
        raise DomainError("the database schema is not up to date; run `rapport db upgrade` first")


# -- demo ---------------------------------------------------------------------------------------


@main.command()
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--no-worker",
    is_flag=True,
    help="Serve only: nothing queued runs (for tests that play the worker's part themselves).",
)
@pass_ctx
def demo(ctx: Context, port: int, host: str, no_worker: bool) -> None:
    """Set up a demo database (SQLite under ./var/demo by default) and run the server, with the
    worker beside it (so what a person sends in the demo goes out, to the demo's outbox)."""
    from server.demo.setup import prepare_demo
    from server.serve import run_server

    ctx.demo = True
    base = f"http://{host}:{port}"
    # Links in campaign emails (unsubscribe) point at the demo itself unless told otherwise.
    settings = replace(ctx.settings, public_url=ctx.settings.public_url or base)
    summary = prepare_demo(ctx.db, settings, echo=click.echo, base_url=base)
    click.echo(f"Rapport demo running at {base}  (health: {base}/healthz)")
    for line in summary:
        click.echo(f"  {line}")
    if no_worker:
        run_server(settings, host=host, port=port, workers=1)
        return
    with _demo_worker(settings):
        run_server(settings, host=host, port=port, workers=1)


@contextmanager
def _demo_worker(settings: Settings) -> Iterator[None]:
    """`rapport worker --demo` beside the server, as its own process: a thread of this one would
    be in the middle of something (a lock held) when gunicorn forks its server process."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "RAPPORT_DATA_DIR": str(settings.data_dir),
        "RAPPORT_DATABASE_URL": settings.database_url,
        **({"RAPPORT_PUBLIC_URL": settings.public_url} if settings.public_url else {}),
    }
    worker = subprocess.Popen([sys.executable, "-m", "server", "worker", "--demo"], env=env)
    try:
        yield
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


# -- capture ------------------------------------------------------------------------------------


@main.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--mailbox",
    "owner",
    required=True,
    metavar="OWNER_ADDRESS",
    help="Whose mailbox these messages were in (decides incoming or outgoing).",
)
@click.option(
    "--since", metavar="DATE|AGE", help="Only messages from this date on: 2026-01-31 or 90d."
)
@click.option(
    "--capture-level",
    type=click.Choice(["full", "subject", "metadata"]),
    help="What to keep of each email (default: the owner's import link's level, full).",
)
@click.option(
    "--alias",
    "aliases",
    multiple=True,
    metavar="ADDRESS",
    help="Another address of the owner (repeatable); mail from it counts as outgoing.",
)
@click.option("--jobs", type=int, help="Parser processes (default: one per core, up to 4).")
@pass_ctx
def import_(
    ctx: Context,
    paths: tuple[Path, ...],
    owner: str,
    since: str | None,
    capture_level: str | None,
    aliases: tuple[str, ...],
    jobs: int | None,
) -> None:
    """Capture .mbox files, Maildir folders, .eml and .ics files as if seen in OWNER's mailbox.

    Importing the same files again captures nothing new; an interrupted import is finished by
    running it again.
    """
    # Only what the parse workers need is imported before they are set going: they prepare
    # the first messages while this process imports the capture core (see `import_start`).
    from server.mail_ingest.import_start import guess_options, start_import
    from server.mail_ingest.parse_pool import default_jobs
    from server.mail_ingest.sources.files import FileWalk

    since_at = _since(since)
    settings = ctx.settings
    total = FileWalk(paths).count()
    guess = guess_options(
        owner,
        capture_level=capture_level,
        aliases=aliases,
        internal_domains=settings.internal_domains,
    )
    # no message, no parse workers
    start = start_import(paths, jobs=jobs or default_jobs(), guess=guess if total else None)
    try:
        with _collector_off():
            from server.mail_ingest.importer import import_files
            from server.progress import import_progress, print_import_summary

        with import_progress(total) as advance:
            result = import_files(
                ctx.db,
                settings,
                paths,
                owner=owner,
                since=since_at,
                capture_level=capture_level,
                aliases=aliases,
                on_progress=advance,
                start=start,
            )
    finally:
        start.close()
    print_import_summary(result)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None


@main.group()
def capture() -> None:
    """The capture trace: what happened to an email, and why."""


@capture.command("explain")
@click.argument("message_id")
@pass_ctx
def capture_explain(ctx: Context, message_id: str) -> None:
    """Why the email with MESSAGE_ID was captured, skipped or quarantined, in each mailbox."""
    from server.crm.trace import explain

    with ctx.session() as session:
        lines = explain(session, message_id)
    for line in lines:
        click.echo(line)


@capture.command("retry")
@click.option("--link", "link_id", type=int, help="Only this mailbox link's quarantined items.")
@pass_ctx
def capture_retry(ctx: Context, link_id: int | None) -> None:
    """Parse quarantined messages again (after an upgrade) and capture those that now parse."""
    from server.mail_ingest.quarantine import retry_quarantined

    result = retry_quarantined(ctx.db, link_id=link_id)
    click.echo(
        f"{result.tried} quarantined messages retried: {result.resolved} now read "
        f"({result.counts.captured} captured, {result.counts.known} already known, "
        f"{sum(result.counts.skipped.values())} skipped by rules), "
        f"{result.tried - result.resolved} still quarantined"
    )


@main.group()
def rule() -> None:
    """Capture rules: internal domains, blocked senders, never-log lists, policies."""


@rule.command("list")
@pass_ctx
def rule_list(ctx: Context) -> None:
    """Show every rule list entry and the capture settings."""
    from sqlalchemy import select

    from server.crm.settings import all_settings
    from server.models import CaptureRule, User

    with ctx.session() as session:
        rows = session.execute(
            select(CaptureRule, User.email)
            .outerjoin(User, User.id == CaptureRule.user_id)
            .order_by(CaptureRule.kind, CaptureRule.value)
        ).all()
        for entry, email in rows:
            scope = f"  (for {email})" if email else ""
            click.echo(f"{entry.id:>5}  {entry.kind:16} {entry.value}{scope}")
        for key, value in all_settings(session, "capture.").items():
            if not key.endswith("_seeded"):
                click.echo(f"       {key} = {value}")


@rule.command("add")
@click.argument(
    "kind", type=click.Choice(["internal_domain", "block_address", "block_domain", "never_log"])
)
@click.argument("value")
@click.option("--user", "user_address", help="For never_log: whose list (their own mailboxes).")
@pass_ctx
def rule_add(ctx: Context, kind: str, value: str, user_address: str | None) -> None:
    """Add VALUE (an address or domain) to a rule list; it applies to past captures too."""
    from server.crm.rule_admin import add_rule
    from server.crm.users import get_user_by_email

    with ctx.session() as session:
        user_id = get_user_by_email(session, user_address).id if user_address else None
        emptied = add_rule(session, kind, value, user_id=user_id)
    click.echo(f"rule added; {emptied} captured emails emptied by it")


@rule.command("remove")
@click.argument("rule_id", type=int)
@pass_ctx
def rule_remove(ctx: Context, rule_id: int) -> None:
    """Remove a rule list entry (content it removed stays removed)."""
    from server.crm.rule_admin import remove_rule

    with ctx.session() as session:
        remove_rule(session, rule_id)
    click.echo(f"rule {rule_id} removed")


@rule.command("set")
@click.argument(
    "key",
    type=click.Choice(
        [
            "skip_internal_only",
            "skip_mailing_lists",
            "skip_automated",
            "auto_create_contacts",
        ]
    ),
)
@click.argument("value")
@pass_ctx
def rule_set(ctx: Context, key: str, value: str) -> None:
    """Set a capture policy: skip_* take on/off; auto_create_contacts takes all, sent or none."""
    from server.crm.rule_admin import set_capture_setting

    parsed: object = {"on": True, "off": False, "true": True, "false": False}.get(value, value)
    with ctx.session() as session:
        set_capture_setting(session, f"capture.{key}", parsed)
    click.echo(f"capture.{key} = {parsed}")


# -- mailboxes and the worker -------------------------------------------------------------------


@main.group()
def mailbox() -> None:
    """Linked mailboxes: add, list, sync, pause, resume, remove."""


def _read_secret(stdin: bool, env_var: str | None, what: str) -> str:
    import os
    import sys

    value: str
    if stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif env_var:
        value = os.environ.get(env_var, "")
        if not value:
            raise click.BadParameter(f"{env_var} is not set or empty", param_hint="--password-env")
    else:
        raise click.UsageError(f"give the {what} with --password-stdin or --password-env VAR")
    if not value:
        raise click.UsageError(f"the {what} is empty")
    return value


@mailbox.group("add")
def mailbox_add() -> None:
    """Link a mailbox: imap, graph (Microsoft 365), ews (on-premises Exchange) or drop."""


def _imap_oauth(
    provider: str | None,
    tenant: str | None,
    client_id: str | None,
    secret_stdin: bool,
    secret_env: str | None,
    certificate: Path | None,
    refresh_token_env: str | None,
    token_endpoint: str | None,
) -> Any:
    """The OAuth credentials `mailbox add imap --oauth ...` was given (None without --oauth)."""
    import os
    import sys

    from server.mail_ingest.oauth import GOOGLE_TOKEN_ENDPOINT, MicrosoftApp, RefreshGrant

    given = {
        "--tenant": tenant,
        "--client-id": client_id,
        "--client-secret-stdin": secret_stdin or None,
        "--client-secret-env": secret_env,
        "--certificate": certificate,
        "--refresh-token-env": refresh_token_env,
        "--token-endpoint": token_endpoint,
    }
    if provider is None:
        stray = [name for name, value in given.items() if value is not None]
        if stray:
            raise click.UsageError(f"{stray[0]} goes with --oauth microsoft|google")
        return None
    allowed = {
        "microsoft": {"--tenant", "--client-id", "--client-secret-stdin", "--client-secret-env",
                      "--certificate"},
        "google": {"--client-id", "--client-secret-stdin", "--client-secret-env",
                   "--refresh-token-env", "--token-endpoint"},
    }[provider]  # fmt: skip
    stray = [name for name, value in given.items() if value is not None and name not in allowed]
    if stray:
        raise click.UsageError(f"{stray[0]} does not go with --oauth {provider}")
    if not client_id:
        raise click.UsageError(f"--oauth {provider} needs --client-id ID")

    def env_value(variable: str, option: str) -> str:
        value = os.environ.get(variable, "").strip()
        if not value:
            raise click.BadParameter(f"{variable} is not set or empty", param_hint=option)
        return value

    sources = [secret_stdin, secret_env is not None, certificate is not None]
    if sum(sources) != 1:
        choices = "--client-secret-stdin, --client-secret-env VAR" + (
            " or --certificate PEM_FILE" if provider == "microsoft" else ""
        )
        raise click.UsageError(f"--oauth {provider} needs exactly one of {choices}")
    secret: str | None = None
    if secret_stdin:
        secret = sys.stdin.readline().strip()
        if not secret:
            raise click.UsageError("the client secret on standard input is empty")
    elif secret_env is not None:
        secret = env_value(secret_env, "--client-secret-env")
    if provider == "microsoft":
        if not tenant:
            raise click.UsageError(
                "--oauth microsoft needs --tenant TENANT_ID (the Directory (tenant) ID on the "
                "app's Overview page; not common)"
            )
        pem = None
        if certificate is not None:
            try:
                pem = certificate.read_text(encoding="ascii")
            except (OSError, UnicodeError) as exc:
                raise click.BadParameter(
                    f"cannot read {certificate} as a PEM file ({exc})", param_hint="--certificate"
                ) from None
        return MicrosoftApp(tenant=tenant, client_id=client_id, client_secret=secret,
                            certificate_pem=pem)  # fmt: skip
    if refresh_token_env is None:
        raise click.UsageError("--oauth google needs --refresh-token-env VAR")
    assert secret is not None
    return RefreshGrant(
        provider="google",
        client_id=client_id,
        client_secret=secret,
        refresh_token=env_value(refresh_token_env, "--refresh-token-env"),
        token_endpoint=token_endpoint or GOOGLE_TOKEN_ENDPOINT,
    )


@mailbox_add.command("imap")
@click.option("--owner", required=True, metavar="ADDRESS", help="Whose mailbox it is.")
@click.option("--host", required=True)
@click.option("--port", type=int, help="Default 993 for ssl, 143 for starttls.")
@click.option(
    "--security", type=click.Choice(["ssl", "starttls"]), default="ssl", show_default=True
)
@click.option(
    "--user",
    "username",
    required=True,
    help="The IMAP login (with --oauth: the mailbox's address).",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--password-env", metavar="VAR", help="Read the password from this variable.")
@click.option(
    "--oauth",
    "oauth_provider",
    type=click.Choice(["microsoft", "google"]),
    help="Sign in with OAuth (XOAUTH2) instead of a password: Exchange Online, Gmail.",
)
@click.option("--tenant", metavar="TENANT_ID", help="--oauth microsoft: the app's tenant id.")
@click.option("--client-id", metavar="ID", help="--oauth: the app's (client) id.")
@click.option(
    "--client-secret-stdin", is_flag=True, help="--oauth: read the client secret from stdin."
)
@click.option("--client-secret-env", metavar="VAR", help="--oauth: the client secret's variable.")
@click.option(
    "--certificate",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="PEM_FILE",
    help="--oauth microsoft: the app's private key and certificate (PEM), instead of a secret.",
)
@click.option(
    "--refresh-token-env", metavar="VAR", help="--oauth google: the refresh token's variable."
)
@click.option("--token-endpoint", hidden=True, help="--oauth google: another token endpoint.")
@click.option("--folders", help="Comma-separated; default INBOX and the Sent folder.")
@click.option("--since", metavar="DATE|AGE", help="Only mail from then on: 2026-01-31 or 90d.")
@click.option("--capture-level", type=click.Choice(["full", "subject", "metadata"]), default="full")
@click.option(
    "--alias", "aliases", multiple=True, metavar="ADDRESS", help="Another address of the owner."
)
@click.option(
    "--visibility", type=click.Choice(["team", "private"]), default="team", show_default=True
)
@pass_ctx
def mailbox_add_imap(
    ctx: Context,
    owner: str,
    host: str,
    port: int | None,
    security: str,
    username: str,
    password_stdin: bool,
    password_env: str | None,
    oauth_provider: str | None,
    tenant: str | None,
    client_id: str | None,
    client_secret_stdin: bool,
    client_secret_env: str | None,
    certificate: Path | None,
    refresh_token_env: str | None,
    token_endpoint: str | None,
    folders: str | None,
    since: str | None,
    capture_level: str,
    aliases: tuple[str, ...],
    visibility: str,
) -> None:
    """Link an IMAP mailbox; the connection is tested before anything is saved.

    Signs in with a password, or with OAuth (XOAUTH2) for servers that refuse passwords:
    `--oauth microsoft --tenant T --client-id ID (--client-secret-env VAR | --certificate PEM)`
    for Exchange Online, `--oauth google --client-id ID --client-secret-env VAR
    --refresh-token-env VAR` for Gmail (docs/mailboxes.md says what each needs)."""
    from server.crypto import SecretBox
    from server.mail_ingest.links import ImapConnection, LinkOptions, link_imap

    if oauth_provider is not None and (password_stdin or password_env):
        raise click.UsageError("give a password or --oauth, not both")
    oauth = _imap_oauth(
        oauth_provider,
        tenant,
        client_id,
        client_secret_stdin,
        client_secret_env,
        certificate,
        refresh_token_env,
        token_endpoint,
    )
    password = None if oauth is not None else _read_secret(password_stdin, password_env, "password")
    if since is not None:
        _since(since)
    chosen = [f.strip() for f in folders.split(",") if f.strip()] if folders else None
    connection = ImapConnection(
        host=host,
        port=port,
        security=security,  # type: ignore[arg-type]
        user=username,
        password=password,
        folders=tuple(chosen) if chosen is not None else None,
        oauth=oauth,
    )
    linked = link_imap(
        ctx.db,
        SecretBox(ctx.settings.secret_keys),
        connection,
        LinkOptions(
            owner=owner,
            capture_level=capture_level,
            aliases=aliases,
            visibility=visibility,
            since=since,
        ),
        ca_bundle=ctx.settings.ca_bundle,
        authority_host=ctx.settings.graph_authority_host,
    )
    how = "" if oauth is None else f" (OAuth: {oauth_provider} client {client_id})"
    click.echo(
        f"mailbox link {linked.link.id}: {linked.link.owner_address} via IMAP "
        f"{host}:{connection.resolved_port}{how}, folders {', '.join(linked.folders)}"
    )
    click.echo("`rapport worker` captures it from now on; `rapport mailbox sync ID` runs it now")


@mailbox_add.command("graph")
@click.option(
    "--owner",
    required=True,
    metavar="ADDRESS",
    help="The mailbox to read (a person's, or a shared one such as sales@): also its owner.",
)
@click.option("--tenant", required=True, metavar="TENANT_ID", help="The Directory (tenant) ID.")
@click.option("--client-id", required=True, metavar="ID", help="The Application (client) ID.")
@click.option("--client-secret-stdin", is_flag=True, help="Read the client secret from stdin.")
@click.option("--client-secret-env", metavar="VAR", help="Read the client secret from VAR.")
@click.option(
    "--certificate",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="PEM_FILE",
    help="The app's private key and certificate (PEM), instead of a secret.",
)
@click.option(
    "--delegated",
    is_flag=True,
    help="Sign in as a user (device code, in this terminal) instead of app-only access.",
)
@click.option(
    "--folders",
    help="Comma-separated: well-known names (inbox, sentitems, archive) or folder paths "
    "(Inbox/Projects); default Inbox and Sent Items.",
)
@click.option("--since", metavar="DATE|AGE", help="Only mail from then on: 2026-01-31 or 90d.")
@click.option("--no-calendar", is_flag=True, help="Do not capture meetings from the calendar.")
@click.option("--capture-level", type=click.Choice(["full", "subject", "metadata"]), default="full")
@click.option(
    "--alias", "aliases", multiple=True, metavar="ADDRESS", help="Another address of the owner."
)
@click.option(
    "--visibility", type=click.Choice(["team", "private"]), default="team", show_default=True
)
@pass_ctx
def mailbox_add_graph(
    ctx: Context,
    owner: str,
    tenant: str,
    client_id: str,
    client_secret_stdin: bool,
    client_secret_env: str | None,
    certificate: Path | None,
    delegated: bool,
    folders: str | None,
    since: str | None,
    no_calendar: bool,
    capture_level: str,
    aliases: tuple[str, ...],
    visibility: str,
) -> None:
    """Link a Microsoft 365 mailbox through Microsoft Graph; it is tested before it is saved.

    App-only (an app with the application permissions Mail.Read and Calendars.Read and admin
    consent): --client-secret-stdin, --client-secret-env VAR or --certificate PEM_FILE.
    Delegated (a user signs in; for a shared mailbox, one with FullAccess to it): --delegated,
    with the device-code flow in this terminal. docs/graph.md sets the app up."""
    import os
    import sys

    from server.crypto import SecretBox
    from server.mail_ingest.errors import SourceError
    from server.mail_ingest.links import GraphConnection, LinkOptions, link_graph
    from server.mail_ingest.oauth import (
        GRAPH_DELEGATED_SCOPES,
        GRAPH_SHARED_SCOPES,
        IdentityEndpoints,
        finish_device_sign_in,
        identity_problem_of,
        start_device_sign_in,
    )

    chosen = sum([client_secret_stdin, client_secret_env is not None, certificate is not None])
    if chosen + delegated != 1:
        raise click.UsageError(
            "give exactly one of --client-secret-stdin, --client-secret-env VAR, "
            "--certificate PEM_FILE or --delegated"
        )
    if since is not None:
        _since(since)
    settings = ctx.settings
    secret = pem = None
    grant = None
    if client_secret_stdin:
        secret = sys.stdin.readline().strip()
        if not secret:
            raise click.UsageError("the client secret on standard input is empty")
    elif client_secret_env is not None:
        secret = os.environ.get(client_secret_env, "").strip()
        if not secret:
            raise click.BadParameter(
                f"{client_secret_env} is not set or empty", param_hint="--client-secret-env"
            )
    elif certificate is not None:
        try:
            pem = certificate.read_text(encoding="ascii")
        except (OSError, UnicodeError) as exc:
            raise click.BadParameter(
                f"cannot read {certificate} as a PEM file ({exc})", param_hint="--certificate"
            ) from None
    else:
        endpoints = IdentityEndpoints.from_settings(settings)
        try:
            sign_in = start_device_sign_in(
                tenant,
                client_id,
                endpoints,
                scopes=GRAPH_DELEGATED_SCOPES + GRAPH_SHARED_SCOPES,
            )
            click.echo(sign_in.message, err=True)
            grant = finish_device_sign_in(sign_in)
        except SourceError as exc:
            problem = identity_problem_of(exc)
            hint = ""
            if problem is not None and problem.code == "oauth_policy":
                hint = (
                    "; many tenants block the device-code flow: sign in from the admin page "
                    "instead, or use an app-only link"
                )
            elif problem is not None and problem.code == "oauth_client_secret":
                hint = (
                    '; for --delegated, turn on "Allow public client flows" in the app '
                    "registration (Authentication)"
                )
            raise DomainError(f"the sign-in failed: {exc.message}{hint}") from None
        click.echo(f"signed in as {grant.user or 'the user'}", err=True)
    names = tuple(f.strip() for f in folders.split(",") if f.strip()) if folders else None
    connection = GraphConnection(
        mailbox=owner,
        tenant=tenant,
        client_id=client_id,
        client_secret=secret,
        certificate_pem=pem,
        delegated=grant,
        folders=names,
        calendar=not no_calendar,
    )
    linked = link_graph(
        ctx.db,
        SecretBox(settings.secret_keys),
        connection,
        LinkOptions(
            owner=owner,
            capture_level=capture_level,
            aliases=aliases,
            visibility=visibility,
            since=since,
        ),
        api_url=settings.graph_api_url,
        ca_bundle=settings.ca_bundle,
        authority_host=settings.graph_authority_host,
    )
    how = "delegated" if grant is not None else f"app {client_id}"
    calendar = " and the calendar" if linked.calendar else ""
    click.echo(
        f"mailbox link {linked.link.id}: {linked.link.owner_address} via Microsoft Graph ({how}), "
        f"folders {', '.join(linked.folders)}{calendar}"
    )
    click.echo("`rapport worker` captures it from now on; `rapport mailbox sync ID` runs it now")


@mailbox_add.command("ews")
@click.option(
    "--owner",
    required=True,
    metavar="ADDRESS",
    help="The mailbox to read (a person's, or a shared one such as sales@): also its owner.",
)
@click.option(
    "--server",
    metavar="URL",
    help="The EWS URL, https://HOST/EWS/Exchange.asmx (or just the server's host name); "
    "default: found by Autodiscover from the owner's address.",
)
@click.option("--user", "username", help="The service account: DOMAIN\\name or name@domain.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--password-env", metavar="VAR", help="Read the password from this variable.")
@click.option(
    "--auth",
    type=click.Choice(["ntlm", "basic", "oauth"]),
    default="ntlm",
    show_default=True,
    help="oauth: an Entra ID app signs in (hybrid modern authentication; --tenant, "
    "--client-id and its client secret instead of --user and a password).",
)
@click.option("--tenant", metavar="TENANT_ID", help="--auth oauth: the Directory (tenant) ID.")
@click.option("--client-id", metavar="ID", help="--auth oauth: the Application (client) ID.")
@click.option(
    "--client-secret-stdin", is_flag=True, help="--auth oauth: read the client secret from stdin."
)
@click.option(
    "--client-secret-env", metavar="VAR", help="--auth oauth: the client secret's variable."
)
@click.option(
    "--access",
    type=click.Choice(["impersonation", "delegate"]),
    help="How the account opens the mailbox: ApplicationImpersonation, or FullAccess as a "
    "delegate; default impersonation (delegate when --user is the mailbox itself).",
)
@click.option(
    "--folders",
    help="Comma-separated: distinguished names (inbox, sentitems, drafts...) or folder paths "
    "(Inbox/Projects); default Inbox and Sent Items.",
)
@click.option("--since", metavar="DATE|AGE", help="Only mail from then on: 2026-01-31 or 90d.")
@click.option("--no-calendar", is_flag=True, help="Do not capture meetings from the calendar.")
@click.option("--capture-level", type=click.Choice(["full", "subject", "metadata"]), default="full")
@click.option(
    "--alias", "aliases", multiple=True, metavar="ADDRESS", help="Another address of the owner."
)
@click.option(
    "--visibility", type=click.Choice(["team", "private"]), default="team", show_default=True
)
@pass_ctx
def mailbox_add_ews(
    ctx: Context,
    owner: str,
    server: str | None,
    username: str | None,
    password_stdin: bool,
    password_env: str | None,
    auth: str,
    tenant: str | None,
    client_id: str | None,
    client_secret_stdin: bool,
    client_secret_env: str | None,
    access: str | None,
    folders: str | None,
    since: str | None,
    no_calendar: bool,
    capture_level: str,
    aliases: tuple[str, ...],
    visibility: str,
) -> None:
    """Link a mailbox on an on-premises Exchange server through Exchange Web Services; it is
    tested before it is saved.

    A service account opens the mailbox by impersonation (it holds the ApplicationImpersonation
    role) or as a delegate (FullAccess on the mailbox); with --auth oauth an Entra ID app
    (full_access_as_app) opens it by impersonation. Without --server, Autodiscover finds the
    EWS URL. For a private CA, set RAPPORT_CA_BUNDLE. docs/ews.md sets the Exchange side up."""
    from server.crypto import SecretBox
    from server.mail_ingest.links import EwsConnection, LinkOptions, link_ews

    oauth = auth == "oauth"
    wrong = (
        {
            "--user": username,
            "--password-stdin": password_stdin or None,
            "--password-env": password_env,
        }
        if oauth
        else {
            "--tenant": tenant,
            "--client-id": client_id,
            "--client-secret-stdin": client_secret_stdin or None,
            "--client-secret-env": client_secret_env,
        }
    )
    given = sorted(name for name, value in wrong.items() if value is not None)
    if given:
        how = "--auth oauth" if oauth else f"--auth {auth}"
        raise click.UsageError(f"{', '.join(given)} cannot be used with {how}")
    secret = password = ""
    if oauth:
        if not tenant or not client_id:
            raise click.UsageError("--auth oauth needs --tenant and --client-id")
        if client_secret_stdin == bool(client_secret_env):
            raise click.UsageError(
                "give the client secret with --client-secret-stdin or --client-secret-env VAR"
            )
        secret = _read_secret(client_secret_stdin, client_secret_env, "client secret")
        username = ""
        access = access or "impersonation"
    else:
        if not username:
            raise click.UsageError(f"--auth {auth} needs --user (the service account)")
        password = _read_secret(password_stdin, password_env, "password")
    if since is not None:
        _since(since)
    if access is None:
        assert username is not None
        access = (
            "delegate" if username.strip().lower() == owner.strip().lower() else "impersonation"
        )
    names = tuple(f.strip() for f in folders.split(",") if f.strip()) if folders else None
    connection = EwsConnection(
        server=server,
        mailbox=owner,
        user=username or "",
        password=password,
        auth=auth,  # type: ignore[arg-type]
        access=access,  # type: ignore[arg-type]
        folders=names,
        calendar=not no_calendar,
        tenant=tenant,
        client_id=client_id,
        client_secret=secret or None,
    )
    linked = link_ews(
        ctx.db,
        SecretBox(ctx.settings.secret_keys),
        connection,
        LinkOptions(
            owner=owner,
            capture_level=capture_level,
            aliases=aliases,
            visibility=visibility,
            since=since,
        ),
        ca_bundle=ctx.settings.ca_bundle,
        authority_host=ctx.settings.graph_authority_host,
        autodiscover_urls=ctx.settings.ews_autodiscover_urls,
    )
    if not connection.url:
        click.echo(f"Autodiscover found the EWS URL {linked.server}")
    who = f"app {client_id}" if oauth else username
    calendar = " and the calendar" if linked.calendar else ""
    click.echo(
        f"mailbox link {linked.link.id}: {linked.link.owner_address} via EWS "
        f"{linked.server} ({access} as {who}), folders {', '.join(linked.folders)}"
        f"{calendar}"
    )
    click.echo("`rapport worker` captures it from now on; `rapport mailbox sync ID` runs it now")


@mailbox_add.command("drop")
@click.option("--owner", required=True, metavar="ADDRESS", help="Whose mail it is.")
@pass_ctx
def mailbox_add_drop(ctx: Context, owner: str) -> None:
    """Give OWNER a personal drop address: mail BCC'd or forwarded to it is captured as theirs."""
    from server.crm.mailboxes import add_drop_link

    with ctx.session() as session:
        link, address = add_drop_link(session, owner=owner, domain=ctx.settings.drop_domain)
        click.echo(f"mailbox link {link.id}: drop address for {link.owner_address}")
    click.echo(address)


@mailbox.command("rotate")
@click.argument("link_id", type=int)
@pass_ctx
def mailbox_rotate(ctx: Context, link_id: int) -> None:
    """Give a drop link a new address (the old one is refused from now on)."""
    from server.crm.mailboxes import rotate_drop_token

    with ctx.session() as session:
        address = rotate_drop_token(session, link_id, ctx.settings.drop_domain)
    click.echo(address)


@mailbox.command("password")
@click.argument("link_id", type=int)
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@click.option("--password-env", metavar="VAR", help="Read the new password from this variable.")
@pass_ctx
def mailbox_password(
    ctx: Context, link_id: int, password_stdin: bool, password_env: str | None
) -> None:
    """The mailbox's password changed: test the link with the new one, store it, resume."""
    from server.crypto import SecretBox
    from server.mail_ingest.links import replace_password

    password = _read_secret(password_stdin, password_env, "password")
    link = replace_password(
        ctx.db,
        SecretBox(ctx.settings.secret_keys),
        link_id,
        password,
        ca_bundle=ctx.settings.ca_bundle,
    )
    click.echo(f"mailbox link {link.id}: new password tested and stored; status {link.status}")


@mailbox.command("list")
@pass_ctx
def mailbox_list(ctx: Context) -> None:
    """Every link: kind, owner, status, last success, last error and what to do, counts."""
    from rich.console import Console
    from rich.table import Table

    from server.crm.mailboxes import list_links, what_to_do

    table = Table(show_lines=False)
    for column in (
        "id",
        "kind",
        "owner",
        "status",
        "last success",
        "last error",
        "captured",
        "backlog",
    ):
        table.add_column(column, overflow="fold")
    with ctx.session() as session:
        for link in list_links(session):
            when = (
                link.last_success_at.strftime("%Y-%m-%d %H:%M") if link.last_success_at else "never"
            )
            error = what_to_do(link) or link.last_error or ""
            table.add_row(
                str(link.id),
                link.kind,
                link.owner_address,
                link.status.replace("_", " "),
                when,
                error,
                str(link.messages_captured),
                str(link.backlog),
            )
    Console(width=200).print(table)


@mailbox.command("sync")
@click.argument("link_id", type=int)
@pass_ctx
def mailbox_sync(ctx: Context, link_id: int) -> None:
    """Sync one link now, with a progress bar."""
    from server.crm.mailboxes import get_link
    from server.jobs import complete
    from server.mail_ingest.sync import sync_link
    from server.mail_ingest.worker import claim_sync_now
    from server.progress import sync_progress

    with ctx.session() as session:
        get_link(session, link_id)
    job = claim_sync_now(ctx.db, link_id)
    with sync_progress() as advance:
        result = sync_link(ctx.db, ctx.settings, link_id, job=job, on_progress=advance)
    with ctx.session() as session:
        complete(session, job)
    counts = result.counts
    click.echo(
        f"link {link_id}: {counts.captured} captured, {counts.known} already known, "
        f"{sum(counts.skipped.values())} skipped by rules, {sum(counts.quarantined.values())} quarantined"
    )
    if result.error:
        raise DomainError(result.error)


def _link_action(action: str, link_id: int, ctx: Context, **kwargs: object) -> None:
    from server.crm import mailboxes

    with ctx.session() as session:
        getattr(mailboxes, f"{action}_link")(session, link_id, **kwargs)


@mailbox.command("pause")
@click.argument("link_id", type=int)
@pass_ctx
def mailbox_pause(ctx: Context, link_id: int) -> None:
    """Stop capturing from a link until resumed."""
    _link_action("pause", link_id, ctx)
    click.echo(f"link {link_id} paused")


@mailbox.command("resume")
@click.argument("link_id", type=int)
@pass_ctx
def mailbox_resume(ctx: Context, link_id: int) -> None:
    """Capture again (also after fixing what made a link need attention)."""
    _link_action("resume", link_id, ctx)
    click.echo(f"link {link_id} active; due now")


@mailbox.command("remove")
@click.argument("link_id", type=int)
@click.option("--purge", is_flag=True, help="Also delete the mail only this link captured.")
@pass_ctx
def mailbox_remove(ctx: Context, link_id: int, purge: bool) -> None:
    """Stop capturing and forget the credentials; captured history stays unless --purge."""
    from server.crm.mailboxes import remove_link

    with ctx.session() as session:
        purged = remove_link(session, link_id, purge=purge)
    click.echo(f"link {link_id} removed" + (f"; {purged} activities purged" if purge else ""))


@main.command()
@click.option("--once", is_flag=True, help="One pass over what is due, then exit.")
@click.option("--demo", is_flag=True, hidden=True, help="The demo's worker (`rapport demo`).")
@pass_ctx
def worker(ctx: Context, once: bool, demo: bool) -> None:
    """Capture from every linked mailbox that is due; run the drop-address SMTP listener."""
    from server.mail_ingest.worker import Worker

    ctx.demo = demo
    _require_current_schema(ctx.db)
    if demo:  # the demo's customers answer campaign emails as they go out
        import threading

        from server.demo import responder

        stop = threading.Event()
        threading.Thread(target=responder.run, args=(ctx.db, stop), daemon=True).start()
    ran = Worker(ctx.db, ctx.settings).run(once=once)
    if once:
        click.echo(f"{ran} jobs run")


# -- db ------------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Create or migrate the database schema to this version of Rapport."""
    before = ctx.db.current_revision()
    ctx.db.upgrade()
    after = ctx.db.current_revision()
    click.echo(f"database at {after}" + ("" if before == after else f" (was {before or 'empty'})"))


@db.command("status")
@pass_ctx
def db_status(ctx: Context) -> None:
    """Show the schema revision and whether an upgrade is needed."""
    current, head = ctx.db.current_revision(), ctx.db.head_revision()
    state = "up to date" if current == head else "needs `rapport db upgrade`"
    click.echo(f"{ctx.db.engine.dialect.name}: revision {current or 'none'} (head {head}): {state}")


# -- users and tokens ----------------------------------------------------------------------------


@main.group()
def user() -> None:
    """People who use Rapport."""


@user.command("add")
@click.argument("address")
@click.option("--role", type=click.Choice(["admin", "member"]), required=True)
@click.option("--name", default="", help="Display name.")
@pass_ctx
def user_add(ctx: Context, address: str, role: str, name: str) -> None:
    """Add a user identified by ADDRESS."""
    from server.crm.users import add_user

    with ctx.session() as session:
        created = add_user(session, address, role=role, name=name)
        click.echo(f"user {created.id} {created.email} ({created.role})")


@user.command("password")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@click.option("--password-env", metavar="VAR", help="Read the new password from this variable.")
@pass_ctx
def user_password(
    ctx: Context, address: str, password_stdin: bool, password_env: str | None
) -> None:
    """Set the password ADDRESS signs in with (the sign-in page; lifts a lockout)."""
    from server.crm.users import get_user_by_email, set_password

    password = _read_secret(password_stdin, password_env, "password")
    with ctx.session() as session:
        set_password(session, get_user_by_email(session, address), password)
    click.echo(f"password set for {address}")


@main.group()
def token() -> None:
    """API tokens for the CLI, integrations and people not on Entra ID."""


@token.command("create")
@click.argument("address")
@click.option("--name", default="", help="What the token is for.")
@click.option(
    "--expires",
    default="90d",
    show_default=True,
    help="Lifetime like 30d, 12w, or 'never'.",
)
@pass_ctx
def token_create(ctx: Context, address: str, name: str, expires: str) -> None:
    """Create a token for the user ADDRESS; it is shown once, only its hash is stored."""
    from server.crm.users import create_token, get_user_by_email

    lifetime: timedelta | None = None
    if expires != "never":
        try:
            lifetime = parse_duration(expires)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--expires") from None
    with ctx.session() as session:
        issued = create_token(
            session, get_user_by_email(session, address), name=name, expires_in=lifetime
        )
        expiry = issued.token.expires_at.isoformat() if issued.token.expires_at else "never"
        click.echo(f"token {issued.token.id} for {address}, expires {expiry}", err=True)
        click.echo("store it now: it cannot be shown again", err=True)
        click.echo(issued.plaintext)


@token.command("revoke")
@click.argument("token_id", type=int)
@pass_ctx
def token_revoke(ctx: Context, token_id: int) -> None:
    """Revoke token TOKEN_ID at once."""
    from server.crm.users import revoke_token

    with ctx.session() as session:
        revoke_token(session, token_id)
    click.echo(f"token {token_id} revoked")


# -- contact (GDPR) ------------------------------------------------------------------------------


@main.group()
def contact() -> None:
    """A person's data: export it (subject access request) or erase it (docs/privacy.md)."""


@contact.command("export")
@click.argument("address")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the zip here (default: standard output, unless it is a terminal).",
)
@pass_ctx
def contact_export(ctx: Context, address: str, output: Path | None) -> None:
    """Everything Rapport holds about ADDRESS as one zip: person.json, emails as .eml, meetings
    as .ics."""
    import sys

    from server.crm import privacy

    if output is None and sys.stdout.isatty():
        raise click.UsageError("the export is a zip: give -o FILE or redirect the output")
    try:
        with click.open_file(str(output) if output else "-", "wb") as target:
            with ctx.db.read_session() as session:
                exported = privacy.write_export(session, address, target)
            with ctx.session() as session:
                privacy.audit_export(session, None, exported)
    except BaseException:
        if output is not None:
            output.unlink(missing_ok=True)  # no half-written export left behind
        raise
    click.echo(
        f"exported {exported.emails} emails, {exported.meetings} meetings and "
        f"{exported.other} notes and other entries" + (f" to {output}" if output else ""),
        err=True,
    )


@contact.command("erase")
@click.argument("address")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def contact_erase(ctx: Context, address: str, yes: bool) -> None:
    """Erase ADDRESS's person for good and keep capture from recording them again."""
    from server.crm import privacy

    if not yes:
        click.confirm(
            f"Erase everything about {address}? This cannot be undone.", abort=True, err=True
        )
    with ctx.session() as session:
        report = privacy.erase_person(session, None, address)
    privacy.reclaim_freed_space(ctx.db.engine)
    counts = report.as_dict()
    contact_id = counts.pop("contact_id")
    who = f"contact {contact_id}" if contact_id else "no contact"
    done = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in counts.items() if n)
    click.echo(f"erased ({who}): {done or 'nothing else was stored'}")


# -- secrets -------------------------------------------------------------------------------------


@main.group()
def secrets() -> None:
    """Encrypted secrets (mailbox passwords, OAuth secrets, token caches)."""


@secrets.command("rotate")
@pass_ctx
def secrets_rotate(ctx: Context) -> None:
    """Re-encrypt every stored secret with the first key of RAPPORT_SECRET_KEY."""
    from server.crm.secrets import rotate_secrets
    from server.crypto import SecretBox

    box = SecretBox(ctx.settings.secret_keys)
    with ctx.session() as session:
        count = rotate_secrets(session, box)
    click.echo(f"{count} secrets re-encrypted with the current key")
    if len(ctx.settings.secret_keys) > 1:
        click.echo("you can now remove the old keys from RAPPORT_SECRET_KEY")


# -- backup --------------------------------------------------------------------------------------


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@pass_ctx
def backup(ctx: Context, file: Path) -> None:
    """Write a consistent backup of the whole database to FILE."""
    from server.backup import backup as run_backup

    run_backup(ctx.db, file)
    click.echo(f"backup written to {file}")


@main.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def restore(ctx: Context, file: Path, yes: bool) -> None:
    """Replace the database's contents with the backup in FILE."""
    from server.backup import restore as run_restore

    if not yes:
        click.confirm("This replaces everything in the database. Continue?", abort=True)
    run_restore(ctx.db, file)
    click.echo(f"restored from {file}")


# -- jobs ----------------------------------------------------------------------------------------


@main.command()
@click.option(
    "--status",
    type=click.Choice(["queued", "running", "done", "dead"]),
    help="Only jobs in this state (default: all but done).",
)
@click.option("--limit", default=50, show_default=True)
@pass_ctx
def jobs(ctx: Context, status: str | None, limit: int) -> None:
    """List background jobs, with the last error of failed and dead ones."""
    from sqlalchemy import select

    from server.models import Job

    query = select(Job).order_by(Job.id.desc()).limit(limit)
    query = query.where(Job.status == status) if status else query.where(Job.status != "done")
    with ctx.session() as session:
        rows = session.scalars(query).all()
        if not rows:
            click.echo("no jobs")
        for job in rows:
            line = f"{job.id:>6}  {job.status:8} {job.kind:20} attempts {job.attempts}"
            click.echo(line + (f"  last error: {job.last_error}" if job.last_error else ""))


# -- the Outlook add-in --------------------------------------------------------------------------


@main.group()
def addin() -> None:
    """The Outlook add-in: its manifest for this deployment."""


@addin.command("manifest")
@click.option(
    "--base-url",
    required=True,
    metavar="URL",
    help="The HTTPS address Rapport is served at, e.g. https://crm.example.com.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Write here instead of to standard output: a file, a directory, or (json) an app "
    "package .zip with the icons.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["xml", "json"]),
    default="xml",
    show_default=True,
    help="xml: the add-in-only manifest (every Outlook, Exchange on-premises); json: the "
    "unified manifest (new Outlook, Microsoft 365 admin center).",
)
def addin_manifest(base_url: str, output: Path | None, fmt: str) -> None:
    """Print or write the add-in manifest for the deployment at --base-url.

    Needs no settings and no database: the manifest only tells Outlook where the task pane is.
    """
    from server.addin.manifest import (
        ManifestError,
        parse_base_url,
        render_json,
        render_xml,
        write_manifest,
    )

    try:
        base = parse_base_url(base_url)
        if output is not None:
            written = write_manifest(base, output, fmt=fmt)
        else:
            text = render_xml(base) if fmt == "xml" else render_json(base)
    except ManifestError as exc:
        raise click.BadParameter(str(exc), param_hint="--base-url") from None
    except OSError as exc:
        raise click.FileError(str(output), hint=exc.strerror or str(exc)) from None
    if not base.url.startswith("https://"):
        click.echo("note: Outlook itself loads add-ins only over HTTPS", err=True)
    if output is None:
        click.echo(text, nl=False)
        if fmt == "json":
            click.echo("note: the app package needs its icons too: use -o FILE.zip", err=True)
        return
    for path in written:
        click.echo(f"written to {path}")


# -- signals ------------------------------------------------------------------------------------


@main.group()
def signals() -> None:
    """Relationship signals: replies awaited, mail unanswered, contacts going cold, deals
    rotting, top customers, churn risk, meetings without follow-up (docs/signals.md)."""


@signals.command("recompute")
@click.option(
    "--marked",
    is_flag=True,
    help="Only what newly captured mail touched (what the worker does after each capture).",
)
@pass_ctx
def signals_recompute(ctx: Context, marked: bool) -> None:
    """Recompute every signal now (the worker also does it once a day)."""
    from server.crm.signals import dirty
    from server.crm.signals.store import RecomputeStats, refresh_dirty
    from server.crm.signals.upkeep import recompute_all

    if marked:
        stats = RecomputeStats()
        while True:
            with ctx.session() as session:
                if not dirty.pending(session):
                    break
                part = refresh_dirty(session, limit=1000)
            stats.add(part)
            stats.seconds += part.seconds
    else:
        stats = recompute_all(ctx.db)
    click.echo(
        f"{stats.signals} signals from {stats.contacts} contacts, {stats.deals} open deals and "
        f"{stats.companies} companies in {stats.seconds:.1f} s"
    )


@signals.command("list")
@click.argument("address")
@click.option("--all", "everyone", is_flag=True, help="Every signal they may see, not only theirs.")
@click.option("--limit", default=50, show_default=True)
@pass_ctx
def signals_list(ctx: Context, address: str, everyone: bool, limit: int) -> None:
    """The to-do list of the user ADDRESS: what to act on today, and why."""
    from sqlalchemy import select

    from server.crm.signals import list_signals
    from server.crm.viewer import Viewer
    from server.models import User

    with ctx.session() as session:
        user = session.scalar(select(User).where(User.email == address.strip().lower()))
        if user is None:
            raise DomainError(f"there is no user {address}")
        page = list_signals(session, Viewer.of(user), mine=not everyone, limit=limit)
    for item in page.items:
        who = item.contact.name if item.contact else ""
        if item.contact and item.contact.address:
            who = f"{who} <{item.contact.address}>".strip()
        about = " / ".join(x for x in (who, item.deal.name if item.deal else "") if x)
        click.echo(f"{item.due_at:%Y-%m-%d %H:%M}  {item.kind:<26} {about}")
        click.echo(f"    {item.reason.get('summary', '')}")
    if not page.items:
        click.echo("nothing to act on")


# -- digest -------------------------------------------------------------------------------------


@main.group()
def digest() -> None:
    """The daily digest email (the worker sends it at each user's morning)."""


@digest.command("send")
@click.option("--user", "address", metavar="ADDRESS", help="Only this user (default: everyone).")
@click.option("--force", is_flag=True, help="Send even if today's digest went out already.")
@pass_ctx
def digest_send(ctx: Context, address: str | None, force: bool) -> None:
    """Send today's digest now, through RAPPORT_SMTP_URL; a day with nothing to do sends nothing."""
    from sqlalchemy import select

    from server.mail_out.digests import send_digest
    from server.mail_out.smtp import SendFailed, sender_of
    from server.models import User

    try:
        sender_of(ctx.settings)
    except SendFailed as exc:
        raise DomainError(str(exc)) from None
    with ctx.session() as session:
        query = select(User.id, User.email).where(User.disabled_at.is_(None)).order_by(User.id)
        if address is not None:
            query = query.where(User.email == address.strip().lower())
        users = list(session.execute(query))
    if address is not None and not users:
        raise DomainError(f"there is no active user {address}")
    failed = 0
    for user_id, email in users:
        try:
            outcome = send_digest(ctx.db, ctx.settings, user_id, force=force)
        except SendFailed as exc:
            failed += 1
            click.echo(f"{email}: not sent: {exc}", err=True)
            continue
        if outcome.sent:
            click.echo(f"{email}: sent ({outcome.things} to do)")
        elif outcome.things:
            click.echo(f"{email}: already sent today (--force sends it again)")
        else:
            click.echo(f"{email}: nothing to do today, nothing sent")
    if failed:
        raise SystemExit(1)
