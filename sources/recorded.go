package sources

import (
	"fmt"
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
// host (host, hostaddr, service), reads a password or key from a file
// (passfile, sslcert, sslkey, sslrootcert, …) or writes one (sslkeylogfile).
// Server options (options=-c lock_timeout=…) act on a session of a server
// on this machine, as the dump's own SET statements do.
var recordedPostgresParams = []string{"dbname", "user", "port", "options", "connect_timeout", "client_encoding", "application_name",
	"fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
	"sslmode", "sslnegotiation", "gssencmode", "channel_binding", "require_auth", "ssl_min_protocol_version", "ssl_max_protocol_version",
	"min_protocol_version", "max_protocol_version", "target_session_attrs"}

// recordedMySQLParams: likewise for mysql:// (no option files, no key
// files; a socket is a path on this machine).
var recordedMySQLParams = []string{"socket", "ssl", "ssl-verify-server-cert"}

// recordedMongoParams: likewise for mongodb://.
var recordedMongoParams = []string{"authSource", "directConnection"}

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
		if host := hostOf(h); host != "" && !isLoopback(host) {
			return fmt.Sprintf("its server %s is not on this machine", host)
		}
	}
	q, _ := url.ParseQuery(d.u.RawQuery)
	allowed := map[string][]string{KindPostgres: recordedPostgresParams, KindMySQL: recordedMySQLParams, KindMongoDB: recordedMongoParams}[d.Kind]
	for k, vs := range q {
		if d.Kind == KindPostgres && k == "host" && len(vs) == 1 && strings.HasPrefix(vs[0], "/") {
			continue // a socket's directory on this machine
		}
		if !slices.Contains(allowed, k) {
			return fmt.Sprintf("it carries the connection option %s", k)
		}
	}
	return ""
}

// hostOf is the host of h, "host" or "host:port" (an IPv6 address in
// brackets).
func hostOf(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return strings.Trim(h, "[]")
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SameDatabase reports whether a and b name the same database: the same
// file, or the same database of the same server as the server sees it.
func SameDatabase(a, b *Database) bool {
	if a.Kind != b.Kind {
		return false
	}
	if a.Kind == KindSQLite {
		return a.File == b.File
	}
	return a.identity() == b.identity()
}
