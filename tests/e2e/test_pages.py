"""What the pane's pages are served with (server/api/pages.py, server/api/me.py), through Flask's
test client: the allow-list of node_modules files, content types, cache and security headers,
the anonymous pane configuration, the demo's sign-in, and the pane's small read calls."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.api.pages import FLUENT_TOKEN_MODULES, NODE_MODULES, VENDOR_FILES
from server.app import create_app
from server.config import Settings, load_settings
from server.crm.mailboxes import add_drop_link
from server.crm.rules import log_header_key, log_header_value
from server.crm.users import add_user, create_token
from server.db import Database
from server.demo.setup import TOKEN_FILE
from server.mail_ingest.importer import import_files
from tests.e2e.conftest import Demo
from tests.support.mail import make_email, write_maildir

ANNA = "anna@northwind-supplies.com"
CLARA = "Clara Jensen <clara@brightline-dental.co.uk>"


@pytest.fixture
def backend() -> str:
    """These run on SQLite only: they check pages and headers, not the database."""
    return "sqlite"


def token_for(db: Database, address: str) -> tuple[int, str]:
    with db.session() as session:
        user = add_user(session, address, role="member")
        return user.id, create_token(session, user, expires_in=timedelta(days=1)).plaintext


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_only_allow_listed_node_modules_files_are_served(client: FlaskClient) -> None:
    for name in ("fluent/web-components.min.js", "fluent-tokens/themes/web/index.js"):
        response = client.get(f"/vendor/{name}")
        assert response.status_code == 200, name
        assert response.mimetype == "text/javascript"
        assert response.headers["Cache-Control"] == "public, max-age=86400"
        assert response.headers["ETag"]
        assert "Content-Security-Policy" not in response.headers  # a script's CSP binds workers
    for name in (
        "fluent-tokens/index.js",
        "../package.json",
        "%2e%2e/package.json",
        "@fluentui/tokens/package.json",
        "fluent/web-components.js",
    ):
        assert client.get(f"/vendor/{name}").status_code == 404, name
    for relative in VENDOR_FILES.values():
        assert (NODE_MODULES / relative).is_file(), relative
    # A revalidation is answered without the body.
    first = client.get("/vendor/fluent/web-components.min.js")
    again = client.get(
        "/vendor/fluent/web-components.min.js", headers={"If-None-Match": first.headers["ETag"]}
    )
    assert (again.status_code, again.data) == (304, b"")


def test_the_token_allow_list_is_exactly_what_the_themes_import() -> None:
    lib = NODE_MODULES / "@fluentui" / "tokens" / "lib"
    seen: set[str] = set()

    def walk(relative: str) -> None:
        path = (lib / relative).resolve()
        name = path.relative_to(lib.resolve()).as_posix()
        if name in seen:
            return
        seen.add(name)
        source = path.read_text()
        for spec in re.findall(r"""(?:from|import)\s*["']([^"']+)["']""", source):
            assert spec.startswith("."), f"{name} imports the bare module {spec}"
            walk((Path(name).parent / spec).as_posix())

    walk("themes/web/index.js")
    assert seen == set(FLUENT_TOKEN_MODULES)


def test_the_pane_page_preloads_its_modules_and_may_load_office_js_in_outlook(
    client: FlaskClient,
) -> None:
    response = client.get("/pane/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<script src="https://appsforoffice.microsoft.com/lib/1/hosted/office.js">' in html
    assert 'rel="modulepreload" href="/pane/views.js"' in html
    assert 'rel="modulepreload" href="/vendor/fluent-tokens/tokens.js"' in html
    assert '<script nomodule src="/pane/legacy.js">' in html
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self' https://appsforoffice.microsoft.com" in policy
    assert "frame-ancestors 'self' https://*.cloud.microsoft" in policy
    assert "https://outlook.office.com" in policy
    assert response.headers["Cache-Control"] == "no-cache"
    assert client.get("/pane").status_code in (301, 308)
    for name, mimetype in (("pane.js", "text/javascript"), ("pane.css", "text/css")):
        asset = client.get(f"/pane/{name}")
        assert (asset.status_code, asset.mimetype) == (200, mimetype)
    assert client.get("/pane/..%2fpane.js").status_code == 404
    assert client.get("/pane/nothing.js").status_code == 404


def test_the_preview_frame_is_the_pane_with_the_stand_in(client: FlaskClient) -> None:
    html = client.get("/preview/pane").get_data(as_text=True)
    assert "appsforoffice.microsoft.com" not in html
    assert '<script src="/preview/office-standin.js">' in html
    assert '<script type="module" src="/pane/main.js">' in html
    assert client.get("/preview/").status_code == 200
    assert client.get("/preview/office-standin.js").mimetype == "text/javascript"


def test_pane_config_says_how_to_sign_in(db: Database, env: dict[str, str]) -> None:
    plain = create_app(load_settings(env), db=db).test_client()
    assert plain.get("/api/v1/pane-config").get_json() == {
        "entra": None,
        "signin_url": "/signin",
        "demo": False,
    }
    entra_env = {
        **env,
        "RAPPORT_ENTRA_TENANT_ID": "11111111-2222-3333-4444-555555555555",
        "RAPPORT_ENTRA_CLIENT_ID": "66666666-7777-8888-9999-000000000000",
    }
    configured = create_app(load_settings(entra_env), db=db).test_client()
    entra = configured.get("/api/v1/pane-config").get_json()["entra"]
    assert entra == {
        "client_id": "66666666-7777-8888-9999-000000000000",
        "tenant_id": "11111111-2222-3333-4444-555555555555",
        "authority": "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555",
        "scopes": ["api://66666666-7777-8888-9999-000000000000/access_as_user"],
    }


def test_the_demo_signs_in_by_itself_only_in_demo_mode_and_on_its_own_machine(
    db: Database, env: dict[str, str], client: FlaskClient
) -> None:
    assert client.post("/api/v1/preview/demo-sign-in").status_code == 404
    settings = load_settings(env, demo=True)
    (settings.data_dir / TOKEN_FILE).write_text("rpt_demo-token\n")
    demo: Flask = create_app(settings, db=db)
    local = demo.test_client().post("/api/v1/preview/demo-sign-in")
    assert local.status_code == 200
    assert local.get_json() == {"token": "rpt_demo-token"}
    assert local.headers["Cache-Control"] == "no-store"
    remote = demo.test_client().post(
        "/api/v1/preview/demo-sign-in", environ_base={"REMOTE_ADDR": "192.0.2.7"}
    )
    assert remote.status_code == 404


def test_log_when_sent_gives_the_drop_address_and_the_owners_marker(
    app: Flask, db: Database, env: dict[str, str]
) -> None:
    user_id, token = token_for(db, ANNA)
    answer = app.test_client().get("/api/v1/me/log-when-sent", headers=auth(token)).get_json()
    with db.session() as session:
        marker = log_header_value(log_header_key(session), user_id)
    assert answer == {
        "drop_address": None,
        "header": {"name": "X-Rapport-Log", "value": marker},
        "sent_mail_captured": False,
    }
    with_drop = create_app(load_settings({**env, "RAPPORT_DROP_DOMAIN": "drop.example"}), db=db)
    with db.session() as session:
        _link, address = add_drop_link(session, owner=ANNA, domain="drop.example")
    again = with_drop.test_client().get("/api/v1/me/log-when-sent", headers=auth(token))
    assert again.get_json()["drop_address"] == address
    assert again.get_json()["header"]["value"] == marker  # the marker does not change


def test_email_state_and_preview_emails(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    _user_id, token = token_for(db, ANNA)
    email = make_email(sender=CLARA, to=ANNA, message_id="<Q1@brightline-dental.co.uk>")
    import_files(db, settings, [write_maildir(tmp_path / "anna", [email])], owner=ANNA, jobs=1)
    items = client.get("/api/v1/preview/emails", headers=auth(token)).get_json()["items"]
    assert [(i["kind"], i["message_id"], i["sender"]["name"]) for i in items] == [
        ("email", "<q1@brightline-dental.co.uk>", "Clara Jensen")
    ]
    query = {
        "message_id": "<Q1@brightline-dental.co.uk>",
        "sender": "clara@brightline-dental.co.uk",
        "date": items[0]["date"],
    }
    state = client.get("/api/v1/pane/email-state", query_string=query, headers=auth(token))
    assert state.get_json() == {"logged": True, "activity_id": items[0]["activity_id"]}
    client.post(f"/api/v1/activities/{items[0]['activity_id']}/unlog", headers=auth(token))
    state = client.get("/api/v1/pane/email-state", query_string=query, headers=auth(token))
    assert state.get_json() == {"logged": False, "activity_id": None}
    other = {**query, "message_id": "<never@seen.example>"}
    state = client.get("/api/v1/pane/email-state", query_string=other, headers=auth(token))
    assert state.get_json()["logged"] is False
    assert client.get("/api/v1/pane/email-state", query_string=query).status_code == 401


def test_the_demo_summary_points_at_the_preview(demo: Demo) -> None:
    assert any("/preview/" in line for line in demo.summary)
