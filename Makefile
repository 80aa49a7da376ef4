# PGXS build of the velostream extension (C++17).
#   make && make install          build and install into the server found by pg_config
#   make unit                     engine unit tests (CMake + GoogleTest, no database)
#   make unit-asan                the same under AddressSanitizer + UBSan (build-asan/)
#   make fuzz                     the engine's libFuzzer targets, 20 s each (build-fuzz/)
#   make installcheck             pg_regress suite (sql/*.sql against expected/*.out)
#                                 on a running server that preloads velostream
#                                 with velostream.database = 'contrib_regression'
#                                 (test/regress/velostream.conf); test/regress/run.sh
#                                 runs it on a temporary instance instead
EXTENSION = velostream
MODULE_big = velostream
# Install and upgrade scripts only: sql/ also holds the regress tests.
DATA = $(wildcard sql/$(EXTENSION)--*.sql)
# PGXS adds --dbname=contrib_regression. The tests hold non-ASCII text.
REGRESS = aggregates copy ddl dump errors event_time expressions filters groups guards intervals kafka_ddl native_expressions privileges results
REGRESS_OPTS = --encoding=UTF8
PG_CONFIG ?= pg_config

ENGINE_SRCS = $(wildcard src/engine/*.cpp)
PG_SRCS = $(wildcard src/pg/*.cpp)
KAFKA_SRCS = $(wildcard src/kafka/*.cpp)
OBJS = $(ENGINE_SRCS:.cpp=.o) $(KAFKA_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o)

PG_CPPFLAGS = -Isrc
PG_CXXFLAGS = -std=c++17 -O2 -Wno-register -fno-strict-aliasing
SHLIB_LINK = -lstdc++ $(shell pkg-config --libs absl_flat_hash_map absl_hash simdjson rdkafka)

# No JIT bitcode: it would need clang with C++17 flags, and the extension
# gains nothing from it. `override` outlasts Makefile.global's setting.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS passes PG_CXXFLAGS only through CXXFLAGS; make sure C++17 reaches it.
override CXXFLAGS += $(PG_CXXFLAGS)

$(OBJS): $(wildcard src/engine/*.h) $(wildcard src/pg/*.h) $(wildcard src/kafka/*.h)

.PHONY: unit unit-asan fuzz bench
unit:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j2 && cd build && ctest --output-on-failure

unit-asan:
	cmake -S . -B build-asan -DVELOSTREAM_SANITIZE=ON >/dev/null && cmake --build build-asan -j2 --target engine_tests && cd build-asan && ctest --output-on-failure

fuzz:
	bash test/fuzz/run.sh

# Every benchmark; rewrites bench/RESULTS.md (about 30 minutes; bench/run_all.sh).
bench:
	bash bench/run_all.sh
