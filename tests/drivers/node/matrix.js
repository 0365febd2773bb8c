'use strict';
/*
 * The driver matrix's program for the DataStax Node.js driver (cassandra-driver): runs the named
 * scenarios against one node (directly or through the zdm proxy) and prints one JSON line per
 * scenario, so a run through the proxy can be compared with a direct run line by line.
 *
 *   node matrix.js --host H --port P --protocol {3,4} --compression none --keyspace KS
 *                  --scenarios NAME[,NAME...]
 *
 * Exit 0 after all scenarios (a scenario that raised is an "error" line, not a failed run), 2 for
 * a bad command line, 3 for what the driver cannot do (protocol v5; any compression: the driver
 * has no frame compression at all), 1 when the node cannot be used.
 *
 * The clients are configured as an application pinned to one node would be: one contact point
 * and a load balancing filter that ignores any other node; protocolOptions.maxVersion fixes the
 * version (the driver would step down only if the node refused it, which is checked after
 * connecting); the local datacenter is the one the node reports; generous timeouts, since the
 * nodes share a small machine. The driver has no prepared statement object: {prepare: true}
 * prepares a query text once and the driver reuses it, which is how applications use it.
 */

const cassandra = require('cassandra-driver');

const { types } = cassandra;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_UNSUPPORTED = 3;
const OPTIONS = ['host', 'port', 'protocol', 'compression', 'keyspace', 'scenarios'];
const USAGE = 'usage: node matrix.js --host H --port P --protocol {3,4,5}' +
  ' --compression {none,lz4,snappy} --keyspace KS --scenarios NAME[,NAME...]';

class UsageError extends Error {}

