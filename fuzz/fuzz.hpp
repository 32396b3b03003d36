// ORDO_FUZZ_CHECK: how the fuzz targets state a property every input must keep; a broken one
// aborts, so that libFuzzer reports it and saves the input.
#pragma once

#include <cstdio>
#include <cstdlib>

// A property every input must keep; a broken one is a crash libFuzzer reports and saves.
#define ORDO_FUZZ_CHECK(condition)                                                     \
    do {                                                                               \
        if (!(condition)) {                                                            \
            std::fprintf(stderr, "property broken at %s:%d: %s\n", __FILE__, __LINE__, \
                         #condition);                                                  \
            std::abort();                                                              \
        }                                                                              \
    } while (0)
