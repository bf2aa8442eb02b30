/* SPDX-License-Identifier: Apache-2.0 */
/* What every libFuzzer target of tests/fuzz shares. */
#ifndef SKIFF_TESTS_FUZZ_H
#define SKIFF_TESTS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant callers rely on: a violation is a finding, like a crash. */
#define CHECK(c)                                                        \
	do {                                                            \
		if (!(c)) {                                             \
			fprintf(stderr, "%s:%d: check failed: %s\n",    \
				__FILE__, __LINE__, #c);                \
			abort();                                        \
		}                                                       \
	} while (0)

#endif
