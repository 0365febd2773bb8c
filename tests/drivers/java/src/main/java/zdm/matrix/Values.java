package zdm.matrix;

import com.datastax.oss.driver.api.core.cql.ColumnDefinition;
import com.datastax.oss.driver.api.core.cql.ResultSet;
import com.datastax.oss.driver.api.core.cql.Row;
import com.datastax.oss.driver.api.core.data.TupleValue;
import com.datastax.oss.driver.api.core.data.UdtValue;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Turns what the driver decodes into the matrix's JSON values: numbers stay numbers, blobs become
 * hex, sets become sorted arrays, maps and UDTs objects with string keys (sorted), tuples arrays.
 * Rows become objects of every column the row carries, keys sorted.
 */
final class Values {
  static Object json(Object value) {
    if (value == null || value instanceof Number || value instanceof Boolean
        || value instanceof String) {
      return value;
    }
    if (value instanceof ByteBuffer bytes) {
      ByteBuffer copy = bytes.duplicate();
      byte[] raw = new byte[copy.remaining()];
      copy.get(raw);
      return HexFormat.of().formatHex(raw);
    }
    if (value instanceof Set<?> set) {
      List<Object> items = list(set);
      items.sort(Values::compare);
      return items;
    }
    if (value instanceof Collection<?> collection) {
      return list(collection);
    }
    if (value instanceof Map<?, ?> map) {
      Map<String, Object> object = new TreeMap<>();
      map.forEach((k, v) -> object.put(String.valueOf(json(k)), json(v)));
      return object;
    }
    if (value instanceof UdtValue udt) {
      Map<String, Object> object = new TreeMap<>();
      for (int i = 0; i < udt.size(); i++) {
        object.put(udt.getType().getFieldNames().get(i).asInternal(), json(udt.getObject(i)));
      }
      return object;
    }
    if (value instanceof TupleValue tuple) {
      List<Object> items = new ArrayList<>();
      for (int i = 0; i < tuple.size(); i++) {
        items.add(json(tuple.getObject(i)));
      }
      return items;
    }
    // Types no scenario uses (dates, uuids, decimals...): their CQL-ish text.
    return value.toString();
  }

  static Map<String, Object> row(Row row) {
    Map<String, Object> object = new TreeMap<>();
    for (int i = 0; i < row.size(); i++) {
      ColumnDefinition column = row.getColumnDefinitions().get(i);
      object.put(column.getName().asInternal(), json(row.getObject(i)));
    }
    return object;
  }

  /** Every row of the result (the driver fetches the next pages as iteration reaches them). */
  static List<Map<String, Object>> rows(ResultSet result) {
    List<Map<String, Object>> rows = new ArrayList<>();
    for (Row row : result) {
      rows.add(row(row));
    }
    return rows;
  }

  static List<Map<String, Object>> sortedBy(List<Map<String, Object>> rows, String... keys) {
    Comparator<Map<String, Object>> order = (a, b) -> 0;
    for (String key : keys) {
      order = order.thenComparing((a, b) -> compare(a.get(key), b.get(key)));
    }
    rows.sort(order);
    return rows;
  }

  @SuppressWarnings({"unchecked", "rawtypes"})
  static int compare(Object a, Object b) {
    if (a instanceof Number x && b instanceof Number y) {
      return Long.compare(x.longValue(), y.longValue());
    }
    if (a instanceof Comparable x && a.getClass() == b.getClass()) {
      return x.compareTo(b);
    }
    return String.valueOf(a).compareTo(String.valueOf(b));
  }

  private static List<Object> list(Collection<?> collection) {
    List<Object> items = new ArrayList<>();
    for (Object item : collection) {
      items.add(json(item));
    }
    return items;
  }

  private Values() {}
}
