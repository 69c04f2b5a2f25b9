# A thin layer over CMake. `make run` and `make test` do all set-up on a fresh
# Debian machine (packages are installed when missing).
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# CI builds warnings-as-errors.
ifneq ($(CI),)
CMAKE_FLAGS += -DPORTER_WERROR=ON
endif

.PHONY: all deps build run test bench clean

all: build

deps:
	@tests/support/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

# Builds and starts porterd in the foreground on built-in defaults.
run: build
	$(BUILD)/daemon/porterd

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 900

# Benchmarks run one after another (-j 1) so they do not disturb each other.
bench: build
	cmake --build $(BUILD) -j 1 --target bench

clean:
	rm -rf $(BUILD)
