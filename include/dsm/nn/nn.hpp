// dsm/nn/nn.hpp: the nn layer (Module, layers, losses, initialization). See docs/modules.md.
#pragma once

#include "activation.hpp"
#include "dropout.hpp"
#include "embedding.hpp"
#include "attention.hpp"
#include "functional/activation.hpp"
#include "functional/attention.hpp"
#include "functional/loss.hpp"
#include "functional/norm.hpp"
#include "init.hpp"
#include "linear.hpp"
#include "mlp.hpp"
#include "module.hpp"
#include "norm.hpp"
#include "sequential.hpp"
