# The README contract: `make run` and `make test` do everything on a fresh
# Debian 12 (dependencies included).
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS ?= $(shell nproc)

.PHONY: all deps build run deb test test-unit test-asan test-fuzz format format-check clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD) -j $(JOBS)

run: build
	@bash scripts/run-default.sh $(BUILD)

# Everything: formatting, a short fuzz run of every wire parser, the Debian
# package (built once here, so test_deb_service only installs it), the
# ASan+UBSan build's unit + system tests, then the release build's unit +
# system + e2e tests (last, so ctest's summary closes the output).
test: deps format-check build
	$(MAKE) --no-print-directory test-fuzz
	$(MAKE) --no-print-directory deb
	$(MAKE) --no-print-directory test-asan
	cd $(BUILD) && ctest --output-on-failure -j 1

test-asan:
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DNVEMU_SANITIZE=ON \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
	ninja -C $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -L 'unit|system' -j 1

test-fuzz:
	@bash scripts/run-fuzz.sh $(FUZZ_BUILD)

# The Debian package, built by dpkg-buildpackage in a copy of the tree under
# $(DEB_BUILD) (it writes its results to the parent of the tree it builds),
# then checked by lintian. Result: $(DEB_BUILD)/nvemu_<version>_amd64.deb.
DEB_BUILD ?= build-deb
deb: deps
	@bash scripts/make-deb.sh $(DEB_BUILD)

format:
	@git ls-files '*.cpp' '*.h' | xargs clang-format -i

format-check:
	@bash scripts/format-check.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
