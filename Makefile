# Kuzet: the two commands are `make demo` and `make test`.
GO      ?= go
BIN     := bin/kuzet
GOFILES := $(shell find . -name '*.go' -not -path './var/*' 2>/dev/null)

.PHONY: demo test build deps-demo deps-test vet clean

## build: the kuzet binary in bin/
build: $(BIN)

$(BIN): $(GOFILES) go.mod go.sum
	$(GO) build -o $(BIN) ./cmd/kuzet

## demo: everything on this machine with simulated cameras; UI at http://127.0.0.1:8080
demo: deps-demo build
	./$(BIN) demo

## test: every test with the race detector; real PostgreSQL, MinIO, ffmpeg and Chromium required
test: deps-test vet
	KUZET_TEST_REQUIRE=1 $(GO) test -race -count=1 -timeout 80m ./...

deps-demo:
	@scripts/deps.sh demo

deps-test:
	@scripts/deps.sh test

## vet: gofmt and go vet
vet:
	@unformatted=$$(gofmt -l $(GOFILES)); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

## clean: remove the binary and the demo state in var/ (recordings included)
clean:
	rm -rf bin var
