"""The proxy's own login against DSE's authenticator (PLAIN after "PLAIN-START"), and a
client's DSE login passed through the proxy, against fake nodes (no DSE is at hand)."""

from __future__ import annotations

import dataclasses

import pytest

from tests.support.fakecql import FakeNode
from tests.support.harness import RunningProxy
from tests.support.net import free_port
from tests.support.rawcql import RawClient
from zdm.config import ClusterConfig, Config, ProxyConfig
from zdm.cql import messages as m
from zdm.cql.constants import ErrorCode, Opcode
from zdm.cql.errors import unsupported_version_message
from zdm.proxy.auth import DSE_AUTHENTICATOR
from zdm.proxy.control import ProxyError


def dse_node(**users: str):
    """A node with DseAuthenticator that knows ``users`` (name=password); it records the
    tokens it got."""
    tokens: list[bytes | None] = []

    def script(frame):
        if frame.version > 4:  # DSE speaks v4 (and its own DSE_V1/V2), not v5
            return [(Opcode.ERROR, m.encode_error(ErrorCode.PROTOCOL_ERROR, unsupported_version_message(
                frame.version, (3, 4))))]
        if frame.opcode == Opcode.STARTUP:
            return [(Opcode.AUTHENTICATE, m.encode_authenticate(DSE_AUTHENTICATOR))]
        if frame.opcode == Opcode.AUTH_RESPONSE:
            token = m.decode_auth_token(frame.body)
            tokens.append(token)
            if token == b"PLAIN":
                return [(Opcode.AUTH_CHALLENGE, m.encode_auth_token(b"PLAIN-START"))]
            if token in {m.plain_sasl_token(u, p) for u, p in users.items()}:
                return [(Opcode.AUTH_SUCCESS, m.encode_auth_token(None))]
            return [(Opcode.ERROR, m.encode_error(ErrorCode.BAD_CREDENTIALS, "Failed to login"))]
        if frame.opcode == Opcode.QUERY:
            return [(Opcode.RESULT, m.encode_rows(
                [("system", "local", "cluster_name", m.parse_type("text")),
                 ("system", "local", "release_version", m.parse_type("text"))],
                [["dse-cluster", "4.0.0.6816"]]))]
        if frame.opcode == Opcode.OPTIONS:
            return [(Opcode.SUPPORTED, m.encode_supported({"CQL_VERSION": ["3.4.5"]}))]
        return [(Opcode.ERROR, m.encode_error(ErrorCode.PROTOCOL_ERROR, "not scripted"))]

    node = FakeNode(script)
    node.tokens = tokens
    return node


@pytest.fixture()
def nodes():
    origin = dse_node(**{"proxy-user": "proxy-pw", "app": "app-pw"})
    target = dse_node(**{"app": "app-pw", "target-user": "target-pw"})
    yield origin, target
    origin.stop()
    target.stop()


def config_for(origin, target, **origin_kw):
    return Config(origin=ClusterConfig(port=origin.port, **origin_kw),
                  target=ClusterConfig(port=target.port),
                  proxy=ProxyConfig(listen_port=free_port()))


def test_the_proxy_logs_into_dse_with_the_plain_mechanism_first(nodes):
    origin, target = nodes
    proxy = RunningProxy(config_for(origin, target, username="proxy-user", password="proxy-pw"))
    try:
        assert origin.tokens == [b"PLAIN", m.plain_sasl_token("proxy-user", "proxy-pw")]
        # a client: its credentials go to target (both require a login), through the same exchange
        with RawClient(proxy.port) as client:
            answer = client.startup()
            assert (answer.opcode, m.decode_authenticate(answer.body)) == (Opcode.AUTHENTICATE,
                                                                           DSE_AUTHENTICATOR)
            challenge = client.request(Opcode.AUTH_RESPONSE, m.encode_auth_token(b"PLAIN"))
            assert m.decode_auth_token(challenge.body) == b"PLAIN-START"
            done = client.request(Opcode.AUTH_RESPONSE,
                                  m.encode_auth_token(m.plain_sasl_token("app", "app-pw")))
            assert done.opcode == Opcode.AUTH_SUCCESS
            rows = client.query("SELECT cluster_name FROM system.local")
            assert m.deserialize(m.decode_rows(rows.body, 4).columns[0].type,
                                 m.decode_rows(rows.body, 4).rows[0][0]) == "dse-cluster"
        # the session logged into origin itself, the DSE way, with zdm.yaml's credentials
        assert origin.tokens[-2:] == [b"PLAIN", m.plain_sasl_token("proxy-user", "proxy-pw")]
        assert target.tokens[-2:] == [b"PLAIN", m.plain_sasl_token("app", "app-pw")]
    finally:
        proxy.stop()


def test_wrong_credentials_for_dse_are_reported_with_the_nodes_words(nodes):
    origin, target = nodes
    with pytest.raises(ProxyError, match="origin refused the proxy's configured credentials: Failed to login"):
        RunningProxy(config_for(origin, target, username="proxy-user", password="nope"))


def test_forwarding_sends_the_clients_credentials_to_origin(nodes):
    origin, target = nodes
    config = dataclasses.replace(config_for(origin, target, username="proxy-user", password="proxy-pw"),
                                 target=ClusterConfig(port=target.port, username="target-user",
                                                      password="target-pw"))
    config = dataclasses.replace(config, proxy=dataclasses.replace(
        config.proxy, forward_client_credentials_to_origin=True))
    proxy = RunningProxy(config)
    try:
        with RawClient(proxy.port) as client:
            client.startup()
            client.request(Opcode.AUTH_RESPONSE, m.encode_auth_token(b"PLAIN"))
            origin_before = len(origin.tokens)
            assert client.request(Opcode.AUTH_RESPONSE, m.encode_auth_token(
                m.plain_sasl_token("app", "app-pw"))).opcode == Opcode.AUTH_SUCCESS
            assert origin.tokens[origin_before:] == [m.plain_sasl_token("app", "app-pw")]
            # and the proxy logged into target with target's configured credentials
            assert target.tokens[-2:] == [b"PLAIN", m.plain_sasl_token("target-user", "target-pw")]
    finally:
        proxy.stop()
