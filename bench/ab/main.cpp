// bench/ab/main.cpp: alternates rounds of steps of the two variants (a, then b, then a...) in one
// process, so that both see the same machine: on a shared machine whose speed drifts by 20-40%
// within an hour, separate runs cannot show a 2% change; alternating rounds can.
//   ab <threads> <rounds> <steps per round>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

extern "C" void run_a(int threads, int n, double* times);
extern "C" void run_b(int threads, int n, double* times);

namespace {
double quantile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}
}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1, rounds = argc > 2 ? std::atoi(argv[2]) : 20, steps = argc > 3 ? std::atoi(argv[3]) : 5;
  if (threads < 1 || rounds < 1 || steps < 1) {
    std::fprintf(stderr, "usage: ab <threads >= 1> <rounds >= 1> <steps per round >= 1>\n");
    return 2;
  }
  std::vector<double> times(static_cast<std::size_t>(3 * std::max(steps, 2)));
  run_a(threads, 2, times.data());  // warm-up: allocations, optimizer state, caches
  run_b(threads, 2, times.data());
  std::vector<double> phase[2][3];
  for (int r = 0; r < rounds; ++r)
    for (int v = 0; v < 2; ++v) {
      (v == 0 ? run_a : run_b)(threads, steps, times.data());
      for (int i = 0; i < steps; ++i)
        for (int p = 0; p < 3; ++p) phase[v][p].push_back(times[static_cast<std::size_t>(3 * i + p)]);
    }
  std::printf("ms per step, %d thread(s), %d steps each   forward (p10, median)   backward (p10, median)   step (p10, median)\n", threads, rounds * steps);
  for (int v = 0; v < 2; ++v)
    std::printf("%c %38.2f %8.2f %14.2f %8.2f %12.2f %8.2f\n", v == 0 ? 'a' : 'b', quantile(phase[v][0], .1), quantile(phase[v][0], .5),
                quantile(phase[v][1], .1), quantile(phase[v][1], .5), quantile(phase[v][2], .1), quantile(phase[v][2], .5));
  std::printf("b / a: step median %.4f, p10 %.4f\n", quantile(phase[1][2], .5) / quantile(phase[0][2], .5), quantile(phase[1][2], .1) / quantile(phase[0][2], .1));
}
