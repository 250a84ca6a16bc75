// The W1 mixture under its exact score, with W1's noise levels: the model whose samples have a
// known answer (a 0.2/0.8 split between the modes at (−5, −5) and (5, 5)).
#pragma once
#include <cmath>
#include <string>

#include "model/model.h"

namespace ncsn::test {

inline ModelConfig exact_w1(const std::string& device = "cpu", int threads = 0) {
  ModelConfig c;
  c.kind = "exact:mixture";
  c.shape.data_dim = 2;
  for (int i = 0; i < 10; ++i) c.sigmas.push_back(20 * std::pow(0.05, i / 9.0));
  c.mixture_means = {-5, -5, 5, 5};
  c.mixture_weights = {0.2, 0.8};
  c.device = device;
  c.threads = threads;
  return c;
}

}  // namespace ncsn::test
