#!/usr/bin/env bash
# The CPU of each PostgreSQL backend a `dropfolder import` of the bench's 350,000 rows uses,
# for binaries side by side: what bounds an import when the file's backend is the bottleneck
# (its own CPU) and what it costs the server in all (every backend). Measured as CPU time,
# not wall time, so it moves less than `cargo bench --bench import_postgres` when other work
# shares the machine.
#
#   source /work/wt/services.env   # or eval "$(tests/pg/start)": PG_ADMIN_URL, DATABASE_PASSWORD
#   benches/pg_backend_cpu.sh RUNS BINARY [BINARY...]
#
# Each run imports target/bench-data/users-350000.csv.gz (made by `cargo bench --bench
# import_postgres`) into a fresh database with each binary in turn, while reading the
# utime + stime (/proc/PID/stat) of every backend of that database every 20 ms; a backend's
# figure is its last reading (so up to 20 ms short). Needs the server on this machine and
# /proc of its processes readable (root). Prints, per binary, the median and range over the
# runs of: the busiest backend's CPU, all backends' CPU, the client's CPU (user + sys) and
# the wall time.
set -euo pipefail
runs="$1"; shift
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="$root/target/bench-data/users-350000.csv.gz"
[[ -f "$data" ]] || { echo "no $data: run cargo bench --bench import_postgres first" >&2; exit 1; }
work="$(mktemp -d /tmp/pg-backend-cpu.XXXXXX)"
trap 'rm -rf "$work"' EXIT
base="${PG_ADMIN_URL%/*}"
hostport="${base#*@}"
port="${hostport##*:}"
db=pg_backend_cpu
sed -n '/^\[schemas.bench\]/,$p' "$root/target/bench-data/import-postgres.toml" > "$work/tail.toml"
{ printf '[state]\nurl = "postgres://dropfolder@%s/%s"\npassword_env = "DATABASE_PASSWORD"\n\n' "$hostport" "$db"
  cat "$work/tail.toml"; } > "$work/config.toml"
# The postmaster listening on the port: the backends are its children.
postmaster="$(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)"
[[ -n "$postmaster" ]] || { echo "no server listening on port $port here" >&2; exit 1; }
hz="$(getconf CLK_TCK)"

# Samples the backends of $db until $work/stop exists; writes "pid ticks" lines.
sample() {
  declare -A last
  while [[ ! -e "$work/stop" ]]; do
    for pid in $(pgrep -P "$postmaster"); do
      if grep -qa "dropfolder $db " "/proc/$pid/cmdline" 2>/dev/null; then
        ticks="$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null)" && last[$pid]="$ticks"
      fi
    done
    sleep 0.02
  done
  for pid in "${!last[@]}"; do echo "$pid ${last[$pid]}"; done > "$work/sampled"
}

declare -A busiest all client wall
for ((run = 0; run < runs; run++)); do
  for binary in "$@"; do
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db" -qc "CREATE DATABASE $db OWNER dropfolder" 2>/dev/null
    rm -f "$work/stop"
    sample & sampler=$!
    start="$(date +%s.%N)"
    RUST_LOG=warn /usr/bin/time -o "$work/time" -f "%U %S" "$binary" --config "$work/config.toml" import "$data" >/dev/null
    end="$(date +%s.%N)"
    touch "$work/stop"; wait "$sampler"
    busiest[$binary]+="$(sort -k2 -n "$work/sampled" | tail -1 | awk -v hz="$hz" '{printf "%.2f ", $2 / hz}')"
    all[$binary]+="$(awk -v hz="$hz" '{s += $2} END {printf "%.2f ", s / hz}' "$work/sampled")"
    client[$binary]+="$(awk '{printf "%.2f ", $1 + $2}' "$work/time")"
    wall[$binary]+="$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f ", b - a}')"
  done
done
psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db" 2>/dev/null
stats() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {printf "%.2f s (%.2f-%.2f)", v[int((NR+1)/2)], v[1], v[NR]}'; }
for binary in "$@"; do
  echo "$binary, median of $runs (range):"
  echo "  busiest backend $(stats <<<"${busiest[$binary]}"), all backends $(stats <<<"${all[$binary]}"), client $(stats <<<"${client[$binary]}"), wall $(stats <<<"${wall[$binary]}")"
done
