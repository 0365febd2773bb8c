// Command matrix runs the driver matrix's scenarios as an application uses gocql (Apache
// Cassandra's Go driver, v2: it speaks protocol v3 to v5 and compresses with lz4 or snappy).
//
//	matrix --host 127.0.0.1 --port 9042 --protocol 4 --compression snappy \
//	       --keyspace ks1 --scenarios paging,lwt
//
// It connects to exactly that contact point at exactly that protocol version, creates the
// keyspace, runs the scenarios in order, drops the keyspace and prints one JSON line per
// scenario: {"scenario", "result"} or, when it failed, {"scenario", "error", "message"}. The
// scenarios and the JSON shape of values are the driver matrix's contract
// (tests/drivers/README.md); the runner compares a run through the zdm proxy with a direct run
// line by line, so nothing here is random.
//
// gocql prepares every SELECT/INSERT/UPDATE/DELETE it sends, bound values or not, and caches the
// prepared statement (and its result metadata) per statement text: executing "the same prepared
// statement" is running the same text again. On EXECUTE it asks the node to skip the result
// metadata and decodes rows with the cached one (protocol v4 and older), which is what
// prepared_alter_add looks at.
//
// Exit codes: 0 done, 1 could not connect or set up, 2 bad arguments, 3 the driver cannot do the
// compression asked for at that protocol, 4 compression was asked for but never used (gocql
// drops it silently when the server does not offer it, which would make a compression run prove
// nothing).
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/apache/cassandra-gocql-driver/v2/lz4"
	"github.com/apache/cassandra-gocql-driver/v2/snappy"
)

// the compression scenario's values: "zdm" repeated, cut to the length
const big, small = 20000, 300

type scenarioFunc func(s *gocql.Session) (any, error)

var scenarios = map[string]scenarioFunc{
	"prepared_alter_add":   preparedAlterAdd,
	"prepared_type_change": preparedTypeChange,
	"paging":               paging,
	"udt_collections":      udtCollections,
	"lwt":                  lwt,
	"counters":             counters,
	"batches":              batches,
	"schema_metadata":      schemaMetadata,
	"compression":          compressionScenario,
}

// --- values as the matrix's JSON ----------------------------------------------------------

type row = map[string]any

// toJSON turns a value gocql decoded into the matrix's JSON form; info (the column's type) tells
// a set, which is sorted, from a list, which gocql decodes alike.
func toJSON(v any, info gocql.TypeInfo) any {
	if v == nil {
		return nil
	}
	switch x := v.(type) {
	case []byte:
		return hex.EncodeToString(x)
	case string, bool:
		return x
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
		return toJSON(rv.Elem().Interface(), info)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return rv.Uint()
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = toJSON(rv.Index(i).Interface(), elemInfo(info, i))
		}
		if info != nil && info.Type() == gocql.TypeSet {
			sortValues(out)
		}
		return out
	case reflect.Map:
		out := map[string]any{}
		for _, k := range rv.MapKeys() {
			out[fmt.Sprint(k.Interface())] = toJSON(rv.MapIndex(k).Interface(), fieldInfo(info, fmt.Sprint(k.Interface())))
		}
		return out
	}
	return fmt.Sprint(v)
}

func elemInfo(info gocql.TypeInfo, i int) gocql.TypeInfo {
	switch t := info.(type) {
	case gocql.CollectionType:
		return t.Elem
	case gocql.TupleTypeInfo:
		if i < len(t.Elems) {
			return t.Elems[i]
		}
	}
	return nil
}

func fieldInfo(info gocql.TypeInfo, name string) gocql.TypeInfo {
	switch t := info.(type) {
	case gocql.CollectionType:
		return t.Elem
	case gocql.UDTTypeInfo:
		for _, f := range t.Elements {
			if f.Name == name {
				return f.Type
			}
		}
	}
	return nil
}

// sortValues orders a set's elements: numbers by value, anything else by its JSON text.
func sortValues(vs []any) {
	sort.SliceStable(vs, func(i, j int) bool {
		a, aNum := vs[i].(int64)
		b, bNum := vs[j].(int64)
		if aNum && bNum {
			return a < b
		}
		x, _ := json.Marshal(vs[i])
		y, _ := json.Marshal(vs[j])
		return string(x) < string(y)
	})
}

