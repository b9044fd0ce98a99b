# mindie-deployer: the Kubernetes-native way to deploy MindIE inference services.
SHELL := /usr/bin/env bash
GO    ?= go
BIN   := bin
# staticcheck runs from the module proxy at this version; generated code is not linted.
STATICCHECK_VERSION ?= v0.8.2

.PHONY: all build generate verify verify-codegen verify-gofmt vet lint test test-unit test-integration test-e2e bench bench-report run down testbin clean

all: build

## build: bin/mindie-apiserver, bin/mindie-controller, bin/kubectl-mindie (the kubectl plugin) and bin/mindie-router
build:
	$(GO) build -o $(BIN)/mindie-apiserver ./cmd/mindie-apiserver
	$(GO) build -o $(BIN)/mindie-controller ./cmd/mindie-controller
	$(GO) build -o $(BIN)/kubectl-mindie ./cmd/kubectl-mindie
	$(GO) build -o $(BIN)/mindie-router ./cmd/mindie-router

## generate: regenerate deepcopy, conversion, defaults, OpenAPI, clientset, listers, informers, apply configurations
generate:
	hack/update-codegen.sh

## verify: generated code is current, gofmt, go vet and staticcheck are clean
verify: verify-gofmt vet lint verify-codegen

lint:
	GOFLAGS=-mod=mod $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $$($(GO) list ./... | grep -v /pkg/generated/)

verify-codegen:
	hack/verify-codegen.sh

verify-gofmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## test: every test: unit, registry (real etcd) and the whole server in-process
test:
	$(GO) test -count=1 -timeout 30m ./...

test-unit:
	$(GO) test -count=1 ./apis/... ./pkg/...

test-integration:
	$(GO) test -count=1 -timeout 30m ./test/...

## bench: benchmarks against baselines measured in the same run, with goals; keeps the results in docs/bench/ and renders docs/benchmarks.md and docs/reconcile-bench.md
bench:
	hack/bench.sh

## bench-report: render docs/benchmarks.md, docs/reconcile-bench.md and docs/scale-check.md again from the results in docs/bench/
bench-report:
	$(GO) run ./test/bench/report

## run: a local cluster (etcd, kube-apiserver, controller-manager, scheduler) with mindie-apiserver registered and a sample applied
run:
	hack/run.sh

## down: stop the local cluster
down:
	hack/local-down.sh

## testbin: build the local cluster's binaries (cached under .cache/testbin)
testbin:
	hack/testbin/build.sh

clean:
	rm -rf $(BIN) _output
