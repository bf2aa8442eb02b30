/* SPDX-License-Identifier: Apache-2.0 */
#include "uring.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ld_rings {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	unsigned int n, depth;
	bool *busy;
	struct io_uring rings[];
};

int ld_rings_new(struct ld_rings **out, unsigned int nrings, unsigned int depth)
{
	struct ld_rings *r = calloc(1, sizeof(*r) + nrings * sizeof(struct io_uring));
	int ret;

	if (!r)
		return -ENOMEM;
	r->busy = calloc(nrings, sizeof(bool));
	if (!r->busy) {
		free(r);
		return -ENOMEM;
	}
	r->depth = depth;
	for (; r->n < nrings; r->n++) {
		ret = io_uring_queue_init(depth, &r->rings[r->n], 0);
		if (ret < 0) {
			ld_rings_free(r);
			return ret;
		}
	}
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->freed, NULL);
	*out = r;
	return 0;
}

void ld_rings_free(struct ld_rings *r)
{
	if (!r)
		return;
	for (unsigned int i = 0; i < r->n; i++)
		io_uring_queue_exit(&r->rings[i]);
	free(r->busy);
	free(r);
}

static unsigned int borrow(struct ld_rings *r)
{
	unsigned int i;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		for (i = 0; i < r->n; i++)
			if (!r->busy[i])
				goto found;
		pthread_cond_wait(&r->freed, &r->lock);
	}
found:
	r->busy[i] = true;
	pthread_mutex_unlock(&r->lock);
	return i;
}

static void give_back(struct ld_rings *r, unsigned int i)
{
	pthread_mutex_lock(&r->lock);
	r->busy[i] = false;
	pthread_cond_signal(&r->freed);
	pthread_mutex_unlock(&r->lock);
}

int ld_rings_write(struct ld_rings *r, int fd, const struct ld_write *w,
		   unsigned int n)
{
	/* what is left of each piece; a piece is done at 0 */
	size_t *left = calloc(n ? n : 1, sizeof(size_t));
	unsigned int ri, pending = 0, retries = 0;
	struct io_uring *ring;
	int ret = 0;

	if (!left)
		return -ENOMEM;
	for (unsigned int i = 0; i < n; i++)
		left[i] = w[i].len;
	ri = borrow(r);
	ring = &r->rings[ri];
	for (unsigned int next = 0;;) {
		struct io_uring_cqe *cqe;

		/* queue what fits: pieces not yet done and not in flight are
		 * those at or after `next` */
		while (next < n && pending < r->depth) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
			size_t done = w[next].len - left[next];

			if (!sqe)
				break;
			io_uring_prep_write(sqe, fd, (const char *)w[next].buf + done,
					    (unsigned int)left[next], w[next].off + done);
			io_uring_sqe_set_data64(sqe, next);
			pending++;
			next++;
		}
		if (!pending)
			break;
		ret = io_uring_submit_and_wait(ring, 1);
		if (ret < 0 && ret != -EINTR)
			break;
		ret = 0;
		while (pending && io_uring_peek_cqe(ring, &cqe) == 0) {
			unsigned int i = (unsigned int)io_uring_cqe_get_data64(cqe);
			int res = cqe->res;

			io_uring_cqe_seen(ring, cqe);
			pending--;
			if (res > 0) {
				left[i] -= (size_t)res;
			} else if (res == -EINTR || res == -EAGAIN ||
				   (res == -ENOBUFS && ++retries < 1000)) {
				if (res == -ENOBUFS)
					usleep(1000);
			} else {
				ret = res ? res : -EIO;
			}
			/* resubmit what is left of this piece on its own */
			if (!ret && left[i]) {
				struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
				size_t done = w[i].len - left[i];

				if (!sqe) {
					io_uring_submit(ring);
					sqe = io_uring_get_sqe(ring);
				}
				if (!sqe) {
					ret = -EBUSY;
				} else {
					io_uring_prep_write(sqe, fd, (const char *)w[i].buf + done,
							    (unsigned int)left[i], w[i].off + done);
					io_uring_sqe_set_data64(sqe, i);
					pending++;
				}
			}
		}
		if (ret) {
			/* drain what is in flight before giving the ring back */
			while (pending && io_uring_wait_cqe(ring, &cqe) == 0) {
				io_uring_cqe_seen(ring, cqe);
				pending--;
			}
			break;
		}
	}
	give_back(r, ri);
	free(left);
	return ret;
}
