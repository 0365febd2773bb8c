"""The console in a real browser (Debian's headless chromium, driven by Playwright): an
operator walks a migration through the page, against the sandbox, with two proxies on two
hosts sharing state_store: cassandra, and `zdm console` running as its own process.

What the browser sees is checked, not the HTML the server meant to send: the diagram's
arrows, the button's verdict, the refusal, the proxies' routing changing within 2 seconds of
an advance (the page polls once a second, no reload), and the journal.  Screenshots of
phases 1, 3 and 4 are saved under ``test-artifacts/console/`` (``ZDM_TEST_ARTIFACTS``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.hosts import HOSTS, proxy_hosts, status, wait_for, zdm
from tests.support.net import free_port

ARTIFACTS = Path(os.environ.get("ZDM_TEST_ARTIFACTS", "test-artifacts")) / "console"
OPERATOR = "Ada (browser test)"
#: what the issue allows between an advance and the page showing the proxies' new routing
ROUTING_VISIBLE_S = 2.0


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed: run scripts/setup (it installs Debian's chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture()
def migration(tmp_path, zdm_config, origin_session, target_session):
    hosts = proxy_hosts(tmp_path, zdm_config, origin_session, target_session, prefix="cons", workers=1,
                        rows=20)
    setup = next(hosts)
    yield setup
    next(hosts, None)


@pytest.fixture()
def console(migration):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "zdm.cli.main", "console", "--port", str(port)],
                            cwd=migration["operator"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"zdm console exited with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url + "api/state", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    wait_for(answers, timeout=60, what="zdm console answering")
    yield url
    proc.terminate()
    proc.wait(20)


def phase_of(operator_dir) -> int:
    return status(operator_dir)["phase"]


def act(page, button_id: str, *, checks=(), expect: str = "done"):
    """Click an action button, confirm in the dialog (ticking ``checks``), and wait for the
    answer above the page; returns its text."""
    page.click(f"#{button_id}")
    dialog = page.locator("#confirm")
    dialog.wait_for(state="visible")
    page.fill("#operator", OPERATOR)
    for flag in checks:
        page.check(f"#check-{flag}")
    page.click("#confirm-go")
    page.wait_for_selector(f"#outcome.{expect}", timeout=60_000)
    return page.inner_text("#outcome")


def edges(page) -> set[str]:
    return set(page.eval_on_selector_all("svg.diagram [data-edge]",
                                         "els => els.map(e => e.dataset.edge)"))


def wait_page(page, js: str, arg=None, timeout_s: float = ROUTING_VISIBLE_S) -> float:
    """Seconds until ``js`` (a function of ``arg``) is true in the page; fails after ``timeout_s``."""
    started = time.monotonic()
    page.wait_for_function(js, arg=arg, timeout=timeout_s * 1000, polling=50)
    return time.monotonic() - started


def proxies_on(page, revision: int) -> str:
    return ("rev => [...document.querySelectorAll('#proxies tr[data-proxy]')].length === 2 && "
            "[...document.querySelectorAll('#proxies tr[data-proxy]')].every(r => "
            "r.cells[3].textContent === 'revision ' + rev + ' applied')"), revision


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_an_operator_walks_the_migration_through_the_page(browser, migration, console):
    operator, ks = migration["operator"], migration["keyspace"]
    for host in HOSTS:
        migration["start"](host)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # the refused POST is logged by the browser as a failed load: expected, the rest is not
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error"
            and "409 (Conflict)" not in msg.text else None)
    page.goto(console)

    # phase 0: the applications talk to origin directly; both proxies show up, running
    assert page.inner_text("#phase-h").startswith("Phase 0")
    assert edges(page) == {"applications-origin-all"}
    wait_page(page, "() => [...document.querySelectorAll('#proxies tr[data-proxy]')]"
                    ".filter(r => r.cells[2].textContent === 'yes').length === 2", timeout_s=30)

    # advance without a preflight: the button says refused, the dialog says why, the server
    # refuses, and nothing changed
    assert "refused" in page.inner_text("#advance-1-verdict")
    page.click("#advance-1")
    page.locator("#confirm").wait_for(state="visible")
    assert "refuse" in page.inner_text("#confirm-verdict")
    assert "no preflight has been recorded" in page.inner_text("#confirm-reasons")
    page.click("#confirm-cancel")
    refusal = act(page, "advance-1", expect="refused")
    assert "nothing changed" in refusal and "no preflight has been recorded" in refusal
    assert "run `zdm preflight`" in refusal
    assert phase_of(operator) == 0

    # the preflight, run through the CLI, turns the button's verdict without a reload
    zdm(operator, "preflight")
    wait_page(page, "() => document.querySelector('#advance-1-verdict').textContent === 'allowed'",
              timeout_s=5)
    assert "Advanced from 0 PLAN to 1 PROXY" in act(page, "advance-1")
    wait_page(page, "() => document.querySelector('#phase-h').textContent.startsWith('Phase 1')")
    assert edges(page) == {"applications-proxies-all", "proxies-origin-writes",
                           "proxies-target-writes", "proxies-origin-reads"}
    assert page.get_attribute("ol.steps li[aria-current=step]", "class") == "current"
    shot(page, "phase-1")

    # 1 -> 2 needs the operator's word that every client uses the proxy: a checkbox
    assert "allowed once you confirm" in page.inner_text("#advance-2-verdict")
    assert "Advanced from 1 PROXY to 2 MIGRATE" in act(page, "advance-2", checks=["confirm_clients_on_proxy"])

    zdm(operator, "migrate")
    zdm(operator, "validate")
    wait_page(page, f"() => [...document.querySelectorAll('#progress tr')].filter(r => "
                    f"r.textContent.includes('{ks}.t') && r.textContent.includes('complete')).length === 2",
              timeout_s=5)

    # 2 -> 3 changes the routing: both proxies apply it, and the page shows it within 2 s
    assert "Advanced from 2 MIGRATE to 3 ASYNC_READS" in act(page, "advance-3")
    revision = status(operator)["routing"]["revision"]
    seconds = wait_page(page, *proxies_on(page, revision))
    assert seconds <= ROUTING_VISIBLE_S
    wait_page(page, "() => document.querySelector('[data-edge=\"proxies-target-async_reads\"]') !== null")
    assert "reads dual_async" in page.inner_text("#routing")
    shot(page, "phase-3")

    # back to 2, then to 4 skipping the async reads (the second advance button)
    assert "Rolled back from 3 ASYNC_READS to 2 MIGRATE" in act(page, "rollback-2")
    wait_page(page, *proxies_on(page, status(operator)["routing"]["revision"]))
    assert "Advanced from 2 MIGRATE to 4 TARGET_READS" in act(page, "advance-4", checks=["skip_async_reads"])
    wait_page(page, *proxies_on(page, status(operator)["routing"]["revision"]))
    assert {"proxies-target-reads", "proxies-origin-writes"} <= edges(page)
    assert "primary cluster target" in page.inner_text("#routing")
    shot(page, "phase-4")

    # and roll back to 2: reads on origin again
    assert "Rolled back from 4 TARGET_READS to 2 MIGRATE" in act(page, "rollback-2")
    wait_page(page, *proxies_on(page, status(operator)["routing"]["revision"]))
    assert "proxies-origin-reads" in edges(page) and phase_of(operator) == 2

    # the journal shows every move with who made it and from where
    journal = page.inner_text("#journal")
    assert journal.count(OPERATOR) >= 5 and "console" in journal

    # usable on a narrow screen: nothing wider than it, the controls reachable
    page.set_viewport_size({"width": 390, "height": 844})
    wait_page(page, "() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert page.locator("#advance-3").is_visible()
    shot(page, "narrow")
    assert not errors, errors


def test_every_control_has_a_label(browser, migration, console):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(console)
    page.click("#advance-1")
    page.locator("#confirm").wait_for(state="visible")
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('button, input, select, textarea, svg[role=img]')]
        .filter(el => {
            const name = el.getAttribute('aria-label') || el.textContent.trim() ||
                (el.id && document.querySelector('label[for="' + el.id + '"]'));
            return !name;
        }).map(el => el.outerHTML.slice(0, 80))""")
    assert unlabelled == []
    sections = page.eval_on_selector_all("main section", "els => els.map(s => document.getElementById("
                                         "s.getAttribute('aria-labelledby')).textContent)")
    assert sections[1:] == ["Routing", "Next step", "Rollback", "Proxies", "Preflight", "Copy and validation",
                            "Divergences pending", "Journal"]
    doc = json.loads(page.evaluate("() => fetch('/api/state').then(r => r.text())"))
    assert doc["phase"]["number"] == 0
