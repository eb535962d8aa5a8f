# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
# scripts/e2e/pg-lib.sh - PostgreSQL on a test disk, for the e2e tests
# (t38) and the benchmarks.  Sourced after lib.sh.
#
# Debian's postgresql-15 server binaries (/usr/lib/postgresql/15/bin, on the
# host's read-only root) run as user postgres (setpriv, no PAM), the data
# directory on the filesystem under test, the socket and the server log in
# a tmpfs directory of their own ($PG_RUN), no TCP (listen_addresses '').
# The database is small and as durable as PostgreSQL can be: fsync,
# synchronous_commit and full_page_writes on.  wal_init_zero and
# wal_recycle are off: new WAL is written to blocks the filesystem
# allocates as it goes (null_blk keeps only writes to fresh pages in its
# volatile cache, see nb_create: a zero-filled or recycled WAL segment
# would be written straight to its store and survive any power cut).
#
# Clients (pg_clients_start): python3 drives one psql per client as a
# coprocess; each transaction is an INSERT of (id, client, md5(id)) in
# autocommit mode followed by "\echo ack ID", and the id is logged as
# acknowledged only once that line came back.  Per client a log
# $PG_RUN/client.N with "s ID" before the INSERT is sent and "a ID" after
# its acknowledgement (one write(2) per line, outside the disk under test).

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_USER=${PG_USER:-postgres}
PY=${PY:-/usr/bin/python3}
PG_CLIENT_PIDS=()

# pg_missing: prints what is missing to run PostgreSQL (empty: all there)
pg_missing() {
	local t miss=
	for t in initdb pg_ctl pg_controldata postgres psql pg_amcheck; do
		[ -x "$PG_BIN/$t" ] || miss+="$PG_BIN/$t "
	done
	id -u "$PG_USER" >/dev/null 2>&1 || miss+="user $PG_USER "
	command -v setpriv >/dev/null || miss+="setpriv "
	[ -x "$PY" ] || miss+="$PY "
	echo "$miss"
}

# pg_init_run: a private tmpfs directory for sockets, logs and the initdb
# template ($PG_RUN; removed at exit with $E2E_TMP's siblings)
pg_init_run() {
	PG_RUN=$(mktemp -d /tmp/pg.XXXXXX) || return 1
	mkdir "$PG_RUN/sock" && chmod 755 "$PG_RUN" &&
		chown "$PG_USER" "$PG_RUN" "$PG_RUN/sock" || return 1
	FM_ATEXIT+=("rm -rf --one-file-system $PG_RUN")
}

# pg_as CMD...: CMD as the postgres user, from /
pg_as() {
	(cd / && setpriv --reuid="$PG_USER" --regid="$PG_USER" --clear-groups \
		env HOME="$PG_RUN" "$@")
}

