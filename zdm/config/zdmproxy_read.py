"""Reading zdm-proxy's settings: its ``ZDM_*`` environment variables and its YAML file.

Theory of operation: both sources become the same thing, a :class:`Given` per setting (its
value as written, and where: the variable's name, or the file and its key), looked up in
:data:`zdm.config.zdmproxy_table.SETTINGS`, not yet parsed; :func:`read` merges them (a
variable wins over the file's key) and hands them to
:func:`zdm.config.zdmproxy_translate.translate`.  An empty value is unset, as in zdm-proxy.
A name zdm-proxy does not have is refused here, with the closest one it has ("did you mean");
a ``ZDM_*`` variable that is zdm's own (``ZDM_CONFIG``, ``ZDM_DEBUG``, ``ZDM_TEST_*``...) is
not taken for a misspelt zdm-proxy setting.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from zdm.config.zdmproxy_table import BY_ENV, BY_NAME, ENV_PREFIX, type_name
from zdm.config.zdmproxy_translate import Given, Translation, translate
from zdm.errors import ConfigError

#: zdm's own variables: never taken for a misspelt zdm-proxy setting
ZDM_OWN_VARIABLES = frozenset({"ZDM_CONFIG", "ZDM_DEBUG", "ZDM_CACHE_DIR", "ZDM_JAVA",
                               "ZDM_KEEP_SANDBOX", "ZDM_SANDBOX_NODE_CPUS"})
_ZDM_OWN_PREFIXES = ("ZDM_TEST_",)


def read(file: Path | None, environ: Mapping[str, str], *,
         resolve: Callable[[str], str | None] | None = None) -> Translation:
    """zdm-proxy's settings from ``file`` (if any) and ``environ`` (which wins), translated."""
    from_env = from_environ(environ)
    given = {**(from_file(file) if file is not None else {}), **from_env}
    overridden = tuple(g.path for g in from_env.values()) if file is not None else ()
    t = translate(given, file=file, resolve=resolve)
    t.overridden = overridden
    return t


def is_unset(value: Any) -> bool:
    """Empty or blank: zdm-proxy takes it for a setting that is not given."""
    return value is None or (isinstance(value, str) and not value.strip())


def is_zdm_proxy_variable(name: str) -> bool:
    """``ZDM_*`` and not one of zdm's own: a zdm-proxy setting, or meant to be one."""
    return (name.startswith(ENV_PREFIX) and name not in ZDM_OWN_VARIABLES
            and not name.startswith(_ZDM_OWN_PREFIXES))


def from_environ(environ: Mapping[str, str]) -> dict[str, Given]:
    given = {}
    for name in sorted(environ):
        if not is_zdm_proxy_variable(name):
            continue
        setting = BY_ENV.get(name)
        if setting is None:
            close = difflib.get_close_matches(name, sorted(BY_ENV), n=1)
            raise ConfigError("is not a zdm-proxy setting zdm knows", path=name,
                              hint=f"did you mean {close[0]}?" if close else
                              "unset it; zdm-proxy's settings are listed in zdm/config/zdmproxy_table.py")
        if not is_unset(environ[name]):
            given[setting.name] = Given(setting, environ[name], name)
    return given


def from_file(path: Path) -> dict[str, Given]:
    where = f"zdm-proxy config {path}"
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("file not found", path=where, hint="pass the path of zdm-proxy's YAML file") \
            from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"not valid YAML{at}: {getattr(exc, 'problem', None) or exc}", path=where) \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", path=where) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"the top level must be a mapping, not {type_name(doc)}", path=where)
    given = {}
    for key, value in doc.items():
        setting = BY_NAME.get(str(key))
        if setting is None:
            close = difflib.get_close_matches(str(key), sorted(BY_NAME), n=1)
            raise ConfigError("is not a zdm-proxy setting zdm knows", path=where, key=str(key),
                              hint=f"did you mean `{close[0]}`?" if close else "remove it")
        if not is_unset(value):
            given[setting.name] = Given(setting, value, where, str(key))
    return given
