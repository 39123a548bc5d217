// bench/steady.hpp: timed steps as in a long run, for both libraries alike.
#pragma once

#include <benchmark/benchmark.h>

namespace dsm_bench {
/// Runs step once untimed, then once per benchmark iteration: the timed steps find the optimizer's
/// state created, the allocators' caches filled and their memory touched, as every step of a long
/// run after its first does (a cold first step, one of a few timed ones, weighed on the rate).
template <class Step>
void run_steady(benchmark::State& state, Step&& step) {
  step();
  for (auto _ : state) step();
}
}  // namespace dsm_bench
