// Command copylimit measures what the machine allows a copy of one table, with the fastest client
// at hand (gocql, prepared statements, many requests in flight), so that a copy tool's rows/s can
// be read against it. It prints one JSON line: rows, seconds of the timed phase, rows/s, its own
// CPU and the errors.
//
//	copylimit -mode scan   -origin 127.0.0.1:9042 -ks KS -table T
//	copylimit -mode ingest -origin 127.0.0.1:9042 -target 127.0.0.1:9043 -ks KS -table T
//	copylimit -mode copy   -origin 127.0.0.1:9042 -target 127.0.0.1:9043 -ks KS -table T
//
// - scan: origin's scan rate. The token ring is split into -splits equal ranges, -conc of them
//   read at once, each page -page rows. Every column is read, with writetime and ttl of each
//   regular column, as a copy that keeps them must; values stay raw bytes (nothing decoded).
// - ingest: target's ingest rate for the same rows. The rows are first read from origin into
//   memory (not timed), then written to target: one partition's rows in one unlogged batch (at
//   most 100 rows and 48 KiB each), a lone row as a plain INSERT, each with USING TIMESTAMP (the
//   row's newest writetime) AND TTL, -write-conc requests in flight.
// - copy: both at once, as a copy runs: each page read is written while the next is read.
//
// Rows whose regular cells differ in writetime or TTL are written with one of each (the newest
// writetime, the smallest TTL): the same requests and bytes as an exact copy of them, which is
// what a limit needs. Null cells are written as nulls. Collections and counters are not supported.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/big"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

type options struct {
	mode, origin, target, ks, table string
	splits, conc, page, writeConc    int
	proto, conns                     int
}

type result struct {
	Mode       string  `json:"mode"`
	Table      string  `json:"table"`
	Rows       int64   `json:"rows"`
	Seconds    float64 `json:"seconds"`
	RowsS      float64 `json:"rows_s"`
	CPUS       float64 `json:"cpu_s"`
	Errors     int64   `json:"errors"`
	FirstError *string `json:"first_error"`
	Splits     int     `json:"splits"`
	Conc       int     `json:"conc"`
	WriteConc  int     `json:"write_conc"`
	Page       int     `json:"page"`
}

// raw keeps a value's bytes as they came (nil: null) and sends them back unchanged.
type raw []byte

func (r *raw) UnmarshalCQL(_ gocql.TypeInfo, data []byte) error {
	if data == nil {
		*r = nil
	} else {
		*r = append(make([]byte, 0, len(data)), data...)
	}
	return nil
}

func (r raw) MarshalCQL(_ gocql.TypeInfo) ([]byte, error) { return r, nil }

// row is one CQL row: its values in column order, its writetime and TTL.
type row struct {
	values []raw
	ts     int64
	ttl    int
}

// table is what a copy of it needs: the columns, the statements.
type table struct {
	columns   []string // partition key, clustering, regular
	pkCount   int
	regular   []string // those with a writetime
	sel, ins  string
	tokenExpr string
}

type counters struct {
	read, written, errors atomic.Int64 // rows read from origin, rows written to target
	first                 atomic.Pointer[string]
}

func (c *counters) fail(err error) {
	c.errors.Add(1)
	msg := err.Error()
	c.first.CompareAndSwap(nil, &msg)
}

