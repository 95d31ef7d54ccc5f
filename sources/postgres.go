package sources

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// PostgreSQL: pg_dump writes plain SQL (COPY blocks in physical row order,
// which deduplicate well: rows appended to a table only change the end of
// its block); pg_dumpall writes the roles and every database. psql loads
// either back.
//
// The URL goes to the tools as a libpq connection URI without its password
// (--dbname), so every libpq parameter works (sslmode, passfile, host=/run/
// postgresql...). The password travels in PGPASSWORD; .pgpass and the other
// PG* variables work as usual. --no-password makes a missing password an
// error instead of a prompt that nobody answers at 3 a.m.

// pgHint adds what to do to a PostgreSQL client's failure where libpq's
// message does not say: with --no-password, a server that wants a password
// no source gave ends with "fe_sendauth: no password supplied".
func pgHint(cause string) string {
	switch {
	case strings.Contains(cause, "no password supplied"):
		return "the server wants a password: give it in the URL's user part, PGPASSWORD, ~/.pgpass of the user snap runs as, or ?passfile= in the URL (docs/usage.md, \"Database URLs\")"
	case pgRoleMissing.MatchString(cause):
		// A dump into a new server: pg_dump writes the owners and grants
		// of its objects, not the roles (found by an exploratory test).
		return "the dump names roles this server does not have (a database's dump holds its objects' owners and grants, not the roles): create them first (CREATE ROLE; a whole-server dump, postgres://…/?all, holds them), then restore again"
	}
	return ""
}

// pgRoleMissing is psql's error for a role the server lacks.
var pgRoleMissing = regexp.MustCompile(`ERROR:\s+role "[^"]*" does not exist`)

func (d *Database) postgresDump() (Command, error) {
	if d.All {
		tool, err := lookTool("pg_dumpall")
		if err != nil {
			return Command{}, fmt.Errorf("%s: %v; install the PostgreSQL client (postgresql-client)", d, err)
		}
		return Command{Name: tool, Args: []string{"--no-password", "--dbname=" + d.connURL("")}, Env: d.env("PGPASSWORD"), Hint: pgHint}, nil
	}
	tool, err := lookTool("pg_dump")
	if err != nil {
		return Command{}, fmt.Errorf("%s: %v; install the PostgreSQL client (postgresql-client)", d, err)
	}
	return Command{Name: tool, Args: []string{"--no-password", "--format=plain", "--dbname=" + d.connURL("")}, Env: d.env("PGPASSWORD"), Hint: pgHint}, nil
}

