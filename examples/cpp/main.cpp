// Links the installed metaprobe through find_package(MetaProbe), prints its version, and computes the
// divergence between two small logit tensors.
#include <iostream>

#include <ATen/ATen.h>

#include <metaprobe/metaprobe.hpp>

int main() {
  std::cout << "metaprobe " << metaprobe::kVersion << "\n";
  // Two positions over a 4-token vocabulary; q is p with the first two logits swapped.
  const at::Tensor p = at::tensor({2.0, 1.0, 0.0, -1.0, 0.5, 0.5, 0.5, 0.5}).reshape({2, 4});
  const at::Tensor q = at::tensor({1.0, 2.0, 0.0, -1.0, 0.5, 0.5, 0.5, 0.5}).reshape({2, 4});
  metaprobe::DivergenceOptions options;
  options.metrics = metaprobe::MetricSet::parse({"kl_pq", "js", "top1_agree"});
  const metaprobe::DivergenceResult r = metaprobe::divergence(p, q, options);
  for (int64_t i = 0; i < 2; ++i) {
    std::cout << "position " << i << ": kl_pq=" << r.kl_pq[i].item<double>() << " js=" << r.js[i].item<double>()
              << " top1_agree=" << r.top1_agree[i].item<double>() << "\n";
  }
  return r.count == 2 ? 0 : 1;
}