# pg_template: initdb once into $PG_RUN/template (tmpfs, no fsync, WAL
# segments of 1 MiB: a small data directory); the configuration above is
# appended to its postgresql.conf
pg_template() {
	local t=$PG_RUN/template redo f
	mkdir -m 700 "$t" && chown "$PG_USER" "$t" || return 1
	pg_as "$PG_BIN/initdb" -D "$t" -A trust -U postgres -E UTF8 \
		--no-locale --no-sync --wal-segsize=1 >"$PG_RUN/initdb.log" 2>&1 ||
		{ tail -n 5 "$PG_RUN/initdb.log" >&2; return 1; }
	# initdb recycles its old segments into zero-filled future ones: drop
	# every segment after the one of the checkpoint, so that new WAL is
	# written to sparse segments (wal_init_zero off)
	redo=$(pg_as "$PG_BIN/pg_controldata" "$t" |
		sed -n "s/^Latest checkpoint's REDO WAL file: *//p")
	[ -n "$redo" ] || { echo "pg_controldata: no REDO WAL file" >&2; return 1; }
	for f in "$t"/pg_wal/0*; do
		[[ ${f##*/} > $redo ]] && rm -f "$f"
	done
	cat >>"$t/postgresql.conf" <<EOF
# pg-lib.sh
listen_addresses = ''
unix_socket_directories = '$PG_RUN/sock'
max_connections = 20
shared_buffers = 16MB
huge_pages = off
dynamic_shared_memory_type = posix
fsync = on
synchronous_commit = on
full_page_writes = on
wal_sync_method = fdatasync
wal_init_zero = off
wal_recycle = off
min_wal_size = 32MB
max_wal_size = 96MB
checkpoint_timeout = 30min
autovacuum = off
max_worker_processes = 2
max_parallel_workers = 0
max_wal_senders = 0
wal_level = minimal
log_min_messages = warning
log_checkpoints = off
EOF
}

# pg_install DIR: a copy of the template as data directory DIR (on the
# filesystem under test), synced; a new server log
pg_install() {
	rm -f "$PG_RUN/server.log"
	cp -a "$PG_RUN/template" "$1" && chown "$PG_USER" "$1" && chmod 700 "$1" &&
		sync -f "$1"
}

# pg_start DIR: start the server (waits until it accepts connections; a
# crash recovery happens here); its log in $PG_RUN/server.log
pg_start() {
	PG_DATA=$1
	pg_as "$PG_BIN/pg_ctl" start -w -t "${PG_START_TIMEOUT:-180}" -D "$1" \
		-l "$PG_RUN/server.log" >"$PG_RUN/pg_ctl.out" 2>&1
}

# pg_stop [MODE]: pg_ctl stop (fast by default)
pg_stop() {
	pg_as "$PG_BIN/pg_ctl" stop -w -t 120 -m "${1:-fast}" -D "$PG_DATA" \
		>"$PG_RUN/pg_ctl.out" 2>&1
}

# pg_running: the postmaster of $PG_DATA is alive
pg_running() {
	local pm
	pm=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null) || return 1
	[ -n "$pm" ] && kill -0 "$pm" 2>/dev/null
}

# pg_kill: SIGKILL the postmaster of $PG_DATA and all its children (a
# crash), and wait until they are gone
pg_kill() {
	local pm pids i
	pm=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null)
	[ -n "$pm" ] && kill -0 "$pm" 2>/dev/null || return 0
	pids="$pm $(ps -o pid= --ppid "$pm")"
	kill -KILL $pids 2>/dev/null
	for ((i = 0; i < 300; i++)); do
		kill -0 $pids 2>/dev/null || return 0
		sleep 0.1
	done
	echo "# pg_kill: processes left: $pids" >&2
	return 1
}

# pg_log_tail: the server log's last lines, one line (for FAIL reasons)
pg_log_tail() {
	tail -n "${1:-4}" "$PG_RUN/pg_ctl.out" "$PG_RUN/server.log" 2>/dev/null |
		grep -v '^==>' | tr '\n' ' ' | cut -c1-400
}

# pg_sql SQL: run SQL (psql -At, stops at the first error)
pg_sql() {
	"$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$PG_RUN/sock" \
		-U postgres -d postgres -c "$1"
}

# pg_schema: the clients' table
pg_schema() {
	pg_sql "CREATE TABLE acked (id bigint PRIMARY KEY, client int NOT NULL, val text NOT NULL)"
}

# pg_amcheck_all: pg_amcheck of every relation of the database (heap and
# btree, with heapallindexed), installing the extension if needed
pg_amcheck_all() {
	"$PG_BIN/pg_amcheck" -h "$PG_RUN/sock" -U postgres -d postgres \
		--install-missing --heapallindexed --no-strict-names
}

cat >"$E2E_TMP/pg-client.py" <<'PYEOF'
# pg-client.py PSQL SOCK CLIENT LOG: commits until SIGTERM, then exits 0;
# any error (psql died, a wrong reply) is a message and exit 1.
import os, signal, subprocess, sys
psql, sock, cid, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
stop = False
def on_term(sig, frm):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
p = subprocess.Popen([psql, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                      "-h", sock, "-U", "postgres", "-d", "postgres"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     text=True, bufsize=1)
k = 0
while not stop:
    k += 1
    i = cid * 10000000 + k
    os.write(fd, b"s %d\n" % i)
    try:
        p.stdin.write("INSERT INTO acked VALUES (%d, %d, md5('%d'));\n"
                      "\\echo ack %d\n" % (i, cid, i, i))
        p.stdin.flush()
    except OSError as e:
        print("client %d: txn %d: %s" % (cid, i, e), file=sys.stderr)
        sys.exit(1)
    line = p.stdout.readline()
    if line != "ack %d\n" % i:
        print("client %d: txn %d: got %r, psql exit %s" % (cid, i, line, p.poll()),
              file=sys.stderr)
        sys.exit(1)
    os.write(fd, b"a %d\n" % i)
p.stdin.close()
rc = p.wait()
if rc != 0:
    print("client %d: psql exit %d" % (cid, rc), file=sys.stderr)
    sys.exit(1)
PYEOF

cat >"$E2E_TMP/pg-verify.py" <<'PYEOF'
# pg-verify.py ROWS ACKED SENT: ROWS "id|client|val" lines of the table;
# ACKED, SENT: client logs (or snapshots of them); prints
# "acked present lost phantom badval" and the first problems to stderr.
import hashlib, sys
rows, acked_logs, sent_logs = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
def ids(paths, kind):
    s = set()
    for p in paths:
        data = open(p, "rb").read()
        data = data[:data.rfind(b"\n") + 1]
        for l in data.decode().splitlines():
            f = l.split()
            if f[0] == kind:
                s.add(int(f[1]))
    return s
acked = ids(acked_logs, "a")
sent = ids(sent_logs, "s")
have = {}
bad = []
for l in open(rows).read().splitlines():
    i, c, v = l.split("|")
    i = int(i)
    have[i] = True
    if v != hashlib.md5(str(i).encode()).hexdigest() or int(c) != i // 10000000:
        bad.append(i)
lost = sorted(acked - have.keys())
phantom = sorted(have.keys() - sent)
print(len(acked), len(have), len(lost), len(phantom), len(bad))
for what, l in (("lost", lost), ("phantom", phantom), ("bad value", bad)):
    if l:
        print("%s: %d ids, first %s" % (what, len(l), l[:5]), file=sys.stderr)
PYEOF

# pg_clients_start N: N clients (1..N) in the background, logs
# $PG_RUN/client.K, stderr $PG_RUN/client.K.err; waits (up to 60 s) until
# every client had one transaction acknowledged
pg_clients_start() {
	local n=$1 k i
	PG_CLIENT_PIDS=()
	for ((k = 1; k <= n; k++)); do
		: >"$PG_RUN/client.$k"
		"$PY" "$E2E_TMP/pg-client.py" "$PG_BIN/psql" "$PG_RUN/sock" $k \
			"$PG_RUN/client.$k" 2>"$PG_RUN/client.$k.err" &
		PG_CLIENT_PIDS+=($!)
		FM_PIDS+=($!)
	done
	for ((i = 0; i < 600; i++)); do
		[ "$(pg_clients_acked)" -ge "$n" ] && [ -z "$(pg_clients_dead)" ] &&
			return 0
		[ -z "$(pg_clients_dead)" ] || break
		sleep 0.1
	done
	return 1
}

# pg_clients_acked: transactions acknowledged so far (all clients)
pg_clients_acked() { cat $(pg_client_logs | tr , ' ') </dev/null 2>/dev/null | grep -c '^a '; }

# pg_clients_dead: the clients that are no longer running
pg_clients_dead() {
	local p d=
	for p in "${PG_CLIENT_PIDS[@]}"; do
		kill -0 "$p" 2>/dev/null || d+="$p "
	done
	echo "$d"
}

# pg_clients_stop: SIGTERM, wait; sets PG_CLIENT_ERR (their exit codes and
# messages, empty when all exited 0)
pg_clients_stop() {
	local p rc k=0
	PG_CLIENT_ERR=
	for p in "${PG_CLIENT_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${PG_CLIENT_PIDS[@]}"; do
		k=$((k + 1))
		wait "$p"
		rc=$?
		[ $rc -eq 0 ] ||
			PG_CLIENT_ERR+="client $k exited $rc: $(head -c 300 "$PG_RUN/client.$k.err" | tr '\n' ' '); "
	done
	PG_CLIENT_PIDS=()
}

# pg_client_logs [SUFFIX]: comma-separated client logs (SUFFIX: snapshots)
pg_client_logs() {
	local f l=
	for f in "$PG_RUN"/client.[0-9]*; do
		case $f in *.err|*.snap) continue ;; esac
		l+="${l:+,}$f${1:-}"
	done
	echo "$l"
}

# pg_clients_snapshot: copy every client log to LOG.snap (the acknowledged
# set at this instant)
pg_clients_snapshot() {
	local f
	for f in $(pg_client_logs | tr , ' '); do
		cp "$f" "$f.snap"
	done
}

# pg_verify ACKED_LOGS SENT_LOGS: read the table, compare; sets PV_ACKED
# PV_ROWS PV_LOST PV_PHANTOM PV_BAD (PV_ERR when it could not be done)
pg_verify() {
	local res
	PV_ERR='' PV_ACKED=0 PV_ROWS=0 PV_LOST=0 PV_PHANTOM=0 PV_BAD=0
	pg_sql "SELECT id, client, val FROM acked" >"$PG_RUN/rows" 2>"$PG_RUN/rows.err" ||
		{ PV_ERR="SELECT failed: $(head -c 300 "$PG_RUN/rows.err" | tr '\n' ' ')"; return 1; }
	res=$("$PY" "$E2E_TMP/pg-verify.py" "$PG_RUN/rows" "$1" "$2" 2>"$PG_RUN/verify.err")
	sed 's/^/# verify: /' "$PG_RUN/verify.err"
	set -- $res
	[ $# -eq 5 ] || { PV_ERR="verify failed: $res $(head -c 300 "$PG_RUN/verify.err")"; return 1; }
	PV_ACKED=$1 PV_ROWS=$2 PV_LOST=$3 PV_PHANTOM=$4 PV_BAD=$5
}
