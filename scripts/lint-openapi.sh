#!/usr/bin/env bash
# Lints the OpenAPI document Tocsin serves with Redocly's recommended rules
# (redocly.yaml; the exceptions, each with its reason, in
# .redocly.lint-ignore.yaml). `make lint-openapi` runs it. It needs the npm
# registry the first time, to install @redocly/cli into $REDOCLY_PREFIX,
# which is why `make test` does not run it.
#
# It serves bin/tocsin on a free loopback port with the embedded Redis,
# saves GET /openapi.json as bin/openapi.json and lints that file.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=${REDOCLY_PREFIX:-/tmp/redocly}
redocly=$prefix/node_modules/.bin/redocly
if [ ! -x "$redocly" ]; then
	echo "installing @redocly/cli into $prefix"
	npm install --prefix "$prefix" --no-fund --no-audit @redocly/cli >/dev/null
fi
command -v curl >/dev/null || { echo "lint-openapi needs curl" >&2; exit 1; }

log=$(mktemp)
TOCSIN_HTTP_ADDR=127.0.0.1:0 TOCSIN_API_KEY="lint-openapi-$$-$RANDOM$RANDOM" TOCSIN_LOG_FORMAT=json \
	bin/tocsin serve >/dev/null 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT

addr=
for _ in $(seq 100); do
	addr=$(grep '"msg":"http listening"' "$log" | grep -o '"addr":"[^"]*"' | head -n1 | cut -d'"' -f4 || true)
	[ -n "$addr" ] && break
	kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
	sleep 0.1
done
[ -n "$addr" ] || { echo "tocsin serve did not listen within 10s" >&2; cat "$log" >&2; exit 1; }

curl -fsS "http://$addr/openapi.json" -o bin/openapi.json
"$redocly" lint bin/openapi.json --format=stylish
