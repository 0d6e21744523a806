#include "sum_of_squares.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "../runtime/openmp_required.h"

namespace edgerazor::train {

double sum_of_squares_f64(const at::Tensor& t) {
  if (!(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous()))
    return t.to(at::kDouble).pow(2).sum().item<double>();
  const float* x = t.data_ptr<float>();
  const int64_t n = t.numel();
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
  at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      double acc = 0;
      for (int64_t i = c * kChunk, end = std::min(n, i + kChunk); i < end; ++i) acc += double(x[i]) * double(x[i]);
      partial[static_cast<size_t>(c)] = acc;
    }
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace edgerazor::train
