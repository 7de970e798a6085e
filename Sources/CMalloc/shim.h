#ifndef CMALLOC_SHIM_H
#define CMALLOC_SHIM_H

#if defined(__linux__) && defined(__GLIBC__)
#include <malloc.h>

/// Turns off glibc's fast bins. The worker frees many small reply objects at once and then asks for a large
/// buffer, which makes glibc consolidate every fast bin (`malloc_consolidate` was 14 % of the worker's CPU).
/// `mallopt` is in <malloc.h>, which Swift's Glibc module does not import. Returns 1 on success.
static inline int CMalloc_disableFastBins(void) {
    return mallopt(M_MXFAST, 0);
}
#else
static inline int CMalloc_disableFastBins(void) {
    return 0;
}
#endif

#endif
