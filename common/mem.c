/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "sk.h"

int sk_grow(void *arrp, size_t *cap, size_t n, size_t size, size_t first)
{
	void **arr = arrp, *np;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : first;
	if (ncap <= n || ncap > SIZE_MAX / size)
		return -ENOMEM;
	np = realloc(*arr, ncap * size);
	if (!np)
		return -ENOMEM;
	*arr = np;
	*cap = ncap;
	return 0;
}
