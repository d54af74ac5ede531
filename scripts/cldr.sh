#!/bin/sh
# Refreshes locales/testdata/cldr/extract.json and locales/cldr_table.go
# from the CLDR JSON packages on npm (run by `go generate ./locales`, from
# the locales directory). Set CLDR_VERSION to move to another release.
set -eu
version="${CLDR_VERSION:-45.0.0}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "cldr-dates-modern@$version" "cldr-numbers-modern@$version" >/dev/null)
mkdir -p "$tmp/dates" "$tmp/numbers"
tar -xzf "$tmp/cldr-dates-modern-$version.tgz" -C "$tmp/dates" --strip-components=1
tar -xzf "$tmp/cldr-numbers-modern-$version.tgz" -C "$tmp/numbers" --strip-components=1
mkdir -p testdata/cldr
go run ./internal/cldr/gen -dates "$tmp/dates" -numbers "$tmp/numbers"
