#pragma once
// Internal: the one fan-out over independent work items that the numeric kernels share.
#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

#include <ATen/Parallel.h>

namespace metaprobe::detail {

// Splits [0, n) into at most at::get_num_threads() contiguous chunks of at least `grain` items and runs
// f(begin, end) on each, one chunk per thread (the caller's thread takes the first); rethrows the first error.
// at::parallel_for would do the same, but with ATen's OpenMP backend it is a header template that runs in
// parallel only when the calling file is built with -fopenmp, which would put libgomp on every link line (and
// a second OpenMP runtime beside the one a pip wheel of torch bundles); a plain fan-out has neither problem.
// Callers keep results independent of the split (per-item outputs, or partials combined in item order), so
// results do not depend on the thread count.
template <typename F>
void parallel_for(std::int64_t n, std::int64_t grain, const F& f) {
  if (n <= 0) return;
  const std::int64_t max_chunks = std::max<std::int64_t>(1, n / std::max<std::int64_t>(grain, 1));
  const std::int64_t chunks = std::min<std::int64_t>(std::max(1, at::get_num_threads()), max_chunks);
  if (chunks <= 1) {
    f(std::int64_t{0}, n);
    return;
  }
  const std::int64_t size = (n + chunks - 1) / chunks;
  std::vector<std::thread> workers;
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(chunks));
  auto job = [&](std::int64_t c) {
    try {
      f(c * size, std::min(n, (c + 1) * size));
    } catch (...) {
      errors[static_cast<std::size_t>(c)] = std::current_exception();
    }
  };
  workers.reserve(static_cast<std::size_t>(chunks - 1));
  for (std::int64_t c = 1; c < chunks && c * size < n; ++c) workers.emplace_back(job, c);
  job(0);
  for (auto& w : workers) w.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace metaprobe::detail
