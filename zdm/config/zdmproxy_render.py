"""Rendering zdm-proxy's settings as a zdm.yaml: ``zdm init --from-zdm-proxy``.

Theory of operation: :func:`zdm_yaml` writes the :class:`~zdm.config.zdmproxy_translate.Translation`'s
``raw`` mapping, the same one the proxy would run with, as a commented file: each key names the
zdm-proxy setting it came from (or "default", zdm-proxy's default written out because zdm's
may differ), the routing settings become a comment naming the phases that route like them, and
the ignored settings a list with the reason for each.  Passwords are not copied: the file reads
them from the environment (``password_env``), and :func:`secret_variables` names the variables.
"""

from __future__ import annotations

from typing import Any

import yaml

from zdm.config.zdmproxy_routing import describe_routing, phases_with
from zdm.config.zdmproxy_table import Setting, show
from zdm.config.zdmproxy_translate import Given, Translation

_COMMENT_COLUMN = 40


def zdm_yaml(t: Translation) -> str:
    """The commented zdm.yaml equivalent to ``t``; each key names the setting it came from.
    Passwords are not copied: the file reads them from the environment (``password_env``)."""
    source = str(t.file) if t.file else "zdm-proxy's environment variables"
    lines = [f"# zdm.yaml written by `zdm init --from-zdm-proxy` from {source}.",
             "# Each key names the zdm-proxy setting it came from; \"default\" marks zdm-proxy's default,",
             "# written out because zdm's own may differ.", ""]
    for section in ("origin", "target", "proxy"):
        lines.append(f"{section}:")
        lines += _render(t, t.raw.get(section, {}), section, "  ")
        lines.append("")
    if t.routing is not None:
        asked = ", ".join(f"{g.label}: {str(g.value).strip().upper()}" for g in t.routing_from)
        phases = ", ".join(p.label for p in phases_with(t.routing)) or "none"
        lines += [f"# {asked}: in zdm the migration's phase decides the routing, not a setting.",
                  f"# This routing ({describe_routing(t.routing)}) is that of phase(s): {phases}.", ""]
    if t.accepted:
        lines.append("# Given, and ignored: zdm has no equivalent, and needs none (zdm-proxy's default, or")
        lines.append("# a setting zdm-proxy ignores there too):")
        lines += [f"#   {g.label}: {show(g.value)}  # {g.setting.reason}" for g in t.accepted]
        lines.append("")
    lines += ["scope:                       # what to migrate and validate; empty = every non-system keyspace",
              "  keyspaces: []", "",
              "state_dir: .zdm/state        # the migration's persisted state (relative to this file)", ""]
    return "\n".join(lines)


def secret_variables(t: Translation) -> list[str]:
    """The variables the written zdm.yaml reads passwords from."""
    return [s.setting.env if isinstance(s, Given) else s.env
            for key, s in t.sources.items() if _setting_of(s).secret]


def _render(t: Translation, node: dict, prefix: str, indent: str) -> list[str]:
    out = []
    for name, value in node.items():
        key = f"{prefix}.{name}"
        if isinstance(value, dict):
            out.append(f"{indent}{name}:")
            out += _render(t, value, key, indent + "  ")
            continue
        source = t.sources[key]
        setting = _setting_of(source)
        comment = setting.name + ("" if isinstance(source, Given) else " (default)")
        if key in t.notes:
            comment += f": {t.notes[key]}"
        if setting.secret:
            name, value = "password_env", setting.env
            comment = f"{setting.name} is not copied here: export {setting.env}"
        line = f"{indent}{name}: {_yaml_scalar(value)}"
        out.append(f"{line.ljust(_COMMENT_COLUMN - 1)} # {comment}")
    return out


def _setting_of(source: Given | Setting) -> Setting:
    return source.setting if isinstance(source, Given) else source


def _yaml_scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip()
    return text[:-3].strip() if text.endswith("\n...") or text.endswith("...") else text
