"""The commented ``zdm.yaml`` that ``zdm init`` writes.

Theory of operation: the template is the documentation of every key a newcomer meets first,
and it loads as it stands: its values are :mod:`zdm.config.model`'s defaults (the local
sandbox: origin 127.0.0.1:9042, target 127.0.0.1:9043), and each commented-out line is a valid
setting once uncommented.  ``zdm init --from-zdm-proxy`` writes its own file instead
(:mod:`zdm.config.zdmproxy_render`).
"""

TEMPLATE = """\
# zdm.yaml: the migration's configuration. Every command reads it (--config PATH to use another).
# The defaults point at the local sandbox (`zdm sandbox up`): origin 127.0.0.1:9042,
# target 127.0.0.1:9043, so the sandbox works with no edits.

origin:                      # the cluster the applications use today
  contact_points: [127.0.0.1]
  port: 9042
  # username: cassandra
  # password_env: ZDM_ORIGIN_PASSWORD   # read the password from this environment variable
  # local_dc: dc1
  # protocol_version: 4                 # pin 3, 4 or 5; default: highest both sides support
  # tls: {ca_file: ca.pem}              # + cert_file/key_file for client certificates;
  #                                     #   verify_hostname: false is insecure
  # secure_connect_bundle: secure-connect-db.zip   # Astra DB, in place of contact_points/port/tls

target:                      # the cluster the applications move to
  contact_points: [127.0.0.1]
  port: 9043
  # username: cassandra
  # password_env: ZDM_TARGET_PASSWORD

proxy:                       # the dual-writing CQL proxy (`zdm proxy start`)
  listen_host: 127.0.0.1
  listen_port: 14002
  # advertise_host: 10.0.0.5  # the address drivers see for this instance (default: listen_host)
  # tls: {cert_file: proxy.pem, key_file: proxy.key}   # + ca_file and require_client_auth: true
  # instances: [127.0.0.1:14002, 127.0.0.1:14003]   # every proxy instance; drivers see these as nodes
  # max_frame_bytes: 268435456
  # request_timeout_s: 10
  # heartbeat_interval_s: 30
  # workers: 4                 # processes serving clients; default: one per core
  # max_client_connections: 1000
  # secondary_write_failure: fail   # or record: a target outage costs no client errors
  # secondary_write_timeout_s: 2    #   (record) how long a write waits for the secondary
  # forward_client_credentials_to_origin: false   # both need a login: client's go to origin
  # token_aware: true   # EXECUTEs go to a replica of their partition (local DC), per cluster
  # replace_cql_functions: false  # now(), uuid()... in writes: one value for both clusters
  # metrics_port: 14001           # /metrics, /health/liveness, /health/readiness
  # metrics_address: 127.0.0.1
  # log_level: info               # debug, info, warning, error
  # log_format: text              # or json: one object per line

scope:                       # what to migrate and validate; empty = every non-system keyspace
  keyspaces: []
  # exclude_tables: [ks.audit_log]

state_dir: .zdm/state        # the migration's persisted state and journal (relative to this file)
# state_store: file          # or cassandra: the state in a keyspace on target, so proxies on
# state_keyspace: zdm_state  #   several hosts coordinate with no shared filesystem
"""
