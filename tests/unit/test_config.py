"""Bad configuration stops every command with one line naming the variable (exit code 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.config import ConfigError, load_settings

KEY = "k" * 40


def base_env(tmp_path: Path) -> dict[str, str]:
    return {"RAPPORT_DATA_DIR": str(tmp_path / "data"), "RAPPORT_SECRET_KEY": KEY}


def test_defaults_give_sqlite_under_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(base_env(tmp_path))
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'rapport.sqlite3'}"
    assert settings.graph_authority_host == "login.microsoftonline.com"
    assert settings.graph_api_url == "https://graph.microsoft.com/v1.0"
    assert settings.secret_keys == (KEY,)


def test_every_contract_variable_is_read(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("c")
    key.write_text("k")
    env = {
        **base_env(tmp_path),
        "RAPPORT_DATABASE_URL": "postgresql://u:p@db.internal:5432/rapport",
        "RAPPORT_SECRET_KEY": f"{'n' * 40},{KEY}",
        "RAPPORT_INTERNAL_DOMAINS": "Acme.com, acme.co.uk",
        "RAPPORT_GRAPH_AUTHORITY_HOST": "localhost:8443",
        "RAPPORT_GRAPH_API_URL": "https://localhost:8444/v1.0/",
        "RAPPORT_ENTRA_TENANT_ID": "tenant",
        "RAPPORT_ENTRA_CLIENT_ID": "client",
        "RAPPORT_CA_BUNDLE": str(ca),
        "RAPPORT_PUBLIC_URL": "https://crm.acme.com/",
        "RAPPORT_SMTP_URL": "smtp+starttls://u:p@mail.acme.com:587",
        "RAPPORT_DROP_LISTEN": "0.0.0.0:2525",
        "RAPPORT_DROP_DOMAIN": "crm.acme.com",
        "RAPPORT_DROP_TLS_CERT": str(cert),
        "RAPPORT_DROP_TLS_KEY": str(key),
    }
    s = load_settings(env)
    assert s.database_url == "postgresql+psycopg://u:p@db.internal:5432/rapport"
    assert s.secret_key == "n" * 40 and len(s.secret_keys) == 2
    assert s.internal_domains == ("acme.com", "acme.co.uk")
    assert s.graph_authority_host == "localhost:8443"
    assert s.graph_api_url == "https://localhost:8444/v1.0"
    assert (s.entra_tenant_id, s.entra_client_id) == ("tenant", "client")
    assert s.ca_bundle == ca
    assert s.public_url == "https://crm.acme.com"
    assert s.smtp_url == "smtp+starttls://u:p@mail.acme.com:587"
    assert s.drop_listen == ("0.0.0.0", 2525)
    assert s.drop_domain == "crm.acme.com"
    assert (s.drop_tls_cert, s.drop_tls_key) == (cert, key)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("RAPPORT_DATABASE_URL", "mysql://u@h/db", "not supported"),
        ("RAPPORT_DATABASE_URL", "this is not a url", "not a database URL"),
        ("RAPPORT_DATABASE_URL", "sqlite://", "needs a file path"),
        ("RAPPORT_SECRET_KEY", "short", "at least 32 characters"),
        ("RAPPORT_CA_BUNDLE", "/nonexistent/ca.pem", "cannot read"),
        ("RAPPORT_INTERNAL_DOMAINS", "acme.com,not a domain", "not a domain name"),
        ("RAPPORT_GRAPH_AUTHORITY_HOST", "https://login.example.com", "without scheme"),
        ("RAPPORT_GRAPH_API_URL", "http://graph.example.com", "https://"),
        ("RAPPORT_PUBLIC_URL", "http://crm.acme.com", "HTTPS"),
        ("RAPPORT_SMTP_URL", "mail.acme.com", "smtp+starttls://"),
        ("RAPPORT_DROP_LISTEN", "2525", "HOST:PORT"),
        ("RAPPORT_DROP_TLS_CERT", "/nonexistent/cert.pem", "cannot read"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("RAPPORT") else None,
)
def test_wrong_values_name_the_variable(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**base_env(tmp_path), variable: value})
    assert caught.value.variable == variable
    assert expected in caught.value.message


def test_missing_secret_key_is_refused_outside_demo_mode(tmp_path: Path) -> None:
    env = {"RAPPORT_DATA_DIR": str(tmp_path)}
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert caught.value.variable == "RAPPORT_SECRET_KEY"
    demo = load_settings(env, demo=True)
    again = load_settings(env, demo=True)
    assert demo.secret_key == again.secret_key, "the demo keeps its generated key across restarts"


def test_ca_bundle_without_a_certificate_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(ConfigError, match="no PEM certificate"):
        load_settings({**base_env(tmp_path), "RAPPORT_CA_BUNDLE": str(bogus)})


def test_unwritable_data_dir_is_refused(tmp_path: Path) -> None:
    # /proc refuses new entries even to root, who can write anywhere else.
    with pytest.raises(ConfigError, match="not a writable directory"):
        load_settings({**base_env(tmp_path), "RAPPORT_DATA_DIR": "/proc/rapport-data"})


def test_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigError) as caught:
        load_settings({**base_env(tmp_path), "RAPPORT_DATA_DIR": str(a_file / "sub")})
    assert caught.value.variable == "RAPPORT_DATA_DIR"


def test_the_command_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, **base_env(tmp_path), "RAPPORT_DATABASE_URL": "mysql://u@h/db"}
    result = subprocess.run(
        [sys.executable, "-m", "server", "db", "status"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "rapport: RAPPORT_DATABASE_URL: 'mysql' is not supported; use sqlite:///PATH or "
        "postgresql://USER:PASSWORD@HOST/DB"
    ]
