# Tocsin's developer and CI entry points. `make test` is what CI runs.

GO ?= go
# Recipients for `make bench`.
N ?= 100000
# What `tocsin version` and the OpenAPI document's info.version say.
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.Version=$(VERSION)

.PHONY: run test build image bench bench-rates bench-crowd bench-e2e lint lint-openapi redis-server

# Zero-config default: embedded in-memory Redis and the outbox channel.
run:
	$(GO) run ./cmd/tocsin serve

# Tests start their own redis-server on a free port (internal/redistest) and
# paste the README tour into bash with curl and jq; they fail without them, so
# install them first when missing.
test: redis-server
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/tocsin ./cmd/tocsin

# The container image, tagged and versioned as `make build` versions the binary.
image:
	docker build --build-arg VERSION=$(VERSION) -t tocsin:$(VERSION) .

# Runs `tocsin bench` against a throw-away redis-server on a free port.
bench: redis-server
	bash scripts/bench.sh $(N)

# Runs `tocsin bench --rates` the same way: 1,000 SMS at 50/s to the strict
# Twilio fake, in real time, from one process and from three worker processes.
bench-rates: redis-server
	bash scripts/bench.sh --rates

# Runs `tocsin bench --crowd 16 --rounds 5` the same way: the broadcast to N
# recipients alone and while 16 clients read the status page, five rounds.
bench-crowd: redis-server
	bash scripts/bench.sh $(N) --crowd 16 --rounds 5

# Runs `tocsin bench --e2e` the same way, three rounds each: 50,000 SMS
# through the real SMS channel against the raw HTTP ceiling (a Go client
# posting straight to the same built-in Twilio stand-in), then the rate used
# at 1,000/s and at 5,000/s with the stand-in answering in 100 ms.
bench-e2e: redis-server
	bash scripts/bench.sh 50000 --e2e --rounds 3
	bash scripts/bench.sh 10000 --e2e --rounds 3 --e2e-rate 1000/s --provider-latency 100ms
	bash scripts/bench.sh 50000 --e2e --rounds 3 --e2e-rate 5000/s --provider-latency 100ms

lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Lints the served OpenAPI document with Redocly's recommended rules. Not part
# of `make test`: it installs @redocly/cli from the npm registry the first time.
lint-openapi: build
	bash scripts/lint-openapi.sh

# Installs what the tests run and is missing, with Debian's packages: redis-server
# (unless $TOCSIN_REDIS_SERVER names one), and jq and curl, which the README tour
# test (cmd/tocsin/readme_test.go) pastes the tour into bash with, and chromium
# (unless $TOCSIN_CHROMIUM names one), which the status page's browser test
# (statuspage/browser_test.go) drives headless. apt-get waits up to ten minutes
# for dpkg's lock (another install, unattended-upgrades) rather than failing.
redis-server:
	@missing=; \
	if [ -z "$$TOCSIN_REDIS_SERVER" ] && ! command -v redis-server >/dev/null 2>&1; then missing="$$missing redis-server"; fi; \
	if [ -z "$$TOCSIN_CHROMIUM" ] && [ ! -x /usr/bin/chromium ]; then missing="$$missing chromium"; fi; \
	for tool in jq curl; do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
		echo "not found:$$missing: installing Debian's packages"; \
		if [ "$$(id -u)" -eq 0 ]; then sudo=; \
		elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
		else echo "missing:$$missing, and this user cannot install it: run 'apt-get install$$missing' as root" >&2; exit 1; fi; \
		$$sudo apt-get -o DPkg::Lock::Timeout=600 update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y $$missing; \
	fi