// psql runs psql on database db (the URL's own when ""), with script on
// standard input and the psql variables vars, and returns what it printed
// (unaligned, tuples only).
func (d *Database) psql(ctx context.Context, db string, vars []string, script string) (string, error) {
	tool, err := lookTool("psql")
	if err != nil {
		return "", err
	}
	args := []string{"-X", "--no-password", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"}
	for _, v := range vars {
		args = append(args, "-v", v)
	}
	args = append(args, "--dbname="+d.connURL(db))
	var out strings.Builder
	c := Command{Name: tool, Args: args, Env: d.env("PGPASSWORD"), Hint: pgHint, Stdin: strings.NewReader(script),
		Stdout: func(line string) { out.WriteString(line + "\n") }, StdoutData: true}
	if err := c.Run(ctx); err != nil {
		return "", err
	}
	return strings.TrimSpace(out.String()), nil
}

// psqlUntrusted is psql for a script that holds statements from the
// repository (a database's recorded properties), whose bytes are not
// trusted: it runs in restricted mode, where psql refuses every backslash
// command. The check of the recorded statements follows SQL's quoting,
// and where it and psql disagree on where a literal ends (a dollar-quoted
// or an E'…' string, found by an exploratory test), a \! after it ran a shell
// command as the restoring user. Its psql variables (vars) are still
// expanded, :"name" included.
func (d *Database) psqlUntrusted(ctx context.Context, db string, vars []string, script string) (string, error) {
	return d.psql(ctx, db, vars, "\\restrict "+psqlRestrictKey()+"\n"+script)
}

// pgRoleExists is the error a whole-server dump's CREATE ROLE gives for a
// role the server has: expected, as pg_dumpall's documentation says.
var pgRoleExists = regexp.MustCompile(`ERROR:\s+role ".*" already exists`)

// pgMaintenanceDB is where CREATE and DROP DATABASE are run from.
const pgMaintenanceDB = "postgres"

// pgUserRelations and pgLargeObjects count a database's own relations
// (tables, indexes, sequences, views) and large objects, SQL expressions
// of pgUserObjects and pgLockNeeds.
const (
	pgUserRelations = `(SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%')`
	pgLargeObjects = `(SELECT count(*) FROM pg_catalog.pg_largeobject_metadata)`
)

const pgUserObjects = `SELECT
  ` + pgUserRelations + `
  + (SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))
  + ` + pgLargeObjects + `
  + (SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname NOT IN ('public', 'information_schema') AND nspname NOT LIKE 'pg\_%')
  + (SELECT count(*) FROM (
      SELECT typnamespace FROM pg_catalog.pg_type WHERE typtype IN ('b', 'd', 'e', 'r', 'm') AND typelem = 0
      UNION ALL SELECT collnamespace FROM pg_catalog.pg_collation
      UNION ALL SELECT oprnamespace FROM pg_catalog.pg_operator
      UNION ALL SELECT opfnamespace FROM pg_catalog.pg_opfamily
      UNION ALL SELECT cfgnamespace FROM pg_catalog.pg_ts_config
      UNION ALL SELECT dictnamespace FROM pg_catalog.pg_ts_dict
      UNION ALL SELECT connamespace FROM pg_catalog.pg_conversion
    ) o (ns) JOIN pg_catalog.pg_namespace n ON n.oid = o.ns
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%')
  + (SELECT count(*) FROM pg_catalog.pg_foreign_data_wrapper)
  + (SELECT count(*) FROM pg_catalog.pg_foreign_server)
  + (SELECT count(*) FROM pg_catalog.pg_publication)
  + (SELECT count(*) FROM pg_catalog.pg_default_acl)
  + (SELECT count(*) FROM pg_catalog.pg_event_trigger);
`

// pgDatabaseExists counts the databases named by the psql variable name
// (0 or 1).
const pgDatabaseExists = "SELECT count(*) FROM pg_catalog.pg_database WHERE datname = :'name';\n"

const pgDropDatabase = `SELECT current_setting('server_version_num')::int >= 130000 AS force \gset
\if :force
DROP DATABASE IF EXISTS :"name" WITH (FORCE);
\else
DROP DATABASE IF EXISTS :"name";
\endif
`

// postgresRestore loads a plain dump with psql. One database is loaded in a
// single transaction with ON_ERROR_STOP, so it is loaded whole or not at
// all. With Replace, a database holding data is only swapped for the
// restored one once that has loaded: the dump goes into a new database,
// which then takes the old one's name.
//
// snap writes the transaction's BEGIN and COMMIT itself, the COMMIT only
// after the last byte of the dump was read and verified: psql's
// --single-transaction commits at the end of its input, and when snap was
// killed (kill -9, the OOM killer) its input ended there, so psql
// committed the part it had (found by an exploratory test: 1,072,275 of
// 2,000,000 rows and no primary key, in a database a second restore then
// refused as not empty). Now the session ends inside the transaction, and
// the server rolls it back.
func (d *Database) postgresRestore(ctx context.Context, dump io.Reader, all bool, o RestoreOptions) (bool, error) {
	tool, err := d.restoreClient()
	if err != nil {
		return false, err
	}
	if err := checkPsqlRestricts(ctx, tool); err != nil {
		return false, fmt.Errorf("%s: %w", d, err)
	}
	key := psqlRestrictKey()
	if all {
		// A pg_dumpall script connects to each database itself. As its
		// documentation says, errors about objects that already exist (the
		// role running the restore, to begin with) are expected: they are
		// reported, and the script goes on.
		// Its script creates databases and loads their tables without
		// dropping anything: over databases of the same names it would
		// add its rows to theirs. It goes into a server without any.
		// Besides postgres, the databases managed services keep for
		// themselves (RDS, Azure, Cloud SQL) are not the user's.
		dbs, err := d.psql(ctx, pgMaintenanceDB, nil, "SELECT string_agg(quote_ident(datname), ', ' ORDER BY datname) FROM pg_catalog.pg_database "+
			"WHERE NOT datistemplate AND datname NOT IN ('postgres', 'rdsadmin', 'azure_maintenance', 'azure_sys', 'cloudsqladmin');\n")
		if err != nil {
			return false, fmt.Errorf("%s: list the server's databases: %w (%w)", d, err, ErrUnchanged)
		}
		if dbs != "" {
			return false, fmt.Errorf("the server %s already holds databases (%s), and a whole-server dump is loaded into a server without databases of its own: its script would add its rows to their tables; load it into a new server (initdb), drop those databases first, or restore single databases from single-database dumps (%w)", d, dbs, ErrUnchanged)
		}
		// The script loads the dumped server's postgres database into
		// this one's, which must be empty too: tables there got the
		// dump's rows added to theirs, a key twice (found by an
		// exploratory test).
		n, err := d.psql(ctx, pgMaintenanceDB, nil, pgUserObjects)
		if err != nil {
			return false, fmt.Errorf("%s: look into the postgres database: %w (%w)", d, err, ErrUnchanged)
		}
		if n != "0" {
			return false, fmt.Errorf("the server %s has objects of its own in its postgres database (%s: tables, functions, schemas, types, large objects, publications, default privileges, also an extension's, such as pg_stat_statements), and a whole-server dump loads the dumped postgres database into it: its script would add its rows to those tables; load it into a new server (initdb), or drop those objects first (%w)", d, n, ErrUnchanged)
		}
		// Errors are expected only for roles that exist already (the one
		// running the restore, to begin with); any other failed
		// statement fails the restore, after the script has run.
		var failed int
		var first string
		stderr := func(line string) {
			if (strings.Contains(line, "ERROR:") || strings.Contains(line, psqlRefused)) && !pgRoleExists.MatchString(line) {
				if failed++; failed == 1 {
					first = strings.TrimSpace(line)
				}
			}
			if o.Stderr != nil {
				o.Stderr(line)
			}
		}
		// One psql per database, each restricted with a key of its own
		// (pgParts): the script's \connect lines are where snap starts
		// the next one, connected to the database the line names.
		parts := newPgParts(dump)
		for first := true; ; first = false {
			db, part, ok := parts.Next(first)
			if !ok {
				break
			}
			c := Command{Name: tool, Args: []string{"-X", "--no-password", "-q", "-f", "-", "--dbname=" + d.connURL(cmp.Or(db, pgMaintenanceDB))},
				Env: d.env("PGPASSWORD"), Hint: pgHint, Stdin: restrictedUnder(psqlRestrictKey(), part),
				Stderr: stderr, StderrLines: ClientStderrLines, Stdout: o.Stdout, ExpectedError: pgRoleExists.MatchString}
			err := c.Run(ctx)
			if perr := parts.Err(); perr != nil {
				return false, perr // what stopped the part, not psql's end of it
			}
			if err != nil {
				return false, err
			}
		}
		if failed > 0 {
			return false, fmt.Errorf("%d statement(s) of the whole-server dump failed (the first: %s); the server holds what the others made", failed, first)
		}
		return false, nil
	}
	name := "name=" + d.Name
	n, err := d.psql(ctx, pgMaintenanceDB, []string{name}, pgDatabaseExists)
	if err != nil {
		return false, fmt.Errorf("%s: check whether the database exists: %w (%w)", d, err, ErrUnchanged)
	}
	exists := n != "0"
	into := d.Name
	if exists {
		objects, err := d.psql(ctx, d.Name, nil, pgUserObjects)
		if err != nil {
			return false, fmt.Errorf("%s: check whether the database is empty: %w (%w)", d, err, ErrUnchanged)
		}
		switch {
		case objects == "0":
		case !o.Replace:
			return false, fmt.Errorf("database %s %w; give --to a new or empty database instead, or add --replace to replace this one", d, ErrNotEmpty)
		default:
			var rnd [4]byte
			_, _ = rand.Read(rnd[:])
			// PostgreSQL cuts names at 63 bytes: the old name's first 40
			// bytes (not characters, which may take up to 4 each) keep
			// the suffix that makes it another name.
			into = cutBytes(d.Name, 40) + pgRestoreSuffix + hex.EncodeToString(rnd[:])
		}
	}
	created := !exists || into != d.Name
	var props DatabaseProperties
	recorded := false // props are those recorded with the dump
	switch {
	case into != d.Name:
		// The replacement gets the old database's encoding and locale,
		// and, once it has the name, its owner, comment, settings and
		// privileges: a new database had the server's defaults (PUBLIC
		// could connect again).
		if props, err = d.pgDatabaseProps(ctx); err != nil {
			return false, fmt.Errorf("%s: read the database's owner, settings and privileges with pg_dump (%w), which --replace keeps; install a pg_dump as new as the server, or restore into another database with --to (%w)", d, err, ErrUnchanged)
		}
	case created && o.Properties != nil:
		props, recorded = *o.Properties, true
		if err := props.check(o.From); err != nil {
			// Not what snap records: run none of it (the repository's
			// bytes are not trusted to be snap's).
			return false, fmt.Errorf("%s: the snapshot's recorded properties of the database are not what snap records (%v): restore with --to into a database you create, and set its owner and privileges by hand (%w)", d, err, ErrUnchanged)
		}
	}
	if created {
		var err error
		note := ""
		if props.CreateWith != "" {
			err = d.createUninterrupted(ctx, into, "CREATE DATABASE :\"name\" WITH "+props.CreateWith+"\n", true)
			if err != nil && recorded && ctx.Err() == nil && pgStatementRefused.MatchString(err.Error()) && !strings.Contains(err.Error(), pgNoPrivilege) {
				// The recorded template or locale is not on this server
				// (another version, another machine): made as for a dump
				// without them. Said once that worked (a role that may not
				// create databases was told it had).
				note = fmt.Sprintf("note: database %s could not be created as recorded (WITH %s: %v); created from the dump's encoding instead", into, props.CreateWith, err)
				props.CreateWith = ""
			}
		}
		if props.CreateWith == "" {
			br := bufio.NewReaderSize(dump, pgHeaderSize)
			dump = br
			err = d.createLike(ctx, into, dumpEncoding(br), o)
		}
		if err != nil {
			return false, err
		}
		if note != "" && o.Stderr != nil {
			o.Stderr(note)
		}
	}
	d.noteLeftovers(ctx, into, o)
	// A complete dump ends with a whole statement. Not ";" on a line of
	// its own before the COMMIT: psql ran it as the dump's last COPY
	// again, which took the COMMIT for its data.
	in := psqlRestricted(io.MultiReader(strings.NewReader("BEGIN;\n"), pgOneTransaction(dump), strings.NewReader("\nCOMMIT;\n")), key)
	var sp searchPathWatch
	c := Command{Name: tool, Args: []string{"-X", "--no-password", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-", "--dbname=" + d.connURL(into)},
		Env: d.env("PGPASSWORD"), Hint: sp.hint, Stdin: in, Stderr: sp.watch(withoutNestedTransactionWarnings(o.Stderr)), StderrLines: ClientStderrLines, Stdout: o.Stdout}
	if err := c.Run(ctx); err != nil {
		if created {
			// Leave nothing half-made behind, also what a dump's own
			// COMMIT made lasting (below).
			if _, derr := d.psql(context.WithoutCancel(ctx), pgMaintenanceDB, []string{"name=" + into}, pgDropDatabase); derr != nil {
				return false, fmt.Errorf("%w; the database %s it was loaded into is left: drop it by hand (%v)", err, into, derr)
			}
			if into != d.Name {
				// --replace: the new database is gone, the old one never
				// touched ("the database this restore created was
				// dropped" read as the old one's loss; found by an
				// exploratory test).
				return false, fmt.Errorf("%w (%w; the new database it was loaded into was dropped again, and %s is as it was)", err, ErrRolledBack, d.Name)
			}
			return false, fmt.Errorf("%w (%w, and %w)", err, ErrRolledBack, ErrCreatedDropped)
		}
		// The existing empty database is as it was only if the one
		// transaction held the whole load: a COMMIT in the dump that
		// pgOneTransaction does not know (another pg_dump's) commits
		// what came before it.
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		objects, qerr := d.psql(qctx, into, nil, pgUserObjects)
		cancel()
		switch {
		case qerr != nil:
			return false, fmt.Errorf("%w; the database %s may hold part of the dump (a COMMIT in the dump commits its first part; checking failed: %v): empty it, or restore into a new database with --to", err, into, qerr)
		case objects != "0":
			return false, fmt.Errorf("%w; the database %s now holds part of the dump (a COMMIT in the dump committed its first part): empty it, or restore into a new database with --to", err, into)
		}
		return false, fmt.Errorf("%w (%w)", err, ErrRolledBack)
	}
	if into != d.Name {
		// From here on nothing is interrupted: the swap (drop, rename) and
		// the properties take a moment, and stopping between the drop and
		// the rename would leave the database under its temporary name
		// only, the live one gone.
		ctx = context.WithoutCancel(ctx)
		// DROP … WITH (FORCE) ends the sessions still connected to the old
		// database: said, as MariaDB's wait for them is (it happened
		// without a word; found by an exploratory test).
		// The swap runs from another database than the one replaced: the
		// server cannot drop the database a session is in, and replacing
		// postgres itself failed after the whole load (found by an
		// exploratory test).
		from := pgMaintenanceDB
		if d.Name == pgMaintenanceDB {
			from = "template1"
		}
		if n, err := d.psql(ctx, from, []string{name}, "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = :'name' AND pid <> pg_backend_pid();\n"); err == nil && n != "0" && o.Stderr != nil {
			o.Stderr(fmt.Sprintf("note: ending %s session(s) connected to %s, so that it can be replaced (DROP DATABASE … WITH (FORCE))", n, d))
		}
		script := pgDropDatabase + "ALTER DATABASE :\"tmp\" RENAME TO :\"name\";\n"
		if _, err := d.psql(ctx, from, []string{name, "tmp=" + into}, script); err != nil {
			return false, fmt.Errorf("%s: the dump was restored into database %s, but replacing %s with it failed: %w", d, into, d.Name, err)
		}
		if failed := d.setProperties(ctx, props.Statements); len(failed) > 0 {
			return false, fmt.Errorf("%s: the dump was restored, but of the old database's properties these could not be set again: %s; set them by hand", d, strings.Join(failed, "; "))
		}
		return false, nil
	}
	if recorded && d.Name == o.From {
		// The statements name the database as it was called: they are
		// set when it is restored under that name (--to another name
		// gets the server's defaults, and a warning).
		if failed := d.setProperties(context.WithoutCancel(ctx), props.Statements); len(failed) > 0 {
			return true, fmt.Errorf("%s: the dump was restored into the new database, but of the database's recorded properties these could not be set: %s; set them by hand", d, strings.Join(failed, "; "))
		}
	}
	return created, nil
}

// PGOwnedAsRecorded reports whether statements, a database's recorded
// properties (DatabaseProperties.Statements), say nothing but that its
// owner is the role d logs in as, which a database it creates has anyway:
// then a restore under another name, which does not set them, loses
// nothing, and warning about it on every such restore was noise (found by
// an exploratory test).
func (d *Database) PGOwnedAsRecorded(ctx context.Context, statements []string) bool {
	owner := ""
	for _, st := range statements {
		m := pgOwnerOnly.FindStringSubmatch(strings.TrimSpace(st))
		if m == nil || owner != "" && pgIdent(m[1]) != owner {
			return false
		}
		owner = pgIdent(m[1])
	}
	if owner == "" {
		return false
	}
	cur, err := d.psql(ctx, pgMaintenanceDB, nil, "SELECT current_user;\n")
	return err == nil && cur == owner
}

// pgOwnerOnly is pg_dump's statement that sets a database's owner, the
// owner's name captured as written (plain or quoted).
var pgOwnerOnly = regexp.MustCompile(`^ALTER DATABASE (?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+") OWNER TO ([A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+");$`)

// pgIdent is the name an identifier as pg_dump writes it stands for.
func pgIdent(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return strings.ToLower(s)
}

// pgRestoreSuffix is what the name of the database a restore with Replace
// loads into adds to (the start of) the name it replaces, before 8 random
// hex digits.
const pgRestoreSuffix = "_snap_restore_"

// noteLeftovers names, in a note, the databases that restores of d with
// Replace loaded into and left behind: a restore killed by force (kill -9)
// cannot drop its own, which holds nothing (its load was rolled back) but
// takes a name and a little space. They are not dropped here: one may be
// that of a restore running now. self is this restore's own.
func (d *Database) noteLeftovers(ctx context.Context, self string, o RestoreOptions) {
	if o.Stderr == nil {
		return
	}
	prefix := cutBytes(d.Name, 40) + pgRestoreSuffix
	left, err := d.psql(ctx, pgMaintenanceDB, []string{"prefix=" + prefix, "self=" + self},
		"SELECT string_agg(quote_ident(datname), ', ' ORDER BY datname) FROM pg_catalog.pg_database WHERE left(datname, length(:'prefix')) = :'prefix' AND datname ~ '[0-9a-f]{8}$' AND datname <> :'self';\n")
	if err == nil && left != "" {
		o.Stderr(fmt.Sprintf("note: databases left by earlier restores of %s with --replace that were killed: %s; unless a restore runs now, drop them (DROP DATABASE)", d.Name, left))
	}
}

// setProperties runs each of a database's property statements on its own:
// one that fails (ALTER ROLE … IN DATABASE needs CREATEROLE; an owner role
// this server lacks) must not keep the privileges after it from being set.
// It returns the statements that failed, with why.
func (d *Database) setProperties(ctx context.Context, statements []string) (failed []string) {
	for _, b := range statements {
		// Run from the maintenance database, in a session whose parsing
		// rules are fixed here: the restored database's own settings
		// (client_encoding SJIS, backslash_quote on, set by its owner and
		// applied by the statements before this one) would otherwise
		// apply to the session, and change where a literal ends: a
		// multibyte character swallowing a backslash let a setting's
		// value end early and the owner's "ALTER ROLE … SUPERUSER" run as
		// the superuser restoring (found by a review). Every statement
		// kept names its database, so it works from any database. A
		// default of read-only transactions does not stop the rest.
		const session = "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\nSET backslash_quote = off;\nSET default_transaction_read_only = off;\n"
		if _, err := d.psqlUntrusted(ctx, pgMaintenanceDB, nil, session+b); err != nil {
			failed = append(failed, fmt.Sprintf("%s (%v)", strings.SplitN(strings.TrimSpace(b), "\n", 2)[0], err))
		}
	}
	return failed
}

// withoutNestedTransactionWarnings drops the two warnings psql prints for
// every dump with large objects loaded in one transaction: pg_dump writes
// BEGIN and COMMIT around them, which meet the restore's own transaction
// ("there is already a transaction in progress", then "there is no
// transaction in progress"). They are expected, and read as a problem.
func withoutNestedTransactionWarnings(stderr func(string)) func(string) {
	if stderr == nil {
		return nil
	}
	return func(line string) {
		if strings.HasSuffix(line, "WARNING:  there is already a transaction in progress") || strings.HasSuffix(line, "WARNING:  there is no transaction in progress") {
			return
		}
		stderr(line)
	}
}

// searchPathWatch tells a load that failed for pg_dump's empty
// search_path. A dump sets it empty and names every object with its
// schema, but not what a function's body names: a CHECK constraint, a
// default or an index that calls a function whose body names a table
// without "public." fails the load with "relation … does not exist",
// which read as a damaged dump (found by an exploratory test). psql's
// CONTEXT line names the function the error was met in. (psql's standard
// error is read to its end before the load's failure is made: no lock.)
type searchPathWatch struct {
	inFunction bool
}

// watch passes psql's standard error on to stderr (which may be nil),
// looking for the CONTEXT of a function.
func (w *searchPathWatch) watch(stderr func(string)) func(string) {
	return func(line string) {
		if strings.Contains(line, "CONTEXT:") && (strings.Contains(line, "SQL function") || strings.Contains(line, "PL/pgSQL function")) {
			w.inFunction = true
		}
		if stderr != nil {
			stderr(line)
		}
	}
}

// hint is Command.Hint for the load: pgHint's, or what to do about the
// search_path.
func (w *searchPathWatch) hint(cause string) string {
	if !w.inFunction || !strings.Contains(cause, "does not exist") {
		return pgHint(cause)
	}
	return "it was met in a function (psql's CONTEXT line) whose body names an object without its schema, which pg_dump's dumps load with an empty search_path: " +
		"give the function one in the source database (ALTER FUNCTION name SET search_path = public) and back up again; to load this dump as it is, " +
		"write it out with 'snap dump SNAPSHOT PATH', change set_config('search_path', '', false) near its top to set_config('search_path', 'public', false), and load it with psql"
}

// pgHeaderSize is how much of a dump's start dumpEncoding looks at: pg_dump
// writes its SET lines within the first kilobyte.
const pgHeaderSize = 16 << 10

// pgNoPrivilege is the SQLSTATE of insufficient_privilege, as psql's
// VERBOSITY verbose shows it: no other way of creating the database helps.
const pgNoPrivilege = "ERROR:  42501: "

// pgStatementRefused matches an error the server gave a statement, with
// its SQLSTATE (psql's VERBOSITY verbose), as opposed to a failure to
// reach the server.
var pgStatementRefused = regexp.MustCompile(`ERROR:  [0-9A-Z]{5}: `)

var pgClientEncoding = regexp.MustCompile(`(?m)^SET client_encoding = '([A-Za-z0-9_]+)';$`)

// dumpEncoding returns the encoding a plain pg_dump was written in, which
// is its database's (pg_dump sets client_encoding to it), or "".
func dumpEncoding(br *bufio.Reader) string {
	head, _ := br.Peek(pgHeaderSize)
	if m := pgClientEncoding.FindSubmatch(head); m != nil {
		return string(m[1])
	}
	return ""
}

// createLike creates a database for a dump with the dump's encoding: with
// the server's default (template0's), a LATIN1 database came back as UTF8,
// and a UTF8 one as SQL_ASCII on a server whose default that is, where
// length() then counts bytes. A server whose default locale cannot hold
// the encoding (C.UTF-8 and LATIN1) gets locale C, which holds any, and
// an ICU cluster the libc provider (PostgreSQL 15 on). Where none of that
// works (a client-only encoding such as SJIS, when PGCLIENTENCODING was
// set at dump time), the database gets the server's defaults, as before,
// and a note says so. Failures are told apart by trying, not by the
// server's words, which depend on its language.
func (d *Database) createLike(ctx context.Context, name, encoding string, o RestoreOptions) error {
	plain := "CREATE DATABASE :\"name\" TEMPLATE template0"
	if encoding == "" {
		return d.createUninterrupted(ctx, name, plain+";\n", false)
	}
	note := func(format string, args ...any) {
		if o.Stderr != nil {
			o.Stderr("note: " + fmt.Sprintf(format, args...))
		}
	}
	withEncoding := plain + " ENCODING '" + encoding + "'"
	var first error
	for i, create := range []string{withEncoding, withEncoding + " LC_COLLATE 'C' LC_CTYPE 'C'", withEncoding + " LC_COLLATE 'C' LC_CTYPE 'C' LOCALE_PROVIDER libc"} {
		// Verbose errors carry their SQLSTATE, in any language: only the
		// server refusing the statement leads to the next form; a lost
		// connection or a timeout is the restore's error.
		err := d.createUninterrupted(ctx, name, create+";\n", true)
		switch {
		case err == nil && i > 0:
			note("database %s was created with encoding %s, the dump's, and locale C: the server's default locale does not support %s", name, encoding, encoding)
			return nil
		case err == nil:
			return nil
		case first == nil:
			first = err
		}
		if ctx.Err() != nil || !pgStatementRefused.MatchString(err.Error()) {
			return first
		}
	}
	if err := d.createUninterrupted(ctx, name, plain+";\n", false); err != nil {
		return first // the dump's encoding was the one asked for
	}
	note("database %s was created with the server's default encoding: the dump's, %s, could not be given to it; psql converts the data", name, encoding)
	return nil
}

// cleanupTimeout bounds what a stopped restore does to leave nothing behind,
// and createTimeout a CREATE DATABASE that a stop does not cut short: a
// server that stopped answering must not hold the exit for long.
const (
	cleanupTimeout = 30 * time.Second
	createTimeout  = time.Minute
)

// createUninterrupted runs CREATE DATABASE to its end even when the
// restore is stopped meanwhile: a psql killed half-way leaves the server to
// finish the command after any check for it, and the database would be
// left behind (found by an exploratory test). Once it is made, a stop
// drops it again. The errors it returns say that nothing was changed, or
// that the database was left.
//
// create may hold the snapshot's recorded CREATE DATABASE options, from
// the repository: it runs in psql's restricted mode (psqlUntrusted).
// verbose makes the server's errors carry their SQLSTATE.
func (d *Database) createUninterrupted(ctx context.Context, name, create string, verbose bool) error {
	vars := []string{"name=" + name}
	if verbose {
		vars = append(vars, "VERBOSITY=verbose")
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
	_, err := d.psqlUntrusted(cctx, pgMaintenanceDB, vars, create)
	cancel()
	if err != nil {
		return fmt.Errorf("%s: create database %s: %w (%w)", d, name, err, ErrUnchanged)
	}
	if ctx.Err() == nil {
		return nil
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if _, err := d.psql(dctx, pgMaintenanceDB, []string{"name=" + name}, pgDropDatabase); err != nil {
		return fmt.Errorf("%s: stopped after creating database %s, which is left: drop it by hand (%v)", d, name, err)
	}
	return fmt.Errorf("%s: %w (%w)", d, ctx.Err(), ErrUnchanged)
}

// pgDatabaseProps reads d's properties with pg_dump --create of no schema
// (--exclude-schema=*): pg_dump knows every version's options and quotes
// them. That output also holds objects of no schema (publications, event
// triggers), which the restored dump has created already: only the
// entries about the database itself are kept, by the "Type:" of the
// header pg_dump writes above each entry.
func (d *Database) pgDatabaseProps(ctx context.Context) (DatabaseProperties, error) {
	tool, err := lookTool("pg_dump")
	if err != nil {
		return DatabaseProperties{}, fmt.Errorf("%v; install the PostgreSQL client (postgresql-client)", err)
	}
	var out strings.Builder
	c := Command{Name: tool, Args: []string{"--no-password", "--create", "--schema-only", "--exclude-schema=*", "--encoding=UTF8", "--dbname=" + d.connURL(d.Name)},
		Env: d.env("PGPASSWORD"), Hint: pgHint, Stdout: func(line string) { out.WriteString(line + "\n") }, StdoutData: true}
	if err := c.Run(ctx); err != nil {
		return DatabaseProperties{}, err
	}
	var p DatabaseProperties
	var block strings.Builder
	keep := false
	flush := func() {
		if keep && strings.TrimSpace(block.String()) != "" {
			p.Statements = append(p.Statements, block.String())
		}
		block.Reset()
	}
	// A comment, a security label or a setting's value may span lines,
	// and hold anything, a line like an entry's header included: lines
	// are read as pg_dump's SQL, and only one that starts outside a
	// quoted string or identifier is taken for a header, a comment or a
	// psql command. (Read naively, a database owner could put a header
	// and a statement of their own into a comment, for the restore to run
	// as the superuser it runs as.)
	var q pgQuote
	for _, line := range strings.Split(out.String(), "\n") {
		if q.open() {
			block.WriteString(line + "\n")
			q.scan(line)
			continue
		}
		if name, typ, ok := pgDumpHeader(line); ok {
			flush()
			keep = typ == "DATABASE" || typ == "DATABASE PROPERTIES" ||
				strings.HasPrefix(name, "DATABASE ") && (typ == "COMMENT" || typ == "ACL" || typ == "SECURITY LABEL")
			continue
		}
		const with = " WITH TEMPLATE = "
		if strings.HasPrefix(line, "CREATE DATABASE ") && strings.Contains(line, with) && p.CreateWith == "" {
			// Scanned like any line: a locale holding a line break
			// (accepted by CREATE DATABASE) opened a literal here that
			// the lines after it continued, and a header and a statement
			// of the database owner's inside it were taken for pg_dump's,
			// for the restore to run as the superuser (found by a review).
			q.scan(line)
			if q.open() {
				return DatabaseProperties{}, fmt.Errorf("the database's CREATE DATABASE spans lines (an option such as its locale holds a line break)")
			}
			p.CreateWith = line[strings.Index(line, with)+len(" WITH "):]
			continue
		}
		if strings.HasPrefix(line, "--") || strings.HasPrefix(line, "\\") {
			continue // comments, \connect and \restrict: each block runs on its own connection
		}
		block.WriteString(line + "\n")
		q.scan(line)
	}
	flush()
	if q.open() {
		return DatabaseProperties{}, fmt.Errorf("pg_dump's output ends inside a quoted string")
	}
	if p.CreateWith == "" {
		return DatabaseProperties{}, fmt.Errorf("pg_dump --create wrote no CREATE DATABASE")
	}
	// Only statements about the database itself are kept; the session
	// settings pg_dump writes after its \connect go.
	var kept []string
	for _, b := range p.Statements {
		stmts, err := pgDatabaseStatements(b, d.Name)
		if err != nil {
			return DatabaseProperties{}, err
		}
		kept = append(kept, stmts...)
	}
	p.Statements = kept
	return p, p.check(d.Name)
}

// check refuses properties that are not what pgDatabaseProps keeps: a
// CreateWith that is more than one statement's options, a statement that is
// not about the database. Those recorded in a snapshot are checked again
// before a restore runs them, as the repository's bytes are not trusted to
// be what snap wrote.
func (p DatabaseProperties) check(db string) error {
	// Written in UTF-8 (pg_dump --encoding=UTF8) and run in a session of
	// that encoding: bytes of another encoding are not what snap records.
	if !utf8.ValidString(p.CreateWith) {
		return fmt.Errorf("the database's CREATE DATABASE options are not UTF-8")
	}
	for _, st := range p.Statements {
		if !utf8.ValidString(st) {
			return fmt.Errorf("%q is not UTF-8", cutBytes(st, 80))
		}
	}
	if strings.ContainsAny(p.CreateWith, "\n\r") {
		return fmt.Errorf("the database's CREATE DATABASE options span lines")
	}
	if stmts, err := pgSplitStatements("CREATE DATABASE x WITH " + p.CreateWith); err != nil || len(stmts) != 1 {
		return fmt.Errorf("the database's CREATE DATABASE options are not one statement's")
	}
	for _, st := range p.Statements {
		if kept, err := pgDatabaseStatements(st, db); err != nil || len(kept) != 1 {
			return fmt.Errorf("%q is not one statement about the database", cutBytes(st, 80))
		}
	}
	return nil
}

// pgDatabaseStatements splits a block of pg_dump's SQL into statements and
// keeps those that set a property of database db: its owner, settings,
// comment, security labels, privileges, and role settings in it. Session
// settings (SET …, set_config) are dropped; anything else, or a statement
// about another database, is an error.
func pgDatabaseStatements(block, db string) ([]string, error) {
	stmts, err := pgSplitStatements(block)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, st := range stmts {
		bare := pgBlankQuoted(st) // keywords are looked for outside quotes
		about := func(kw string) bool {
			i := strings.Index(bare, kw)
			return i >= 0 && pgNamesAt(st[i+len(kw):], db)
		}
		switch {
		case strings.HasPrefix(st, "SET ") || strings.HasPrefix(st, "RESET ") || strings.HasPrefix(st, "SELECT pg_catalog.set_config("):
			// Session settings, and the SET/RESET SESSION AUTHORIZATION
			// around a grant made by another grantor (the grant is kept,
			// made by the restoring role).
		case strings.HasPrefix(st, "ALTER DATABASE ") && pgNamesAt(st[len("ALTER DATABASE "):], db),
			strings.HasPrefix(st, "COMMENT ON DATABASE ") && pgNamesAt(st[len("COMMENT ON DATABASE "):], db),
			strings.HasPrefix(st, "SECURITY LABEL FOR ") && about(" ON DATABASE "),
			(strings.HasPrefix(st, "GRANT ") || strings.HasPrefix(st, "REVOKE ")) && about(" ON DATABASE "),
			strings.HasPrefix(st, "ALTER ROLE ") && about(" IN DATABASE "):
			out = append(out, st)
		default:
			return nil, fmt.Errorf("%q is not a statement about database %s", cutBytes(st, 80), db)
		}
	}
	return out, nil
}

// pgBlankQuoted returns st with the inside of its literals and quoted
// identifiers replaced by underscores, same length.
func pgBlankQuoted(st string) string {
	b := []byte(st)
	var q pgQuote
	for i := 0; i < len(st); {
		end, part := q.step(st, i)
		if part == pgContent {
			for j := i; j < end; j++ {
				b[j] = '_'
			}
		}
		i = end
	}
	return string(b)
}

// pgNamesAt reports whether rest starts with db's name as pg_dump writes
// an identifier (bare only when it needs no quotes, else in double quotes
// with quotes doubled), followed by the end, a blank or a semicolon (not a
// comma: "ON DATABASE app, postgres" names another database too).
func pgNamesAt(rest, db string) bool {
	names := []string{`"` + strings.ReplaceAll(db, `"`, `""`) + `"`}
	if pgBareIdent(db) {
		names = append(names, db)
	}
	for _, name := range names {
		if after, ok := strings.CutPrefix(rest, name); ok && (after == "" || strings.ContainsAny(after[:1], " ;\n")) {
			return true
		}
	}
	return false
}

// sqlIdentByte reports whether c may be part of a bare identifier or a
// keyword, in PostgreSQL's SQL and SQLite's alike (an E before a quote
// then ends a word, as in "ONE'…").
func sqlIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}

// pgBareIdent reports whether name reads as itself unquoted: lower-case
// letters, digits and underscores, not starting with a digit ("Prod"
// unquoted is prod).
func pgBareIdent(name string) bool {
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// pgSplitStatements splits SQL into its statements at the semicolons
// outside literals, quoted identifiers and comments, each returned with its
// semicolon, comments left out. It fails on a literal or identifier left
// open.
func pgSplitStatements(sql string) ([]string, error) {
	var out []string
	var cur strings.Builder
	var q pgQuote
	for i := 0; i < len(sql); {
		end, part := q.step(sql, i)
		c := sql[i]
		switch {
		case part != pgOutside:
			cur.WriteString(sql[i:end])
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			end = i // a comment, to the end of its line, which it ends
			for end < len(sql) && sql[end] != '\n' {
				end++
			}
			if end < len(sql) {
				end++
			}
			cur.WriteByte('\n')
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			return nil, fmt.Errorf("a block comment in the database's properties")
		case c == '\\':
			// psql runs a backslash command anywhere on a line (\! runs a
			// shell); pg_dump writes none in these statements.
			return nil, fmt.Errorf("a backslash outside quotes in the database's properties")
		case c == '$':
			// A dollar-quoted string, which pg_dump writes in none of
			// these statements, and which this scanner does not follow:
			// where a literal ends is where psql and it would disagree,
			// and a \! after a $q$'$q$ ran a shell command (found by an
			// exploratory test; psql now runs them restricted as well).
			return nil, fmt.Errorf("a dollar sign outside quotes in the database's properties")
		case c == ';':
			if st := strings.TrimSpace(cur.String()); st != "" {
				out = append(out, st+";")
			}
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
		i = end
	}
	if q.open() {
		return nil, fmt.Errorf("the database's properties end inside a quoted string")
	}
	if st := strings.TrimSpace(cur.String()); st != "" {
		out = append(out, st) // no semicolon: as written
	}
	return out, nil
}

// pgQuote follows SQL quoting across lines of pg_dump's output, which it
// writes with standard_conforming_strings on: '…' literals and "…"
// identifiers, a doubled quote standing for itself, and E'…' literals,
// in which a backslash also escapes the byte after it (pg_dump writes a
// setting's value with a backslash so: E'a\\b'); "--" outside them starts
// a comment to the end of the line. (Dollar quotes appear only in
// function bodies, which are not among the entries kept; the statements
// kept are refused with one.) Followed as '…', an E'\' ' \! id' had put
// a psql command outside the literal where this read it inside (found by
// an exploratory test).
type pgQuote struct {
	in     byte // the quote of the literal or identifier open, or 0
	escape bool // the literal open is an E'…' one
}

func (q *pgQuote) open() bool { return q.in != 0 }

func (q *pgQuote) scan(line string) {
	for i := 0; i < len(line); {
		end, part := q.step(line, i)
		if part == pgOutside && line[i] == '-' && i+1 < len(line) && line[i+1] == '-' {
			return
		}
		i = end
	}
}

// pgPart is what a step of pgQuote read.
type pgPart int

const (
	pgOutside   pgPart = iota // a character outside quotes
	pgQuoteMark               // the quote that opens or closes a literal or identifier
	pgContent                 // a character inside one (a doubled quote is one)
)

// step reads s at i, following the quoting: the one place that knows
// pg_dump's quoting rules, for scan, pgSplitStatements and pgBlankQuoted.
// It returns where the next step starts and what was read.
func (q *pgQuote) step(s string, i int) (int, pgPart) {
	c := s[i]
	switch {
	case q.escape && c == '\\' && i+1 < len(s):
		return i + 2, pgContent // an escaped byte, a quote included
	case q.in != 0 && c == q.in && i+1 < len(s) && s[i+1] == c:
		return i + 2, pgContent // a doubled quote stands for itself
	case q.in != 0 && c == q.in:
		q.in, q.escape = 0, false
		return i + 1, pgQuoteMark
	case q.in != 0:
		return i + 1, pgContent
	case c == '\'' || c == '"':
		q.in = c
		// E'…' (not the E at the end of a word: ONE'…' is no such thing).
		q.escape = c == '\'' && i > 0 && (s[i-1] == 'E' || s[i-1] == 'e') && (i < 2 || !sqlIdentByte(s[i-2]))
		return i + 1, pgQuoteMark
	}
	return i + 1, pgOutside
}

// pgDumpHeader reads an entry's header line of a pg_dump script:
// "-- Name: DATABASE app; Type: ACL; Schema: -; Owner: app".
func pgDumpHeader(line string) (name, typ string, ok bool) {
	rest, ok := strings.CutPrefix(line, "-- Name: ")
	if !ok {
		return "", "", false
	}
	name, rest, ok = strings.Cut(rest, "; Type: ")
	if !ok {
		return "", "", false
	}
	typ, _, ok = strings.Cut(rest, "; Schema: ")
	return name, typ, ok
}

// cutBytes returns s cut to at most n bytes, at a character boundary.
func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// pgOneTransaction returns dump without the BEGIN and COMMIT that pg_dump
// writes around the data of large objects: that COMMIT ended the load's
// own transaction, and all that came after it (primary keys, indexes,
// foreign keys) ran outside any, so a restore killed then left a database
// with its rows and some of its keys (found by a re-test). The lines are
// dropped only where pg_dump writes them: the first "BEGIN;" after a
// header "-- Data for Name: …; Type: BLOB…" (and blank or "--" lines), and
// the first "COMMIT;" after it; rows of COPY data are never touched. Lines
// of any length pass through in pieces.
func pgOneTransaction(dump io.Reader) io.Reader {
	f := &pgBlobFilter{}
	lf := newLineFilter(dump, f.start)
	lf.seen = f.lex.write
	return lf
}

// pgBlobFilter is pgOneTransaction's look at the start of each line. It
// goes by the shape of pg_dump's entries, not by the text of a line alone:
// a header is a line "-- Data for Name: …; Type: …" after a line "--";
// COPY data follows a header of TABLE DATA, and the BEGIN dropped follows
// one of BLOBS and comes before "SELECT pg_catalog.lo_…" lines, which its
// COMMIT ends. Lines of that text in a comment or a function's body (a
// re-test put them in a table's comment) are left alone: they are inside
// a literal or a body (pgLexer).
type pgBlobFilter struct {
	state    pgBlobState
	prevDash bool    // the line before was "--"
	lex      pgLexer // what psql reads as statements (and COPY rows), not text
}

type pgBlobState int

const (
	pgPlain     pgBlobState = iota
	pgAfterData             // after a header of TABLE DATA
	pgCopyData              // between its "COPY … FROM stdin;" and "\."
	pgAfterBlob             // after a header of large objects' data
	pgInBlobs               // after their BEGIN, before their COMMIT
)

// pgLinePeek is how much of a line (and of the lines after it) pgBlobFilter
// looks at to classify it.
const pgLinePeek = 4096

// start drops the line at the start of r when classify says so.
func (f *pgBlobFilter) start(r *bufio.Reader) ([]byte, bool, error) {
	if !f.lex.atLineStart() && !f.lex.inCopy() {
		// Text in a literal, a function's body or a comment: never
		// pg_dump's own lines, whatever they read (a re-test put them in
		// a comment; an exploratory test in a body).
		f.prevDash = false
		return nil, false, nil
	}
	b, _ := r.Peek(pgLinePeek)
	end := bytes.IndexByte(b, '\n')
	line, rest := b, []byte(nil)
	if end >= 0 {
		line, rest = b[:end], b[end+1:]
	}
	if f.classify(bytes.TrimSuffix(line, []byte("\r")), end >= 0, rest) {
		_, _ = r.Discard(end + 1) // only whole lines are dropped
		return nil, true, nil
	}
	return nil, false, nil
}

var (
	pgDataHeader = []byte("-- Data for Name: ")
	pgLoCall     = []byte("SELECT pg_catalog.lo")
)

// classify moves the state on at the start of a line (whole: its end was
// seen; rest: what follows it, as far as peeked), and reports whether the
// line is to be dropped.
func (f *pgBlobFilter) classify(line []byte, whole bool, rest []byte) (drop bool) {
	prevDash := f.prevDash
	f.prevDash = whole && bytes.Equal(line, []byte("--"))
	blank := whole && (len(bytes.TrimSpace(line)) == 0 || bytes.Equal(line, []byte("--")))
	switch f.state {
	case pgCopyData:
		if whole && bytes.Equal(line, []byte(`\.`)) {
			f.state = pgPlain
		}
		return false
	case pgAfterData:
		if blank {
			return false
		}
		f.state = pgPlain
		if whole && bytes.HasPrefix(line, []byte("COPY ")) && bytes.HasSuffix(line, []byte(" FROM stdin;")) {
			f.state = pgCopyData
			return false
		}
	case pgAfterBlob:
		if blank {
			return false
		}
		f.state = pgPlain
		if whole && bytes.Equal(line, []byte("BEGIN;")) && bytes.HasPrefix(bytes.TrimLeft(rest, "\r\n"), pgLoCall) {
			f.state = pgInBlobs
			return true
		}
	case pgInBlobs:
		switch {
		case blank || bytes.HasPrefix(line, pgLoCall):
			return false
		case whole && bytes.Equal(line, []byte("COMMIT;")):
			f.state = pgPlain
			return true
		}
		f.state = pgPlain // not pg_dump's: its COMMIT, if any, stays
	}
	if prevDash && bytes.HasPrefix(line, pgDataHeader) {
		switch {
		case bytes.Contains(line, []byte("; Type: TABLE DATA;")):
			f.state = pgAfterData
		case bytes.Contains(line, []byte("; Type: BLOB")):
			f.state = pgAfterBlob
		}
	}
	return false
}

// pgLockCheck warns when a restore of the dump would not fit in the
// server's lock table: 'snap restore --db' loads a dump in one
// transaction, which holds a lock on every relation and large object it
// makes until its end, and the server's table holds about
// max_locks_per_transaction × (max_connections + max_prepared_transactions)
// of them. 20,000 large objects backed up without a word, and no restore
// could load them (found by an exploratory test). "" when they fit, or
// when the server cannot be asked (the dump itself succeeded).
func (d *Database) pgLockCheck(ctx context.Context) string {
	if d.All {
		return ""
	}
	out, err := d.psql(ctx, d.Name, nil, pgLockNeeds)
	if err != nil {
		return ""
	}
	a, b, _ := strings.Cut(out, "|")
	need, err1 := strconv.ParseInt(a, 10, 64)
	room, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || need <= room {
		return ""
	}
	return fmt.Sprintf("a restore with 'snap restore --db' loads this dump in one transaction, which locks its %d tables, indexes, sequences and large objects, more than this server's lock table holds (about %d: max_locks_per_transaction × (max_connections + max_prepared_transactions)): "+
		"before restoring, raise max_locks_per_transaction on the server that loads it (a restart), or load the dump written out by 'snap dump' with psql without -1", need, room)
}

// pgLockNeeds counts what a load of one database's dump locks, and the
// server's lock table (pgLockCheck).
const pgLockNeeds = `SELECT
  ` + pgUserRelations + `
  + ` + pgLargeObjects + `,
  current_setting('max_locks_per_transaction')::bigint * (current_setting('max_connections')::bigint + current_setting('max_prepared_transactions')::bigint);
`
