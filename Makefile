# Thin wrapper over Meson for the README's commands. Every target installs
# missing Debian packages first (scripts/deps.sh is a no-op when all are there).
#
#   make run     build and start cosignerd on ./data (LMDB), 127.0.0.1:7074
#   make test    every test: ASan+UBSan build, TSan build, release build
#   make bench   benchmarks, one JSON line per figure
#   make chaos   the long chaos run (release gate)
#   make fuzz    every fuzz target for FUZZ_SECONDS each

MESON   ?= meson
NINJA   ?= ninja
BUILD   ?= build
ARGS    ?=
FUZZ_SECONDS ?= 60

.PHONY: all deps build run test bench chaos fuzz format clean

all: build

deps:
	@bash scripts/deps.sh

$(BUILD)/build.ninja: | deps
	$(MESON) setup $(BUILD) --buildtype=release -Dfault_injection=false

build: deps $(BUILD)/build.ninja
	$(NINJA) -C $(BUILD)

run: build
	@mkdir -p data
	@echo "cosigner-cli and cosigner-bench are in ./$(BUILD)/cli/"
	./$(BUILD)/src/cosignerd --listen 127.0.0.1:7074 --data-dir ./data $(ARGS)

test: deps
	bash scripts/test.sh

bench: build
	bash scripts/bench.sh $(BUILD)

chaos: deps
	bash scripts/chaos.sh long

fuzz: deps
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
