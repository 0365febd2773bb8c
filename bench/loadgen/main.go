// Command loadgen drives one CQL endpoint (a Cassandra node, zdm's proxy or zdm-proxy) with a
// fixed number of requests in flight and prints one JSON line: throughput, latency, errors and
// its own CPU use, so that a benchmark can show the load generator was not the bottleneck.
//
//	loadgen -hosts 127.0.0.1:9042 -mode setup -rows 10000
//	loadgen -hosts 127.0.0.1:14092 -mode mixed -conc 256 -seconds 10 -warmup 3 -label zdm
//	loadgen -hosts 127.0.0.1:9342 -tls-ca ca.pem -mode write -conc 64      # a TLS-only endpoint
//
// Reads and writes carry bound values, which gocql prepares, so a proxy sees EXECUTE as it does
// from a real application. Peer discovery and topology events are off: exactly the given hosts
// are used, whatever system.peers says. When the measured window starts (after -warmup seconds
// of unmeasured load) the line "measuring" goes to stderr, so that a caller can sample a
// server's CPU over the same window the results cover.
//
// Mode write-now inserts into kv_now (k int, t timeuuid, v text) with t = now() in the statement
// text, so that a proxy's replacement of CQL functions has work to do; its v is -label padded to
// the length of the other modes' values, so that a caller can tell which endpoint wrote a row last.
// Mode dump-now prints kv_now instead, one JSON line {"rows": {"k": ["t", "v"], ...}}, so that a
// caller can compare the timeuuids origin and target stored for the same write.
//
// -tls-ca (the CA that signed the endpoint's certificate), -tls-cert and -tls-key (a client
// certificate) make every connection TLS; the endpoint's certificate must be valid for the host
// dialled, or for -tls-server-name. gocql coalesces a connection's writes (waiting up to 200 µs
// for more) in plaintext only, so a comparison of TLS with plaintext runs both with
// -write-coalesce-us 0.
package main

import (
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/apache/cassandra-gocql-driver/v2/lz4"
	"github.com/apache/cassandra-gocql-driver/v2/snappy"
)

type options struct {
	hosts, mode, ks, label, user, pass   string
	tlsCA, tlsCert, tlsKey, tlsName      string
	compression                          string
	tokenAware                           bool
	conc, conns, rows, proto, coalesceUs int
	seconds, warmup                      float64
}

