"""The routing zdm-proxy's ``primary_cluster`` and ``read_mode`` ask for, against the phase's.

Theory of operation: in zdm the migration's phase decides where reads go, not a setting.  A
zdm-proxy configuration that gives either setting still means a routing
(:attr:`zdm.config.zdmproxy_translate.Translation.routing`); when the proxy starts,
:func:`check_routing` compares it with the stored phase's and refuses a mismatch, saying which
phase routes like that and how to get there (or to remove the settings).  The same words
describe the routing in the zdm.yaml ``zdm init --from-zdm-proxy`` writes.
"""

from __future__ import annotations

from zdm.config.zdmproxy_translate import Translation
from zdm.errors import ConfigError
from zdm.phases.model import Cluster, Phase, ReadMode, Routing, routing_for


def describe_routing(routing: Routing) -> str:
    """Where a routing sends reads, in words: "reads from origin, also sent to target ..."."""
    text = f"reads from {routing.primary.value}"
    if routing.read_mode is ReadMode.DUAL_ASYNC:
        other = Cluster.TARGET if routing.primary is Cluster.ORIGIN else Cluster.ORIGIN
        text += f", also sent to {other.value} in the background"
    return text


def phases_with(routing: Routing) -> list[Phase]:
    """The phases a proxy serves (not 5, where it is retired) that route like ``routing``."""
    return [p for p in Phase if p is not Phase.CUTOVER and routing_for(p) == routing]


def check_routing(t: Translation, state) -> None:
    """Refuse ``primary_cluster`` / ``read_mode`` that disagree with the stored phase's routing."""
    if t.routing is None or t.routing == state.routing:
        return
    asked = " and ".join(f"{g.label}={str(g.value).strip().upper()}" for g in t.routing_from)
    phases = phases_with(t.routing)
    settings = " and ".join(g.label for g in t.routing_from)
    if not phases:
        fix = f"remove {settings}: no zdm phase routes like that; zdm's phases decide"
    else:
        later = [p for p in phases if p > state.phase]
        move = (f"`zdm phase advance` to phase {later[0].label} (when its conditions hold)" if later
                else f"`zdm rollback --to {int(phases[-1])}`")
        fix = f"remove {settings} (zdm's phases decide the routing), or move the migration with {move}"
    first = t.routing_from[0]
    these = "these mean" if len(t.routing_from) > 1 else "this means"
    where = (first.path, asked) if first.key else (asked, None)
    raise ConfigError(f"{these} {describe_routing(t.routing)}, but the migration is in phase "
                      f"{state.phase.label}, which {describe_routing(state.routing)}; in zdm the "
                      "migration's phase decides the routing, not a setting",
                      path=where[0], key=where[1], hint=fix)
