// dsm/moe/moe.hpp: Mixture-of-Experts: router, dispatch, experts, balancing and the layer.
//
//   #include <dsm/moe/moe.hpp>
//   dsm::moe::MoELayer<{.d_model = 512, .d_ff = 1024, .n_experts = 8, .top_k = 2}> moe;
#pragma once

#include "config.hpp"
#include "router.hpp"
#include "dispatch.hpp"
#include "experts.hpp"
#include "balance.hpp"
#include "layer.hpp"
