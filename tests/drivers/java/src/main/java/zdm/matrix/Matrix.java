package zdm.matrix;

import com.datastax.oss.driver.api.core.CqlSession;
import com.datastax.oss.driver.api.core.config.DefaultDriverOption;
import com.datastax.oss.driver.api.core.config.DriverConfigLoader;
import com.datastax.oss.driver.api.core.loadbalancing.NodeDistance;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The driver matrix's program for the Java driver 4: runs the named scenarios against one node
 * (directly or through the zdm proxy) and prints one JSON line per scenario, so a run through the
 * proxy can be compared with a direct run line by line.
 *
 * <p>Usage: {@code --host H --port P --protocol {3,4,5} --compression {none,lz4,snappy}
 * --keyspace KS --scenarios NAME[,NAME...]}. Exit 0 after all scenarios (a scenario that raised
 * is an {@code "error"} line, not a failed run), 2 for a bad command line, 1 when the node cannot
 * be used at all (including a protocol and compression pair the node refuses, such as snappy on
 * v5). The driver does lz4 and snappy itself, so nothing here exits 3.
 *
 * <p>The session is configured as an application pinned to one node would be: exactly one contact
 * point and every other node the driver may discover ignored; the protocol version fixed (the
 * driver then refuses to negotiate down); the local datacenter inferred from the node (what the
 * node reports, not a guess); generous timeouts, since the nodes share a small machine.
 */
public final class Matrix {
  static final int EXIT_FAILED = 1;
  static final int EXIT_USAGE = 2;

  record Options(String host, int port, int protocol, String compression, String keyspace,
                 List<String> scenarios) {}

  public static void main(String[] args) {
    Options options;
    try {
      options = parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println("matrix: " + e.getMessage());
      System.err.println("usage: matrix --host H --port P --protocol {3,4,5}"
          + " --compression {none,lz4,snappy} --keyspace KS --scenarios NAME[,NAME...]");
      System.exit(EXIT_USAGE);
      return;
    }
    System.exit(run(options));
  }

  static int run(Options options) {
    // Every object in a result has its keys sorted, whatever Map built it.
    ObjectMapper json = new ObjectMapper().enable(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS);
    // The keyspace does not exist yet: one session creates and finally drops it, and the
    // scenarios run in a second one opened on the keyspace, as an application opens its own.
    try (CqlSession admin = open(options, null)) {
      admin.execute("CREATE KEYSPACE " + options.keyspace()
          + " WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}");
      try (CqlSession session = open(options, options.keyspace())) {
        Scenarios scenarios = new Scenarios(session, options.keyspace());
        for (String name : options.scenarios()) {
          ObjectNode line = json.createObjectNode().put("scenario", name);
          try {
            line.putPOJO("result", scenarios.run(name));
          } catch (Exception e) {
            line.put("error", e.getClass().getSimpleName());
            line.put("message", String.valueOf(e.getMessage()));
          }
          System.out.println(json.writeValueAsString(line));
          System.out.flush();
        }
      } finally {
        admin.execute("DROP KEYSPACE IF EXISTS " + options.keyspace());
      }
      return 0;
    } catch (Exception e) {
      System.err.println("matrix: " + e.getClass().getSimpleName() + ": " + e.getMessage());
      return EXIT_FAILED;
    }
  }

