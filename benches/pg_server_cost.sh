#!/usr/bin/env bash
# The PostgreSQL backend's CPU for the bench's 350,000 rows stored different ways: what the
# README's "Loading into PostgreSQL" says each part of a load costs the server.
#
#   source /work/wt/services.env   # or eval "$(tests/pg/start)": PG_ADMIN_URL, DATABASE_PASSWORD
#   benches/pg_server_cost.sh target/release/dropfolder [RUNS]
#
# Imports target/bench-data/users-350000.csv.gz (made by `cargo bench --bench import_postgres`)
# with the given binary, writes its records out as text, then times server-side COPYs of
# them (and of the plain CSV) into fresh tables, RUNS times each (default 5), interleaved.
# The figure is the backend's own CPU (utime + stime from /proc/self/stat, which needs the
# superuser and a server on this machine), so other work on the machine moves it less than
# wall time. Prints min, median and max per variant. ONLY=REGEX runs only the variants it
# matches.
set -euo pipefail
binary="$(realpath "$1")"
runs="${2:-5}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="$root/target/bench-data/users-350000.csv.gz"
[[ -f "$data" ]] || { echo "no $data: run cargo bench --bench import_postgres first" >&2; exit 1; }
work="$(mktemp -d /tmp/pg-server-cost.XXXXXX)"
chmod 777 "$work"
trap 'rm -rf "$work"' EXIT
db=pg_server_cost
base="${PG_ADMIN_URL%/*}"
admin_db="$base/$db"
psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db" -qc "CREATE DATABASE $db OWNER dropfolder" 2>/dev/null
hostport="${base#*@}"
sed -n '/^\[schemas.bench\]/,$p' "$root/target/bench-data/import-postgres.toml" > "$work/tail.toml"
{ printf '[state]\nurl = "postgres://dropfolder@%s/%s"\npassword_env = "DATABASE_PASSWORD"\n\n' "$hostport" "$db"
  cat "$work/tail.toml"; } > "$work/config.toml"
RUST_LOG=warn "$binary" --config "$work/config.toml" import "$data" >/dev/null
gzip -dc "$data" > "$work/users.csv"
psql "$admin_db" -qc "COPY (SELECT integration, entity, product_key, id, attributes::text, updated_at FROM records) TO '$work/sorted.txt'"
# The file's column order, as the client sent it before the keys were sorted.
psql "$admin_db" -qc "COPY (SELECT integration, entity, product_key, id, json_build_object('email', attributes->'email', 'name', attributes->'name', 'signUpDate', attributes->'signUpDate', 'score', attributes->'score', 'isTrial', attributes->'isTrial', 'plan', attributes->'plan', 'country', attributes->'country')::text, updated_at FROM records) TO '$work/file_order.txt'"
cpu="SELECT split_part(pg_read_file('/proc/self/stat'), ' ', 14)::int + split_part(pg_read_file('/proc/self/stat'), ' ', 15)::int"
cols='integration text COLLATE "C" NOT NULL, entity text COLLATE "C" NOT NULL, product_key text COLLATE "C" NOT NULL, id text COLLATE "C" NOT NULL'
records="CREATE TABLE e ($cols, attributes jsonb NOT NULL, updated_at timestamptz NOT NULL, PRIMARY KEY"
plain='CREATE TABLE e (id text PRIMARY KEY, email text, name text, "signUpDate" text, score text, "isTrial" text, plan text, country text)'
staging="CREATE UNLOGGED TABLE e (seq bigint, product_key text COLLATE \"C\", id text COLLATE \"C\", attributes jsonb)"
declare -A variants=(
  ["plain table, CSV"]="$plain#COPY e FROM '$work/users.csv' (FORMAT csv, HEADER)"
  ["records, keys in file order"]="$records (integration, entity, product_key, id))#COPY e FROM '$work/file_order.txt'"
  ["records, keys in jsonb order"]="$records (integration, entity, product_key, id))#COPY e FROM '$work/sorted.txt'"
  ["records, key id first"]="$records (id, product_key, entity, integration))#COPY e FROM '$work/sorted.txt'"
  ["records, attributes as text"]="CREATE TABLE e ($cols, attributes text NOT NULL, updated_at timestamptz NOT NULL, PRIMARY KEY (integration, entity, product_key, id))#COPY e FROM '$work/sorted.txt'"
  ["unlogged staging, jsonb, no key"]="$staging#COPY e FROM PROGRAM 'cut -f3-5 $work/sorted.txt | nl -nln -w1 -s\"	\"'"
  ["records from staging, INSERT ... SELECT"]="$records (integration, entity, product_key, id)); CREATE TEMP TABLE s (seq bigint, product_key text COLLATE \"C\", id text COLLATE \"C\", attributes jsonb); COPY s FROM PROGRAM 'cut -f3-5 $work/sorted.txt | nl -nln -w1 -s\"	\"'#INSERT INTO e SELECT 'bench', 'user', product_key, id, attributes, now() FROM s"
)
declare -A took
for ((run = 0; run < runs; run++)); do
  for name in "${!variants[@]}"; do
    [[ "$name" =~ ${ONLY:-.} ]] || continue
    IFS='#' read -r create load <<<"${variants[$name]}"
    out="$(psql "$admin_db" -qAt -c "DROP TABLE IF EXISTS e" -c "$create" -c "CHECKPOINT" -c "$cpu" -c "$load" -c "$cpu")"
    took[$name]+="$(awk 'NR==1 {a=$1} END {printf "%.2f ", ($1-a)/100}' <<<"$out")"
  done
done
for name in "${!took[@]}"; do
  printf '%-42s %s\n' "$name" "$(tr ' ' '\n' <<<"${took[$name]}" | grep . | sort -n | awk '{v[NR]=$1} END {printf "min %.2f s, median %.2f s, max %.2f s (%d runs)", v[1], v[int((NR+1)/2)], v[NR], NR}')"
done | sort
psql "$PG_ADMIN_URL" -qc "DROP DATABASE $db"