function parse(argv) {
  const given = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].startsWith('--') ? argv[i].slice(2) : null;
    if (!OPTIONS.includes(name)) throw new UsageError(`unknown option ${argv[i]}`);
    if (i + 1 >= argv.length) throw new UsageError(`${argv[i]} needs a value`);
    given[name] = argv[i + 1];
  }
  for (const name of OPTIONS) {
    if (!(name in given)) throw new UsageError(`missing --${name}`);
  }
  const port = Number(given.port);
  const protocol = Number(given.protocol);
  if (!Number.isInteger(port)) throw new UsageError(`--port must be a number, not ${given.port}`);
  if (![3, 4, 5].includes(protocol)) {
    throw new UsageError(`--protocol must be 3, 4 or 5, not ${given.protocol}`);
  }
  if (!['none', 'lz4', 'snappy'].includes(given.compression)) {
    throw new UsageError(`--compression must be none, lz4 or snappy, not ${given.compression}`);
  }
  const scenarios = given.scenarios.split(',');
  for (const name of scenarios) {
    if (!(name in SCENARIOS)) {
      throw new UsageError(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(',')}`);
    }
  }
  return { host: given.host, port, protocol, compression: given.compression,
    keyspace: given.keyspace, scenarios };
}

// --- values as the matrix's JSON --------------------------------------------------------------

function json(value) {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'string') {
    return value;
  }
  if (value instanceof types.Long) return value.toNumber();
  if (Buffer.isBuffer(value)) return value.toString('hex');
  if (value instanceof types.Tuple) return value.values().map(json);
  if (Array.isArray(value)) return value.map(json);
  if (value instanceof Set) return sorted(Array.from(value, json));
  if (value instanceof Map) return object(Array.from(value, ([k, v]) => [String(json(k)), json(v)]));
  if (value.constructor === Object) {
    return object(Object.entries(value).map(([k, v]) => [k, json(v)]));
  }
  // Types no scenario uses (dates, uuids, decimals...): their text.
  return value.toString();
}

function compare(a, b) {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function sorted(items) {
  return items.sort(compare);
}

function object(entries) {
  const result = {};
  for (const [k, v] of entries.sort((a, b) => compare(a[0], b[0]))) result[k] = v;
  return result;
}

/** Every column the row object carries, keys sorted. */
function row(r) {
  return object(r.keys().map(k => [k, json(r.get(k))]));
}

function rowsSortedBy(rows, ...keys) {
  return rows.sort((a, b) => {
    for (const key of keys) {
      const c = compare(a[key], b[key]);
      if (c !== 0) return c;
    }
    return 0;
  });
}

/**
 * The kind of a driver error: its class name, and for an error the node (or proxy) answered
 * with, the protocol error code too (the driver has one class, ResponseError, for all of them).
 */
function errorKind(error) {
  const name = error.constructor.name;
  return typeof error.code === 'number' && ERROR_CODE_NAMES[error.code]
    ? `${name}:${ERROR_CODE_NAMES[error.code]}` : name;
}

const ERROR_CODE_NAMES = {};
for (const [name, code] of Object.entries(types.responseErrorCodes)) ERROR_CODE_NAMES[code] = name;

/**
 * A step expected to fail records its error's kind instead of failing the scenario; the message
 * goes to stderr, for diagnosis only.
 */
function stepError(error, step) {
  process.stderr.write(`matrix.js: ${step}: ${errorKind(error)}: ${error.message}\n`);
  return { error: errorKind(error) };
}

/** The CQL text of a type as the driver describes it (code and info). */
function cqlType(type) {
  const name = TYPE_NAMES[type.code];
  if (type.code === types.dataTypes.udt) return type.info.name;
  if (type.code === types.dataTypes.custom) return type.info;
  if (Array.isArray(type.info)) return `${name}<${type.info.map(cqlType).join(', ')}>`;
  if (type.info && typeof type.info.code === 'number') return `${name}<${cqlType(type.info)}>`;
  return name;
}

const TYPE_NAMES = {};
for (const [name, code] of Object.entries(types.dataTypes)) {
  if (typeof code === 'number' && !(code in TYPE_NAMES)) TYPE_NAMES[code] = name;
}

// --- the scenarios -----------------------------------------------------------------------------

const prepared = { prepare: true };

const SCENARIOS = {
  async prepared_alter_add(client) {
    await client.execute('CREATE TABLE t1 (pk int, ck int, v text, PRIMARY KEY (pk, ck))');
    await client.execute("INSERT INTO t1 (pk, ck, v) VALUES (0, 1, 'a')");
    await client.execute("INSERT INTO t1 (pk, ck, v) VALUES (0, 2, 'b')");
    const select = 'SELECT * FROM t1 WHERE pk = ?';
    const before = (await client.execute(select, [0], prepared)).rows.map(row);
    await client.execute('ALTER TABLE t1 ADD a text');
    await client.execute("UPDATE t1 SET a = 'new' WHERE pk = 0 AND ck = 1");
    const after = (await client.execute(select, [0], prepared)).rows.map(row);
    return { before, after };
  },

  async prepared_type_change(client) {
    await client.execute('CREATE TABLE t2 (pk int PRIMARY KEY, v int)');
    const insert = 'INSERT INTO t2 (pk, v) VALUES (?, ?)';
    await client.execute(insert, [1, 10], prepared);
    await client.execute('DROP TABLE t2');
    await client.execute('CREATE TABLE t2 (pk int PRIMARY KEY, v bigint)');
    let second;
    try {
      await client.execute(insert, [2, 20], prepared);
      second = 'ok';
    } catch (error) {
      second = stepError(error, 'prepared_type_change: second insert');
    }
    const rows = (await client.execute('SELECT pk, v FROM t2')).rows.map(row);
    return { second_insert: second, rows: rowsSortedBy(rows, 'pk') };
  },

  async paging(client) {
    await client.execute('CREATE TABLE pg (pk int, ck int, v text, PRIMARY KEY (pk, ck))');
    for (let ck = 0; ck < 50; ck++) {
      await client.execute('INSERT INTO pg (pk, ck, v) VALUES (1, ?, ?)', [ck, `v${ck}`], prepared);
    }
    const query = 'SELECT ck, v FROM pg WHERE pk = 1';
    const cks = async (options) => {
      const result = [];
      // The async iterator fetches the following pages as it reaches them.
      for await (const r of await client.execute(query, [], { fetchSize: 7, ...options })) {
        result.push(r.ck);
      }
      return result;
    };
    return { simple: await cks({}), prepared: await cks(prepared) };
  },

  async udt_collections(client) {
    await client.execute('CREATE TYPE addr (street text, zip int)');
    await client.execute('CREATE TABLE uc (pk int PRIMARY KEY, l list<int>, s set<text>,' +
      ' m map<text, int>, a frozen<addr>, la list<frozen<addr>>, tu tuple<int, text>)');
    await client.execute("INSERT INTO uc (pk, l, s, m, a, la, tu) VALUES (1, [1, 2, 3], {'b', 'a'}," +
      " {'x': 1, 'y': 2}, {street: 'Main St', zip: 12345}," +
      " [{street: 'A', zip: 1}, {street: 'B', zip: 2}], (7, 'seven'))");
    await client.execute('INSERT INTO uc (pk, l, s, m, a, la, tu) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [2, [4, 5], ['c'], { z: 26 }, { street: 'Side St', zip: 54321 }, [{ street: 'C', zip: 3 }],
        new types.Tuple(8, 'eight')],
      prepared);
    await client.execute('UPDATE uc SET l = l + [9] WHERE pk = 1');
    return rowsSortedBy((await client.execute('SELECT * FROM uc')).rows.map(row), 'pk');
  },

  async lwt(client) {
    await client.execute('CREATE TABLE lw (pk int, ck int, v int, s int static, PRIMARY KEY (pk, ck))');
    const insert = 'INSERT INTO lw (pk, ck, v) VALUES (1, 1, 1) IF NOT EXISTS';
    const update = 'UPDATE lw SET v = ? WHERE pk = ? AND ck = ? IF v = ?';
    return [
      conditional(await client.execute(insert)),
      conditional(await client.execute(insert)),
      conditional(await client.execute(update, [2, 1, 1, 1], prepared)),
      conditional(await client.execute(update, [3, 1, 1, 1], prepared)),
      conditional(await client.execute('UPDATE lw SET s = 5 WHERE pk = 1 IF s = null')),
    ];
  },

  async counters(client) {
    await client.execute('CREATE TABLE cn (pk int PRIMARY KEY, n counter)');
    await client.execute('UPDATE cn SET n = n + 3 WHERE pk = 1');
    await client.execute('UPDATE cn SET n = n + 3 WHERE pk = 1');
    await client.execute('UPDATE cn SET n = n + ? WHERE pk = ?', [5, 1], prepared);
    const result = await client.execute('SELECT n FROM cn WHERE pk = 1');
    return { n: json(result.first().n) };
  },

  async batches(client) {
    await client.execute('CREATE TABLE bt (pk int, ck int, v text, PRIMARY KEY (pk, ck))');
    const insert = 'INSERT INTO bt (pk, ck, v) VALUES (?, ?, ?)';
    // The driver prepares all of a batch's statements or none: with {prepare: true} the literal
    // insert is prepared too.
    await client.batch([
      { query: "INSERT INTO bt (pk, ck, v) VALUES (1, 1, 'a')" },
      { query: insert, params: [1, 2, 'b'] },
      { query: insert, params: [2, 1, 'c'] },
    ], { prepare: true, logged: true });
    await client.batch([
      { query: insert, params: [3, 1, 'd'] },
      { query: insert, params: [3, 2, 'e'] },
    ], { prepare: true, logged: false });
    const conditional = await client.batch(
      ["INSERT INTO bt (pk, ck, v) VALUES (1, 3, 'f') IF NOT EXISTS"], { logged: true });
    const rows = (await client.execute('SELECT * FROM bt')).rows.map(row);
    return { lwt_batch_applied: conditional.wasApplied(), rows: rowsSortedBy(rows, 'pk', 'ck') };
  },

  async schema_metadata(client, keyspace) {
    await client.execute('CREATE TABLE md (pk int, ck text, v map<int, text>, PRIMARY KEY (pk, ck))' +
      ' WITH CLUSTERING ORDER BY (ck DESC)');
    // execute() waited for schema agreement; getTable reads the table's schema from the node
    // (and caches it until a schema change event).
    const table = await client.metadata.getTable(keyspace, 'md');
    if (!table) throw new Error(`the driver's schema metadata has no table ${keyspace}.md`);
    return {
      partition_key: table.partitionKeys.map(c => c.name),
      clustering: table.clusteringKeys.map((c, i) => [c.name, table.clusteringOrder[i]]),
      columns: object(table.columns.map(c => [c.name, cqlType(c.type)])),
    };
  },

  async compression(client) {
    await client.execute('CREATE TABLE cp (pk int PRIMARY KEY, v text)');
    const insert = 'INSERT INTO cp (pk, v) VALUES (?, ?)';
    await client.execute(insert, [1, 'zdm'.repeat(6667).slice(0, 20000)], prepared);
    await client.execute(insert, [2, 'zdm'.repeat(100)], prepared);
    const rows = (await client.execute('SELECT pk, v FROM cp')).rows;
    return rows.map(r => [r.pk, r.v.length, r.v.slice(0, 10)]).sort((a, b) => a[0] - b[0]);
  },
};

