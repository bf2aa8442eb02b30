/* SPDX-License-Identifier: Apache-2.0 */
#include "bufs.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define BUF_ALIGN 4096u
/* sizes rounded up, so runs of slightly different lengths share buffers */
#define BUF_GRAIN (256u << 10)

struct ld_bufs {
	pthread_mutex_t lock;
	unsigned int keep, n;	/* at most keep idle buffers, n now */
	size_t max_bytes, bytes;	/* their total: limit, now */
	struct ld_buf idle[];
};

int ld_bufs_new(struct ld_bufs **out, unsigned int keep, size_t max_bytes)
{
	struct ld_bufs *b = calloc(1, sizeof(*b) + keep * sizeof(b->idle[0]));

	if (!b)
		return -ENOMEM;
	pthread_mutex_init(&b->lock, NULL);
	b->keep = keep;
	b->max_bytes = max_bytes;
	*out = b;
	return 0;
}

void ld_bufs_free(struct ld_bufs *b)
{
	if (!b)
		return;
	for (unsigned int i = 0; i < b->n; i++)
		free(b->idle[i].p);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

int ld_buf_get(struct ld_bufs *b, size_t size, struct ld_buf *out)
{
	size_t cap = (size + BUF_GRAIN - 1) / BUF_GRAIN * BUF_GRAIN;
	void *p;

	if (!cap)
		cap = BUF_GRAIN;
	if (b) {
		unsigned int best = b->keep;

		pthread_mutex_lock(&b->lock);
		/* the smallest idle buffer that fits keeps big ones for big runs */
		for (unsigned int i = 0; i < b->n; i++)
			if (b->idle[i].cap >= size &&
			    (best == b->keep || b->idle[i].cap < b->idle[best].cap))
				best = i;
		if (best != b->keep) {
			*out = b->idle[best];
			b->bytes -= out->cap;
			b->idle[best] = b->idle[--b->n];
			pthread_mutex_unlock(&b->lock);
			return 0;
		}
		pthread_mutex_unlock(&b->lock);
	}
	if (posix_memalign(&p, BUF_ALIGN, cap))
		return -ENOMEM;
	*out = (struct ld_buf){ p, cap };
	return 0;
}

void ld_buf_put(struct ld_bufs *b, struct ld_buf *buf)
{
	struct ld_buf drop = *buf;

	*buf = (struct ld_buf){ 0 };
	if (!drop.p)
		return;
	if (b) {
		pthread_mutex_lock(&b->lock);
		/* full: the smallest idle buffer makes room for a bigger one */
		if (b->n == b->keep || b->bytes + drop.cap > b->max_bytes) {
			unsigned int s = 0;

			for (unsigned int i = 1; i < b->n; i++)
				if (b->idle[i].cap < b->idle[s].cap)
					s = i;
			if (b->n && b->idle[s].cap < drop.cap &&
			    b->bytes - b->idle[s].cap + drop.cap <= b->max_bytes) {
				struct ld_buf t = b->idle[s];

				b->bytes += drop.cap - t.cap;
				b->idle[s] = drop;
				drop = t;
			}
		} else {
			b->idle[b->n++] = drop;
			b->bytes += drop.cap;
			drop = (struct ld_buf){ 0 };
		}
		pthread_mutex_unlock(&b->lock);
	}
	free(drop.p);
}
