# AfterSMTP — the two commands of the README, and a few helpers.
#   make run     install what is missing, build, start a node on localhost
#   make check   install what is missing, run every test (what CI runs)
#   make demo    the protocol library's demo (seal, open, verify)
.PHONY: run demo check bootstrap build vectors bench clean

BUILD ?= build

run: build
	scripts/run-node.sh $(BUILD)

demo: build
	scripts/demo.sh $(BUILD)/src/cli/amp

check:
	scripts/check.sh

bootstrap:
	scripts/bootstrap.sh

build: bootstrap
	@test -f $(BUILD)/build.ninja || meson setup $(BUILD)
	meson compile -C $(BUILD)

# Regenerate tests/vectors/*.json (review the diff: vectors are normative).
vectors: build
	$(BUILD)/tests/vectors/amp-gen-vectors tests/vectors

bench: build
	bench/run.sh

clean:
	rm -rf build build-asan build-fuzz
