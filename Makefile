# Thin wrappers over the CMake presets. `make test` and `make demo` install what is missing first.
.PHONY: deps bench-deps test test-release test-sanitize demo bench clean

APT_PACKAGES := libeigen3-dev doctest-dev libbenchmark-dev cmake g++ make
JOBS ?= 2

# Install the build dependencies through apt-get when root; otherwise say the exact command.
deps:
	@missing=""; \
	[ -f /usr/include/eigen3/Eigen/Core ] || missing="$$missing libeigen3-dev"; \
	[ -f /usr/include/doctest/doctest.h ] || missing="$$missing doctest-dev"; \
	[ -f /usr/include/benchmark/benchmark.h ] || missing="$$missing libbenchmark-dev"; \
	command -v cmake >/dev/null || missing="$$missing cmake"; \
	command -v g++ >/dev/null || missing="$$missing g++"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "dsm: installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "dsm: missing packages; run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

# One build: examples at -O3, tests at -O1 under ASan + UBSan (release preset). test-sanitize
# builds everything sanitized, for a deeper look; CI does not run it.
test: deps test-release

test-release:
	cmake --preset release
	cmake --build --preset release -j $(JOBS)
	ctest --preset release -j $(JOBS)
	@# The compile times measured by the compile_time_umbrella test (W8), which ctest keeps in its log.
	@grep -h "compile time of\|^W8" build/release/Testing/Temporary/LastTest.log || true

test-sanitize:
	cmake --preset sanitize
	cmake --build --preset sanitize -j $(JOBS)
	ctest --preset sanitize -j $(JOBS)

demo: deps
	cmake --preset release
	cmake --build --preset release -j $(JOBS) --target moe_lm
	bash examples/data/fetch_brown.sh build/data
	./build/release/examples/moe_lm --data build/data/brown --out build/moe_lm

# The peer in its best configuration: LibTorch with OpenBLAS (Debian's reference BLAS otherwise
# backs LibTorch's fp32 GEMM at a few GFLOP/s). Installed when root, else the command is printed.
bench-deps: deps
	@missing=""; \
	[ -f /usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake ] || missing="$$missing libtorch-dev"; \
	ls /usr/lib/x86_64-linux-gnu/openblas-*/libblas.so.3 >/dev/null 2>&1 || missing="$$missing libopenblas0-pthread"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "dsm: installing the benchmark peer:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "dsm: for the LibTorch peer run: sudo apt-get install -y$$missing (continuing without it)"; \
	  fi; \
	fi

bench: bench-deps
	cmake --preset bench
	cmake --build --preset bench -j $(JOBS)
	./build/bench/bench/dsm_bench_w0 --benchmark_repetitions=5
	./build/bench/bench/dsm_bench_w1 --benchmark_repetitions=5
	./build/bench/bench/dsm_bench_w2 --benchmark_repetitions=5
	./build/bench/bench/dsm_bench_w3 --benchmark_repetitions=5
	./build/bench/bench/dsm_bench_w4 --benchmark_repetitions=5
	./build/bench/bench/dsm_bench_w5 --benchmark_repetitions=5
	./build/bench/bench/dsm_bench_w6 --benchmark_repetitions=5
	./build/bench/bench/dsm_bench_w7 --benchmark_repetitions=3

clean:
	rm -rf build
