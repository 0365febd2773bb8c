"""Logins: which cluster gets the client's credentials, and the proxy's own login.

zdm-proxy's rules: when both clusters require a login, the client presents *target's*
credentials, which go to target, and the proxy logs into origin with the configured origin
credentials -- unless ``proxy.forward_client_credentials_to_origin`` is set, when the client's
go to origin and the proxy logs into target; when only one cluster requires a login, the
client's credentials go to that one.

The proxy's own login (the other cluster's, and its control connections') is SASL PLAIN.
DSE's ``DseAuthenticator`` first wants the mechanism: the proxy answers ``PLAIN``, the node
challenges with ``PLAIN-START``, and the credentials follow, as zdm-proxy does it.
"""

from __future__ import annotations

from zdm.cql import messages as m
from zdm.cql.constants import Opcode
from zdm.cql.frame import Frame
from zdm.phases.model import Cluster


DSE_AUTHENTICATOR = "com.datastax.bdp.cassandra.auth.DseAuthenticator"
_MECHANISM, _PLAIN_START = b"PLAIN", b"PLAIN-START"


def client_credentials_go_to(needs_login: set[Cluster], *, forward_to_origin: bool = False) -> Cluster:
    """The cluster that authenticates the client, of those that require a login."""
    if len(needs_login) == 2:
        return Cluster.ORIGIN if forward_to_origin else Cluster.TARGET
    return next(iter(needs_login))


async def login(backend, credentials: tuple[str, str] | None, version: int,
                authenticator: str = "") -> str | None:
    """Log ``backend`` (after its STARTUP was answered AUTHENTICATE ``authenticator``) in with
    ``credentials``; the problem, or None."""
    name = backend.cluster.value
    if credentials is None:
        return (f"zdm proxy: {name} requires a login and zdm.yaml has no {name}.username/"
                f"password for the proxy to use")
    token = m.encode_auth_token(m.plain_sasl_token(*credentials))
    if authenticator == DSE_AUTHENTICATOR:
        answer = await backend.request(version, Opcode.AUTH_RESPONSE, m.encode_auth_token(_MECHANISM))
        if not isinstance(answer, Frame) or answer.opcode != Opcode.AUTH_CHALLENGE:
            return _refused(name, answer)
        challenge = m.decode_auth_token(answer.body)
        if challenge != _PLAIN_START:
            return (f"zdm proxy: {name} answered the PLAIN mechanism with the challenge "
                    f"{challenge!r}, expected {_PLAIN_START!r}")
    answer = await backend.request(version, Opcode.AUTH_RESPONSE, token)
    while isinstance(answer, Frame) and answer.opcode == Opcode.AUTH_CHALLENGE:
        answer = await backend.request(version, Opcode.AUTH_RESPONSE, token)
    return _refused(name, answer)


def _refused(name: str, answer) -> str | None:
    """None for AUTH_SUCCESS, else what went wrong."""
    if isinstance(answer, Frame) and answer.opcode == Opcode.AUTH_SUCCESS:
        return None
    if isinstance(answer, Frame) and answer.opcode == Opcode.ERROR:
        info = m.decode_error(answer.body, flags=answer.flags)
        return f"zdm proxy: {name} refused the proxy's configured credentials: {info.message}"
    return f"zdm proxy: {name}: {getattr(answer, 'message', answer)}"