// rowsOf reads every row (every page) of iter as {column: value}.
func rowsOf(iter *gocql.Iter) ([]row, error) {
	cols := iter.Columns()
	var rows []row
	for {
		m := map[string]any{}
		if !iter.MapScan(m) {
			break
		}
		rows = append(rows, convert(m, cols))
	}
	if rows == nil {
		rows = []row{}
	}
	return rows, iter.Close()
}

func convert(m map[string]any, cols []gocql.ColumnInfo) row {
	types := map[string]gocql.TypeInfo{}
	for _, c := range cols {
		types[c.Name] = c.TypeInfo
	}
	out := row{}
	for k, v := range m {
		out[k] = toJSON(v, types[k])
	}
	// MapScan spreads a tuple column over keys "tu[0]", "tu[1]"...: the matrix wants one array
	for _, c := range cols {
		if t, ok := c.TypeInfo.(gocql.TupleTypeInfo); ok {
			elems := make([]any, len(t.Elems))
			for i := range elems {
				key := fmt.Sprintf("%s[%d]", c.Name, i)
				elems[i] = out[key]
				delete(out, key)
			}
			out[c.Name] = elems
		}
	}
	return out
}

func sortRows(rows []row, keys ...string) {
	sort.SliceStable(rows, func(i, j int) bool {
		for _, k := range keys {
			a, b := rows[i][k].(int64), rows[j][k].(int64)
			if a != b {
				return a < b
			}
		}
		return false
	})
}

// errorKind names an error for the matrix: its Go type, and a server error's code beside it.
func errorKind(err error) string {
	inner := err // the innermost error: ours only add context around the driver's
	for errors.Unwrap(inner) != nil {
		inner = errors.Unwrap(inner)
	}
	kind := strings.TrimPrefix(fmt.Sprintf("%T", inner), "*")
	var re gocql.RequestError
	if errors.As(err, &re) {
		kind += fmt.Sprintf("(0x%04x)", re.Code())
	}
	return kind
}

