# gantry — build, test and run. `make run` and `make test` are the two set-up commands;
# both work on a fresh Debian 12 machine as root (they install what they need).

GO        ?= go
BIN       := bin
CACHE     := $(CURDIR)/.cache
IMAGES    := $(CACHE)/images
FUZZTIME  ?= 20s
TESTFLAGS ?=
export GANTRY_CACHE := $(CACHE)

.PHONY: all build test test-unit bench fuzz lint images deps run clean vault coredns

all: build

build:
	$(GO) build -o $(BIN)/gantry ./cmd/gantry

## deps: install the host packages (containerd, runc, CNI plugins, git, nftables, …).
deps:
	bash scripts/setup-host.sh

## images: build the test images (e2e/images) as OCI archives under .cache/images.
images:
	$(GO) run ./e2e/images/build -out $(IMAGES)

## vault: build the Vault dev server the tests run (v1.14.1, MPL-2.0) into .cache/vault/vault;
## skipped when it is up to date with e2e/tools/vaultdev (see its README).
vault:
	bash e2e/tools/vaultdev/build.sh $(CACHE)/vault/vault

## coredns: build CoreDNS (v1.15.0, plugins multisocket/bind/file/hosts) for the DNS benchmark into
## .cache/coredns/coredns; skipped when up to date with e2e/tools/coredns (see its README).
coredns:
	bash e2e/tools/coredns/build.sh $(CACHE)/coredns/coredns

## test: everything CI runs — lint, unit, integration and e2e tests, a bounded fuzz run.
test: deps images vault lint
	$(GO) test -count=1 -timeout 40m $(TESTFLAGS) ./...
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./manifest

## test-unit: the fast tests only (no root, no containerd).
test-unit:
	$(GO) test -short -count=1 ./...

## bench: the benchmarks written up in docs/BENCHMARKS.md.
bench: deps images coredns
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./...

## fuzz: a longer fuzz run.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime 5m ./manifest

## lint: gofmt, go vet and the import-rule test.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 -run '^TestImportRules$$' .

## run: the quickstart — gantry up in the foreground, deploying manifests-example from git
## (a directory that is not a repository is made one; commit edits to deploy them).
## State under .cache/run; Ctrl-C stops gantry and leaves the pods running.
## A DEMO Vault dev server on 127.0.0.1:8200 (scripts/vault-demo.sh) holds the example's
## secret values and runs as long as gantry does.
RUNDIR := $(CACHE)/run
run: deps build images vault
	$(BIN)/gantry validate manifests-example
	mkdir -p $(RUNDIR)
	@echo "gantry: API https://127.0.0.1:6443, client config $(RUNDIR)/client.config"
	@echo "gantry: in another shell: export GANTRY_CONFIG=$(RUNDIR)/client.config; $(BIN)/gantry get apps; $(BIN)/gantry get pods"
	VAULT=$(CACHE)/vault/vault bash scripts/vault-demo.sh $(RUNDIR) -- \
	$(BIN)/gantry up --repo manifests-example --data-dir $(RUNDIR) --listen 127.0.0.1:6443 \
	  --client-config $(RUNDIR)/client.config --poll-interval 5s \
	  --vault-credentials-dir $(RUNDIR)/credentials \
	  $$(for a in $(IMAGES)/*.tar; do printf -- '--import %s ' "$$a"; done)

clean:
	rm -rf $(BIN) $(CACHE)
