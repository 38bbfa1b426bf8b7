"""/api/v1/pipelines: the board's pipelines and stages, readable by all, defined by admins."""

from __future__ import annotations

from flask.testing import FlaskClient

from server.crm.pipelines import ensure_default_pipeline
from server.db import Database
from tests.integration.test_api_lookup import auth, token_for

ADMIN = "boss@northwind-supplies.com"
ANNA = "anna@northwind-supplies.com"


def test_default_sales_pipeline_appears_on_first_use(client: FlaskClient, db: Database) -> None:
    token = token_for(db, ANNA)
    response = client.get("/api/v1/pipelines", headers=auth(token))
    assert response.status_code == 200, response.get_json()
    [sales] = response.get_json()["items"]
    assert sales["name"] == "Sales"
    assert sales["is_default"] is True
    assert [(s["name"], s["outcome"], s["position"]) for s in sales["stages"]] == [
        ("Lead", "open", 0),
        ("Qualified", "open", 1),
        ("Proposal", "open", 2),
        ("Negotiation", "open", 3),
        ("Won", "won", 4),
        ("Lost", "lost", 5),
    ]
    # Asking again (or from the demo's service call) does not create a second one.
    with db.session() as session:
        assert ensure_default_pipeline(session).id == sales["id"]
    again = client.get("/api/v1/pipelines", headers=auth(token)).get_json()["items"]
    assert [p["id"] for p in again] == [sales["id"]]


def test_admin_defines_pipelines_and_stages(client: FlaskClient, db: Database) -> None:
    admin = auth(token_for(db, ADMIN, role="admin"))
    assert client.get("/api/v1/pipelines", headers=admin).status_code == 200  # "Sales" now exists
    created = client.post(
        "/api/v1/pipelines",
        json={
            "name": "Renewals",
            "stages": [
                {"name": "Due", "probability": 60, "rot_days": 14},
                {"name": "Renewed", "probability": 100, "outcome": "won"},
            ],
        },
        headers=admin,
    )
    assert created.status_code == 201, created.get_json()
    renewals = created.get_json()
    assert [s["name"] for s in renewals["stages"]] == ["Due", "Renewed"]
    assert renewals["stages"][0]["rot_days"] == 14
    pid = renewals["id"]

    # Insert a stage at the front, rename one, and reorder them.
    added = client.post(
        f"/api/v1/pipelines/{pid}/stages",
        json={"name": "Notice sent", "position": 0, "probability": 30},
        headers=admin,
    )
    assert added.status_code == 201, added.get_json()
    notice = added.get_json()["id"]
    due, renewed = (s["id"] for s in renewals["stages"])
    renamed = client.patch(
        f"/api/v1/pipelines/{pid}/stages/{due}",
        json={"name": "Renewal due", "rot_days": None},
        headers=admin,
    )
    assert renamed.status_code == 200, renamed.get_json()
    assert renamed.get_json()["rot_days"] is None
    ordered = client.put(
        f"/api/v1/pipelines/{pid}/stages/order",
        json={"stage_ids": [due, notice, renewed]},
        headers=admin,
    )
    assert ordered.status_code == 200, ordered.get_json()
    assert [(s["name"], s["position"]) for s in ordered.get_json()["stages"]] == [
        ("Renewal due", 0),
        ("Notice sent", 1),
        ("Renewed", 2),
    ]
    bad_order = client.put(
        f"/api/v1/pipelines/{pid}/stages/order", json={"stage_ids": [due]}, headers=admin
    )
    assert bad_order.status_code == 400
    assert bad_order.get_json()["error"]["field"] == "stage_ids"

    # Make it the default and rename it; the old default stops being one.
    patched = client.patch(
        f"/api/v1/pipelines/{pid}",
        json={"name": "Renewals 2027", "is_default": True},
        headers=admin,
    )
    assert patched.status_code == 200, patched.get_json()
    listed = client.get("/api/v1/pipelines", headers=admin).get_json()["items"]
    assert [(p["name"], p["is_default"]) for p in listed] == [
        ("Sales", False),
        ("Renewals 2027", True),
    ]

    # Delete an unused stage, then the (empty) pipeline.
    assert (
        client.delete(f"/api/v1/pipelines/{pid}/stages/{notice}", headers=admin).status_code == 204
    )
    assert client.delete(f"/api/v1/pipelines/{pid}", headers=admin).status_code == 204
    listed = client.get("/api/v1/pipelines", headers=admin).get_json()["items"]
    assert [(p["name"], p["is_default"]) for p in listed] == [("Sales", True)]


def test_a_team_whose_first_pipeline_is_its_own_gets_no_sales_pipeline(
    client: FlaskClient, db: Database
) -> None:
    admin = auth(token_for(db, ADMIN, role="admin"))
    created = client.post("/api/v1/pipelines", json={"name": "Projects"}, headers=admin)
    assert created.status_code == 201
    assert created.get_json()["is_default"] is True
    listed = client.get("/api/v1/pipelines", headers=admin).get_json()["items"]
    assert [p["name"] for p in listed] == ["Projects"]


