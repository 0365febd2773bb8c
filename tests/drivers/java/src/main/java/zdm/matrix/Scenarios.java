package zdm.matrix;

import com.datastax.oss.driver.api.core.CqlIdentifier;
import com.datastax.oss.driver.api.core.CqlSession;
import com.datastax.oss.driver.api.core.cql.BatchStatement;
import com.datastax.oss.driver.api.core.cql.DefaultBatchType;
import com.datastax.oss.driver.api.core.cql.PreparedStatement;
import com.datastax.oss.driver.api.core.cql.ResultSet;
import com.datastax.oss.driver.api.core.cql.Row;
import com.datastax.oss.driver.api.core.cql.SimpleStatement;
import com.datastax.oss.driver.api.core.data.TupleValue;
import com.datastax.oss.driver.api.core.data.UdtValue;
import com.datastax.oss.driver.api.core.metadata.schema.ClusteringOrder;
import com.datastax.oss.driver.api.core.metadata.schema.ColumnMetadata;
import com.datastax.oss.driver.api.core.metadata.schema.TableMetadata;
import com.datastax.oss.driver.api.core.type.TupleType;
import com.datastax.oss.driver.api.core.type.UserDefinedType;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * The nine scenarios of the driver matrix, each written the way an application uses the driver:
 * prepared statements kept and reused, automatic paging, the driver's own collection, UDT and
 * tuple values, its schema metadata. Each returns its result as JSON-able values; a step that is
 * expected to fail records {"error": KIND} in the result instead of failing the scenario.
 * Schema changes go through session.execute, which waits for schema agreement by itself.
 */
final class Scenarios {
  static final List<String> NAMES = List.of("prepared_alter_add", "prepared_type_change",
      "paging", "udt_collections", "lwt", "counters", "batches", "schema_metadata",
      "compression");

  private final CqlSession session;
  private final String keyspace;

  Scenarios(CqlSession session, String keyspace) {
    this.session = session;
    this.keyspace = keyspace;
  }

  Object run(String name) {
    return switch (name) {
      case "prepared_alter_add" -> preparedAlterAdd();
      case "prepared_type_change" -> preparedTypeChange();
      case "paging" -> paging();
      case "udt_collections" -> udtCollections();
      case "lwt" -> lwt();
      case "counters" -> counters();
      case "batches" -> batches();
      case "schema_metadata" -> schemaMetadata();
      case "compression" -> compression();
      default -> throw new IllegalArgumentException("unknown scenario " + name);
    };
  }

  private Object preparedAlterAdd() {
    session.execute("CREATE TABLE t1 (pk int, ck int, v text, PRIMARY KEY (pk, ck))");
    session.execute("INSERT INTO t1 (pk, ck, v) VALUES (0, 1, 'a')");
    session.execute("INSERT INTO t1 (pk, ck, v) VALUES (0, 2, 'b')");
    PreparedStatement select = session.prepare("SELECT * FROM t1 WHERE pk = ?");
    var before = Values.rows(session.execute(select.bind(0)));
    session.execute("ALTER TABLE t1 ADD a text");
    session.execute("UPDATE t1 SET a = 'new' WHERE pk = 0 AND ck = 1");
    var after = Values.rows(session.execute(select.bind(0)));
    return Map.of("before", before, "after", after);
  }

  private Object preparedTypeChange() {
    session.execute("CREATE TABLE t2 (pk int PRIMARY KEY, v int)");
    PreparedStatement insert = session.prepare("INSERT INTO t2 (pk, v) VALUES (?, ?)");
    session.execute(insert.bind(1, 10));
    session.execute("DROP TABLE t2");
    session.execute("CREATE TABLE t2 (pk int PRIMARY KEY, v bigint)");
    Object second;
    try {
      session.execute(insert.bind(2, 20));
      second = "ok";
    } catch (RuntimeException e) {
      second = error(e, "prepared_type_change: second insert");
    }
    var rows = Values.sortedBy(Values.rows(session.execute("SELECT pk, v FROM t2")), "pk");
    return Map.of("second_insert", second, "rows", rows);
  }

