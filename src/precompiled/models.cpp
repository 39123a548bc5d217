// dsm::precompiled: explicit instantiations of the list in dsm/precompiled/models.inc.
#include <dsm/precompiled.hpp>

#define DSM_INSTANCE template
#include <dsm/precompiled/models.inc>
