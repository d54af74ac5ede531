#!/usr/bin/env bash
# Runs `tocsin bench` against a throw-away redis-server on a free 127.0.0.1
# port (never 6379) and stops that server however the bench ends.
# Usage: scripts/bench.sh [RECIPIENTS] [BENCH FLAGS...]   (default 100000)
#        scripts/bench.sh [RECIPIENTS] --crowd N [--rounds R]   (the page read during the broadcast)
#        scripts/bench.sh --rates [--sms N] [--sms-rate R] [--workers N]
#        scripts/bench.sh [RECIPIENTS] --e2e [--rounds R] [--e2e-rate R] [--provider-latency D]
#                                  (the raw HTTP ceiling and end to end through the SMS channel)
#        scripts/bench.sh --import N   (N generated NDJSON lines through the import route)
# With BENCH_AGAINST=REV (a commit), it builds REV's tocsin and this tree's,
# and runs the two in turn BENCH_ROUNDS times (default 3) on the same
# server: a before/after figure measured side by side.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

recipients=100000
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
	recipients="$1"
	shift
fi
args=("$@")
case " ${args[*]-} " in
*" --rates "*) what="the rates bench" ;;
*" --import "*) what="the import bench" ;;
*)
	args=(--recipients "$recipients" "${args[@]}")
	what="$recipients recipients"
	;;
esac
redis_server="${TOCSIN_REDIS_SERVER:-redis-server}"
command -v "$redis_server" >/dev/null || {
	echo "bench: $redis_server not found: run 'apt-get install redis-server'" >&2
	exit 1
}

dir="$(mktemp -d)"
pid=""
against="${BENCH_AGAINST:-}"
cleanup() {
	if [ -n "$against" ]; then
		git worktree remove --force "$dir/old" 2>/dev/null || true
	fi
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# port_open PORT: something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pings PORT: the server there answers PING.
pings() {
	local reply
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf 'PING\r\n' >&3
	IFS= read -r -t 1 reply <&3 || reply=""
	exec 3<&- 3>&-
	[ "${reply%$'\r'}" = "+PONG" ]
}

port=""
for attempt in 1 2 3 4 5; do
	candidate=$((20000 + RANDOM % 40000))
	if [ "$candidate" -eq 6379 ] || port_open "$candidate"; then
		continue
	fi
	# hash-max-listpack-value 128, as docs/operations.md recommends: a bucket
	# of delivery records (70-80 bytes each with a provider id) then stays a
	# listpack.
	"$redis_server" --port "$candidate" --bind 127.0.0.1 --save "" --appendonly no \
		--hash-max-listpack-value 128 \
		--dir "$dir" --loglevel warning >"$dir/redis.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		if pings "$candidate" 2>/dev/null; then
			port="$candidate"
			break
		fi
		sleep 0.1
	done
	[ -n "$port" ] && break
	# Lost the port to someone else, or too slow: stop it and try another.
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=""
	echo "bench: redis-server on port $candidate did not start (attempt $attempt):" >&2
	cat "$dir/redis.log" >&2 || true
done
if [ -z "$port" ]; then
	echo "bench: could not start redis-server" >&2
	exit 1
fi

echo "bench: redis-server on 127.0.0.1:$port (pid $pid), $what"
if [ -z "$against" ]; then
	go run ./cmd/tocsin bench "${args[@]}" --redis "127.0.0.1:$port"
	exit 0
fi
git worktree add --detach "$dir/old" "$against" >/dev/null
(cd "$dir/old" && go build -o "$dir/tocsin-before" ./cmd/tocsin)
go build -o "$dir/tocsin-after" ./cmd/tocsin
# keep: the summary line; with --e2e, each round's line too (its CPU per SMS);
# for the fan-out, the design's row of the table (deliveries/s) too.
keep() {
	case " ${args[*]-} " in
	*" --e2e "*) grep -E '^(round [0-9]+|ceiling|rate use):' ;;
	*) awk '/^ +tocsin \(batches/ { row = $0 } { last = $0 } END { if (row != "") print row; print last }' ;;
	esac
}
for round in $(seq "${BENCH_ROUNDS:-3}"); do
	for which in before after; do
		printf 'round %s, %s (%s):\n' "$round" "$which" "$([ "$which" = before ] && echo "$against" || echo "this tree")"
		"$dir/tocsin-$which" bench "${args[@]}" --naive=false --flush --redis "127.0.0.1:$port" | keep
	done
done