  private Object paging() {
    session.execute("CREATE TABLE pg (pk int, ck int, v text, PRIMARY KEY (pk, ck))");
    PreparedStatement insert = session.prepare("INSERT INTO pg (pk, ck, v) VALUES (1, ?, ?)");
    for (int ck = 0; ck < 50; ck++) {
      session.execute(insert.bind(ck, "v" + ck));
    }
    String query = "SELECT ck, v FROM pg WHERE pk = 1";
    var simple = cks(session.execute(SimpleStatement.newInstance(query).setPageSize(7)));
    var prepared = cks(session.execute(session.prepare(query).bind().setPageSize(7)));
    return Map.of("simple", simple, "prepared", prepared);
  }

  private static List<Integer> cks(ResultSet result) {
    List<Integer> cks = new ArrayList<>();
    for (Row row : result) {
      cks.add(row.getInt("ck"));
    }
    return cks;
  }

  private Object udtCollections() {
    session.execute("CREATE TYPE addr (street text, zip int)");
    session.execute("CREATE TABLE uc (pk int PRIMARY KEY, l list<int>, s set<text>,"
        + " m map<text, int>, a frozen<addr>, la list<frozen<addr>>, tu tuple<int, text>)");
    session.execute("INSERT INTO uc (pk, l, s, m, a, la, tu) VALUES (1, [1, 2, 3], {'b', 'a'},"
        + " {'x': 1, 'y': 2}, {street: 'Main St', zip: 12345},"
        + " [{street: 'A', zip: 1}, {street: 'B', zip: 2}], (7, 'seven'))");
    PreparedStatement insert = session.prepare(
        "INSERT INTO uc (pk, l, s, m, a, la, tu) VALUES (?, ?, ?, ?, ?, ?, ?)");
    var variables = insert.getVariableDefinitions();
    UserDefinedType addr = (UserDefinedType) variables.get("a").getType();
    TupleType pair = (TupleType) variables.get("tu").getType();
    UdtValue side = addr.newValue("Side St", 54321);
    List<UdtValue> places = List.of(addr.newValue("C", 3));
    TupleValue eight = pair.newValue(8, "eight");
    session.execute(insert.bind(2, List.of(4, 5), Set.of("c"), Map.of("z", 26), side, places,
        eight));
    session.execute("UPDATE uc SET l = l + [9] WHERE pk = 1");
    return Values.sortedBy(Values.rows(session.execute("SELECT * FROM uc")), "pk");
  }

  private Object lwt() {
    session.execute("CREATE TABLE lw (pk int, ck int, v int, s int static,"
        + " PRIMARY KEY (pk, ck))");
    List<Object> steps = new ArrayList<>();
    String insert = "INSERT INTO lw (pk, ck, v) VALUES (1, 1, 1) IF NOT EXISTS";
    steps.add(conditional(session.execute(insert)));
    steps.add(conditional(session.execute(insert)));
    PreparedStatement update =
        session.prepare("UPDATE lw SET v = ? WHERE pk = ? AND ck = ? IF v = ?");
    steps.add(conditional(session.execute(update.bind(2, 1, 1, 1))));
    steps.add(conditional(session.execute(update.bind(3, 1, 1, 1))));
    steps.add(conditional(session.execute("UPDATE lw SET s = 5 WHERE pk = 1 IF s = null")));
    return steps;
  }

  /** A conditional statement's outcome: applied, and the other columns it returned if any. */
  private static Map<String, Object> conditional(ResultSet result) {
    // wasApplied reads the first row, so it must come before the row is consumed.
    boolean applied = result.wasApplied();
    Map<String, Object> row = Values.row(result.one());
    row.remove("[applied]");
    Map<String, Object> outcome = new LinkedHashMap<>();
    outcome.put("applied", applied);
    outcome.put("row", row.isEmpty() ? null : row);
    return outcome;
  }

  private Object counters() {
    session.execute("CREATE TABLE cn (pk int PRIMARY KEY, n counter)");
    session.execute("UPDATE cn SET n = n + 3 WHERE pk = 1");
    session.execute("UPDATE cn SET n = n + 3 WHERE pk = 1");
    PreparedStatement add = session.prepare("UPDATE cn SET n = n + ? WHERE pk = ?");
    session.execute(add.bind(5L, 1));
    Row row = session.execute("SELECT n FROM cn WHERE pk = 1").one();
    return Map.of("n", row.getLong("n"));
  }