func exec(s *gocql.Session, stmts ...string) error {
	for _, q := range stmts {
		if err := s.Query(q).Exec(); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// --- the scenarios (names and steps: the matrix's contract) -------------------------------

func preparedAlterAdd(s *gocql.Session) (any, error) {
	if err := exec(s, "CREATE TABLE t1 (pk int, ck int, v text, PRIMARY KEY (pk, ck))",
		"INSERT INTO t1 (pk, ck, v) VALUES (0, 1, 'a')",
		"INSERT INTO t1 (pk, ck, v) VALUES (0, 2, 'b')"); err != nil {
		return nil, err
	}
	sel := s.Query("SELECT * FROM t1 WHERE pk = ?", 0)
	before, err := rowsOf(sel.Iter())
	if err != nil {
		return nil, err
	}
	if err := exec(s, "ALTER TABLE t1 ADD a text", "UPDATE t1 SET a = 'new' WHERE pk = 0 AND ck = 1"); err != nil {
		return nil, err
	}
	after, err := rowsOf(sel.Iter())
	if err != nil {
		return nil, err
	}
	return map[string]any{"before": before, "after": after}, nil
}

func preparedTypeChange(s *gocql.Session) (any, error) {
	if err := exec(s, "CREATE TABLE t2 (pk int PRIMARY KEY, v int)"); err != nil {
		return nil, err
	}
	const insert = "INSERT INTO t2 (pk, v) VALUES (?, ?)"
	if err := s.Query(insert, 1, 10).Exec(); err != nil {
		return nil, err
	}
	if err := exec(s, "DROP TABLE t2", "CREATE TABLE t2 (pk int PRIMARY KEY, v bigint)"); err != nil {
		return nil, err
	}
	var second any = "ok"
	if err := s.Query(insert, 2, 20).Exec(); err != nil {
		second = map[string]any{"error": errorKind(err)}
	}
	rows, err := rowsOf(s.Query("SELECT pk, v FROM t2").Iter())
	if err != nil {
		return nil, err
	}
	sortRows(rows, "pk")
	return map[string]any{"second_insert": second, "rows": rows}, nil
}

func paging(s *gocql.Session) (any, error) {
	if err := exec(s, "CREATE TABLE pg (pk int, ck int, v text, PRIMARY KEY (pk, ck))"); err != nil {
		return nil, err
	}
	for ck := 0; ck < 50; ck++ {
		if err := s.Query("INSERT INTO pg (pk, ck, v) VALUES (1, ?, ?)", ck, fmt.Sprintf("v%d", ck)).Exec(); err != nil {
			return nil, err
		}
	}
	// Iter fetches each following page as the scan reaches it (the driver's automatic paging).
	// "simple" has no bound values (gocql still prepares it: it prepares all DML).
	read := func(q *gocql.Query) ([]int, error) {
		iter := q.PageSize(7).Iter()
		var cks []int
		var ck int
		var v string
		for iter.Scan(&ck, &v) {
			cks = append(cks, ck)
		}
		return cks, iter.Close()
	}
	simple, err := read(s.Query("SELECT ck, v FROM pg WHERE pk = 1"))
	if err != nil {
		return nil, err
	}
	prepared, err := read(s.Query("SELECT ck, v FROM pg WHERE pk = ?", 1))
	if err != nil {
		return nil, err
	}
	return map[string]any{"simple": simple, "prepared": prepared}, nil
}

// addr is the UDT as an application declares it: a struct with cql tags.
type addr struct {
	Street string `cql:"street"`
	Zip    int    `cql:"zip"`
}

func udtCollections(s *gocql.Session) (any, error) {
	if err := exec(s, "CREATE TYPE addr (street text, zip int)",
		"CREATE TABLE uc (pk int PRIMARY KEY, l list<int>, s set<text>, m map<text, int>, "+
			"a frozen<addr>, la list<frozen<addr>>, tu tuple<int, text>)",
		"INSERT INTO uc (pk, l, s, m, a, la, tu) VALUES (1, [1, 2, 3], {'b', 'a'}, "+
			"{'x': 1, 'y': 2}, {street: 'Main St', zip: 12345}, "+
			"[{street: 'A', zip: 1}, {street: 'B', zip: 2}], (7, 'seven'))"); err != nil {
		return nil, err
	}
	// The tuple is a literal: gocql v2.1 cannot bind a tuple marker (it expects one bind value
	// per tuple element, then marshals one value per marker).
	err := s.Query("INSERT INTO uc (pk, l, s, m, a, la, tu) VALUES (?, ?, ?, ?, ?, ?, (8, 'eight'))",
		2, []int{4, 5}, []string{"c"}, map[string]int{"z": 26}, addr{"Side St", 54321},
		[]addr{{"C", 3}}).Exec()
	if err != nil {
		return nil, err
	}
	if err := exec(s, "UPDATE uc SET l = l + [9] WHERE pk = 1"); err != nil {
		return nil, err
	}
	rows, err := rowsOf(s.Query("SELECT * FROM uc").Iter())
	if err != nil {
		return nil, err
	}
	sortRows(rows, "pk")
	return rows, nil
}

type outcome struct {
	Applied bool `json:"applied"`
	Row     row  `json:"row"` // the other columns the driver returns; null when none
}

func lwt(s *gocql.Session) (any, error) {
	if err := exec(s, "CREATE TABLE lw (pk int, ck int, v int, s int static, PRIMARY KEY (pk, ck))"); err != nil {
		return nil, err
	}
	steps := []*gocql.Query{
		s.Query("INSERT INTO lw (pk, ck, v) VALUES (1, 1, 1) IF NOT EXISTS"),
		s.Query("INSERT INTO lw (pk, ck, v) VALUES (1, 1, 1) IF NOT EXISTS"),
		s.Query("UPDATE lw SET v = ? WHERE pk = ? AND ck = ? IF v = ?", 2, 1, 1, 1),
		s.Query("UPDATE lw SET v = ? WHERE pk = ? AND ck = ? IF v = ?", 3, 1, 1, 1),
		s.Query("UPDATE lw SET s = 5 WHERE pk = 1 IF s = null"),
	}
	var out []outcome
	for _, q := range steps {
		m := map[string]any{}
		applied, err := q.MapScanCAS(m)
		if err != nil {
			return nil, err
		}
		o := outcome{Applied: applied}
		if len(m) > 0 { // the columns are plain ints: no type needed to convert them
			o.Row = convert(m, nil)
		}
		out = append(out, o)
	}
	return out, nil
}

func counters(s *gocql.Session) (any, error) {
	if err := exec(s, "CREATE TABLE cn (pk int PRIMARY KEY, n counter)",
		"UPDATE cn SET n = n + 3 WHERE pk = 1", "UPDATE cn SET n = n + 3 WHERE pk = 1"); err != nil {
		return nil, err
	}
	if err := s.Query("UPDATE cn SET n = n + ? WHERE pk = ?", int64(5), 1).Exec(); err != nil {
		return nil, err
	}
	var n int64
	if err := s.Query("SELECT n FROM cn WHERE pk = 1").Scan(&n); err != nil {
		return nil, err
	}
	return map[string]any{"n": n}, nil
}

func batches(s *gocql.Session) (any, error) {
	if err := exec(s, "CREATE TABLE bt (pk int, ck int, v text, PRIMARY KEY (pk, ck))"); err != nil {
		return nil, err
	}
	const insert = "INSERT INTO bt (pk, ck, v) VALUES (?, ?, ?)"
	// a batch entry without values goes as its text, one with values as a prepared statement
	logged := s.Batch(gocql.LoggedBatch).
		Query("INSERT INTO bt (pk, ck, v) VALUES (1, 1, 'a')").
		Query(insert, 1, 2, "b").
		Query(insert, 2, 1, "c")
	if err := logged.Exec(); err != nil {
		return nil, err
	}
	unlogged := s.Batch(gocql.UnloggedBatch).Query(insert, 3, 1, "d").Query(insert, 3, 2, "e")
	if err := unlogged.Exec(); err != nil {
		return nil, err
	}
	applied, iter, err := s.Batch(gocql.LoggedBatch).
		Query("INSERT INTO bt (pk, ck, v) VALUES (1, 3, 'f') IF NOT EXISTS").
		MapExecCAS(map[string]any{})
	if err != nil {
		return nil, err
	}
	if err := iter.Close(); err != nil {
		return nil, err
	}
	rows, err := rowsOf(s.Query("SELECT * FROM bt").Iter())
	if err != nil {
		return nil, err
	}
	sortRows(rows, "pk", "ck")
	return map[string]any{"lwt_batch_applied": applied, "rows": rows}, nil
}

func schemaMetadata(s *gocql.Session) (any, error) {
	if err := exec(s, "CREATE TABLE md (pk int, ck text, v map<int, text>, PRIMARY KEY (pk, ck)) "+
		"WITH CLUSTERING ORDER BY (ck DESC)"); err != nil {
		return nil, err
	}
	// gocql refreshes its cached metadata on the node's schema event, which comes after the
	// CREATE TABLE's answer (and is debounced): wait for it as an application would
	var table *gocql.TableMetadata
	for deadline := time.Now().Add(20 * time.Second); table == nil; time.Sleep(100 * time.Millisecond) {
		ks, err := s.KeyspaceMetadata(keyspace)
		if err != nil {
			return nil, err
		}
		table = ks.Tables["md"]
		if table == nil && time.Now().After(deadline) {
			return nil, fmt.Errorf("table md is not in the driver's metadata of %s after 20 s", keyspace)
		}
	}
	pk := []string{}
	for _, c := range table.PartitionKey {
		pk = append(pk, c.Name)
	}
	clustering := [][]string{}
	for _, c := range table.ClusteringColumns {
		order := "ASC"
		if c.Order == gocql.DESC {
			order = "DESC"
		}
		clustering = append(clustering, []string{c.Name, order})
	}
	columns := map[string]string{}
	for name, c := range table.Columns {
		columns[name] = c.Validator // the type as gocql read it; its TypeInfo has no text form
	}
	return map[string]any{"partition_key": pk, "clustering": clustering, "columns": columns}, nil
}

func compressionScenario(s *gocql.Session) (any, error) {
	if err := exec(s, "CREATE TABLE cp (pk int PRIMARY KEY, v text)"); err != nil {
		return nil, err
	}
	for _, r := range []struct{ pk, n int }{{1, big}, {2, small}} {
		v := strings.Repeat("zdm", r.n/3+1)[:r.n]
		if err := s.Query("INSERT INTO cp (pk, v) VALUES (?, ?)", r.pk, v).Exec(); err != nil {
			return nil, err
		}
	}
	iter := s.Query("SELECT pk, v FROM cp").Iter()
	var out [][]any
	var pk int
	var v string
	for iter.Scan(&pk, &v) {
		out = append(out, []any{pk, len(v), v[:10]})
	}
	if err := iter.Close(); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0].(int) < out[j][0].(int) })
	return out, nil
}

