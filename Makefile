# snap — build, test, demo and benchmarks. See README.md.
GO      ?= go
BIN     := bin/snap
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
DEMO    ?= $(CURDIR)/demo

.PHONY: build test vet fmt-check demo bench bench-quick bench-deps fuzz test-minio clean man completion

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/snap

# The man page and shell completions, generated from the CLI definition.
man: build
	$(BIN) man > bin/snap.1

completion: build
	$(BIN) completion bash > bin/snap.bash
	$(BIN) completion zsh > bin/_snap
	$(BIN) completion fish > bin/snap.fish

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# All tests. Server tests use SNAP_TEST_POSTGRES / SNAP_TEST_MYSQL when set
# (.ci/run sets them) and fail when those servers are unreachable. S3 tests
# start versitygw (SNAP_TEST_VERSITYGW, else $PATH or ~/go/bin).
test: build fmt-check vet
	$(GO) test -count=1 -timeout 13m ./...

# Back up a sample directory into a local repository, list it, restore it,
# and compare.
demo: build
	@rm -rf $(DEMO) && mkdir -p $(DEMO)/data/docs $(DEMO)/data/bin
	@echo "hello from snap" > $(DEMO)/data/docs/hello.txt
	@head -c 3000000 /dev/urandom > $(DEMO)/data/bin/random.bin
	@ln -s docs/hello.txt $(DEMO)/data/link
	@printf 'secret-demo-password\n' > $(DEMO)/password
	SNAP_PASSWORD_FILE=$(DEMO)/password SNAP_CACHE_DIR=$(DEMO)/cache $(BIN) init -r $(DEMO)/repo
	SNAP_PASSWORD_FILE=$(DEMO)/password SNAP_CACHE_DIR=$(DEMO)/cache $(BIN) create -r $(DEMO)/repo --tag demo $(DEMO)/data
	SNAP_PASSWORD_FILE=$(DEMO)/password SNAP_CACHE_DIR=$(DEMO)/cache $(BIN) create -r $(DEMO)/repo --tag demo $(DEMO)/data
	SNAP_PASSWORD_FILE=$(DEMO)/password SNAP_CACHE_DIR=$(DEMO)/cache $(BIN) list -r $(DEMO)/repo
	SNAP_PASSWORD_FILE=$(DEMO)/password SNAP_CACHE_DIR=$(DEMO)/cache $(BIN) restore -r $(DEMO)/repo latest --target $(DEMO)/restored
	diff -r $(DEMO)/data $(DEMO)/restored$(DEMO)/data && echo "demo: restored tree is identical to the original"

# Benchmarks against restic and borg on the same data, in the same run
# (cmd/snap-bench; about 20 minutes). Writes docs/benchmarks.md. bench-quick
# runs small datasets for iteration and writes $(BENCH_WORK)-quick/benchmarks-quick.md.
BENCH_WORK  ?= $(or $(TMPDIR),/tmp)/snap-bench
BENCH_FLAGS ?=
bench: build bench-deps
	SNAP_TEST_MINIO=$(MINIO) $(GO) run ./cmd/snap-bench -snap $(BIN) -work $(BENCH_WORK) $(BENCH_FLAGS)

bench-quick: build bench-deps
	SNAP_TEST_MINIO=$(MINIO) $(GO) run ./cmd/snap-bench -quick -snap $(BIN) -work $(BENCH_WORK)-quick $(BENCH_FLAGS)

# restic, borg and PostgreSQL's pgbench, installed when missing; the
# PostgreSQL server started when it is down.
bench-deps:
	@missing=""; \
	command -v restic >/dev/null 2>&1 || missing="$$missing restic"; \
	command -v borg >/dev/null 2>&1 || missing="$$missing borgbackup"; \
	pgbench --version >/dev/null 2>&1 || missing="$$missing postgresql postgresql-contrib"; \
	command -v pg_dump >/dev/null 2>&1 || missing="$$missing postgresql-client"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi; \
	if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then \
	  pg_ctlcluster --skip-systemctl-redirect "$$(ls /etc/postgresql | head -1)" main start || true; \
	  for i in $$(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done; \
	fi
	@test -x $(MINIO) || GOBIN=$(dir $(MINIO)) $(GO) install github.com/minio/minio@$(MINIO_VERSION)

# Short fuzzing runs of every decoder of repository bytes, of the mixed
# frames the compressor writes, and of the scouts' cut finder against
# restic/chunker.
FUZZTIME ?= 20s
fuzz:
	$(GO) test ./repo -run '^$$' -fuzz '^FuzzTrailer$$' -fuzztime $(FUZZTIME)
	$(GO) test ./repo -run '^$$' -fuzz '^FuzzKeyFile$$' -fuzztime $(FUZZTIME)
	$(GO) test ./repo -run '^$$' -fuzz '^FuzzConfig$$' -fuzztime $(FUZZTIME)
	$(GO) test ./repo -run '^$$' -fuzz '^FuzzObject$$' -fuzztime $(FUZZTIME)
	$(GO) test ./repo -run '^$$' -fuzz '^FuzzCompressMixed$$' -fuzztime $(FUZZTIME)
	$(GO) test ./repo -run '^$$' -fuzz '^FuzzDecompress$$' -fuzztime $(FUZZTIME)
	$(GO) test ./index -run '^$$' -fuzz '^FuzzSegment$$' -fuzztime $(FUZZTIME)
	$(GO) test ./snapshot -run '^$$' -fuzz '^FuzzTree$$' -fuzztime $(FUZZTIME)
	$(GO) test ./snapshot -run '^$$' -fuzz '^FuzzSnapshot$$' -fuzztime $(FUZZTIME)
	$(GO) test ./chunk -run '^$$' -fuzz '^FuzzCutFinder$$' -fuzztime $(FUZZTIME)
	$(GO) test ./chunk -run '^$$' -fuzz '^FuzzStreamChunker$$' -fuzztime $(FUZZTIME)
	$(GO) test ./sources -run '^$$' -fuzz '^FuzzPgOneTransaction$$' -fuzztime $(FUZZTIME)

# The S3 tests against MinIO instead of versitygw. The MinIO binary is built
# once (about 9 minutes) into $(HOME)/go/bin.
MINIO_VERSION ?= v0.0.0-20260212201848-7aac2a2c5b7c
MINIO ?= $(HOME)/go/bin/minio
test-minio:
	@test -x $(MINIO) || GOBIN=$(dir $(MINIO)) $(GO) install github.com/minio/minio@$(MINIO_VERSION)
	SNAP_TEST_S3=minio SNAP_TEST_MINIO=$(MINIO) $(GO) test -count=1 -timeout 20m ./repo/s3/...
	SNAP_TEST_S3=minio SNAP_TEST_MINIO=$(MINIO) $(GO) test -count=1 -timeout 20m -run '^TestS3' ./cmd/snap/

clean:
	rm -rf bin $(DEMO)