  private Object batches() {
    session.execute("CREATE TABLE bt (pk int, ck int, v text, PRIMARY KEY (pk, ck))");
    PreparedStatement insert = session.prepare("INSERT INTO bt (pk, ck, v) VALUES (?, ?, ?)");
    session.execute(BatchStatement.builder(DefaultBatchType.LOGGED)
        .addStatement(SimpleStatement.newInstance("INSERT INTO bt (pk, ck, v) VALUES (1, 1, 'a')"))
        .addStatement(insert.bind(1, 2, "b"))
        .addStatement(insert.bind(2, 1, "c"))
        .build());
    session.execute(BatchStatement.builder(DefaultBatchType.UNLOGGED)
        .addStatement(insert.bind(3, 1, "d"))
        .addStatement(insert.bind(3, 2, "e"))
        .build());
    ResultSet conditional = session.execute(BatchStatement.newInstance(DefaultBatchType.LOGGED,
        SimpleStatement.newInstance(
            "INSERT INTO bt (pk, ck, v) VALUES (1, 3, 'f') IF NOT EXISTS")));
    boolean applied = conditional.wasApplied();
    var rows = Values.sortedBy(Values.rows(session.execute("SELECT * FROM bt")), "pk", "ck");
    Map<String, Object> result = new LinkedHashMap<>();
    result.put("lwt_batch_applied", applied);
    result.put("rows", rows);
    return result;
  }

  private Object schemaMetadata() {
    session.execute("CREATE TABLE md (pk int, ck text, v map<int, text>, PRIMARY KEY (pk, ck))"
        + " WITH CLUSTERING ORDER BY (ck DESC)");
    // The driver refreshes its metadata after a schema change it made, but after a debounce
    // window; ask for the refresh so the table is there now.
    TableMetadata table = session.refreshSchema()
        .getKeyspace(CqlIdentifier.fromInternal(keyspace))
        .flatMap(ks -> ks.getTable("md"))
        .orElseThrow(() -> new IllegalStateException(
            "the driver's schema metadata has no table " + keyspace + ".md"));
    List<String> partitionKey = new ArrayList<>();
    for (ColumnMetadata column : table.getPartitionKey()) {
      partitionKey.add(column.getName().asInternal());
    }
    List<List<String>> clustering = new ArrayList<>();
    for (Map.Entry<ColumnMetadata, ClusteringOrder> entry : table.getClusteringColumns().entrySet()) {
      clustering.add(List.of(entry.getKey().getName().asInternal(), entry.getValue().name()));
    }
    Map<String, Object> columns = new TreeMap<>();
    for (ColumnMetadata column : table.getColumns().values()) {
      columns.put(column.getName().asInternal(), column.getType().asCql(true, true));
    }
    Map<String, Object> result = new LinkedHashMap<>();
    result.put("partition_key", partitionKey);
    result.put("clustering", clustering);
    result.put("columns", columns);
    return result;
  }

  private Object compression() {
    session.execute("CREATE TABLE cp (pk int PRIMARY KEY, v text)");
    PreparedStatement insert = session.prepare("INSERT INTO cp (pk, v) VALUES (?, ?)");
    session.execute(insert.bind(1, "zdm".repeat(6667).substring(0, 20000)));
    session.execute(insert.bind(2, "zdm".repeat(100)));
    List<List<Object>> result = new ArrayList<>();
    for (Row row : session.execute("SELECT pk, v FROM cp")) {
      String v = row.getString("v");
      result.add(List.of(row.getInt("pk"), v.length(), v.substring(0, Math.min(10, v.length()))));
    }
    result.sort((a, b) -> Integer.compare((Integer) a.get(0), (Integer) b.get(0)));
    return result;
  }

  /**
   * A step expected to fail records its exception's class name instead of failing the scenario;
   * the message goes to stderr, for diagnosis only.
   */
  private static Map<String, Object> error(RuntimeException e, String step) {
    System.err.println("matrix: " + step + ": " + e.getClass().getSimpleName() + ": "
        + e.getMessage());
    return Map.of("error", e.getClass().getSimpleName());
  }
}
