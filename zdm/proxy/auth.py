"""Logins: which cluster gets the client's credentials, and the proxy's own login.

zdm-proxy's rules: when both clusters require a login, the client presents *target's*
credentials, which go to target, and the proxy logs into origin with the configured origin
credentials; when only one cluster requires a login, the client's credentials go to that one.
The proxy's own login (for origin in that case, and for its control connections) is SASL
PLAIN, answered to every challenge.
"""

from __future__ import annotations

from zdm.cql import messages as m
from zdm.cql.constants import Opcode
from zdm.cql.frame import Frame
from zdm.phases.model import Cluster


def client_credentials_go_to(needs_login: set[Cluster]) -> Cluster:
    """The cluster that authenticates the client, of those that require a login."""
    return Cluster.TARGET if len(needs_login) == 2 else next(iter(needs_login))


async def login(backend, credentials: tuple[str, str] | None, version: int) -> str | None:
    """Log ``backend`` (after its STARTUP was answered AUTHENTICATE) in with ``credentials``;
    the problem, or None."""
    name = backend.cluster.value
    if credentials is None:
        return (f"zdm proxy: {name} requires a login and zdm.yaml has no {name}.username/"
                f"password for the proxy to use")
    token = m.encode_auth_token(m.plain_sasl_token(*credentials))
    answer = await backend.request(version, Opcode.AUTH_RESPONSE, token)
    while isinstance(answer, Frame) and answer.opcode == Opcode.AUTH_CHALLENGE:
        answer = await backend.request(version, Opcode.AUTH_RESPONSE, token)
    if isinstance(answer, Frame) and answer.opcode == Opcode.AUTH_SUCCESS:
        return None
    if isinstance(answer, Frame) and answer.opcode == Opcode.ERROR:
        info = m.decode_error(answer.body, flags=answer.flags)
        return f"zdm proxy: {name} refused the proxy's configured credentials: {info.message}"
    return f"zdm proxy: {name}: {getattr(answer, 'message', answer)}"
