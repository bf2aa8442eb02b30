/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The holder's journal of unanswered fanotify events (holder.h): a memfd
 * of a header and 64-byte slots, none straddling a page. Only the holder
 * writes it, each change one pwrite of a whole slot (or of the header,
 * or of a slot's used word), so that a holder killed at any moment leaves
 * every slot either as it was or as it was meant to be. A slot is written
 * only after the header counts it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/sk.h"
#include "holdpriv.h"

/* a bound on what an adopter reads: far above any real backlog */
#define JR_MAX_SLOTS (1u << 20)

static off_t slot_off(uint32_t i)
{
	return (off_t)sizeof(struct ld_hold_jhdr) + (off_t)i * (off_t)sizeof(struct ld_hold_jslot);
}

static int write_hdr(struct holder *h)
{
	struct ld_hold_jhdr hdr = { .slot_size = sizeof(struct ld_hold_jslot),
				    .nslots = h->jslots, .hwm = h->jhwm };

	memcpy(hdr.magic, LD_HOLD_JMAGIC, sizeof(hdr.magic));
	return sk_pwrite_full(h->jfd, &hdr, sizeof(hdr), 0);
}

int hold_jr_new(struct holder *h)
{
	int ret;

	h->jfd = memfd_create("skiffd-journal", MFD_CLOEXEC);
	if (h->jfd < 0)
		return -errno;
	h->jslots = 0;
	h->jhwm = -1;
	ret = write_hdr(h);
	if (ret) {
		close(h->jfd);
		h->jfd = -1;
	}
	return ret;
}

int ld_hold_jr_read(int jfd, struct ld_hold_jhdr *hdr, struct ld_hold_jslot **slots)
{
	ssize_t n;
	size_t want;
	int ret;

	*slots = NULL;
	ret = sk_pread_full(jfd, hdr, sizeof(*hdr), 0);
	if (ret)
		return ret == -ENODATA ? -EPROTO : ret;
	if (memcmp(hdr->magic, LD_HOLD_JMAGIC, sizeof(hdr->magic)) ||
	    hdr->slot_size != sizeof(struct ld_hold_jslot) || hdr->nslots > JR_MAX_SLOTS)
		return -EPROTO;
	/* a slot counted but never written (the holder died in between)
	 * reads as zeros: free */
	want = (size_t)hdr->nslots * sizeof(**slots);
	*slots = calloc(hdr->nslots ? hdr->nslots : 1, sizeof(**slots));
	if (!*slots)
		return -ENOMEM;
	n = pread(jfd, *slots, want, slot_off(0));
	if (n < 0) {
		free(*slots);
		*slots = NULL;
		return -errno;
	}
	return 0;
}

/* A slot is free again; without memory for the list it stays unused
 * until the next holder reads the journal. */
static void free_push(struct holder *h, uint32_t i)
{
	if (sk_grow(&h->jfree, &h->jfreecap, h->njfree, sizeof(*h->jfree), 64) == 0)
		h->jfree[h->njfree++] = i;
}

void hold_jr_spoil(int jfd)
{
	static const char none[8] = "spoiled";

	if (sk_pwrite_full(jfd, none, sizeof(none), 0)) {
		/* nothing else to do: the next adopter may read it */
	}
}

int hold_jr_take(struct holder *h, int jfd)
{
	struct ld_hold_jhdr hdr;
	struct ld_hold_jslot *slots;
	int ret = ld_hold_jr_read(jfd, &hdr, &slots);

	if (ret)
		return ret;
	h->jfd = jfd;
	h->jslots = hdr.nslots;
	h->jhwm = hdr.hwm;
	h->njfree = 0;
	for (uint32_t i = hdr.nslots; i-- > 0;)
		if (!slots[i].used)
			free_push(h, i);
	free(slots);
	return 0;
}

void hold_jr_put(struct holder *h, struct hold_req *r)
{
	struct ld_hold_jslot s = { .used = 1, .id = r->m.id, .dev = r->m.dev, .ino = r->m.ino,
				   .off = r->m.off, .len = r->m.len, .mask = r->m.mask,
				   .has_range = r->m.has_range };
	bool grow = !h->njfree;
	uint32_t i;

	r->slot = -1;
	if (h->jfd < 0 || (r->m.type != LD_HOLD_EVENT && r->m.type != LD_HOLD_ORPHAN))
		return;
	if (grow && h->jslots >= JR_MAX_SLOTS) {
		hold_log(h, 1, "journal: full; event %d is not recorded", r->m.id);
		return;
	}
	i = grow ? h->jslots++ : h->jfree[--h->njfree];
	/* the header first: an adopter reads the slots it counts, and a
	 * sweep up to its hwm answers the numbers it does not find */
	if (grow || r->m.id > h->jhwm) {
		if (r->m.id > h->jhwm)
			h->jhwm = r->m.id;
		if (write_hdr(h))
			goto fail;
	}
	/* the slot whole but free, then its used word: a slot reads as
	 * used only once all of it is there, whatever a kill interrupts */
	s.used = 0;
	if (sk_pwrite_full(h->jfd, &s, sizeof(s), (uint64_t)slot_off(i)))
		goto fail;
	s.used = 1;
	if (sk_pwrite_full(h->jfd, &s.used, sizeof(s.used), (uint64_t)slot_off(i))) {
		/* whatever landed must not read as a used slot */
		uint32_t zero = 0;

		if (sk_pwrite_full(h->jfd, &zero, sizeof(zero), (uint64_t)slot_off(i)))
			return;	/* the slot stays out of use */
		goto fail;
	}
	r->slot = (int32_t)i;
	return;
fail:
	/* still free: a new slot uncounted again (the next one written
	 * rewrites the header), a reused one back on the list */
	if (grow)
		h->jslots--;
	else
		free_push(h, i);
	hold_log(h, 1, "journal: cannot record event %d (a holder death would fail its read)",
		 r->m.id);
}

int hold_jr_drop(struct holder *h, const struct hold_req *r)
{
	uint32_t zero = 0;
	int ret;

	if (h->jfd < 0 || r->slot < 0)
		return 0;
	ret = sk_pwrite_full(h->jfd, &zero, sizeof(zero), (uint64_t)slot_off((uint32_t)r->slot));
	if (ret) {
		hold_log(h, 1, "journal: cannot free slot %d: it stays used", r->slot);
		return ret;
	}
	free_push(h, (uint32_t)r->slot);
	return 0;
}
