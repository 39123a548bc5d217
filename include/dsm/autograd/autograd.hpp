// dsm/autograd/autograd.hpp: the autograd layer (Var, fused expression nodes, differentiable ops,
// gradcheck). See docs/autograd.md.
#pragma once

#include "checkpoint.hpp"
#include "engine.hpp"
#include "function.hpp"
#include "functions/index.hpp"
#include "functions/join.hpp"
#include "functions/linalg.hpp"
#include "functions/reduce.hpp"
#include "functions/sort.hpp"
#include "functions/views.hpp"
#include "fused.hpp"
#include "gradcheck.hpp"
#include "graph.hpp"
#include "var.hpp"
