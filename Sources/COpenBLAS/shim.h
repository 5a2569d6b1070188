#ifndef VGGDP_COPENBLAS_SHIM_H
#define VGGDP_COPENBLAS_SHIM_H
#include <cblas.h>
#endif