// result is the one JSON line printed; the CPU figures cover the measured window only.
type result struct {
	Label      string  `json:"label"`
	Mode       string  `json:"mode"`
	Conc       int     `json:"conc"`
	Conns      int     `json:"conns"`
	Proto      int     `json:"proto"`
	Seconds    float64 `json:"seconds"`
	Ops        int64   `json:"ops"`
	OpsS       float64 `json:"ops_s"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	Errors     int64   `json:"errors"`
	FirstError *string `json:"first_error"`
	CPUS       float64 `json:"cpu_s"`
	CPUCores   float64 `json:"cpu_cores"`
}

// window is what one run of the workload observed.
type window struct {
	latencies [][]time.Duration // one slice per worker, so workers never share a lock
	errors    atomic.Int64
	first     atomic.Pointer[string]
}

func main() {
	o := parseFlags()
	s, err := connect(o)
	if err != nil {
		fail("connect", err)
	}
	defer s.Close()
	switch o.mode {
	case "setup":
		setup(s, o)
		return
	case "dump-now":
		dumpNow(s, o)
		return
	}
	if o.warmup > 0 {
		run(s, o, o.warmup)
	}
	fmt.Fprintln(os.Stderr, "measuring")
	cpu0, t0 := cpuSeconds(), time.Now()
	w := run(s, o, o.seconds)
	elapsed, cpu := time.Since(t0).Seconds(), cpuSeconds()-cpu0
	out, _ := json.Marshal(summarise(o, w, elapsed, cpu))
	fmt.Println(string(out))
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.hosts, "hosts", "127.0.0.1:9042", "comma-separated host:port list, used as given")
	flag.StringVar(&o.mode, "mode", "read",
		"setup | read | write | mixed (80% reads, 20% writes) | write-now (INSERT ... now() into kv_now) | dump-now")
	flag.IntVar(&o.conc, "conc", 64, "requests in flight")
	flag.IntVar(&o.conns, "conns", 2, "connections per host")
	flag.Float64Var(&o.seconds, "seconds", 10, "length of the measured window")
	flag.Float64Var(&o.warmup, "warmup", 0, "seconds of unmeasured load before the measured window")
	flag.IntVar(&o.rows, "rows", 10000, "rows in the table (keys 0..rows-1)")
	flag.IntVar(&o.proto, "proto", 4, "native protocol version: 3, 4 or 5")
	flag.StringVar(&o.user, "user", "", "username (no authentication when empty)")
	flag.StringVar(&o.pass, "pass", "", "password")
	flag.StringVar(&o.label, "label", "", "label copied into the result")
	flag.StringVar(&o.ks, "ks", "zdm_bench", "keyspace of tables kv and kv_now")
	flag.StringVar(&o.tlsCA, "tls-ca", "", "connect with TLS, trusting this CA (PEM)")
	flag.StringVar(&o.tlsCert, "tls-cert", "", "client certificate (PEM), with -tls-key")
	flag.StringVar(&o.tlsKey, "tls-key", "", "the client certificate's key (PEM)")
	flag.StringVar(&o.tlsName, "tls-server-name", "", "the name the endpoint's certificate must have (default: the host dialled)")
	flag.IntVar(&o.coalesceUs, "write-coalesce-us", -1,
		"gocql's write coalescing wait in µs, 0: off (default: gocql's, 200 µs; gocql never coalesces over TLS)")
	flag.StringVar(&o.compression, "compression", "none", "frame compression: none | lz4 | snappy (v3/v4 only)")
	flag.BoolVar(&o.tokenAware, "token-aware", false,
		"discover the cluster's nodes from -hosts and send each request to a replica of its key (gocql's token-aware policy)")
	flag.Parse()
	if !slices.Contains([]string{"none", "lz4", "snappy"}, o.compression) {
		usage("unknown -compression %q", o.compression)
	}
	if !slices.Contains([]string{"setup", "read", "write", "mixed", "write-now", "dump-now"}, o.mode) {
		usage("unknown -mode %q", o.mode)
	}
	if o.proto < 3 || o.proto > 5 {
		usage("-proto must be 3, 4 or 5, not %d", o.proto)
	}
	if o.conc < 1 || o.conns < 1 || o.rows < 1 {
		usage("-conc, -conns and -rows must be positive")
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		usage("-tls-cert and -tls-key go together")
	}
	if o.tlsCA == "" && (o.tlsCert != "" || o.tlsName != "") {
		usage("-tls-cert, -tls-key and -tls-server-name need -tls-ca")
	}
	return o
}

func connect(o options) (*gocql.Session, error) {
	c := gocql.NewCluster(strings.Split(o.hosts, ",")...)
	c.ProtoVersion = o.proto
	c.NumConns = o.conns
	if o.tokenAware { // as an application straight on a cluster: every node, replicas first
		c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy())
	} else { // the hosts given, only (a proxy shows its own instances as the cluster)
		c.DisableInitialHostLookup = true
		c.Events.DisableTopologyEvents = true
		c.Events.DisableNodeStatusEvents = true
	}
	c.Timeout = 10 * time.Second
	c.ConnectTimeout = 10 * time.Second
	c.Consistency = gocql.One
	if o.coalesceUs >= 0 {
		c.WriteCoalesceWaitTime = time.Duration(o.coalesceUs) * time.Microsecond
	}
	switch o.compression {
	case "lz4":
		c.Compressor = lz4.LZ4Compressor{}
	case "snappy":
		c.Compressor = snappy.SnappyCompressor{}
	}
	if o.user != "" {
		c.Authenticator = gocql.PasswordAuthenticator{Username: o.user, Password: o.pass}
	}
	if o.tlsCA != "" {
		c.SslOpts = &gocql.SslOptions{
			Config:   &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.tlsName},
			CaPath:   o.tlsCA,
			CertPath: o.tlsCert,
			KeyPath:  o.tlsKey,
			// verify the certificate and its name: what an application should do
			EnableHostVerification: true,
		}
	}
	return c.CreateSession()
}

// setup creates the keyspace and table if needed and writes every row.
func setup(s *gocql.Session, o options) {
	ddl := []string{
		"CREATE KEYSPACE IF NOT EXISTS " + o.ks +
			" WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
		"CREATE TABLE IF NOT EXISTS " + o.ks + ".kv (k int PRIMARY KEY, v text)",
		"CREATE TABLE IF NOT EXISTS " + o.ks + ".kv_now (k int PRIMARY KEY, t timeuuid, v text)",
	}
	for _, q := range ddl {
		if err := s.Query(q).Exec(); err != nil {
			fail("setup", err)
		}
	}
	insert := "INSERT INTO " + o.ks + ".kv (k, v) VALUES (?, ?)"
	keys := make(chan int, 1024)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range keys {
				if err := s.Query(insert, k, value(k)).Exec(); err != nil {
					fail("setup", err)
				}
			}
		}()
	}
	for k := range o.rows {
		keys <- k
	}
	close(keys)
	wg.Wait()
	fmt.Printf("{\"setup\":\"ok\",\"ks\":%q,\"rows\":%d}\n", o.ks, o.rows)
}

// dumpNow prints every row of kv_now: its timeuuid and the label of the endpoint that wrote it.
func dumpNow(s *gocql.Session, o options) {
	rows := map[string][2]string{}
	it := s.Query("SELECT k, t, v FROM " + o.ks + ".kv_now").PageSize(5000).Iter()
	var (
		k int
		t gocql.UUID
		v string
	)
	for it.Scan(&k, &t, &v) {
		rows[fmt.Sprint(k)] = [2]string{t.String(), strings.TrimRight(v, " ")}
	}
	if err := it.Close(); err != nil {
		fail("dump-now", err)
	}
	out, _ := json.Marshal(map[string]any{"rows": rows})
	fmt.Println(string(out))
}

// run keeps o.conc requests in flight for the given seconds.
func run(s *gocql.Session, o options, seconds float64) *window {
	w := &window{latencies: make([][]time.Duration, o.conc)}
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	var wg sync.WaitGroup
	for g := range o.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.latencies[g] = worker(s, o, uint64(g), deadline, w)
		}()
	}
	wg.Wait()
	return w
}

// worker issues one request at a time until the deadline and returns the successful latencies.
func worker(s *gocql.Session, o options, seed uint64, deadline time.Time, w *window) []time.Duration {
	sel := "SELECT v FROM " + o.ks + ".kv WHERE k = ?"
	ins := "INSERT INTO " + o.ks + ".kv (k, v) VALUES (?, ?)"
	if o.mode == "write-now" {
		ins = "INSERT INTO " + o.ks + ".kv_now (k, t, v) VALUES (?, now(), ?)"
	}
	tagged := fmt.Sprintf("%-*s", len(value(0)), o.label)
	r := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	var latencies []time.Duration
	for time.Now().Before(deadline) {
		k := r.IntN(o.rows)
		write := o.mode != "read" && (o.mode != "mixed" || r.IntN(5) == 0)
		t0 := time.Now()
		var err error
		if o.mode == "write-now" {
			err = s.Query(ins, k, tagged).Exec()
		} else if write {
			err = s.Query(ins, k, value(k)).Exec()
		} else {
			var v string
			err = s.Query(sel, k).Scan(&v)
		}
		if err != nil {
			w.errors.Add(1)
			msg := err.Error()
			w.first.CompareAndSwap(nil, &msg)
			continue
		}
		latencies = append(latencies, time.Since(t0))
	}
	return latencies
}

func summarise(o options, w *window, elapsed, cpu float64) result {
	all := slices.Concat(w.latencies...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000
	}
	return result{
		Label: o.label, Mode: o.mode, Conc: o.conc, Conns: o.conns, Proto: o.proto,
		Seconds: elapsed, Ops: int64(len(all)), OpsS: float64(len(all)) / elapsed,
		P50Ms: pct(0.50), P99Ms: pct(0.99), Errors: w.errors.Load(), FirstError: w.first.Load(),
		CPUS: cpu, CPUCores: cpu / elapsed,
	}
}

// cpuSeconds is the user plus system CPU time this process has used so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fail("getrusage", err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func value(k int) string { return fmt.Sprintf("value-%08d", k) + strings.Repeat("x", 42) }

func usage(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	flag.Usage()
	os.Exit(2)
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "loadgen: %s: %v\n", what, err)
	os.Exit(1)
}
