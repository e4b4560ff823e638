# Cairn — convenience wrapper around CMake. Every target first makes sure the
# system packages are there (scripts/setup.sh installs only what is missing).
#
#   make run        build and start Cairn on ./cairn-data
#   make test       build and run the fast tests (ctest)
#   make test-asan  the fast tests under ASan+UBSan
#   make test-tsan  the concurrency tests under TSan
#   make test-long  the long runs (10,000 power cuts, ...)
#   make test-valgrind  the C unit tests under valgrind memcheck (slow)
#   make bench      benchmarks, side by side with the raw disk and the peers
#   make fuzz       each fuzz target under libFuzzer, FUZZ_SECONDS (60) each
#   make check-clang  build everything with clang too (its warnings differ)
JOBS ?= 2
CMAKE_FLAGS ?=
WERROR ?= $(or $(CAIRN_WERROR),ON)

FUZZ_SECONDS ?= 60
# The machine-metrics set for `cairn-bench ts` (empty: the default built in,
# ../shared/tsdata/machine-metrics.csv.zst beside the repository).
TSDATA ?=

.PHONY: all setup build run test test-asan test-tsan test-long test-valgrind bench fuzz check-clang redis-compat-record clean

all: build

setup:
	@CAIRN_SETUP_QUIET=1 scripts/setup.sh

build: setup
	@cmake -S . -B build -DCAIRN_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j $(JOBS)

run: build
	@scripts/run.sh

test: build
	cd build && ctest --output-on-failure -j $(JOBS) -LE long

test-asan: setup
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCAIRN_SANITIZE=address -DCAIRN_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j $(JOBS) -LE long

test-tsan: setup
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DCAIRN_SANITIZE=thread -DCAIRN_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-tsan -j $(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j $(JOBS) -L concurrency

# The C test programs of label "unit" (unit tests and fuzz-corpus replays)
# under memcheck, in a plain Debug build: a test passes only if valgrind
# finds no error and no definite leak (exit 99 otherwise). Not the CLI
# (shell) and server (python) tests: they start the programs themselves, so
# valgrind would check bash and python, not Cairn; nor the cairn-stress runs
# (timed runs of forked children: test-asan and test-tsan cover them). CAIRN_UNDER_VALGRIND=1
# lets the longest tests run smaller workloads (same code paths).
VALGRIND = valgrind;--tool=memcheck;--error-exitcode=99;--leak-check=full;--errors-for-leak-kinds=definite;--num-callers=30;--quiet
test-valgrind: setup
	@CAIRN_SETUP_QUIET=1 scripts/setup.sh --valgrind
	@cmake -S . -B build-valgrind -DCMAKE_BUILD_TYPE=Debug -DCAIRN_WERROR=$(WERROR) \
		"-DCAIRN_TEST_LAUNCHER=$(VALGRIND)" -DCAIRN_TEST_TIMEOUT=3600 $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-valgrind -j $(JOBS)
	cd build-valgrind && CAIRN_UNDER_VALGRIND=1 ctest --output-on-failure -j $(JOBS) -L unit -LE server -E '^(cli_|stress_)'

test-long: build
	cd build && ctest --output-on-failure -j $(JOBS) -L long

bench: build
	@CAIRN_SETUP_QUIET=1 scripts/setup.sh --bench
	./build/cairn-bench wal
	./build/cairn-bench ts $(if $(TSDATA),--tsdata $(TSDATA))
	./build/cairn-bench tiers
	./build/cairn-bench engine
	bench/server.sh

# Record Redis 7's replies to the compatibility corpus
# (tests/integration/redis_compat/) from a real redis-server: after the
# corpus changes. The test (server_redis_compat) compares cairn-server's.
redis-compat-record:
	@CAIRN_SETUP_QUIET=1 scripts/setup.sh --bench
	python3 tests/integration/server_redis_compat.py --record

# Every target compiled by clang, warnings as errors: clang warns about
# things gcc lets through, and the fuzz build uses it.
check-clang: setup
	@CAIRN_SETUP_QUIET=1 scripts/setup.sh --fuzz
	@CC=clang cmake -S . -B build-clang -DCAIRN_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-clang -j $(JOBS)

fuzz: setup
	@CAIRN_SETUP_QUIET=1 scripts/setup.sh --fuzz
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCAIRN_SANITIZE=address -DCAIRN_FUZZ=ON -DCAIRN_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_resp fuzz_sst fuzz_sst_roundtrip fuzz_sst_resum fuzz_wal fuzz_wal_roundtrip fuzz_db_replay fuzz_manifest fuzz_manifest_resum fuzz_config fuzz_dispatch fuzz_ts_chunk fuzz_ts_filter fuzz_blob
	scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf build build-asan build-tsan build-fuzz build-valgrind build-clang
