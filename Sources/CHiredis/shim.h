#ifndef WARREN_CHIREDIS_SHIM_H
#define WARREN_CHIREDIS_SHIM_H

#include <hiredis/hiredis.h>

#endif
