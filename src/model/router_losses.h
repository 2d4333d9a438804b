// Auxiliary router losses of spec §2.3, for one router (one MoA or one MoE layer) over all N
// tokens of a batch:
//   f_i = (assignments routed to expert i) / (N * k)      a count: no gradient
//   P_i = (1/N) * sum_t softmax(x_t)_i                     softmax over ALL E logits
//   L_b = E * sum_i f_i * P_i                              Switch load balancing (1 when balanced)
//   L_z = (1/N) * sum_t (logsumexp_j x_t,j)^2              ST-MoE router z-loss
#pragma once

#include <cstdint>
#include <vector>

namespace jetmoe {

struct RouterAuxLoss {
  double load_balance = 0.0;     // L_b
  double z_loss = 0.0;           // L_z
  std::vector<double> fraction;  // f_i, [E], sums to 1: the share of routed assignments per expert
};

// logits: [N, E] full router logits; experts: [N, k] the chosen experts. When `grad` is given it
// receives (assigned) the gradient of aux_coef * L_b + z_coef * L_z with respect to the logits,
// [N, E]. Sums run in double.
RouterAuxLoss router_aux_loss(const float* logits, const int32_t* experts, int64_t N, int64_t E, int64_t k,
                              double aux_coef, double z_coef, float* grad);

}  // namespace jetmoe
