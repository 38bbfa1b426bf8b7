"""Settings from the environment, read and validated once at start-up.

Every `RAPPORT_*` variable of the contract is read here into one frozen `Settings` object; nothing
else in the code reads the environment. A wrong value raises `ConfigError`, which the CLI turns into
one line naming the variable and what to do (exit code 2).
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

import idna

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

T = TypeVar("T")

MIN_SECRET_KEY_LENGTH = 32
DEMO_SECRET_FILE = "demo-secret-key"  # noqa: S105 - a file name, not a secret


class ConfigError(Exception):
    """A configuration value is missing or wrong; `variable` names it, the message says what to do."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    secret_keys: tuple[str, ...]
    demo: bool = False
    internal_domains: tuple[str, ...] = ()
    graph_authority_host: str = "login.microsoftonline.com"
    graph_api_url: str = "https://graph.microsoft.com/v1.0"
    ews_autodiscover_urls: tuple[str, ...] = (
        "https://{domain}/autodiscover/autodiscover.xml",
        "https://autodiscover.{domain}/autodiscover/autodiscover.xml",
    )
    entra_tenant_id: str | None = None
    entra_client_id: str | None = None
    ca_bundle: Path | None = None
    public_url: str | None = None
    smtp_url: str | None = None
    drop_listen: tuple[str, int] | None = None
    drop_domain: str | None = None
    drop_tls_cert: Path | None = None
    drop_tls_key: Path | None = None
    log_level: str = "INFO"
    log_format: str = "json"
    entra_scope: str = "access_as_user"
    cors_origins: tuple[str, ...] = ()
    frame_ancestors: tuple[str, ...] = ()
    rate_limit_per_minute: int = 600
    # Reverse proxies in front (nginx, Caddy) whose X-Forwarded-For/-Proto/-Host are believed:
    # 0 believes none (a client could claim any address), 1 the one proxy a deployment has.
    trusted_proxies: int = 0

    @property
    def secret_key(self) -> str:
        """The current key: new secrets are encrypted with it; the others only decrypt."""
        return self.secret_keys[0]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(environ: Mapping[str, str] | None = None, *, demo: bool = False) -> Settings:
    """Read every RAPPORT_* variable, validate it, and return the settings (or raise ConfigError)."""
    env = dict(os.environ if environ is None else environ)

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    data_dir = _data_dir(get("RAPPORT_DATA_DIR") or ("./var/demo" if demo else "./var"))
    database_url = _database_url(get("RAPPORT_DATABASE_URL"), data_dir)
    secret_keys = _secret_keys(get("RAPPORT_SECRET_KEY"), data_dir, demo=demo)
    drop_cert = _readable_file("RAPPORT_DROP_TLS_CERT", get("RAPPORT_DROP_TLS_CERT"))
    drop_key = _readable_file("RAPPORT_DROP_TLS_KEY", get("RAPPORT_DROP_TLS_KEY"))
    if (drop_cert is None) != (drop_key is None):
        raise ConfigError(
            "RAPPORT_DROP_TLS_CERT",
            "set both RAPPORT_DROP_TLS_CERT and RAPPORT_DROP_TLS_KEY (or neither) for STARTTLS",
        )
    log_level = (get("RAPPORT_LOG_LEVEL") or "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError("RAPPORT_LOG_LEVEL", "use one of DEBUG, INFO, WARNING, ERROR")
    log_format = (get("RAPPORT_LOG_FORMAT") or "json").lower()
    if log_format not in {"json", "text"}:
        raise ConfigError("RAPPORT_LOG_FORMAT", "use json or text")
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_keys=secret_keys,
        demo=demo,
        internal_domains=_domains("RAPPORT_INTERNAL_DOMAINS", get("RAPPORT_INTERNAL_DOMAINS")),
        graph_authority_host=_host_port(
            "RAPPORT_GRAPH_AUTHORITY_HOST",
            get("RAPPORT_GRAPH_AUTHORITY_HOST") or "login.microsoftonline.com",
        ),
        graph_api_url=_http_url(
            "RAPPORT_GRAPH_API_URL",
            get("RAPPORT_GRAPH_API_URL") or "https://graph.microsoft.com/v1.0",
            https_only=True,
        ).rstrip("/"),
        ews_autodiscover_urls=_autodiscover_urls(
            "RAPPORT_EWS_AUTODISCOVER_URL", get("RAPPORT_EWS_AUTODISCOVER_URL")
        ),
        entra_tenant_id=get("RAPPORT_ENTRA_TENANT_ID"),
        entra_client_id=get("RAPPORT_ENTRA_CLIENT_ID"),
        ca_bundle=_ca_bundle(get("RAPPORT_CA_BUNDLE")),
        public_url=_optional(get("RAPPORT_PUBLIC_URL"), "RAPPORT_PUBLIC_URL", _public_url),
        smtp_url=_optional(get("RAPPORT_SMTP_URL"), "RAPPORT_SMTP_URL", _smtp_url),
        drop_listen=_optional(get("RAPPORT_DROP_LISTEN"), "RAPPORT_DROP_LISTEN", _listen),
        drop_domain=_optional_domain("RAPPORT_DROP_DOMAIN", get("RAPPORT_DROP_DOMAIN")),
        drop_tls_cert=drop_cert,
        drop_tls_key=drop_key,
        log_level=log_level,
        log_format=log_format,
        entra_scope=_scope_name(
            "RAPPORT_ENTRA_SCOPE", get("RAPPORT_ENTRA_SCOPE") or "access_as_user"
        ),
        cors_origins=_origins("RAPPORT_CORS_ORIGINS", get("RAPPORT_CORS_ORIGINS")),
        frame_ancestors=_frame_ancestors("RAPPORT_FRAME_ANCESTORS", get("RAPPORT_FRAME_ANCESTORS")),
        rate_limit_per_minute=_count(
            "RAPPORT_RATE_LIMIT_PER_MINUTE", get("RAPPORT_RATE_LIMIT_PER_MINUTE"), default=600
        ),
        trusted_proxies=_count(
            "RAPPORT_TRUSTED_PROXIES", get("RAPPORT_TRUSTED_PROXIES"), default=0
        ),
    )