func main() {
	o := parseFlags()
	origin := connect(o, o.origin)
	defer origin.Close()
	t := describe(origin, o)
	var target *gocql.Session
	if o.mode != "scan" {
		target = connect(o, o.target)
		defer target.Close()
	}
	c := &counters{}
	var elapsed, cpu float64
	switch o.mode {
	case "scan":
		elapsed, cpu = timed(func() { scan(origin, t, o, c, nil) })
	case "ingest":
		var mu sync.Mutex
		var pages [][]row
		scan(origin, t, o, c, func(rows []row) { mu.Lock(); pages = append(pages, rows); mu.Unlock() })
		if c.errors.Load() > 0 {
			fail("reading origin before the ingest", fmt.Errorf("%s", *c.first.Load()))
		}
		w := newWriter(target, t, o, c)
		elapsed, cpu = timed(func() {
			for _, p := range pages {
				w.page(p)
			}
			w.close()
		})
	case "copy":
		w := newWriter(target, t, o, c)
		elapsed, cpu = timed(func() {
			scan(origin, t, o, c, w.page)
			w.close()
		})
	}
	rows := c.written.Load()
	if o.mode == "scan" {
		rows = c.read.Load()
	} else if rows != c.read.Load() && c.errors.Load() == 0 {
		c.fail(fmt.Errorf("read %d rows but wrote %d", c.read.Load(), rows))
	}
	r := result{Mode: o.mode, Table: o.ks + "." + o.table, Rows: rows,
		Seconds: elapsed, RowsS: float64(rows) / elapsed, CPUS: cpu, Errors: c.errors.Load(),
		FirstError: c.first.Load(), Splits: o.splits, Conc: o.conc, WriteConc: o.writeConc, Page: o.page}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if r.Errors > 0 {
		os.Exit(1)
	}
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.mode, "mode", "scan", "scan | ingest | copy")
	flag.StringVar(&o.origin, "origin", "127.0.0.1:9042", "origin's contact points, comma-separated host:port")
	flag.StringVar(&o.target, "target", "127.0.0.1:9043", "target's contact points, comma-separated host:port")
	flag.StringVar(&o.ks, "ks", "", "keyspace")
	flag.StringVar(&o.table, "table", "", "table")
	flag.IntVar(&o.splits, "splits", 256, "token ranges the ring is split into")
	flag.IntVar(&o.conc, "conc", 8, "ranges read at once")
	flag.IntVar(&o.page, "page", 5000, "rows per page")
	flag.IntVar(&o.writeConc, "write-conc", 128, "writes in flight")
	flag.IntVar(&o.proto, "proto", 4, "native protocol version")
	flag.IntVar(&o.conns, "conns", 2, "connections per host")
	flag.Parse()
	if !slices.Contains([]string{"scan", "ingest", "copy"}, o.mode) {
		usage("unknown -mode %q", o.mode)
	}
	if o.ks == "" || o.table == "" {
		usage("-ks and -table are required")
	}
	if o.splits < 1 || o.conc < 1 || o.page < 1 || o.writeConc < 1 {
		usage("-splits, -conc, -page and -write-conc must be positive")
	}
	return o
}

func connect(o options, hosts string) *gocql.Session {
	c := gocql.NewCluster(strings.Split(hosts, ",")...)
	c.ProtoVersion = o.proto
	c.NumConns = o.conns
	c.Timeout = 30 * time.Second
	c.ConnectTimeout = 10 * time.Second
	c.Consistency = gocql.LocalQuorum
	c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy())
	s, err := c.CreateSession()
	if err != nil {
		fail("connect to "+hosts, err)
	}
	return s
}

func describe(s *gocql.Session, o options) *table {
	ks, err := s.KeyspaceMetadata(o.ks)
	if err != nil {
		fail("keyspace metadata", err)
	}
	tm, ok := ks.Tables[o.table]
	if !ok {
		fail("table metadata", fmt.Errorf("no table %s.%s", o.ks, o.table))
	}
	t := &table{pkCount: len(tm.PartitionKey)}
	var pk []string
	for _, c := range tm.PartitionKey {
		pk = append(pk, quote(c.Name))
	}
	t.columns = append(t.columns, pk...)
	for _, c := range tm.ClusteringColumns {
		t.columns = append(t.columns, quote(c.Name))
	}
	for _, name := range tm.OrderedColumns {
		c := tm.Columns[name]
		if c.Kind != gocql.ColumnRegular && c.Kind != gocql.ColumnStatic {
			continue
		}
		switch c.Type.Type() {
		case gocql.TypeList, gocql.TypeSet, gocql.TypeMap, gocql.TypeCounter:
			fail("table", fmt.Errorf("column %s: collections and counters are not supported", name))
		}
		t.columns = append(t.columns, quote(name))
		t.regular = append(t.regular, quote(name))
	}
	t.tokenExpr = "token(" + strings.Join(pk, ", ") + ")"
	cols := slices.Clone(t.columns)
	for _, r := range t.regular {
		cols = append(cols, "writetime("+r+")", "ttl("+r+")")
	}
	name := quote(o.ks) + "." + quote(o.table)
	t.sel = fmt.Sprintf("SELECT %s FROM %s WHERE %s > ? AND %s <= ?", strings.Join(cols, ", "), name,
		t.tokenExpr, t.tokenExpr)
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(t.columns)), ", ")
	t.ins = fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) USING TIMESTAMP ? AND TTL ?", name,
		strings.Join(t.columns, ", "), marks)
	return t
}

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// ranges splits the Murmur3 ring (min, max] into n ranges (start, end].
func ranges(n int) [][2]int64 {
	lo, hi := big.NewInt(math.MinInt64), big.NewInt(math.MaxInt64)
	width := new(big.Int).Sub(hi, lo)
	out := make([][2]int64, 0, n)
	prev := int64(math.MinInt64)
	for i := 1; i <= n; i++ {
		end := new(big.Int).Mul(width, big.NewInt(int64(i)))
		end.Div(end, big.NewInt(int64(n)))
		end.Add(end, lo)
		out = append(out, [2]int64{prev, end.Int64()})
		prev = end.Int64()
	}
	return out
}

