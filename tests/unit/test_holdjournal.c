/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The holder's journal of unanswered fanotify events (loader/holdjournal.c):
 * what a holder records is what an adopter reads back, slot by slot; a
 * freed slot reads as free and is used again before the journal grows;
 * a journal taken over keeps its used slots and lists its free ones; no
 * slot straddles a page; and a journal that is not one (bad magic, a slot
 * size of another build, a slot count past the bound) is refused, never
 * trusted.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../loader/holdpriv.h"
#include "tap.h"

static struct hold_req event(int32_t id, uint64_t ino, uint64_t off)
{
	struct hold_req r = { .fd = -1, .slot = -1 };

	r.m.type = LD_HOLD_EVENT;
	r.m.id = id;
	r.m.dev = 8;
	r.m.ino = ino;
	r.m.off = off;
	r.m.len = 65536;
	r.m.has_range = 1;
	r.m.mask = 1;
	return r;
}

int main(void)
{
	struct holder h = { .jfd = -1 }, h2 = { .jfd = -1 };
	struct hold_req r[4];
	struct ld_hold_jhdr hdr;
	struct ld_hold_jslot *slots;
	int used = 0, ret;

	ok(hold_jr_new(&h) == 0, "a new journal");
	for (int i = 0; i < 4; i++) {
		r[i] = event(10 + i, 100 + (uint64_t)i, (uint64_t)i << 16);
		hold_jr_put(&h, &r[i]);
		is_int(r[i].slot, i, "event %d gets slot %d", 10 + i, i);
	}
	ok(hold_jr_drop(&h, &r[1]) == 0, "event 11 answered: its slot freed");

	ret = ld_hold_jr_read(h.jfd, &hdr, &slots);
	is_int(ret, 0, "the journal reads back");
	is_int((int)hdr.nslots, 4, "... four slots counted");
	is_int(hdr.hwm, 13, "... the highest number journaled is 13");
	for (uint32_t i = 0; !ret && i < hdr.nslots; i++)
		used += slots[i].used ? 1 : 0;
	is_int(used, 3, "... three of them used");
	ok(!ret && !slots[1].used, "... slot 1 free");
	ok(!ret && slots[2].used && slots[2].id == 12 && slots[2].ino == 102 &&
	   slots[2].off == 2u << 16 && slots[2].len == 65536 && slots[2].has_range == 1 &&
	   slots[2].dev == 8, "... slot 2 is event 12, its file and range");
	free(slots);

	r[1] = event(20, 200, 0);
	hold_jr_put(&h, &r[1]);
	is_int(r[1].slot, 1, "a new event takes the freed slot before the journal grows");

	/* an orphan (an adopter's) is journaled like an event; other
	 * messages (cachefiles) never are */
	struct hold_req o = event(30, 300, 0), c = event(31, 301, 0);

	o.m.type = LD_HOLD_ORPHAN;
	c.m.type = LD_HOLD_MSG;
	hold_jr_put(&h, &o);
	is_int(o.slot, 4, "an orphan gets a slot");
	hold_jr_put(&h, &c);
	is_int(c.slot, -1, "a cachefiles message gets none");

	/* an adopter takes it over */
	hold_jr_drop(&h, &r[3]);
	ok(hold_jr_take(&h2, h.jfd) == 0, "an adopter takes the journal over");
	is_int((int)h2.jslots, 5, "... with its five slots");
	is_int((int)h2.njfree, 1, "... one of them free");
	ok(h2.njfree == 1 && h2.jfree[0] == 3, "... slot 3, the one answered last");
	is_int(h2.jhwm, 30, "... and the highest number journaled");
	free(h2.jfree);

	ok(sizeof(struct ld_hold_jslot) == 64 && sizeof(struct ld_hold_jhdr) == 64 &&
	   4096 % sizeof(struct ld_hold_jslot) == 0,
	   "64-byte slots after a 64-byte header: none straddles a page");

	/* not a journal: refused */
	int bad = memfd_create("bad", MFD_CLOEXEC);
	struct ld_hold_jhdr bh = { .slot_size = sizeof(struct ld_hold_jslot) };

	memcpy(bh.magic, "nothing", 8);
	ok(bad >= 0 && pwrite(bad, &bh, sizeof(bh), 0) == sizeof(bh), "a file with a bad magic");
	is_int(ld_hold_jr_read(bad, &hdr, &slots), -EPROTO, "... is refused");
	memcpy(bh.magic, LD_HOLD_JMAGIC, 8);
	bh.slot_size = 56;
	ok(pwrite(bad, &bh, sizeof(bh), 0) == sizeof(bh), "slots of another size");
	is_int(ld_hold_jr_read(bad, &hdr, &slots), -EPROTO, "... are refused");
	bh.slot_size = sizeof(struct ld_hold_jslot);
	bh.nslots = 1u << 30;
	ok(pwrite(bad, &bh, sizeof(bh), 0) == sizeof(bh), "a slot count past the bound");
	is_int(ld_hold_jr_read(bad, &hdr, &slots), -EPROTO, "... is refused");
	bh.nslots = 3;
	ok(pwrite(bad, &bh, sizeof(bh), 0) == sizeof(bh), "slots counted but never written");
	ret = ld_hold_jr_read(bad, &hdr, &slots);
	ok(ret == 0 && !slots[0].used && !slots[1].used && !slots[2].used,
	   "... read as free (a holder killed between header and slot)");
	if (!ret)
		free(slots);
	is_int(ld_hold_jr_read(-1, &hdr, &slots), -EBADF, "no file: -EBADF");
	close(bad);
	close(h.jfd);
	free(h.jfree);
	return done_testing();
}
