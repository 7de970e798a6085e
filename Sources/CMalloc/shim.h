#ifndef CMALLOC_SHIM_H
#define CMALLOC_SHIM_H

#if defined(__linux__) && defined(__GLIBC__)
#include <malloc.h>

/// Turns off glibc's fast bins (what GLIBC_TUNABLES=glibc.malloc.mxfast=0 does). Measured when the worker freed
/// many small reply objects at once (`malloc_consolidate` was 14 % of its CPU), and again after the flat reply
/// reader removed most of them: the gain is smaller and within this machine's noise, the medians still favor it
/// (docs/performance.md). `mallopt` is in <malloc.h>, which Swift's Glibc module does not import. Returns 1 on
/// success.
static inline int CMalloc_disableFastBins(void) {
    return mallopt(M_MXFAST, 0);
}
#else
static inline int CMalloc_disableFastBins(void) {
    return 0;
}
#endif

#endif
