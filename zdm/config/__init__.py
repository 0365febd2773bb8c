"""zdm's configuration: ``zdm.yaml``, and zdm-proxy's settings read in its place.

Theory of operation: one :class:`Config` (frozen dataclasses, :mod:`.model`) is all the rest
of zdm sees.  It comes from one of two places:

* ``zdm.yaml``: :mod:`.load` reads and validates it (:func:`load_config`, :func:`parse_config`);
  :mod:`.template` is the commented file ``zdm init`` writes.
* zdm-proxy's own configuration (its ``ZDM_*`` variables and YAML file), for a drop-in
  replacement: :mod:`.zdmproxy_table` is the table of its settings and what zdm does with each,
  :mod:`.zdmproxy_read` reads the variables and the file, :mod:`.zdmproxy_translate` turns them
  into the mapping :func:`parse_config` validates, :mod:`.zdmproxy_routing` holds the routing
  they ask for against the migration's phase, and :mod:`.zdmproxy_render` writes the equivalent
  zdm.yaml (``zdm init --from-zdm-proxy``).  :mod:`.proxy_config` decides which of the two the
  proxy takes.

This package re-exports the ``zdm.yaml`` side only; the zdm-proxy modules are imported by
their own names (they import the phase model, which the configuration model must not need).
"""

from zdm.config.load import DEFAULT_CONFIG_PATH, load_config, parse_config, parse_host_port
from zdm.config.model import ClusterConfig, Config, ProxyConfig, ProxyTlsConfig, ScopeConfig, TlsConfig
from zdm.config.template import TEMPLATE

__all__ = ["DEFAULT_CONFIG_PATH", "TEMPLATE", "ClusterConfig", "Config", "ProxyConfig", "ProxyTlsConfig",
           "ScopeConfig", "TlsConfig", "load_config", "parse_config", "parse_host_port"]
