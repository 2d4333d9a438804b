#include "model/router_losses.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace jetmoe {

RouterAuxLoss router_aux_loss(const float* logits, const int32_t* experts, int64_t N, int64_t E, int64_t k,
                              double aux_coef, double z_coef, float* grad) {
  JM_CHECK(N > 0 && E > 0 && k > 0, "router loss over N=", N, " tokens, E=", E, ", k=", k);
  RouterAuxLoss out;
  out.fraction.assign(size_t(E), 0.0);
  for (int64_t a = 0; a < N * k; ++a) out.fraction[size_t(experts[a])] += 1.0;
  for (double& f : out.fraction) f /= double(N * k);

  // p_t = softmax(x_t) and lse_t per token; P = mean_t p_t.
  std::vector<double> probs(size_t(N * E)), lse(static_cast<size_t>(N)), mean_prob(size_t(E), 0.0);
  for (int64_t t = 0; t < N; ++t) {
    const float* x = logits + t * E;
    const double mx = double(*std::max_element(x, x + E));
    double sum = 0.0;
    for (int64_t j = 0; j < E; ++j) sum += (probs[size_t(t * E + j)] = std::exp(double(x[j]) - mx));
    for (int64_t j = 0; j < E; ++j) {
      probs[size_t(t * E + j)] /= sum;
      mean_prob[size_t(j)] += probs[size_t(t * E + j)] / double(N);
    }
    lse[size_t(t)] = mx + std::log(sum);
    out.z_loss += lse[size_t(t)] * lse[size_t(t)] / double(N);
  }
  for (int64_t i = 0; i < E; ++i) out.load_balance += double(E) * out.fraction[size_t(i)] * mean_prob[size_t(i)];

  if (grad) {
    // dL_b/dx_tj = (E/N) * p_tj * (f_j - sum_i f_i p_ti)   (softmax Jacobian, f constant)
    // dL_z/dx_tj = (2/N) * lse_t * p_tj
    for (int64_t t = 0; t < N; ++t) {
      const double* p = probs.data() + t * E;
      double f_dot_p = 0.0;
      for (int64_t i = 0; i < E; ++i) f_dot_p += out.fraction[size_t(i)] * p[i];
      for (int64_t j = 0; j < E; ++j) {
        const double d_balance = double(E) / double(N) * p[j] * (out.fraction[size_t(j)] - f_dot_p);
        const double d_z = 2.0 / double(N) * lse[size_t(t)] * p[j];
        grad[t * E + j] = float(aux_coef * d_balance + z_coef * d_z);
      }
    }
  }
  return out;
}

}  // namespace jetmoe
