"""The console's HTTP API (zdm.console.app) through Starlette's test client (no socket, no
cluster): the state, the CSRF token every POST needs, the bearer token when one is set, the
Host check, and the page."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from zdm.console.app import CSRF_HEADER, TOKEN_COOKIE, create_app
from zdm.phases import Phase
from zdm.preflight import live_schema
from tests.support.migration import ORIGIN_PASSWORD, TARGET_PASSWORD, make_migration

TOKEN = "t0ken-for-the-console-tests"


@pytest.fixture()
def mig(tmp_path, monkeypatch):
    return make_migration(tmp_path, monkeypatch)


def client(mig, **kw) -> TestClient:
    kw.setdefault("look_ttl", 0)  # each request looks afresh (the sharing has its own test)
    app = create_app(mig.config, mig.store, live_schema=live_schema, ack_timeout=0, **kw)
    return TestClient(app, base_url="http://127.0.0.1:8765")


def csrf_of(c: TestClient, **kw) -> str:
    response = c.get("/api/state", **kw)
    assert response.status_code == 200, response.text
    return response.headers[CSRF_HEADER]


def test_state_is_the_model_with_the_csrf_token_in_a_header(mig):
    mig.at_phase(Phase.PROXY)
    c = client(mig)
    response = c.get("/api/state")
    assert response.status_code == 200
    doc = response.json()
    assert doc["phase"]["number"] == 1 and len(doc["steps"]) == 6
    assert len(response.headers[CSRF_HEADER]) >= 32
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"


def test_a_post_without_the_csrf_token_is_forbidden_and_changes_nothing(mig):
    mig.at_phase(Phase.PROXY)
    c = client(mig)
    before = (mig.state_bytes(), mig.journal_bytes())
    for headers in ({}, {CSRF_HEADER: "not-the-token"}, {CSRF_HEADER: ""}):
        response = c.post("/api/phase/rollback", json={"operator": "alice"}, headers=headers)
        assert response.status_code == 403, headers
        assert "CSRF" in response.json()["error"] and response.json()["todo"]
    assert (mig.state_bytes(), mig.journal_bytes()) == before


def test_a_refused_advance_answers_409_with_the_reasons_and_changes_nothing(mig):
    mig.at_phase(Phase.PLAN)
    c = client(mig)
    before = (mig.state_bytes(), mig.journal_bytes())
    response = c.post("/api/phase/advance", json={"operator": "alice"},
                      headers={CSRF_HEADER: csrf_of(c)})
    assert response.status_code == 409
    out = response.json()
    assert out["done"] is False and (out["from"], out["to"]) == (0, 1)
    assert {"what": "no preflight has been recorded", "todo": "run `zdm preflight`"} in out["reasons"]
    assert (mig.state_bytes(), mig.journal_bytes()) == before


def test_an_accepted_advance_and_rollback_are_journaled_from_the_console(mig):
    mig.at_phase(Phase.PLAN)
    mig.preflight()
    mig.proxy("p1", ack=1)
    c = client(mig)
    token = csrf_of(c)
    response = c.post("/api/phase/advance", json={"operator": "alice", "why": "go"},
                      headers={CSRF_HEADER: token})
    assert response.status_code == 200, response.text
    assert response.json()["done"] and response.json()["to"] == 1
    response = c.post("/api/phase/rollback", json={"operator": "bob", "to": 0},
                      headers={CSRF_HEADER: token})
    assert response.status_code == 200, response.text
    assert mig.store.load().phase == Phase.PLAN
    entries = [e for e in mig.store.read_journal() if e["event"] in ("advance", "rollback")]
    assert [(e["event"], e["operator"], e["source"], e["from"], e["to"]) for e in entries] == [
        ("advance", "alice", "console", 0, 1), ("rollback", "bob", "console", 1, 0)]
    assert c.get("/api/state").json()["journal"][0]["operator"] == "bob"


@pytest.mark.parametrize("body, headers, words", [
    ('{"operator": "alice"', {"content-type": "application/json"}, "not valid JSON"),
    ('["alice"]', {"content-type": "application/json"}, "JSON object"),
    ('operator=alice', {"content-type": "application/x-www-form-urlencoded"}, "must be JSON"),
    ('{}', {"content-type": "application/json"}, "operator's name is missing"),
    ('{"operator": "a", "skip_async_reads": true}', {"content-type": "application/json"},
     "unknown field(s) for rollback: skip_async_reads"),
    ('{"operator": "a", "why": 3}', {"content-type": "application/json"}, "why must be text"),
], ids=["torn-json", "not-an-object", "a-form", "no-operator", "unknown-field", "why-not-text"])
def test_a_malformed_action_answers_400_saying_what_to_send(mig, body, headers, words):
    mig.at_phase(Phase.PROXY)
    c = client(mig)
    before = mig.state_bytes()
    response = c.post("/api/phase/rollback", content=body,
                      headers={**headers, CSRF_HEADER: csrf_of(c)})
    assert response.status_code == 400
    assert words in response.json()["error"] and response.json()["todo"]
    assert mig.state_bytes() == before


def test_with_a_bearer_token_every_route_answers_401_without_it(mig):
    mig.at_phase(Phase.PROXY)
    c = client(mig, bearer_token=TOKEN)
    for method, path in (("get", "/"), ("get", "/api/state"), ("post", "/api/phase/rollback")):
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {TOKEN}"}):
            response = getattr(c, method)(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
    # the bearer comes first: a right CSRF token without it is still 401
    auth = {"authorization": f"Bearer {TOKEN}"}
    token = csrf_of(c, headers=auth)
    response = c.post("/api/phase/rollback", json={"operator": "a"}, headers={CSRF_HEADER: token})
    assert response.status_code == 401
    # and with it, a POST still needs the CSRF token
    assert c.post("/api/phase/rollback", json={"operator": "a"}, headers=auth).status_code == 403
    response = c.post("/api/phase/rollback", json={"operator": "a"}, headers={**auth, CSRF_HEADER: token})
    assert response.status_code == 200 and mig.store.load().phase == Phase.PLAN


def test_the_browser_trades_the_token_in_the_address_for_a_cookie(mig):
    mig.at_phase(Phase.PROXY)
    c = client(mig, bearer_token=TOKEN)
    assert c.get("/?token=wrong", follow_redirects=False).status_code == 401
    response = c.get(f"/?token={TOKEN}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{TOKEN_COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert c.get("/api/state").status_code == 200  # the client keeps the cookie


def test_another_host_name_is_refused(mig):
    """A page of another site whose name was rebound to 127.0.0.1 must not read the state."""
    mig.at_phase(Phase.PROXY)
    c = client(mig)
    assert c.get("/api/state", headers={"host": "attacker.example:8765"}).status_code == 400
    assert c.get("/api/state", headers={"host": "localhost:8765"}).status_code == 200


def test_the_page_draws_the_diagram_and_holds_no_secret(mig):
    mig.at_phase(Phase.ASYNC_READS)
    mig.proxy("p1", ack=1)
    c = client(mig)
    response = c.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "<svg" in html and 'data-edge="proxies-target-async_reads"' in html
    assert 'data-edge="proxies-origin-reads"' in html and 'data-edge="proxies-target-reads"' not in html
    assert '<meta name=csrf-token content="' in html and "<meta http-equiv=refresh content=5>" in html
    assert "Phase 3 Asynchronous dual reads" in html
    assert "default-src 'none'" in response.headers["content-security-policy"]
    for text in (html, c.get("/api/state").text):
        assert ORIGIN_PASSWORD not in text and TARGET_PASSWORD not in text


def test_the_page_escapes_what_it_shows(mig):
    mig.at_phase(Phase.PLAN)
    mig.preflight()
    mig.proxy("p1", ack=1)
    c = client(mig)
    c.post("/api/phase/advance", json={"operator": "<script>alert(1)</script>"},
           headers={CSRF_HEADER: csrf_of(c)})
    html = c.get("/").text
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_progress_shows_through_the_api_as_the_checkpoints_move(mig):
    from zdm.ranges.ring import TokenRange
    from zdm.state import open_checkpoints

    mig.at_phase(Phase.MIGRATE)
    halves = [TokenRange(-2**63, 0), TokenRange(0, 2**63 - 1)]
    with client(mig) as c, open_checkpoints(mig.config, "migrate") as cps:
        assert c.get("/api/state").json()["progress"]["copy"] == [{"table": "app.t", "started": False}]
        cp = cps.start("app.t", halves)
        cps.mark_done(cp, halves[1], 7)
        copy, = c.get("/api/state").json()["progress"]["copy"]
        assert (copy["done"], copy["remaining"], copy["rows"]) == (1, 1, 7)


def test_the_page_reads_the_live_schemas_at_most_once_per_ttl_and_retries_after_a_failure():
    from zdm.console.app import cached_schema
    from zdm.errors import ZdmError

    now = [0.0]
    calls = []

    def schema(config):
        calls.append(now[0])
        if len(calls) == 2:
            raise ZdmError("target unreachable")
        return ("fp", ["app.t"])

    read = cached_schema(schema, ttl=30, clock=lambda: now[0])
    assert read(None) == ("fp", ["app.t"]) and read(None) == ("fp", ["app.t"]) and calls == [0.0]
    now[0] = 31.0
    with pytest.raises(ZdmError):
        read(None)
    assert read(None) == ("fp", ["app.t"]) and calls == [0.0, 31.0, 31.0]
    assert cached_schema(None) is None


def test_the_view_is_the_pages_live_sections_and_the_script_is_served(mig):
    mig.at_phase(Phase.PROXY)
    c = client(mig)
    page = c.get("/")
    view = c.get("/view")
    assert view.status_code == 200 and view.headers["x-page-title"] == "zdm console: phase 1 PROXY"
    assert view.headers["x-generated-at"]
    # the page embeds exactly the sections the view returns
    assert f"<main id=live>{view.text}</main>" in page.text
    ids = [part.split('"')[0] for part in view.text.split('<section id="')[1:]]
    assert ids == ["phase", "diagram", "advance", "rollback", "proxies", "preflight", "progress",
                   "divergences", "journal"]
    script = c.get("/static/console.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert b"X-CSRF-Token" in script.content
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src=/static/console.js></script>' in page.text


def test_one_look_serves_every_poll_until_an_action_forgets_it(mig, monkeypatch):
    from zdm.console import app as app_mod

    looks = []
    real = app_mod.console_state
    monkeypatch.setattr(app_mod, "console_state", lambda *a, **kw: looks.append(1) or real(*a, **kw))
    mig.at_phase(Phase.PROXY)
    mig.proxy("p1", ack=1)
    c = client(mig, look_ttl=60)
    csrf = csrf_of(c)
    for _ in range(3):
        assert c.get("/view").status_code == 200
    assert len(looks) == 1
    done = c.post("/api/phase/rollback", json={"operator": "alice"}, headers={CSRF_HEADER: csrf})
    assert done.status_code == 200, done.text
    assert c.get("/api/state").json()["phase"]["number"] == 0 and len(looks) == 2


def test_each_move_is_a_button_carrying_its_verdict(mig):
    import html
    import json

    mig.at_phase(Phase.PROXY)
    mig.proxy("p1", ack=1)
    view = client(mig).get("/view").text
    marker = 'id="advance-2" data-report="'
    report = json.loads(html.unescape(view.split(marker, 1)[1].split('"', 1)[0]))
    assert report["to"] == 2 and report["allowed_if_confirmed"] and not report["allowed"]
    assert '<span id="advance-2-verdict"><span class=pass>allowed once you confirm</span>' in view
    assert 'id="rollback-0"' in view and "Roll back to 0 PLAN" in view


def test_each_proxy_shows_the_clusters_it_is_connected_to(mig):
    mig.at_phase(Phase.PROXY)
    mig.proxy("p1", ack=1)
    mig.proxy("p2", ack=1, connected=(True, False))
    view = client(mig).get("/view").text
    rows = {name: view.split(f'<tr data-proxy="{name}">', 1)[1].split("</tr>", 1)[0] for name in ("p1", "p2")}
    assert "<td>both</td>" in rows["p1"] and "<td>origin only</td>" in rows["p2"]
