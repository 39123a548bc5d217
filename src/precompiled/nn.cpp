// dsm::precompiled: explicit instantiations of the list in dsm/precompiled/nn.inc.
#include <dsm/precompiled.hpp>

#define DSM_INSTANCE template
#include <dsm/precompiled/nn.inc>
