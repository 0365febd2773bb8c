"""Where the proxy's configuration comes from: a zdm.yaml, or zdm-proxy's own settings.

Theory of operation: ``zdm proxy start`` is a drop-in for zdm-proxy, so it takes zdm-proxy's
configuration as it stands, or a zdm.yaml, never a mix of the two (:func:`proxy_config`):

1. ``--zdm-proxy-config FILE``: that file, each key overridden by its ``ZDM_*`` variable;
   refused next to a zdm.yaml (``--config`` or ``./zdm.yaml``).
2. else a zdm.yaml (``--config``/``ZDM_CONFIG``, or ``./zdm.yaml``) alone: zdm-proxy
   variables set beside it are refused by name (except the ``password_env`` ones it reads).
3. else zdm-proxy's ``ZDM_*`` variables alone.

In 1 and 3, a ``ZDM_*`` variable that is neither zdm-proxy's nor zdm's own is refused
("did you mean").  ``state_dir`` is zdm's default, ``.zdm/state`` in the working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from zdm.config.load import DEFAULT_CONFIG_PATH, load_config
from zdm.config.model import Config
from zdm.config.zdmproxy_read import is_unset, is_zdm_proxy_variable, read
from zdm.config.zdmproxy_table import BY_ENV
from zdm.config.zdmproxy_translate import Translation
from zdm.errors import ConfigError


def proxy_config(config: Path | None, zdm_proxy_file: Path | None, environ: Mapping[str, str], *,
                 default: Path = DEFAULT_CONFIG_PATH) -> tuple[Config, Translation | None]:
    """The proxy's configuration by the precedence in the module's docstring; the Translation
    when it came from zdm-proxy's settings (for
    :func:`zdm.config.zdmproxy_routing.check_routing`)."""
    if zdm_proxy_file is not None:
        if config is not None or default.exists():
            theirs = str(config if config is not None else default)
            raise ConfigError(f"a zdm.yaml is given too ({theirs}); the proxy takes its settings "
                              "from one of them", path="--zdm-proxy-config",
                              hint=f"drop --zdm-proxy-config to use {theirs}, or move {theirs} away; "
                                   "`zdm init --from-zdm-proxy FILE` writes the equivalent zdm.yaml")
        t = read(zdm_proxy_file, environ)
        return t.config(), t
    if config is not None or default.exists():
        path = config if config is not None else default
        cfg = load_config(path, environ=dict(environ))
        read_by_it = {c.password_env for c in (cfg.origin, cfg.target) if c.password_env}
        beside = sorted(n for n in environ if n in BY_ENV and n not in read_by_it
                        and not is_unset(environ[n]))
        if beside:
            raise ConfigError(f"zdm-proxy's settings are set in the environment too ({', '.join(beside)}); "
                              "with a zdm.yaml they would be ignored", path=str(path),
                              hint="unset them and put what they say in zdm.yaml, or move zdm.yaml away to "
                                   "configure the proxy from them alone")
        return cfg, None
    if any(is_zdm_proxy_variable(n) for n in environ):
        t = read(None, environ)
        return t.config(), t
    raise ConfigError("file not found, and no zdm-proxy setting (ZDM_*) is in the environment either",
                      path=str(default),
                      hint="run `zdm init` to write one, or pass --config PATH (or set ZDM_CONFIG); or "
                           "configure the proxy as zdm-proxy: set ZDM_ORIGIN_CONTACT_POINTS and "
                           "ZDM_TARGET_CONTACT_POINTS (and its other ZDM_* variables as needed), or pass "
                           "--zdm-proxy-config FILE")