def _data_dir(raw: str) -> Path:
    path = Path(raw).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(
            "RAPPORT_DATA_DIR",
            f"{path} is not a writable directory ({exc.strerror or exc}); "
            "point it at a directory this user can write",
        ) from None
    return path


def _database_url(raw: str | None, data_dir: Path) -> str:
    if raw is None:
        return f"sqlite:///{data_dir / 'rapport.sqlite3'}"
    # Imported here: `rapport import` sets its parse workers going before SQLAlchemy loads.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url: URL = make_url(raw)
    except ArgumentError:
        raise ConfigError(
            "RAPPORT_DATABASE_URL",
            "not a database URL; use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB",
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise ConfigError(
                "RAPPORT_DATABASE_URL", "SQLite needs a file path, e.g. sqlite:///var/rapport.db"
            )
        return url.render_as_string(hide_password=False)
    if backend in {"postgresql", "postgres"}:
        if url.get_driver_name() not in {"psycopg", "psycopg2", ""} and url.drivername not in {
            "postgresql",
            "postgres",
        }:
            raise ConfigError(
                "RAPPORT_DATABASE_URL",
                "Rapport talks to PostgreSQL through psycopg 3: use postgresql://...",
            )
        if not url.database:
            raise ConfigError("RAPPORT_DATABASE_URL", "name the database, e.g. .../rapport")
        url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    raise ConfigError(
        "RAPPORT_DATABASE_URL",
        f"'{backend}' is not supported; use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB",
    )


def _secret_keys(raw: str | None, data_dir: Path, *, demo: bool) -> tuple[str, ...]:
    if raw is None:
        if not demo:
            raise ConfigError(
                "RAPPORT_SECRET_KEY",
                "not set; generate one with "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'` and keep it safe "
                "(it encrypts stored mailbox passwords)",
            )
        return (_demo_secret(data_dir),)
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    for key in keys:
        if len(key) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(
                "RAPPORT_SECRET_KEY",
                f"each key must be at least {MIN_SECRET_KEY_LENGTH} characters; "
                "generate one with `python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`",
            )
    if not keys:
        raise ConfigError("RAPPORT_SECRET_KEY", "empty; give at least one key")
    return keys


def _demo_secret(data_dir: Path) -> str:
    """The demo keeps one generated key in its data directory so restarts still decrypt."""
    path = data_dir / DEMO_SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def _domains(variable: str, raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    return tuple(_domain(variable, part) for part in raw.split(",") if part.strip())


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _domain(variable: str, raw: str) -> str:
    value = raw.strip().lower().rstrip(".")
    try:
        ascii_form = idna.encode(value, uts46=True).decode("ascii")
    except idna.IDNAError:
        raise ConfigError(variable, f"'{raw.strip()}' is not a domain name") from None
    labels = ascii_form.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ConfigError(variable, f"'{raw.strip()}' is not a domain name (e.g. example.com)")
    return idna.decode(ascii_form)


def _optional_domain(variable: str, raw: str | None) -> str | None:
    return None if raw is None else _domain(variable, raw)


def _host_port(variable: str, raw: str) -> str:
    if "://" in raw or "/" in raw:
        raise ConfigError(
            variable, "give a host name with an optional port, without scheme or path"
        )
    host, _, port = raw.partition(":")
    if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ConfigError(variable, f"'{raw}' is not HOST or HOST:PORT")
    return raw


def _http_url(variable: str, raw: str, *, https_only: bool = False) -> str:
    parts = urlsplit(raw)
    allowed = {"https"} if https_only else {"http", "https"}
    if parts.scheme not in allowed or not parts.netloc:
        want = "an https:// URL" if https_only else "an http(s):// URL"
        raise ConfigError(variable, f"'{raw}' is not {want}")
    return raw


def _autodiscover_urls(variable: str, raw: str | None) -> tuple[str, ...]:
    """Autodiscover URL templates, comma-separated, asked in order; each an https:// URL
    with {domain} (the mailbox address's domain) and no other placeholder."""
    if raw is None:
        return Settings.ews_autodiscover_urls
    found = []
    for template in (t.strip() for t in raw.split(",")):
        if not template:
            continue
        try:
            example = template.format(domain="example.com")
        except (KeyError, IndexError, ValueError):
            raise ConfigError(
                variable, f"'{template}' may hold {{domain}} and no other placeholder"
            ) from None
        if "{domain}" not in template:
            raise ConfigError(variable, f"'{template}' has no {{domain}}")
        _http_url(variable, example, https_only=True)
        found.append(template)
    if not found:
        raise ConfigError(variable, "give at least one https:// URL template with {domain}")
    return tuple(found)


def _public_url(variable: str, raw: str) -> str:
    url = _http_url(variable, raw).rstrip("/")
    parts = urlsplit(url)
    local = parts.hostname in {"localhost", "127.0.0.1", "::1"}
    if parts.scheme != "https" and not local:
        raise ConfigError(variable, "Outlook loads add-ins only over HTTPS: use https://...")
    return url


def _smtp_url(variable: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"smtp", "smtps", "smtp+starttls"} or not parts.hostname:
        raise ConfigError(
            variable, "use smtp+starttls://USER:PASSWORD@HOST:587, smtps://... or smtp://HOST:25"
        )
    return raw


def _listen(variable: str, raw: str) -> tuple[str, int]:
    host, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(variable, f"'{raw}' is not HOST:PORT (e.g. 0.0.0.0:2525)")
    return (host.strip("[]") or "0.0.0.0", int(port))  # noqa: S104 - an explicit listen setting


def _readable_file(variable: str, raw: str | None) -> Path | None:
    if raw is None:
        return None
    path = Path(raw).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError(variable, f"cannot read {path}; give a readable file")
    return path


def _ca_bundle(raw: str | None) -> Path | None:
    path = _readable_file("RAPPORT_CA_BUNDLE", raw)
    if path is not None and b"-----BEGIN CERTIFICATE-----" not in path.read_bytes():
        raise ConfigError("RAPPORT_CA_BUNDLE", f"{path} holds no PEM certificate")
    return path


def _optional(raw: str | None, variable: str, check: Callable[[str, str], T]) -> T | None:
    return None if raw is None else check(variable, raw)


_SCOPE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _scope_name(variable: str, raw: str) -> str:
    """The bare scope name the add-in's app registration exposes (not the api://... form)."""
    if not _SCOPE_NAME.match(raw):
        raise ConfigError(
            variable,
            f"'{raw}' is not a scope name; give the bare name the app registration exposes, "
            "e.g. access_as_user (not api://.../access_as_user)",
        )
    return raw


# scheme://host[:port], nothing else: these values end up in response headers, so anything that
# could smuggle a quote, a semicolon or a space into a header is refused here.
_ORIGIN = re.compile(r"^(https?)://([a-z0-9.-]+|\[[0-9a-f:]+\])(:[0-9]{1,5})?$")
_ANCESTOR = re.compile(r"^https://(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)+(:[0-9]{1,5})?$")


def _origins(variable: str, raw: str | None) -> tuple[str, ...]:
    """Browser origins allowed to call the API cross-origin (CORS); the add-in itself needs none."""
    if raw is None:
        return ()
    origins = []
    for part in raw.split(","):
        value = part.strip().lower().rstrip("/")
        if not value:
            continue
        if value == "*":
            raise ConfigError(
                variable, "'*' is not allowed; list each origin, e.g. https://crm.example.com"
            )
        if not _ORIGIN.match(value):
            raise ConfigError(
                variable,
                f"'{part.strip()}' is not an origin; use scheme://host[:port] without a path, "
                "e.g. https://intranet.example.com",
            )
        origins.append(value)
    return tuple(dict.fromkeys(origins))


def _frame_ancestors(variable: str, raw: str | None) -> tuple[str, ...]:
    """Extra origins allowed to frame the pages (e.g. an on-premises Outlook on the web)."""
    if raw is None:
        return ()
    found = []
    for part in raw.split(","):
        value = part.strip().lower().rstrip("/")
        if not value:
            continue
        if not _ANCESTOR.match(value):
            raise ConfigError(
                variable,
                f"'{part.strip()}' is not an https origin; use https://host[:port] or "
                "https://*.domain, e.g. https://mail.example.com",
            )
        found.append(value)
    return tuple(dict.fromkeys(found))


def _count(variable: str, raw: str | None, *, default: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit():
        raise ConfigError(variable, f"'{raw}' is not a whole number (0 switches it off)")
    return int(raw)