def test_duplicate_names_and_bad_values_are_refused(client: FlaskClient, db: Database) -> None:
    admin = auth(token_for(db, ADMIN, role="admin"))
    sales = client.get("/api/v1/pipelines", headers=admin).get_json()["items"][0]
    clash = client.post("/api/v1/pipelines", json={"name": "sales"}, headers=admin)
    assert clash.status_code == 409
    assert clash.get_json()["error"]["field"] == "name"
    stage_clash = client.post(
        f"/api/v1/pipelines/{sales['id']}/stages", json={"name": "LEAD"}, headers=admin
    )
    assert stage_clash.status_code == 409
    bad = client.post(
        f"/api/v1/pipelines/{sales['id']}/stages",
        json={"name": "Maybe", "outcome": "perhaps", "probability": 120},
        headers=admin,
    )
    assert bad.status_code == 422
    assert bad.get_json()["error"]["field"] in {"outcome", "probability"}
    nul = client.post("/api/v1/pipelines", json={"name": "a\u0000b"}, headers=admin)
    assert nul.status_code == 400
    assert nul.get_json()["error"]["field"] == "name"
    assert client.patch("/api/v1/pipelines/999999", json={}, headers=admin).status_code == 404
    other = client.patch(
        f"/api/v1/pipelines/{sales['id']}/stages/999999", json={"name": "x"}, headers=admin
    )
    assert other.status_code == 404
    # The only pipeline cannot go: deals need somewhere to be.
    last = client.delete(f"/api/v1/pipelines/{sales['id']}", headers=admin)
    assert last.status_code == 409


def test_a_stage_deals_went_through_cannot_be_deleted(client: FlaskClient, db: Database) -> None:
    admin = auth(token_for(db, ADMIN, role="admin"))
    sales = client.get("/api/v1/pipelines", headers=admin).get_json()["items"][0]
    lead = sales["stages"][0]["id"]
    deal = client.post("/api/v1/deals", json={"title": "Chairs"}, headers=admin).get_json()
    assert deal["stage"]["id"] == lead
    refused = client.delete(f"/api/v1/pipelines/{sales['id']}/stages/{lead}", headers=admin)
    assert refused.status_code == 409
    assert "rename" in refused.get_json()["error"]["message"]
    # Still there, deal and all.
    assert client.get(f"/api/v1/deals/{deal['id']}", headers=admin).status_code == 200


def test_changing_a_stage_outcome_changes_its_deals_status(
    client: FlaskClient, db: Database
) -> None:
    admin = auth(token_for(db, ADMIN, role="admin"))
    sales = client.get("/api/v1/pipelines", headers=admin).get_json()["items"][0]
    lead = sales["stages"][0]["id"]
    deal = client.post("/api/v1/deals", json={"title": "Desks"}, headers=admin).get_json()
    changed = client.patch(
        f"/api/v1/pipelines/{sales['id']}/stages/{lead}", json={"outcome": "lost"}, headers=admin
    )
    assert changed.status_code == 200, changed.get_json()
    after = client.get(f"/api/v1/deals/{deal['id']}", headers=admin).get_json()
    assert after["status"] == "lost"
    assert after["closed_at"] is not None
    assert after["version"] == deal["version"] + 1


def test_only_admins_define_pipelines(client: FlaskClient, db: Database) -> None:
    member = auth(token_for(db, ANNA))
    sales = client.get("/api/v1/pipelines", headers=member).get_json()["items"][0]
    stage = sales["stages"][0]["id"]
    attempts = [
        client.post("/api/v1/pipelines", json={"name": "Mine"}, headers=member),
        client.patch(f"/api/v1/pipelines/{sales['id']}", json={"name": "X"}, headers=member),
        client.delete(f"/api/v1/pipelines/{sales['id']}", headers=member),
        client.put("/api/v1/pipelines/order", json={"pipeline_ids": [sales["id"]]}, headers=member),
        client.post(f"/api/v1/pipelines/{sales['id']}/stages", json={"name": "Y"}, headers=member),
        client.patch(
            f"/api/v1/pipelines/{sales['id']}/stages/{stage}", json={"name": "Z"}, headers=member
        ),
        client.delete(f"/api/v1/pipelines/{sales['id']}/stages/{stage}", headers=member),
        # An invalid payload from a member is still a 403: the role is checked first.
        client.post("/api/v1/pipelines", json={"name": ""}, headers=member),
    ]
    assert [r.status_code for r in attempts] == [403] * len(attempts)
    assert attempts[0].get_json()["error"]["code"] == "forbidden"
    unchanged = client.get("/api/v1/pipelines", headers=member).get_json()["items"]
    assert [p["name"] for p in unchanged] == ["Sales"]
    assert client.get("/api/v1/pipelines").status_code == 401
