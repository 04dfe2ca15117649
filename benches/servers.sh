#!/usr/bin/env bash
# Starts a throwaway Postgres and Redis on loopback for the store benches, and prints the
# variables they read. Stop them with the command it prints last.
#
#   eval "$(bash benches/servers.sh)"
#   cargo bench --bench store && cargo bench --bench backlog
#
# Needs Debian's postgresql and redis-server. Postgres refuses to run as root: as root, it runs
# as the postgres user.
set -euo pipefail
dir=$(mktemp -d /tmp/tower-sovendus-bench.XXXXXX)
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_postgres=()
if [[ $(id -u) -eq 0 ]]; then
    chown postgres "$dir"
    as_postgres=(runuser -u postgres --)
fi
"${as_postgres[@]}" "$pg_bin/initdb" -D "$dir/pg" -U postgres --auth=trust >"$dir/initdb.log" 2>&1
"${as_postgres[@]}" "$pg_bin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w \
    -o "-h 127.0.0.1 -p $pg_port -k $dir -c synchronous_commit=off" start >/dev/null
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --daemonize yes \
    --pidfile "$dir/redis.pid" --dir "$dir" >/dev/null
echo "export SOVENDUS_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:$pg_port/postgres"
echo "export SOVENDUS_BENCH_REDIS_URL=redis://127.0.0.1:$redis_port"
echo "# to stop them: ${as_postgres[*]} $pg_bin/pg_ctl -D $dir/pg stop; kill \$(cat $dir/redis.pid)"
