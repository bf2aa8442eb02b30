/* SPDX-License-Identifier: Apache-2.0 */
#include "sk.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct sk_worker {
	struct sk_pool *pool;
	unsigned int index;
};

struct sk_pool {
	pthread_mutex_t lock;
	pthread_cond_t work;	/* a job was queued, or shutdown */
	pthread_cond_t done;	/* some job finished */
	struct sk_job *head, *tail;
	int stop;
	unsigned int nthreads;
	struct sk_worker *workers;
	pthread_t threads[];
};

static void *worker(void *arg)
{
	struct sk_worker *w = arg;
	struct sk_pool *p = w->pool;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct sk_job *job;

		while (!p->head && !p->stop)
			pthread_cond_wait(&p->work, &p->lock);
		if (!p->head)
			break;
		job = p->head;
		p->head = job->next;
		if (!p->head)
			p->tail = NULL;
		pthread_mutex_unlock(&p->lock);
		job->worker = w->index;
		if (job->detached) {
			job->fn(job);	/* may have freed job */
			pthread_mutex_lock(&p->lock);
			continue;
		}
		job->fn(job);
		pthread_mutex_lock(&p->lock);
		job->done = 1;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

unsigned int sk_pool_threads(const struct sk_pool *p)
{
	return p->nthreads;
}

unsigned int sk_ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (unsigned int)n;
}

int sk_pool_create(struct sk_pool **out, unsigned int nthreads)
{
	struct sk_pool *p;

	if (nthreads == 0)
		nthreads = 1;
	p = calloc(1, sizeof(*p) + nthreads * sizeof(pthread_t));
	if (!p)
		return -ENOMEM;
	p->workers = calloc(nthreads, sizeof(*p->workers));
	if (!p->workers) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	for (unsigned int i = 0; i < nthreads; i++) {
		int err;

		p->workers[i] = (struct sk_worker){ p, i };
		err = pthread_create(&p->threads[i], NULL, worker, &p->workers[i]);

		if (err) {
			p->nthreads = i;
			sk_pool_destroy(p);
			return -err;
		}
	}
	p->nthreads = nthreads;
	*out = p;
	return 0;
}

void sk_pool_submit(struct sk_pool *p, struct sk_job *job)
{
	job->next = NULL;
	job->done = 0;
	pthread_mutex_lock(&p->lock);
	if (p->tail)
		p->tail->next = job;
	else
		p->head = job;
	p->tail = job;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
}

void sk_pool_wait(struct sk_pool *p, struct sk_job *job)
{
	pthread_mutex_lock(&p->lock);
	while (!job->done)
		pthread_cond_wait(&p->done, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

size_t sk_pool_drop_queued(struct sk_pool *p)
{
	size_t n = 0;

	pthread_mutex_lock(&p->lock);
	for (struct sk_job *j = p->head; j; j = j->next)
		n++;
	p->head = p->tail = NULL;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void sk_pool_destroy(struct sk_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	free(p->workers);
	free(p);
}
