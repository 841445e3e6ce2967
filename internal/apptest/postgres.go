package apptest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // The PostgreSQL driver the catalog uses.
)

// Postgres is a PostgreSQL server from Debian's postgresql package, run by
// a test in a temporary directory on a free port.
type Postgres struct {
	t    testing.TB
	Addr string
	n    atomic.Int64
}

// StartPostgres initialises a cluster and starts postgres. As root it runs
// them as the postgres user (the server refuses to run as root).
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		t.Fatal("initdb not found: install Debian's postgresql (apt-get install postgresql); `make deps` does")
	}
	bin := filepath.Dir(bins[len(bins)-1])
	dir, err := os.MkdirTemp("", "orrery-postgres-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, and there is no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	run := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := run("initdb", "-D", data, "-U", "orrery", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p := &Postgres{t: t, Addr: FreeAddr(t)}
	host, port, _ := strings.Cut(p.Addr, ":")
	cmd := run("postgres", "-D", data, "-h", host, "-p", port, "-k", dir, "-F", "-c", "fsync=off")
	proc := startCmd(t, "postgres", cmd)
	Eventually(t, 30*time.Second, func() error {
		if proc.Exited() {
			t.Fatalf("postgres exited at start:\n%s", proc.Output())
		}
		db, err := sql.Open("pgx", p.dsn("postgres"))
		if err != nil {
			return err
		}
		defer db.Close()
		return db.Ping()
	})
	return p
}

func (p *Postgres) dsn(db string) string {
	return fmt.Sprintf("postgres://orrery@%s/%s?sslmode=disable", p.Addr, db)
}

// NewDatabase creates an empty database and returns its URL.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	db, err := sql.Open("pgx", p.dsn("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	name := fmt.Sprintf("orrery_test_%d", p.n.Add(1))
	if _, err := db.ExecContext(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return p.dsn(name)
}
