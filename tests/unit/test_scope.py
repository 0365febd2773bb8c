"""zdm.scope: the one definition of what the migration covers, as the proxy, the preflight,
the copy and the validation ask it."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from zdm.config import Config, ScopeConfig
from zdm.errors import ZdmError
from zdm.migrate.schema import tables_in_scope
from zdm.scope import Scope

CONFIGURED = Scope.of(Config(scope=ScopeConfig(keyspaces=("shop", "app"), exclude_tables=("app.audit",))))


@pytest.mark.parametrize("scope, keyspace, table, covered", [
    (Scope(), None, None, True),
    (Scope(), "app", "t", True),
    (Scope(), "system", "local", False),
    (Scope(), "dse_security", None, False),
    (CONFIGURED, "app", "t", True),
    (CONFIGURED, "app", "audit", False),
    (CONFIGURED, "app", None, True),
    (CONFIGURED, "legacy", "t", False),
    (CONFIGURED, None, None, True),
    (Scope(("system",)), "system", "local", False),
    (Scope(tables=("app.t",)), "app", "t", True),
    (Scope(tables=("app.t",)), "app", "u", False),
    (Scope(tables=("app.t",)), "app", None, True),
    (Scope(tables=("app.t",)), "shop", None, False),
    (Scope(exclude_keyspaces=("app",)), "app", "t", False),
], ids=["no-keyspace-named", "everything", "system-never", "dse-never", "configured-keyspace",
        "excluded-table", "keyspace-itself", "other-keyspace", "roles", "system-even-named",
        "only-table", "not-the-only-table", "keyspace-of-a-table", "keyspace-of-no-table",
        "excluded-keyspace"])
def test_covers(scope, keyspace, table, covered):
    assert scope.covers(keyspace, table) is covered


def test_the_command_line_narrows_the_configured_scope_in_one_place():
    narrowed = CONFIGURED.narrow(Scope(tables=("app.t",), exclude_tables=("app.u",),
                                       exclude_keyspaces=("shop",)))
    assert narrowed == Scope(("shop", "app"), {"app.audit", "app.u"}, {"app.t"}, {"shop"})
    # --keyspace names the keyspaces in place of scope.keyspaces; config exclusions stay
    assert CONFIGURED.narrow(Scope(("legacy",))) == Scope(("legacy",), {"app.audit"})
    assert CONFIGURED.narrow(Scope()) == CONFIGURED
    assert Scope().everything and not CONFIGURED.everything


@pytest.mark.parametrize("scope, present, expected", [
    (Scope(), ["system", "app", "b", "system_auth"], ["app", "b"]),
    (CONFIGURED, ["app", "system"], ["shop", "app"]),
    (Scope(("a", "b", "a")), [], ["a", "b"]),
    (Scope(exclude_keyspaces=("b",)), ["a", "b"], ["a"]),
], ids=["every-non-system-sorted", "named-in-order-missing-too", "named-twice", "excluded"])
def test_keyspaces_in(scope, present, expected):
    assert scope.keyspaces_in(present) == expected


@pytest.mark.parametrize("scope, named", [
    (Scope(("app", "system_auth")), "system_auth"),
    (Scope(tables=("system.local",)), "system"),
    (Scope.of(Config(scope=ScopeConfig(keyspaces=("dse_insights",)))), "dse_insights"),
], ids=["keyspace", "table", "configured"])
def test_a_system_keyspace_named_explicitly_is_refused_naming_it(scope, named):
    with pytest.raises(ZdmError) as refused:
        scope.keyspaces_in(["app", named])
    assert named in refused.value.message and "never migrates" in refused.value.message
    assert named in refused.value.hint and "scope.keyspaces" in refused.value.hint


def _metadata(**keyspaces):
    return NS(keyspaces={ks: NS(name=ks, user_types={}, tables={t: NS(
        name=t, partition_key=[NS(name="k")], clustering_key=[],
        columns={"k": NS(name="k", cql_type="int", is_static=False)}) for t in tables})
        for ks, tables in keyspaces.items()})


@pytest.mark.parametrize("scope, expected", [
    (Scope(), ["app.t", "app.u", "b.x"]),
    (Scope(("b", "app")), ["b.x", "app.t", "app.u"]),
    (Scope(tables=("app.u",)), ["app.u"]),
    (Scope(exclude_tables=("app.u",), exclude_keyspaces=("b",)), ["app.t"]),
], ids=["every-non-system", "named-in-order", "only-table", "exclusions"])
def test_the_copy_picks_the_tables_the_scope_covers(scope, expected):
    metadata = _metadata(app=["u", "t"], b=["x"], system=["local"])
    assert [s.qualified for s in tables_in_scope(metadata, scope)] == expected


def test_the_copy_refuses_a_system_keyspace_named_explicitly():
    # the copy once took a named system keyspace where the preflight and the proxy did not
    with pytest.raises(ZdmError) as refused:
        tables_in_scope(_metadata(app=["t"], system=["local"]), Scope(("system",)))
    assert "system" in refused.value.message and "never migrates" in refused.value.message


@pytest.mark.parametrize("scope, message", [
    (Scope(("app", "gone")), "keyspace(s) not found on origin: gone"),
    (Scope(tables=("app.nope",)), "table(s) not found in scope: app.nope"),
], ids=["missing-keyspace", "missing-table"])
def test_what_the_schema_lacks_is_named(scope, message):
    with pytest.raises(ZdmError) as refused:
        tables_in_scope(_metadata(app=["t"]), scope)
    assert refused.value.message == message
