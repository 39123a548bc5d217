// dsm/amp/amp.hpp: mixed precision: autocast scopes and the dynamic loss scaler.
#pragma once

#include "autocast.hpp"
#include "grad_scaler.hpp"
