/* SPDX-License-Identifier: Apache-2.0 */
#include "uring.h"

#include "../common/sk.h"

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
	unsigned int alive;	/* rings not lost to a failed re-init */
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
	r->alive = r->n;
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

/* A free ring's index, or -1 when every ring is lost. */
static int borrow(struct ld_rings *r)
{
	unsigned int i;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		if (!r->alive) {
			pthread_mutex_unlock(&r->lock);
			return -1;
		}
		for (i = 0; i < r->n; i++)
			if (!r->busy[i])
				goto found;
		pthread_cond_wait(&r->freed, &r->lock);
	}
found:
	r->busy[i] = true;
	pthread_mutex_unlock(&r->lock);
	return (int)i;
}

/* After a failed submission the ring may hold entries nobody will reap:
 * replace it rather than hand it to the next writer. A ring that cannot
 * be made again stays borrowed for good. */
static void renew(struct ld_rings *r, unsigned int i)
{
	io_uring_queue_exit(&r->rings[i]);
	if (io_uring_queue_init(r->depth, &r->rings[i], 0) < 0) {
		pthread_mutex_lock(&r->lock);
		r->alive--;
		pthread_cond_broadcast(&r->freed);
		pthread_mutex_unlock(&r->lock);
		return;
	}
	pthread_mutex_lock(&r->lock);
	r->busy[i] = false;
	pthread_cond_signal(&r->freed);
	pthread_mutex_unlock(&r->lock);
}

static int pwrite_all(int fd, const struct ld_write *w, unsigned int n)
{
	int ret = 0;

	for (unsigned int i = 0; i < n && !ret; i++)
		do {
			ret = sk_pwrite_full(fd, w[i].buf, w[i].len, w[i].off);
		} while (ret == -ENOBUFS && usleep(1000) == 0);
	return ret;
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
	unsigned int pending = 0, retries = 0;
	bool broken = false;
	struct io_uring *ring;
	int ret = 0, ri;

	if (!left)
		return -ENOMEM;
	for (unsigned int i = 0; i < n; i++)
		left[i] = w[i].len;
	ri = r ? borrow(r) : -1;
	if (ri < 0) {
		free(left);
		return pwrite_all(fd, w, n);
	}
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
		if (ret < 0 && ret != -EINTR) {
			broken = true;
			break;
		}
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
	if (broken)
		renew(r, (unsigned int)ri);
	else
		give_back(r, (unsigned int)ri);
	free(left);
	return ret;
}