// --- running ------------------------------------------------------------------------------

// counting wraps a compressor to tell whether any frame was ever compressed or decompressed.
type counting struct {
	gocql.Compressor
	used *atomic.Int64
}

func (c counting) AppendCompressedWithLength(dst, src []byte) ([]byte, error) {
	c.used.Add(1)
	return c.Compressor.AppendCompressedWithLength(dst, src)
}

func (c counting) AppendDecompressedWithLength(dst, src []byte) ([]byte, error) {
	c.used.Add(1)
	return c.Compressor.AppendDecompressedWithLength(dst, src)
}

func (c counting) AppendCompressed(dst, src []byte) ([]byte, error) {
	c.used.Add(1)
	return c.Compressor.AppendCompressed(dst, src)
}

func (c counting) AppendDecompressed(dst, src []byte, n uint32) ([]byte, error) {
	c.used.Add(1)
	return c.Compressor.AppendDecompressed(dst, src, n)
}

var keyspace string

func usage(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "matrix: "+format+"\n", args...)
	flag.Usage()
	os.Exit(2)
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "matrix: "+format+"\n", args...)
	os.Exit(code)
}

func main() {
	host := flag.String("host", "", "the one contact point")
	port := flag.Int("port", 0, "its CQL port")
	proto := flag.Int("protocol", 0, "native protocol version: 3, 4 or 5")
	compression := flag.String("compression", "none", "none, lz4 or snappy")
	flag.StringVar(&keyspace, "keyspace", "", "the keyspace to create, use and drop")
	names := flag.String("scenarios", "", "comma-separated scenario names")
	flag.Parse()
	if *host == "" || *port == 0 || keyspace == "" || *names == "" {
		usage("--host, --port, --keyspace and --scenarios are required")
	}
	if *proto < 3 || *proto > 5 {
		usage("--protocol must be 3, 4 or 5, not %d", *proto)
	}
	order := strings.Split(*names, ",")
	for _, n := range order {
		if scenarios[n] == nil {
			usage("unknown scenario %q", n)
		}
	}

	var used atomic.Int64
	cluster := gocql.NewCluster(*host)
	cluster.Port = *port
	cluster.ProtoVersion = *proto
	cluster.Consistency = gocql.One
	cluster.Timeout = 30 * time.Second
	cluster.ConnectTimeout = 15 * time.Second
	switch *compression {
	case "none":
	case "lz4":
		cluster.Compressor = counting{lz4.LZ4Compressor{}, &used}
	case "snappy":
		if *proto >= 5 {
			fail(3, "gocql does no snappy compression at protocol v%d (v5 frames compress with lz4 only)", *proto)
		}
		cluster.Compressor = counting{snappy.SnappyCompressor{}, &used}
	default:
		usage("--compression must be none, lz4 or snappy, not %q", *compression)
	}

	// gocql has no USE: a first session creates (and at the end drops) the keyspace, the
	// scenarios run on a session opened in it
	admin, err := cluster.CreateSession()
	if err != nil {
		fail(1, "connect to %s:%d at protocol v%d: %v", *host, *port, *proto, err)
	}
	defer admin.Close()
	if err := exec(admin, "CREATE KEYSPACE "+keyspace+
		" WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"); err != nil {
		fail(1, "%v", err)
	}
	cluster.Keyspace = keyspace
	session, err := cluster.CreateSession()
	if err != nil {
		fail(1, "connect to keyspace %s: %v", keyspace, err)
	}
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false) // "map<int, text>" stays readable in a diff
	for _, name := range order {
		result, err := scenarios[name](session)
		line := map[string]any{"scenario": name, "result": result}
		if err != nil {
			line = map[string]any{"scenario": name, "error": errorKind(err), "message": err.Error()}
		}
		if err := out.Encode(line); err != nil {
			fail(1, "write: %v", err)
		}
	}
	session.Close()
	if err := admin.AwaitSchemaAgreement(context.Background()); err != nil {
		fail(1, "schema agreement: %v", err)
	}
	if err := exec(admin, "DROP KEYSPACE "+keyspace); err != nil {
		fail(1, "%v", err)
	}
	if *compression != "none" && used.Load() == 0 {
		fail(4, "%s compression was asked for but no frame was compressed: the server did not offer it", *compression)
	}
}
