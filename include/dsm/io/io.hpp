// dsm/io/io.hpp: checkpoints in the safetensors format (single file and sharded). See docs/checkpoints.md.
#pragma once

#include "safetensors.hpp"
#include "sharded.hpp"
