# Orrery's build and test entry points. `make test` is the README's test
# command and what CI runs (.ci/run).

GO        ?= go
APT_PKGS  := prometheus prometheus-node-exporter awscli prometheus-alertmanager postgresql chromium systemd
# An execution count, not a duration: with a duration, Go 1.26's fuzz
# coordinator can fail at the deadline with "context deadline exceeded"
# without any failing input (golang/go#75804, fixed in Go 1.27).
FUZZTIME  ?= 50000x

.PHONY: build test deps unit fuzz bench

build:
	$(GO) build -o bin/orrery ./cmd/orrery

# deps installs the third-party programs the integration tests run, from
# Debian's packages, when they are missing.
deps:
	@missing=""; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-node-exporter >/dev/null || missing="$$missing prometheus-node-exporter"; \
	[ -x /usr/bin/aws ] || missing="$$missing awscli"; \
	command -v amtool >/dev/null || missing="$$missing prometheus-alertmanager"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PKGS) >/dev/null; \
	fi
	@echo "building the reference Prometheus 3, promtool and amtool from the embedded module versions (test/reference)"
	cd test/reference && $(GO) build -o $(CURDIR)/bin/prometheus3 github.com/prometheus/prometheus/cmd/prometheus
	cd test/reference && $(GO) build -o $(CURDIR)/bin/promtool3 github.com/prometheus/prometheus/cmd/promtool
	cd test/reference && $(GO) build -o $(CURDIR)/bin/amtool3 github.com/prometheus/alertmanager/cmd/amtool
	@echo "building Cortex v1.21.1 for the scale-out tests (test/cortex; about 2 min on 2 cores, 30 s more to download modules)"
	cd test/cortex && $(GO) build -tags "netgo slicelabels" -o $(CURDIR)/bin/cortex github.com/cortexproject/cortex/cmd/cortex

test: deps
	$(GO) vet ./...
	PROMETHEUS3_BINARY=$(CURDIR)/bin/prometheus3 PROMTOOL3_BINARY=$(CURDIR)/bin/promtool3 AMTOOL3_BINARY=$(CURDIR)/bin/amtool3 CORTEX_BINARY=$(CURDIR)/bin/cortex $(GO) test -timeout 45m ./...
	# The shards' chunk reads race with appends unless the open chunk is copied: only -race sees it.
	$(GO) test -race -run '^TestHeadShard' ./internal/storage/
	$(GO) test -race -run '^TestOTLPCache' ./internal/ingest/
	$(MAKE) fuzz

unit:
	$(GO) test -short ./internal/...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeV1$$' -fuzztime $(FUZZTIME) ./internal/ingest/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeV2$$' -fuzztime $(FUZZTIME) ./internal/ingest/
	$(GO) test -run '^$$' -fuzz '^FuzzScanValidV1$$' -fuzztime $(FUZZTIME) ./internal/ingest/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeOTLP$$' -fuzztime $(FUZZTIME) ./internal/ingest/
	$(GO) test -run '^$$' -fuzz '^FuzzOTLPCache$$' -fuzztime $(FUZZTIME) ./internal/ingest/
	$(GO) test -run '^$$' -fuzz '^FuzzParseAuthorization$$' -fuzztime $(FUZZTIME) ./internal/auth/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/policy/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/dashboard/
	$(GO) test -run '^$$' -fuzz '^FuzzXORDecoder$$' -fuzztime $(FUZZTIME) ./internal/query/

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...