  static CqlSession open(Options options, String keyspace) {
    InetSocketAddress contact = new InetSocketAddress(options.host(), options.port());
    DriverConfigLoader config = DriverConfigLoader.programmaticBuilder()
        .withString(DefaultDriverOption.PROTOCOL_VERSION, "V" + options.protocol())
        .withString(DefaultDriverOption.PROTOCOL_COMPRESSION, options.compression())
        .withString(DefaultDriverOption.LOAD_BALANCING_POLICY_CLASS,
            "DcInferringLoadBalancingPolicy")
        .withDuration(DefaultDriverOption.REQUEST_TIMEOUT, Duration.ofSeconds(30))
        .withDuration(DefaultDriverOption.CONNECTION_CONNECT_TIMEOUT, Duration.ofSeconds(10))
        .withDuration(DefaultDriverOption.CONNECTION_INIT_QUERY_TIMEOUT, Duration.ofSeconds(10))
        .withDuration(DefaultDriverOption.CONTROL_CONNECTION_TIMEOUT, Duration.ofSeconds(10))
        .withDuration(DefaultDriverOption.CONTROL_CONNECTION_AGREEMENT_TIMEOUT,
            Duration.ofSeconds(30))
        // A schema change returns once the driver's metadata is refreshed, and that refresh
        // waits for a quiet window in the node's schema events. Other keyspaces' changes (other
        // programs share the node) must not hold it back, and a short window keeps each
        // CREATE/ALTER/DROP quick.
        .withStringList(DefaultDriverOption.METADATA_SCHEMA_REFRESHED_KEYSPACES,
            List.of(options.keyspace()))
        .withDuration(DefaultDriverOption.METADATA_SCHEMA_WINDOW, Duration.ofMillis(50))
        // A short-lived command-line program: the Java clock rather than loading native code
        // (JNR) for a microsecond one, and no two-second quiet period before it can exit.
        .withBoolean(DefaultDriverOption.TIMESTAMP_GENERATOR_FORCE_JAVA_CLOCK, true)
        .withInt(DefaultDriverOption.NETTY_IO_SHUTDOWN_QUIET_PERIOD, 0)
        .withInt(DefaultDriverOption.NETTY_ADMIN_SHUTDOWN_QUIET_PERIOD, 0)
        .build();
    var builder = CqlSession.builder()
        .withConfigLoader(config)
        .addContactPoint(contact)
        // A node the driver finds in system.peers is not the one under test: ignore it. null
        // leaves the contact point's distance to the load balancing policy.
        .withNodeDistanceEvaluator((node, localDc) ->
            contact.equals(node.getEndPoint().resolve()) ? null : NodeDistance.IGNORED);
    if (keyspace != null) {
      builder = builder.withKeyspace(keyspace);
    }
    return builder.build();
  }

  static final List<String> OPTIONS =
      List.of("host", "port", "protocol", "compression", "keyspace", "scenarios");

  static Options parse(String[] args) {
    Map<String, String> given = new LinkedHashMap<>();
    for (int i = 0; i < args.length; i += 2) {
      String name = args[i].startsWith("--") ? args[i].substring(2) : null;
      if (name == null || !OPTIONS.contains(name)) {
        throw new IllegalArgumentException("unknown option " + args[i]);
      }
      if (i + 1 >= args.length) {
        throw new IllegalArgumentException(args[i] + " needs a value");
      }
      given.put(name, args[i + 1]);
    }
    for (String name : OPTIONS) {
      if (!given.containsKey(name)) {
        throw new IllegalArgumentException("missing --" + name);
      }
    }
    int protocol = integer(given.get("protocol"), "--protocol");
    if (protocol < 3 || protocol > 5) {
      throw new IllegalArgumentException("--protocol must be 3, 4 or 5, not " + protocol);
    }
    String compression = given.get("compression");
    if (!List.of("none", "lz4", "snappy").contains(compression)) {
      throw new IllegalArgumentException(
          "--compression must be none, lz4 or snappy, not " + compression);
    }
    List<String> scenarios = List.of(given.get("scenarios").split(","));
    for (String name : scenarios) {
      if (!Scenarios.NAMES.contains(name)) {
        throw new IllegalArgumentException(
            "unknown scenario " + name + "; known: " + String.join(",", Scenarios.NAMES));
      }
    }
    return new Options(given.get("host"), integer(given.get("port"), "--port"), protocol,
        compression, given.get("keyspace"), scenarios);
  }

  private static int integer(String text, String option) {
    try {
      return Integer.parseInt(text);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(option + " must be a number, not " + text);
    }
  }

  private Matrix() {}
}
