package sources

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// MongoDB: mongodump --archive writes one database (or all of them) as a
// single archive on standard output; mongorestore --archive reads it back.
// The MongoDB Database Tools are not part of Debian: when they are missing,
// a --db mongodb:// source is a clear error before anything runs.
//
// The tools take no password from the environment, so a password from the
// URL goes into a private YAML option file (--config), removed afterwards.

func (d *Database) mongoDump() (Command, error) {
	tool, err := lookTool("mongodump")
	if err != nil {
		return Command{}, fmt.Errorf("%s: %v; install the MongoDB Database Tools (mongodump, mongorestore) or dump with --command", d, err)
	}
	return Command{Name: tool, Args: []string{"--archive", "--quiet", "--uri=" + d.connURL("")}}, nil
}

// mongoConfigFile writes a mongodump/mongorestore option file holding the
// password, readable only by this user.
func mongoConfigFile(password string) (file string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "snap-mongo-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	q, _ := json.Marshal(password) // a JSON string is a YAML double-quoted scalar
	file = dir + "/config.yaml"
	if err := os.WriteFile(file, append(append([]byte("password: "), q...), '\n'), 0o600); err != nil {
		cleanup()
		return "", nil, err
	}
	return file, cleanup, nil
}

// mongoRestore loads an archive. The dump's database (from) is renamed to
// d's when they differ. MongoDB creates databases on first write; with
// Replace, collections that exist are dropped before they are restored.
func (d *Database) mongoRestore(ctx context.Context, dump io.Reader, all bool, from string, o RestoreOptions) (bool, error) {
	tool, err := d.restoreClient()
	if err != nil {
		return false, err
	}
	// The archive names its databases; the URL only says where the server is
	// (and, as its path, the authentication database).
	u := d.u
	if name := u.Path; len(name) > 1 {
		q := u.Query()
		if !q.Has("authSource") {
			q.Set("authSource", name[1:])
			u.RawQuery = q.Encode()
		}
		u.Path = "/"
	}
	args := []string{"--archive", "--uri=" + u.String()}
	if !all && from != "" && d.Name != "" && from != d.Name {
		args = append(args, "--nsFrom="+from+".*", "--nsTo="+d.Name+".*")
	}
	if o.Replace {
		if err := d.readAllFirst(ctx, o); err != nil {
			return false, err
		}
		args = append(args, "--drop")
	}
	if d.password != "" {
		file, cleanup, err := mongoConfigFile(d.password)
		if err != nil {
			return false, err
		}
		defer cleanup()
		args = append([]string{"--config=" + file}, args...)
	}
	c := Command{Name: tool, Args: args, Stdin: dump, Stderr: o.Stderr, StderrLines: ClientStderrLines, Stdout: o.Stdout}
	return false, c.Run(ctx)
}
