"""The console's actions (zdm.console.actions): the CLI's own transition, journaled with
source "console" and the operator's name; a refusal says why and changes nothing."""

from __future__ import annotations

import threading

import pytest

from zdm.console.actions import BadRequest, perform
from zdm.phases import Phase
from zdm.preflight import live_schema
from tests.support.migration import make_migration


@pytest.fixture()
def mig(tmp_path, monkeypatch):
    return make_migration(tmp_path, monkeypatch)


def test_a_refused_advance_says_why_and_changes_nothing(mig):
    mig.at_phase(Phase.PLAN)
    before = (mig.state_bytes(), mig.journal_bytes())
    out = perform(mig.config, mig.store, "advance", operator="alice", live_schema=live_schema)
    assert not out.done and (out.source_phase, out.dest_phase) == (0, 1)
    assert {"what": "no preflight has been recorded", "todo": "run `zdm preflight`"} in out.reasons
    assert {"what": "no proxy is running", "todo": "run `zdm proxy start`"} in out.reasons
    assert "cannot advance from 0 PLAN to 1 PROXY" in out.message
    assert (mig.state_bytes(), mig.journal_bytes()) == before
    assert out.to_dict()["done"] is False


def test_an_accepted_advance_is_journaled_with_the_operator_and_source_console(mig):
    mig.at_phase(Phase.PLAN)
    mig.preflight()
    mig.proxy("p1", ack=1)
    out = perform(mig.config, mig.store, "advance", operator=" alice ", why="window opened",
                  live_schema=live_schema)
    assert out.done and (out.source_phase, out.dest_phase) == (0, 1) and out.reasons == []
    assert out.routing_pending is None
    state = mig.store.load()
    assert state.phase == Phase.PROXY and state.revision == out.revision
    entry = mig.store.read_journal()[-1]
    assert (entry["event"], entry["from"], entry["to"]) == ("advance", 0, 1)
    assert (entry["operator"], entry["source"], entry["why"]) == ("alice", "console", "window opened")
    assert state.history[-1].operator == "alice"


def test_a_confirmation_is_passed_to_the_guards_as_the_cli_flag_is(mig):
    mig.at_phase(Phase.PROXY)
    mig.proxy("p1", ack=1)
    out = perform(mig.config, mig.store, "advance", operator="alice", live_schema=live_schema)
    assert not out.done and "--confirm-clients-on-proxy" in out.reasons[0]["todo"]
    out = perform(mig.config, mig.store, "advance", operator="alice", live_schema=live_schema,
                  confirm_clients_on_proxy=True)
    assert out.done and mig.store.load().evidence["clients_on_proxy"]["recorded_by"] == "alice"


def test_a_rollback_waits_for_the_proxies_to_apply_the_new_routing(mig):
    mig.at_phase(Phase.TARGET_READS)
    mig.proxy("p1", ack=1)
    stop = threading.Event()

    def acking_proxy():  # applies every new routing within ~20 ms, as a running proxy does
        while not stop.wait(0.02):
            mig.store.ack_routing("p1", mig.store.load().routing_status.revision)

    thread = threading.Thread(target=acking_proxy, daemon=True)
    thread.start()
    try:
        out = perform(mig.config, mig.store, "rollback", operator="bob", live_schema=None,
                      ack_timeout=10)
    finally:
        stop.set()
        thread.join()
    assert out.done and (out.source_phase, out.dest_phase) == (4, 3) and out.routing_pending is None
    state = mig.store.load()
    assert state.phase == Phase.ASYNC_READS and state.routing_status.applied
    moved, applied = mig.store.read_journal()[-2:]
    assert (moved["event"], moved["source"], moved["operator"]) == ("rollback", "console", "bob")
    assert (applied["event"], applied["source"]) == ("routing_applied", "console")


def test_a_rollback_a_proxy_has_not_applied_is_done_and_names_it(mig):
    mig.at_phase(Phase.TARGET_READS)
    mig.proxy("p1", ack=1)
    out = perform(mig.config, mig.store, "rollback", operator="bob", to=2, live_schema=None,
                  ack_timeout=0)
    assert out.done and out.dest_phase == 2
    assert out.routing_pending["lagging"] == ["p1"] and out.routing_pending["revision"] == 2
    assert "zdm phase confirm-routing" in out.routing_pending["todo"]
    state = mig.store.load()
    assert state.phase == Phase.MIGRATE and not state.routing_status.applied


def test_nothing_rolls_back_from_cutover(mig):
    mig.at_phase(Phase.CUTOVER)
    before = mig.state_bytes()
    out = perform(mig.config, mig.store, "rollback", operator="bob", live_schema=None)
    assert not out.done and "cannot be rolled back" in out.reasons[0]["what"]
    assert mig.state_bytes() == before


@pytest.mark.parametrize("kwargs, words", [
    ({"operator": ""}, "operator's name is missing"),
    ({"operator": None}, "operator's name is missing"),
    ({"operator": "a\nb"}, "one line"),
    ({"operator": "alice", "to": "2"}, "whole number"),
    ({"operator": "alice", "to": True}, "whole number"),
], ids=["empty-operator", "no-operator", "two-line-operator", "to-as-text", "to-as-bool"])
def test_bad_arguments_are_refused_before_anything_is_read(mig, kwargs, words):
    mig.at_phase(Phase.PROXY)
    before = mig.state_bytes()
    with pytest.raises(BadRequest) as info:
        perform(mig.config, mig.store, "rollback", live_schema=None, **kwargs)
    assert words in info.value.message and info.value.hint
    assert mig.state_bytes() == before
