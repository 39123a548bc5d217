// dsm/optim/optim.hpp: optimizers, schedules and gradient clipping. See docs/optim.md.
#pragma once

#include "adam.hpp"
#include "clip.hpp"
#include "optimizer.hpp"
#include "schedule.hpp"
#include "sgd.hpp"