/** A conditional statement's outcome: applied, and the other columns it returned if any. */
function conditional(result) {
  const r = result.first();
  const others = r ? r.keys().filter(k => k !== '[applied]') : [];
  return {
    applied: result.wasApplied(),
    row: others.length ? object(others.map(k => [k, json(r.get(k))])) : null,
  };
}

// --- the run ------------------------------------------------------------------------------------

function clientOptions(options, extra) {
  return {
    contactPoints: [`${options.host}:${options.port}`],
    protocolOptions: { port: options.port, maxVersion: options.protocol,
      maxSchemaAgreementWaitSeconds: 30 },
    socketOptions: { connectTimeout: 10000, readTimeout: 30000 },
    ...extra,
  };
}

async function run(options) {
  const address = `${options.host}:${options.port}`;
  // The keyspace does not exist yet: a first client (pinned by an allow list, which needs no
  // datacenter) learns the node's datacenter, creates the keyspace and finally drops it; the
  // scenarios run in a second client opened on the keyspace, as an application opens its own.
  const admin = new cassandra.Client(clientOptions(options, {
    policies: { loadBalancing: new cassandra.policies.loadBalancing.AllowListPolicy(
      new cassandra.policies.loadBalancing.RoundRobinPolicy(), [address]) },
  }));
  await admin.connect();
  try {
    checkProtocol(admin, options.protocol);
    const localDc = (await admin.execute('SELECT data_center FROM system.local')).first().data_center;
    await admin.execute(`CREATE KEYSPACE ${options.keyspace}` +
      " WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}");
    const client = new cassandra.Client(clientOptions(options, {
      localDataCenter: localDc,
      keyspace: options.keyspace,
      policies: { loadBalancing: new cassandra.policies.loadBalancing.DefaultLoadBalancingPolicy(
        { localDc, filter: host => host.address === address }) },
    }));
    try {
      await client.connect();
      checkProtocol(client, options.protocol);
      for (const name of options.scenarios) {
        let line;
        try {
          line = { scenario: name, result: await SCENARIOS[name](client, options.keyspace) };
        } catch (error) {
          line = { scenario: name, error: errorKind(error), message: String(error.message) };
        }
        process.stdout.write(JSON.stringify(line) + '\n');
      }
    } finally {
      await client.shutdown();
      await admin.execute(`DROP KEYSPACE IF EXISTS ${options.keyspace}`);
    }
  } finally {
    await admin.shutdown();
  }
}

/** The driver steps down to a lower version when the node refuses one: the matrix must not. */
function checkProtocol(client, wanted) {
  // The control connection's version is the one every connection of the client uses.
  const used = client.controlConnection.protocolVersion;
  if (used !== wanted) {
    throw new Error(`the driver connected with protocol v${used}, not v${wanted}`);
  }
}

async function main() {
  let options;
  try {
    options = parse(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`matrix.js: ${error.message}\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  if (options.protocol > 4) {
    process.stderr.write('matrix.js: the Node.js driver speaks protocol v3 and v4 only, not' +
      ` v${options.protocol}\n`);
    return EXIT_UNSUPPORTED;
  }
  if (options.compression !== 'none') {
    process.stderr.write(`matrix.js: the Node.js driver has no compression (${options.compression}` +
      ' asked): it sends every frame uncompressed\n');
    return EXIT_UNSUPPORTED;
  }
  try {
    await run(options);
    return 0;
  } catch (error) {
    process.stderr.write(`matrix.js: ${error.constructor.name}: ${error.message}\n`);
    return EXIT_FAILED;
  }
}

main().then(code => { process.exitCode = code; });
