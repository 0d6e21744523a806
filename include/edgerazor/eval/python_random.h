// Python's `random.Random`, bit for bit: MT19937 seeded as random.seed(int) seeds it, and the
// draws lm-evaluation-harness makes with it (sample() for few-shot examples, choices() for
// bootstrap standard errors), so a task run here picks the same few-shot examples as lm-eval.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace edgerazor::eval {

class PythonRandom {
 public:
  explicit PythonRandom(uint64_t seed) { this->seed(seed); }
  void seed(uint64_t seed);         // random.seed(n) for a non-negative int n
  uint32_t next_uint32();           // genrand_uint32
  double random();                  // random.random(): 53-bit float in [0, 1)
  uint64_t getrandbits(int k);      // k in [1, 64]
  size_t randbelow(size_t n);       // _randbelow_with_getrandbits(n), n >= 1
  // random.sample(range(n), k): the chosen indices in draw order (k <= n).
  std::vector<size_t> sample(size_t n, size_t k);
  // random.choices(range(n), k=k).
  std::vector<size_t> choices(size_t n, size_t k);

 private:
  void init_genrand(uint32_t s);
  std::array<uint32_t, 624> state_{};
  size_t index_ = 625;
};

}  // namespace edgerazor::eval
