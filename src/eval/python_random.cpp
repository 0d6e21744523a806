// MT19937 as CPython's _randommodule.c runs it, and random.py's sample/choices on top.
#include "edgerazor/eval/python_random.h"

#include <cmath>
#include <stdexcept>
#include <unordered_set>

namespace edgerazor::eval {

void PythonRandom::init_genrand(uint32_t s) {
  state_[0] = s;
  for (size_t i = 1; i < state_.size(); ++i)
    state_[i] = 1812433253u * (state_[i - 1] ^ (state_[i - 1] >> 30)) + static_cast<uint32_t>(i);
  index_ = state_.size();
}

void PythonRandom::seed(uint64_t seed) {
  // random_seed(): the absolute value as little-endian 32-bit words into init_by_array.
  std::vector<uint32_t> key;
  for (uint64_t n = seed; n != 0; n >>= 32) key.push_back(static_cast<uint32_t>(n & 0xffffffffu));
  if (key.empty()) key.push_back(0);
  init_genrand(19650218u);
  const size_t N = state_.size(), key_length = key.size();
  size_t i = 1, j = 0;
  for (size_t k = std::max(N, key_length); k; --k) {
    state_[i] = (state_[i] ^ ((state_[i - 1] ^ (state_[i - 1] >> 30)) * 1664525u)) + key[j] + static_cast<uint32_t>(j);
    ++i, ++j;
    if (i >= N) { state_[0] = state_[N - 1]; i = 1; }
    if (j >= key_length) j = 0;
  }
  for (size_t k = N - 1; k; --k) {
    state_[i] = (state_[i] ^ ((state_[i - 1] ^ (state_[i - 1] >> 30)) * 1566083941u)) - static_cast<uint32_t>(i);
    ++i;
    if (i >= N) { state_[0] = state_[N - 1]; i = 1; }
  }
  state_[0] = 0x80000000u;
  index_ = N;
}

uint32_t PythonRandom::next_uint32() {
  constexpr size_t N = 624, M = 397;
  constexpr uint32_t kMatrixA = 0x9908b0dfu, kUpper = 0x80000000u, kLower = 0x7fffffffu;
  if (index_ >= N) {
    for (size_t k = 0; k < N; ++k) {
      const uint32_t y = (state_[k] & kUpper) | (state_[(k + 1) % N] & kLower);
      state_[k] = state_[(k + M) % N] ^ (y >> 1) ^ ((y & 1u) ? kMatrixA : 0u);
    }
    index_ = 0;
  }
  uint32_t y = state_[index_++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

double PythonRandom::random() {
  const uint32_t a = next_uint32() >> 5, b = next_uint32() >> 6;
  return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

uint64_t PythonRandom::getrandbits(int k) {
  if (k <= 0 || k > 64) throw std::invalid_argument("getrandbits: k must be in [1, 64]");
  if (k <= 32) return next_uint32() >> (32 - k);
  // Python fills 32-bit words from the least significant end; the last word is shifted.
  const uint64_t low = next_uint32();
  const uint64_t high = next_uint32() >> (64 - k);
  return low | (high << 32);
}

size_t PythonRandom::randbelow(size_t n) {
  int k = 0;
  for (size_t v = n; v; v >>= 1) ++k;  // n.bit_length()
  uint64_t r = getrandbits(k);
  while (r >= n) r = getrandbits(k);
  return static_cast<size_t>(r);
}

std::vector<size_t> PythonRandom::sample(size_t n, size_t k) {
  if (k > n) throw std::invalid_argument("sample larger than population");
  std::vector<size_t> result(k);
  size_t setsize = 21;  // size of a small set minus size of an empty list
  if (k > 5) setsize += static_cast<size_t>(std::pow(4.0, std::ceil(std::log(static_cast<double>(k * 3)) / std::log(4.0))));
  if (n <= setsize) {
    std::vector<size_t> pool(n);
    for (size_t i = 0; i < n; ++i) pool[i] = i;
    for (size_t i = 0; i < k; ++i) {
      const size_t j = randbelow(n - i);
      result[i] = pool[j];
      pool[j] = pool[n - i - 1];
    }
  } else {
    std::unordered_set<size_t> selected;
    for (size_t i = 0; i < k; ++i) {
      size_t j = randbelow(n);
      while (selected.count(j)) j = randbelow(n);
      selected.insert(j);
      result[i] = j;
    }
  }
  return result;
}

std::vector<size_t> PythonRandom::choices(size_t n, size_t k) {
  std::vector<size_t> result(k);
  for (auto& r : result) r = static_cast<size_t>(std::floor(random() * static_cast<double>(n)));
  return result;
}

}  // namespace edgerazor::eval
