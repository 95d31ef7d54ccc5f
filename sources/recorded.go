package sources

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
)

// A restore --db without --to loads a dump into the database its snapshot
// records: an address that comes from the repository, which whoever may
// write there (another host sharing it, a compromised backup server) can
// set. Such a database is restored into only when it is where a dump of
// this machine's would come from: an SQLite file that exists, or a
// server on this machine reached without options that take the client
// elsewhere or make it read or write files; anything else needs --to.
// Otherwise a crafted snapshot made a root restore create an SQLite file
// anywhere (an authorized_keys with a key of its own in a text value), or
// sent the database password to a server of its choosing (found by a
// red-team test).

// recordedPostgresParams are the libpq parameters a recorded database may
// carry and still be restored into without --to: none that names another
// host, port or database than the URL's own (host, hostaddr, port,
// dbname, service: a host list in host= reached any server, and dbname=
// loaded the dump into another database; found by a re-test), reads a
// password or key from a file (passfile, sslcert, sslkey, sslrootcert, …)
// or writes one (sslkeylogfile). Server options (options=-c
// lock_timeout=…) act on a session of this machine's server, as the
// dump's own SET statements do.
var recordedPostgresParams = []string{"user", "options", "connect_timeout", "client_encoding", "application_name",
	"fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
	"sslmode", "sslnegotiation", "gssencmode", "channel_binding", "require_auth", "ssl_min_protocol_version", "ssl_max_protocol_version",
	"min_protocol_version", "max_protocol_version", "target_session_attrs"}

// recordedMySQLParams: likewise for mysql:// (no option files, no key
// files, no socket: a socket in a directory others may write is anyone's).
var recordedMySQLParams = []string{"ssl", "ssl-verify-server-cert"}

// recordedMongoParams: likewise for mongodb://.
var recordedMongoParams = []string{"authSource", "directConnection"}

// defaultPorts are the servers' own ports: a recorded database on this
// machine is restored into without --to only at its kind's, as any local
// user may listen on another and collect the password the client sends
// (found by a re-test: 127.0.0.1:15432).
var defaultPorts = map[string]string{KindPostgres: "5432", KindMySQL: "3306", KindMongoDB: "27017"}

// RecordedTargetProblem says why the database d, as a snapshot records it,
// is not restored into without --to ("" when it may be): see above.
func (d *Database) RecordedTargetProblem() string {
	switch d.Kind {
	case KindSQLite:
		fi, err := os.Stat(d.File)
		switch {
		case err != nil:
			return fmt.Sprintf("the file %s does not exist here", d.File)
		case !fi.Mode().IsRegular() || fi.Size() == 0:
			return fmt.Sprintf("%s is not an SQLite database here", d.File)
		}
		return ""
	case KindMongoDB:
		if strings.HasSuffix(d.u.Scheme, "+srv") {
			return "its servers are looked up in the DNS"
		}
	}
	for _, h := range strings.Split(d.u.Host, ",") {
		host, port := hostOf(h)
		if host != "" && !isLoopback(host) {
			return fmt.Sprintf("its server %s is not on this machine", host)
		}
		if port != "" && port != defaultPorts[d.Kind] {
			return fmt.Sprintf("its port %s is not the server's own (%s)", port, defaultPorts[d.Kind])
		}
	}
	q, _ := url.ParseQuery(d.u.RawQuery)
	allowed := map[string][]string{KindPostgres: recordedPostgresParams, KindMySQL: recordedMySQLParams, KindMongoDB: recordedMongoParams}[d.Kind]
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(allowed, k) {
			return fmt.Sprintf("it carries the connection option %s=%s", k, strings.Join(q[k], ","))
		}
	}
	return ""
}

// WithoutOptions is the database's URL without its query parameters (?all
// kept): what a restore may be pointed at once the admin has read it.
func (d *Database) WithoutOptions() string {
	c := *d
	c.u.RawQuery = ""
	return c.String()
}

// hostOf splits h, "host", "host:port" or an IPv6 address in brackets
// with or without a port.
func hostOf(h string) (host, port string) {
	if host, port, err := net.SplitHostPort(h); err == nil {
		return host, port
	}
	return strings.Trim(h, "[]"), ""
}

// isLoopback reports whether host is this machine's loopback as servers
// listen on it: localhost, 127.0.0.1 or ::1 (another 127.x.y.z is free for
// any local user to listen on at the server's port; found by a re-test).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.Equal(net.IPv6loopback))
}

// SameDatabase reports whether a and b name the same database: the same
// file, or the same database of the same server as the server sees it.
func SameDatabase(a, b *Database) bool {
	return a.Identity() == b.Identity()
}

// Identity names the database as SameDatabase compares them: the kind and
// the file, or the database of the server as the server sees it.
func (d *Database) Identity() string {
	if d.Kind == KindSQLite {
		return d.Kind + "\x00" + d.File
	}
	return d.identity()
}
