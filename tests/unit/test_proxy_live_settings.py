"""A reload (SIGHUP) applies the live settings and names every other change, kept until a
restart; a password that changed is named, never shown."""

from __future__ import annotations

import dataclasses

import pytest

from zdm.config import Config
from zdm.config.model import ClusterConfig, ProxyConfig, ProxyTlsConfig, ScopeConfig
from zdm.proxy.live_settings import LIVE, compare, differences

RUNNING = Config()


def with_proxy(**changes) -> Config:
    return dataclasses.replace(RUNNING, proxy=dataclasses.replace(RUNNING.proxy, **changes))


@pytest.mark.parametrize("read, applied, need_restart", [
    (RUNNING, (), ()),
    (with_proxy(log_level="debug"), (("proxy.log_level", "info", "debug"),), ()),
    (with_proxy(log_format="json", max_client_connections=10),
     (("proxy.max_client_connections", 1000, 10), ("proxy.log_format", "text", "json")), ()),
    (with_proxy(request_timeout_s=3.0, log_level="warning"),
     (("proxy.log_level", "info", "warning"),), ("proxy.request_timeout_s",)),
    (dataclasses.replace(RUNNING, origin=ClusterConfig(port=9999)), (), ("origin.port",)),
    (with_proxy(tls=ProxyTlsConfig(cert_file="c.pem", key_file="k.pem")), (), ("proxy.tls",)),
    (dataclasses.replace(RUNNING, scope=ScopeConfig(keyspaces=("shop",)), state_store="cassandra"), (),
     ("scope.keyspaces", "state_store")),
], ids=["nothing", "log-level", "two-live", "live-and-restart", "nested", "section-added", "top-level"])
def test_live_settings_apply_and_the_others_wait_for_a_restart(read, applied, need_restart):
    change = compare(RUNNING, read)
    assert change.applied == applied
    assert change.need_restart == need_restart
    # the proxy runs by the live changes, every other setting as it was
    expected = with_proxy(**{name.split(".", 1)[1]: new for name, _, new in applied})
    assert change.config == expected


def test_where_the_file_was_read_from_is_no_setting(tmp_path):
    assert list(differences(RUNNING, dataclasses.replace(RUNNING, source=tmp_path / "zdm.yaml"))) == []


def test_a_changed_password_is_named_without_its_value():
    read = dataclasses.replace(RUNNING, origin=ClusterConfig(password="s3cret"))
    change = compare(RUNNING, read)
    assert change.need_restart == ("origin.password",)
    assert "s3cret" not in change.describe() and "s3cret" not in repr(change.need_restart)


def test_describe_says_what_changed():
    assert compare(RUNNING, RUNNING).describe() == "settings reloaded: nothing changed"
    assert compare(RUNNING, with_proxy(log_level="debug", max_client_connections=5)).describe() == \
        "settings reloaded: proxy.max_client_connections 1000 -> 5, proxy.log_level info -> debug"
    assert compare(RUNNING, with_proxy(request_timeout_s=1.0)).describe() == \
        "settings reloaded: no live setting changed"


def test_every_live_setting_is_a_proxy_setting():
    names = {f"proxy.{f.name}" for f in dataclasses.fields(ProxyConfig)}
    assert set(LIVE) <= names
