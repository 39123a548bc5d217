// dsm::precompiled: explicit instantiations of the list in dsm/precompiled/ops.inc.
#include <dsm/precompiled.hpp>

#define DSM_INSTANCE template
#define DSM_T float
#include <dsm/precompiled/ops.inc>
#undef DSM_T
#define DSM_T bf16
#include <dsm/precompiled/ops.inc>
#undef DSM_T
