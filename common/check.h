// Invariant checks. TD_CHECK is always on and aborts with a message; it is for our own
// invariants only, never for anything a remote party controls (that is an Error).
#pragma once

#include <cstdio>
#include <cstdlib>

#define TD_CHECK(cond)                                                                   \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: TD_CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

#ifdef NDEBUG
#define TD_DCHECK(cond) \
  do {                  \
  } while (0)
#else
#define TD_DCHECK(cond) TD_CHECK(cond)
#endif