// scan reads every range, -conc at once, and hands each page of rows to sink (when not nil).
func scan(s *gocql.Session, t *table, o options, c *counters, sink func([]row)) {
	work := make(chan [2]int64)
	var wg sync.WaitGroup
	for range o.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				readRange(s, t, o, c, r, sink)
			}
		}()
	}
	for _, r := range ranges(o.splits) {
		work <- r
	}
	close(work)
	wg.Wait()
}

func readRange(s *gocql.Session, t *table, o options, c *counters, r [2]int64, sink func([]row)) {
	it := s.Query(t.sel, r[0], r[1]).PageSize(o.page).Prefetch(0.5).Iter()
	n := len(t.columns)
	dest := make([]any, n+2*len(t.regular))
	vals := make([]raw, n)
	for i := range vals {
		dest[i] = &vals[i]
	}
	ts := make([]int64, len(t.regular))
	ttl := make([]int, len(t.regular))
	for i := range t.regular {
		dest[n+2*i], dest[n+2*i+1] = &ts[i], &ttl[i]
	}
	var page []row
	for it.Scan(dest...) {
		rw := row{values: slices.Clone(vals), ttl: math.MaxInt32}
		for i := range ts {
			rw.ts = max(rw.ts, ts[i])
			if ttl[i] > 0 {
				rw.ttl = min(rw.ttl, ttl[i])
			}
		}
		if rw.ttl == math.MaxInt32 {
			rw.ttl = 0
		}
		c.read.Add(1)
		if sink != nil {
			page = append(page, rw)
			if len(page) >= o.page {
				sink(page)
				page = nil
			}
		}
	}
	if err := it.Close(); err != nil {
		c.fail(err)
	}
	if sink != nil && len(page) > 0 {
		sink(page)
	}
}

// writer writes pages of rows to target, one request per partition (or per chunk of one).
type writer struct {
	s    *gocql.Session
	t    *table
	c    *counters
	jobs chan []row
	wg   sync.WaitGroup
}

func newWriter(s *gocql.Session, t *table, o options, c *counters) *writer {
	w := &writer{s: s, t: t, c: c, jobs: make(chan []row, o.writeConc)}
	for range o.writeConc {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for rows := range w.jobs {
				w.write(rows)
			}
		}()
	}
	return w
}

const maxBatchRows, maxBatchBytes = 100, 48 << 10

// page splits rows (in token order) into partitions, and large partitions into chunks.
func (w *writer) page(rows []row) {
	start, size := 0, 0
	for i := range rows {
		if i > start && (!w.samePartition(rows[start], rows[i]) || i-start >= maxBatchRows || size >= maxBatchBytes) {
			w.jobs <- rows[start:i]
			start, size = i, 0
		}
		for _, v := range rows[i].values {
			size += len(v)
		}
	}
	if start < len(rows) {
		w.jobs <- rows[start:]
	}
}

func (w *writer) samePartition(a, b row) bool {
	for i := range w.t.pkCount {
		if !bytes.Equal(a.values[i], b.values[i]) {
			return false
		}
	}
	return true
}

func (w *writer) args(r row) []any {
	out := make([]any, 0, len(r.values)+2)
	for _, v := range r.values {
		out = append(out, v)
	}
	return append(out, r.ts, r.ttl)
}

func (w *writer) write(rows []row) {
	var err error
	if len(rows) == 1 {
		err = w.s.Query(w.t.ins, w.args(rows[0])...).Exec()
	} else {
		b := w.s.Batch(gocql.UnloggedBatch)
		for _, r := range rows {
			b.Query(w.t.ins, w.args(r)...)
		}
		err = b.Exec()
	}
	if err != nil {
		w.c.fail(err)
		return
	}
	w.c.written.Add(int64(len(rows)))
}

func (w *writer) close() {
	close(w.jobs)
	w.wg.Wait()
}

func timed(f func()) (seconds, cpu float64) {
	cpu0, t0 := cpuSeconds(), time.Now()
	f()
	return time.Since(t0).Seconds(), cpuSeconds() - cpu0
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fail("getrusage", err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func usage(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "copylimit: "+format+"\n", args...)
	flag.Usage()
	os.Exit(2)
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "copylimit: %s: %v\n", what, err)
	os.Exit(1)
}
