# A thin layer over CMake. `make run` and `make test` do all set-up on a fresh
# Debian machine (packages are installed when missing).
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# CI builds warnings-as-errors.
ifneq ($(CI),)
CMAKE_FLAGS += -DPORTER_WERROR=ON
endif

.PHONY: all deps build run test test-asan test-tsan bench soak clean

all: build

deps:
	@tests/support/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

# Builds and starts porterd in the foreground on built-in defaults.
run: build
	$(BUILD)/daemon/porterd

# Every suite, then the unit, integration and fault suites again under
# ASan+UBSan, and the threading suites under TSan.
test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 900
	$(MAKE) test-asan test-tsan

test-asan: deps
	cmake -S . -B $(BUILD)-asan -DPORTER_ASAN=ON -DPORTER_UBSAN=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure --timeout 900 -L "unit|integration|fault"

test-tsan: deps
	cmake -S . -B $(BUILD)-tsan -DPORTER_TSAN=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD)-tsan -j $(JOBS)
	cd $(BUILD)-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		ctest --output-on-failure --timeout 900 -L tsan

# Benchmarks run one after another (-j 1) so they do not disturb each other.
bench: build
	@tests/support/install-deps.sh tests/support/bench-packages.txt
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j 1 --target bench

# A bounded mixed load from 32 threads (SOAK_SECONDS, default 120, at most
# 540; and SOAK_THREADS) of pings, batches, cancels, files, PostgreSQL and
# HTTP against servers it starts and stops itself; prints requests per kind,
# failures by code, hangs, data checks, and porterd's RSS and fd count after
# warm-up, half way and at the end.
SOAK_SECONDS ?= 120
SOAK_THREADS ?= 32
soak: build
	cmake --build $(BUILD) -j $(JOBS) --target porter_soak
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_THREADS=$(SOAK_THREADS) $(BUILD)/tests/fault/porter_soak

clean:
	rm -rf $(BUILD)
