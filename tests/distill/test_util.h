// Helpers shared by the distill tests: spec §14 inputs, finite differences, comparisons.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace edgerazor::distill::testing {

inline at::Tensor dt(std::vector<double> v, at::IntArrayRef shape, at::ScalarType dtype = at::kDouble) {
  return at::tensor(at::ArrayRef<double>(v), at::kDouble).reshape(shape).to(dtype);
}
inline at::Tensor lt(std::vector<int64_t> v, at::IntArrayRef shape) {
  return at::tensor(at::ArrayRef<int64_t>(v), at::kLong).reshape(shape);
}

// Spec §14.1 inputs (B=2, S=3, V=4) in the given dtype.
inline at::Tensor spec_student(at::ScalarType dtype = at::kDouble) {
  return dt({1, 2, 0.5, -1, 0, 0, 0, 0, 3, -2, 1, 0.5,
             -1, 0.5, 2.5, 0, 2, 1, 0, -1, 0.3, 0.3, -0.7, 1.2}, {2, 3, 4}, dtype);
}
inline at::Tensor spec_teacher(at::ScalarType dtype = at::kDouble, bool clamp_variant = false) {
  auto t = dt({1.5, 1, 0, -2, 4, 0, -1, 0, 2, -1, 2, 0,
               0, 0, 3, -1, 1, 2, 0, 0, -3, 0, 0, 30}, {2, 3, 4}, dtype);
  if (clamp_variant) t[1][0] = dt({0, 0, 30, -1}, {4}, dtype);   // spec §14.2
  return t;
}
inline at::Tensor spec_labels() {
  return lt({-100, 5, 7, 3, -100, -100}, {2, 3});
}

inline void expect_rel(double actual, double expected, double rel, const char* what) {
  EXPECT_NEAR(actual, expected, rel * std::abs(expected)) << what;
}

// Central finite differences of a scalar function of x (fp64).
inline at::Tensor numeric_grad(const std::function<double(const at::Tensor&)>& f, const at::Tensor& x,
                               double h = 1e-6) {
  auto g = at::zeros_like(x);
  auto flat = x.reshape({-1});
  auto gflat = g.reshape({-1});
  for (int64_t i = 0; i < flat.numel(); ++i) {
    auto plus = flat.clone();
    auto minus = flat.clone();
    plus[i] += h;
    minus[i] -= h;
    gflat[i] = (f(plus.reshape(x.sizes())) - f(minus.reshape(x.sizes()))) / (2 * h);
  }
  return g;
}

inline void expect_close(const at::Tensor& a, const at::Tensor& b, double atol, double rtol,
                         const std::string& what) {
  ASSERT_TRUE(a.defined()) << what << ": first tensor undefined";
  ASSERT_TRUE(b.defined()) << what << ": second tensor undefined";
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const auto da = a.to(at::kDouble), db = b.to(at::kDouble);
  const double err = (da - db).abs().max().item<double>();
  const double tol = atol + rtol * db.abs().max().item<double>();
  EXPECT_LE(err, tol) << what << ": max abs difference " << err;
}

}  // namespace edgerazor::distill::testing
