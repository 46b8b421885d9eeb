#pragma once
// Internal: the one fan-out over independent work items that the numeric kernels share.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

#include <ATen/Parallel.h>

namespace metaprobe::detail {

// True when parallel_for below runs on torch's own intra-op pool. With ATen's OpenMP backend (the pip
// wheels) at::parallel_for is a header template around `#pragma omp parallel`, so it is parallel only in
// files compiled with -fopenmp; the build gives that flag to the kernels that include this header and links
// the OpenMP runtime libtorch_cpu itself loads (cmake/MetaProbeTorch.cmake, Note [OpenMP]).
#if !AT_PARALLEL_OPENMP || defined(_OPENMP)
#if AT_PARALLEL_OPENMP && !defined(INTRA_OP_PARALLEL)
#error "ATen/Parallel.h was first included without -fopenmp (a precompiled header?): at::parallel_for would be serial"
#endif
inline constexpr bool kOnTorchPool = true;
#else
inline constexpr bool kOnTorchPool = false;
#endif

// Splits [0, n) into at most at::get_num_threads() contiguous chunks of at least `grain` items and runs
// f(begin, end) on each; rethrows the first error. Runs on torch's intra-op thread pool (at::parallel_for), so
// it neither starts threads per call nor competes with torch's own OpenMP workers; a file built without
// OpenMP falls back to a per-call std::thread fan-out. Callers keep results independent of the split
// (per-item outputs, or partials combined in item order), so results do not depend on the thread count.
template <typename F>
void parallel_for(std::int64_t n, std::int64_t grain, const F& f) {
  if (n <= 0) return;
  grain = std::max<std::int64_t>(grain, 1);
  if constexpr (kOnTorchPool) {
    // at::parallel_for stays serial when n <= grain; below 2 * grain a second chunk would be < grain.
    at::parallel_for(0, n, n < 2 * grain ? n : grain, f);
  } else {
    const std::int64_t max_chunks = std::max<std::int64_t>(1, n / grain);
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
}

// Dynamic form of parallel_for for items of uneven cost on a shared machine: up to at::get_num_threads()
// workers (fewer when n / chunk is small) each build their scratch state once with setup() and then claim
// chunks of `chunk` consecutive items from a shared counter, calling body(state, begin, end) on each. A
// worker whose core is taken by another process simply claims fewer chunks, where a static split would make
// the whole call wait for its slowest share. Which worker runs an item varies from call to call, so callers
// must make each item's result depend on the item alone (per-item outputs; scratch contents never carried
// from one item to the next); then results are bitwise independent of the thread count and the schedule.
template <typename Setup, typename Body>
void parallel_claim(std::int64_t n, std::int64_t chunk, const Setup& setup, const Body& body) {
  if (n <= 0) return;
  chunk = std::max<std::int64_t>(chunk, 1);
  const std::int64_t chunks = (n + chunk - 1) / chunk;
  const std::int64_t workers = std::min<std::int64_t>(std::max(1, at::get_num_threads()), chunks);
  std::atomic<std::int64_t> next{0};
  auto work = [&](std::int64_t, std::int64_t) {
    auto state = setup();
    for (;;) {
      const std::int64_t b = next.fetch_add(chunk, std::memory_order_relaxed);
      if (b >= n) break;
      body(state, b, std::min(n, b + chunk));
    }
  };
  if (workers <= 1) {
    work(0, 1);
    return;
  }
  parallel_for(workers, 1, work);
}

}  // namespace metaprobe::detail
