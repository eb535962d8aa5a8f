// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit suite of dm-flushmirror's metadata format: the superblock and its
 * checksum, the choice of slot after a torn commit, the bitmap encoding
 * and the commit rules (which bits a commit may write when).
 *
 * Copyright (C) 2026 The dm-flushmirror authors
 *
 * dm-flushmirror-metadata.c includes this file at its end when
 * CONFIG_DM_FLUSHMIRROR_KUNIT_TEST is set.
 */

#include <kunit/test.h>

static void fm_md_test_header(struct fm_md_header *h, u64 seq)
{
	memset(h, 0, sizeof(*h));
	h->seq = seq;
	h->geo.region_size = 1024;
	h->geo.nr_regions = 100000;
	h->geo.target_len = 1024ULL * 100000 - 512;
	h->geo.src_sectors = 1024ULL * 100000;
	h->geo.dst_sectors = 1024ULL * 100000 + 8;
	h->bitmap_blocks = fm_md_bitmap_blocks(h->geo.nr_regions);
	h->bitmap_crc = 0xdeadbeef;
	h->commit_time = 1764662400;
}

static void fm_md_test_sb_roundtrip(struct kunit *test)
{
	struct fm_md_header h, d;
	u8 *block = kunit_kzalloc(test, FM_MD_BLOCK_SIZE, GFP_KERNEL);
	struct fm_md_disk_sb *sb = (struct fm_md_disk_sb *)block;

	KUNIT_ASSERT_NOT_NULL(test, block);
	/* never written */
	KUNIT_EXPECT_EQ(test, fm_md_sb_decode(block, &d), -ENODATA);

	fm_md_test_header(&h, 7);
	fm_md_sb_encode(&h, block);
	KUNIT_ASSERT_EQ(test, fm_md_sb_decode(block, &d), 0);
	KUNIT_EXPECT_EQ(test, d.seq, 7ULL);
	KUNIT_EXPECT_EQ(test, d.geo.region_size, 1024U);
	KUNIT_EXPECT_EQ(test, d.geo.nr_regions, 100000ULL);
	KUNIT_EXPECT_EQ(test, d.geo.target_len, h.geo.target_len);
	KUNIT_EXPECT_EQ(test, d.geo.src_sectors, h.geo.src_sectors);
	KUNIT_EXPECT_EQ(test, d.geo.dst_sectors, h.geo.dst_sectors);
	KUNIT_EXPECT_EQ(test, d.bitmap_blocks, h.bitmap_blocks);
	KUNIT_EXPECT_EQ(test, d.bitmap_crc, 0xdeadbeefU);
	KUNIT_EXPECT_EQ(test, d.commit_time, h.commit_time);
	/* little-endian on disk, whatever the CPU */
	KUNIT_EXPECT_EQ(test, block[4], 'F');
	KUNIT_EXPECT_EQ(test, block[7], 'D');

	/* any flipped bit, in the fields or in the zero tail, is caught */
	block[40] ^= 0x10;
	KUNIT_EXPECT_EQ(test, fm_md_sb_decode(block, &d), -EBADMSG);
	block[40] ^= 0x10;
	block[FM_MD_BLOCK_SIZE - 1] = 1;
	KUNIT_EXPECT_EQ(test, fm_md_sb_decode(block, &d), -EBADMSG);
	block[FM_MD_BLOCK_SIZE - 1] = 0;
	KUNIT_EXPECT_EQ(test, fm_md_sb_decode(block, &d), 0);

	/* a torn write: the second half of the block is stale */
	memset(block + FM_MD_BLOCK_SIZE / 2, 0x5a, FM_MD_BLOCK_SIZE / 2);
	KUNIT_EXPECT_EQ(test, fm_md_sb_decode(block, &d), -EBADMSG);

	/* a foreign block */
	memset(block, 0xff, FM_MD_BLOCK_SIZE);
	KUNIT_EXPECT_EQ(test, fm_md_sb_decode(block, &d), -EBADMSG);

	/* another version, with a valid checksum */
	fm_md_sb_encode(&h, block);
	sb->version = cpu_to_le32(FM_MD_VERSION + 1);
	sb->crc = cpu_to_le32(fm_md_sb_crc(block));
	KUNIT_EXPECT_EQ(test, fm_md_sb_decode(block, &d), -EPROTONOSUPPORT);
}

static void fm_md_test_choose_slot(struct kunit *test)
{
	struct fm_md_header h[2];
	int rc[2];

	fm_md_test_header(&h[0], 10);
	fm_md_test_header(&h[1], 11);
	rc[0] = 0;
	rc[1] = 0;
	KUNIT_EXPECT_EQ(test, fm_md_choose_slot(rc, h), 1);
	h[0].seq = 12;
	KUNIT_EXPECT_EQ(test, fm_md_choose_slot(rc, h), 0);

	/* commit 13 was torn in slot 1: commit 12 in slot 0 is used */
	rc[1] = -EBADMSG;
	KUNIT_EXPECT_EQ(test, fm_md_choose_slot(rc, h), 0);
	/* torn first commit of a device formatted with seq 1 */
	fm_md_test_header(&h[1], 1);
	rc[0] = -ENODATA;
	rc[1] = 0;
	KUNIT_EXPECT_EQ(test, fm_md_choose_slot(rc, h), 1);
	rc[1] = -EBADMSG;
	KUNIT_EXPECT_EQ(test, fm_md_choose_slot(rc, h), -1);

	/* a superblock in the wrong slot for its number does not count */
	fm_md_test_header(&h[0], 21);
	fm_md_test_header(&h[1], 20);
	rc[0] = 0;
	rc[1] = 0;
	KUNIT_EXPECT_EQ(test, fm_md_choose_slot(rc, h), -1);
	fm_md_test_header(&h[1], 19);
	KUNIT_EXPECT_EQ(test, fm_md_choose_slot(rc, h), 1);

	/* another version is not valid */
	fm_md_test_header(&h[0], 4);
	rc[0] = -EPROTONOSUPPORT;
	rc[1] = -ENODATA;
	KUNIT_EXPECT_EQ(test, fm_md_choose_slot(rc, h), -1);
}

static void fm_md_test_mismatch(struct kunit *test)
{
	struct fm_md_header h;
	struct fm_md_geometry g;

	fm_md_test_header(&h, 3);
	g = h.geo;
	KUNIT_EXPECT_NULL(test, fm_md_mismatch(&h, &g));
	g.region_size = 2048;
	KUNIT_EXPECT_STREQ(test, fm_md_mismatch(&h, &g),
			   "Metadata was written with another region size");
	g = h.geo;
	g.target_len -= 8;
	KUNIT_EXPECT_STREQ(test, fm_md_mismatch(&h, &g),
			   "Metadata was written for another mapped length");
	g = h.geo;
	g.src_sectors += 8;
	KUNIT_EXPECT_STREQ(test, fm_md_mismatch(&h, &g),
			   "Source device size differs from the metadata's");
	g = h.geo;
	g.dst_sectors -= 8;
	KUNIT_EXPECT_STREQ(test, fm_md_mismatch(&h, &g),
			   "Destination device size differs from the metadata's");
	g = h.geo;
	h.bitmap_blocks++;
	KUNIT_EXPECT_STREQ(test, fm_md_mismatch(&h, &g),
			   "Metadata superblock is inconsistent");
}

static void fm_md_test_sizes(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, fm_md_bitmap_blocks(0), 1U);
	KUNIT_EXPECT_EQ(test, fm_md_bitmap_blocks(1), 1U);
	KUNIT_EXPECT_EQ(test, fm_md_bitmap_blocks(32768), 1U);
	KUNIT_EXPECT_EQ(test, fm_md_bitmap_blocks(32769), 2U);
	KUNIT_EXPECT_EQ(test, fm_md_bitmap_blocks(1ULL << 28), 8192U);
	/* 2 superblocks + 2 slots x 2 bitmaps, 8 sectors a block */
	KUNIT_EXPECT_EQ(test, fm_md_required_sectors(100), 48ULL);
	KUNIT_EXPECT_EQ(test, fm_md_required_sectors(40000), 80ULL);
}

static void fm_md_test_bitmap_codec(struct kunit *test)
{
	const unsigned long nbits = 2 * FM_MD_BITS_PER_BLOCK + 77;
	unsigned long *bm = kunit_kcalloc(test, BITS_TO_LONGS(nbits),
					  sizeof(long), GFP_KERNEL);
	unsigned long *back = kunit_kcalloc(test, BITS_TO_LONGS(nbits),
					    sizeof(long), GFP_KERNEL);
	u8 *block = kunit_kzalloc(test, FM_MD_BLOCK_SIZE, GFP_KERNEL);
	unsigned long i;
	unsigned int b;

	KUNIT_ASSERT_NOT_NULL(test, bm);
	KUNIT_ASSERT_NOT_NULL(test, back);
	KUNIT_ASSERT_NOT_NULL(test, block);
	for (i = 0; i < nbits; i++)
		if ((i * 2654435761UL) % 7 < 3)
			__set_bit(i, bm);
	__set_bit(nbits - 1, bm);

	/* bit 9 of the second block is byte 1, bit 1 */
	fm_md_encode_block(bm, nbits, 1, block);
	KUNIT_EXPECT_EQ(test, !!(block[1] & 2),
			!!test_bit(FM_MD_BITS_PER_BLOCK + 9, bm));
	/* the last block: nothing past the last bit */
	fm_md_encode_block(bm, nbits, 2, block);
	KUNIT_EXPECT_EQ(test, block[9] & 0xf0, 1 << 4);	/* bit 76, no more */
	KUNIT_EXPECT_NULL(test, memchr_inv(block + 10, 0, FM_MD_BLOCK_SIZE - 10));
	/* a block past the end is all zero */
	fm_md_encode_block(bm, nbits, 3, block);
	KUNIT_EXPECT_NULL(test, memchr_inv(block, 0, FM_MD_BLOCK_SIZE));

	for (b = 0; b < fm_md_bitmap_blocks(nbits); b++) {
		fm_md_encode_block(bm, nbits, b, block);
		fm_md_decode_block(block, nbits, b, back);
	}
	KUNIT_EXPECT_TRUE(test, bitmap_equal(bm, back, nbits));
}

/* ---- the commit rules -------------------------------------------------- */

#define FM_MD_TEST_N 64UL

/* one word each: the tests below use word 0 directly (64-bit builds) */
struct fm_md_test_state {
	struct fm_md md;
	DECLARE_BITMAP(copied, FM_MD_TEST_N);
	DECLARE_BITMAP(intent, FM_MD_TEST_N);
	DECLARE_BITMAP(snap, FM_MD_TEST_N);
	DECLARE_BITMAP(cur, FM_MD_TEST_N);
	DECLARE_BITMAP(touched, FM_MD_TEST_N);
	DECLARE_BITMAP(keep, FM_MD_TEST_N);
	DECLARE_BITMAP(new_copied, FM_MD_TEST_N);
	DECLARE_BITMAP(new_intent, FM_MD_TEST_N);
};

static void fm_md_test_init(struct fm_md_test_state *t)
{
	memset(t, 0, sizeof(*t));
	t->md.copied = t->copied;
	t->md.intent = t->intent;
	t->md.geo.nr_regions = FM_MD_TEST_N;
}

static void fm_md_test_step(struct fm_md_test_state *t, bool snap,
			    bool keep, bool flushed)
{
	fm_md_next_state(FM_MD_TEST_N, &t->md, snap ? t->snap : t->cur,
			 t->cur, t->touched, keep ? t->keep : NULL, flushed,
			 t->new_copied, t->new_intent);
}

/* A copied bit is written only after a flush that followed the copy. */
static void fm_md_test_rule_copied_after_flush(struct kunit *test)
{
	struct fm_md_test_state t;

	fm_md_test_init(&t);
	/* region 3 copied: an intent commit (no flush) does not record it */
	__set_bit(3, t.cur);
	fm_md_test_step(&t, false, false, false);
	KUNIT_EXPECT_FALSE(test, test_bit(3, t.new_copied));

	/* copied after the checkpoint's snapshot: not covered by its flush */
	fm_md_test_step(&t, true, true, true);
	KUNIT_EXPECT_FALSE(test, test_bit(3, t.new_copied));

	/* copied before the snapshot, flush completed: recorded */
	__set_bit(3, t.snap);
	fm_md_test_step(&t, true, true, true);
	KUNIT_EXPECT_TRUE(test, test_bit(3, t.new_copied));
	KUNIT_EXPECT_FALSE(test, test_bit(3, t.new_intent));

	/* ... but not if the flush failed */
	fm_md_test_step(&t, true, true, false);
	KUNIT_EXPECT_FALSE(test, test_bit(3, t.new_copied));

	/* no longer copied now (a write hit one leg only): dropped */
	t.copied[0] = BIT(3);
	__clear_bit(3, t.cur);
	fm_md_test_step(&t, true, true, true);
	KUNIT_EXPECT_FALSE(test, test_bit(3, t.new_copied));
	fm_md_test_step(&t, false, false, false);
	KUNIT_EXPECT_FALSE(test, test_bit(3, t.new_copied));
}

/* Intent is set for every write, cleared only by a flush that covers it. */
static void fm_md_test_rule_intent(struct kunit *test)
{
	struct fm_md_test_state t;

	fm_md_test_init(&t);
	t.copied[0] = BIT(1) | BIT(2) | BIT(5);
	t.cur[0] = t.copied[0];
	t.snap[0] = t.copied[0];

	/* an intent commit for writes to 1 and 2 sets their intent */
	__set_bit(1, t.touched);
	__set_bit(2, t.touched);
	fm_md_test_step(&t, false, false, false);
	KUNIT_EXPECT_EQ(test, t.new_copied[0], BIT(1) | BIT(2) | BIT(5));
	KUNIT_EXPECT_EQ(test, t.new_intent[0], BIT(1) | BIT(2));
	t.intent[0] = t.new_intent[0];

	/* a later intent commit never clears it, even with touched cleared */
	t.touched[0] = 0;
	fm_md_test_step(&t, false, false, false);
	KUNIT_EXPECT_EQ(test, t.new_intent[0], BIT(1) | BIT(2));

	/* a checkpoint whose flush failed clears nothing */
	fm_md_test_step(&t, true, true, false);
	KUNIT_EXPECT_EQ(test, t.new_intent[0], BIT(1) | BIT(2));

	/*
	 * A checkpoint: 1 had a write in flight at the snapshot, 5 was
	 * written after it, 2 was quiet: only 2's intent is cleared.
	 */
	t.keep[0] = BIT(1);
	t.touched[0] = BIT(5);
	fm_md_test_step(&t, true, true, true);
	KUNIT_EXPECT_EQ(test, t.new_intent[0], BIT(1) | BIT(5));
	KUNIT_EXPECT_EQ(test, t.new_copied[0], BIT(1) | BIT(2) | BIT(5));

	/* intent is never written for a region recorded as not copied */
	t.touched[0] = BIT(9);
	fm_md_test_step(&t, true, true, true);
	KUNIT_EXPECT_FALSE(test, test_bit(9, t.new_intent));
}

/* The regions a write must wait for, before, during and after a commit. */
static void fm_md_test_rule_unsafe(struct kunit *test)
{
	unsigned long copied[1] = { BIT(0) | BIT(1) | BIT(2) };
	unsigned long intent[1] = { BIT(1) };
	unsigned long unsafe[1] = { 0 };
	unsigned long copied2[1] = { BIT(0) | BIT(1) | BIT(2) };
	unsigned long intent2[1] = { BIT(0) };

	fm_md_mark_unsafe(unsafe, copied, intent, FM_MD_TEST_N);
	KUNIT_EXPECT_EQ(test, unsafe[0], BIT(0) | BIT(2));
	/* while the next state is written, either may be on the disk */
	fm_md_mark_unsafe(unsafe, copied2, intent2, FM_MD_TEST_N);
	KUNIT_EXPECT_EQ(test, unsafe[0], BIT(0) | BIT(1) | BIT(2));
}

/*
 * A random walk of writes, copies and commits over a model of both legs,
 * where a checkpoint's snapshot and flush come first and its commit later,
 * with writes and copies in between (as in the target, where they go on
 * while the legs are flushed).  After every commit, a region the disk
 * records as copied without intent must hold the same durable data on
 * both legs, and no write to it may be pending in a volatile cache.
 */
static void fm_md_test_rule_random_walk(struct kunit *test)
{
	struct fm_md_test_state t;
	/* per region: durable and cached "versions" of each leg */
	u8 src_dur[FM_MD_TEST_N], src_cache[FM_MD_TEST_N];
	u8 dst_dur[FM_MD_TEST_N], dst_cache[FM_MD_TEST_N];
	DECLARE_BITMAP(unsafe, FM_MD_TEST_N) = { 0 };
	DECLARE_BITMAP(inflight, FM_MD_TEST_N) = { 0 };
	bool flushed = false, pending = false;
	unsigned int step, r, commits = 0, kept = 0;
	u32 seed = 12345;

	fm_md_test_init(&t);
	memset(src_dur, 0, sizeof(src_dur));
	memset(dst_dur, 0, sizeof(dst_dur));
	memset(src_cache, 0, sizeof(src_cache));
	memset(dst_cache, 0, sizeof(dst_cache));

	for (step = 0; step < 20000; step++) {
		seed = seed * 1103515245 + 12345;
		r = (seed >> 8) % FM_MD_TEST_N;
		switch ((seed >> 20) % 8) {
		case 0:	/* copy a region that is not copied and not written */
			if (test_bit(r, t.cur) || test_bit(r, inflight))
				break;
			dst_cache[r] = src_cache[r];
			__set_bit(r, t.cur);
			break;
		case 1:	/* a write starts (unless it has to wait) */
		case 2:
			if (test_bit(r, unsafe) || test_bit(r, inflight))
				break;
			__set_bit(r, t.touched);
			__set_bit(r, inflight);
			src_cache[r]++;
			if (test_bit(r, t.cur))
				dst_cache[r] = src_cache[r];
			break;
		case 3:	/* a write completes */
			__clear_bit(r, inflight);
			break;
		case 4:	/* an intent commit (not during a checkpoint) */
			if (pending)
				break;
			fm_md_test_step(&t, false, false, false);
			goto commit;
		case 5:	/* a checkpoint begins: snapshot, then flush */
			if (pending)
				break;
			bitmap_copy(t.snap, t.cur, FM_MD_TEST_N);
			bitmap_copy(t.keep, inflight, FM_MD_TEST_N);
			bitmap_zero(t.touched, FM_MD_TEST_N);
			flushed = (seed >> 16) % 4 != 0;
			/* a write in flight may or may not be covered: not */
			for (r = 0; flushed && r < FM_MD_TEST_N; r++) {
				if (test_bit(r, inflight))
					continue;
				src_dur[r] = src_cache[r];
				dst_dur[r] = dst_cache[r];
			}
			pending = true;
			break;
		case 6:	/* ... and commits */
		case 7:
			if (!pending)
				break;
			pending = false;
			fm_md_test_step(&t, true, true, flushed);
			goto commit;
		}
		continue;
commit:
		/* the real target checks old | new while it writes */
		fm_md_mark_unsafe(unsafe, t.new_copied, t.new_intent,
				  FM_MD_TEST_N);
		bitmap_copy(t.copied, t.new_copied, FM_MD_TEST_N);
		bitmap_copy(t.intent, t.new_intent, FM_MD_TEST_N);
		bitmap_zero(unsafe, FM_MD_TEST_N);
		fm_md_mark_unsafe(unsafe, t.copied, t.intent, FM_MD_TEST_N);
		commits++;
		for (r = 0; r < FM_MD_TEST_N; r++) {
			if (!test_bit(r, t.copied) || test_bit(r, t.intent))
				continue;
			kept++;
			KUNIT_ASSERT_EQ_MSG(test, src_dur[r], dst_dur[r],
					    "step %u: region %u kept but unequal",
					    step, r);
			KUNIT_ASSERT_EQ_MSG(test, src_dur[r], src_cache[r],
					    "step %u: region %u kept with a write not durable",
					    step, r);
		}
	}
	/* the walk must have reached states worth checking */
	KUNIT_EXPECT_GT(test, commits, 1000U);
	KUNIT_EXPECT_GT(test, kept, 1000U);
}

static struct kunit_case fm_md_cases[] = {
	KUNIT_CASE(fm_md_test_sb_roundtrip),
	KUNIT_CASE(fm_md_test_choose_slot),
	KUNIT_CASE(fm_md_test_mismatch),
	KUNIT_CASE(fm_md_test_sizes),
	KUNIT_CASE(fm_md_test_bitmap_codec),
	KUNIT_CASE(fm_md_test_rule_copied_after_flush),
	KUNIT_CASE(fm_md_test_rule_intent),
	KUNIT_CASE(fm_md_test_rule_unsafe),
	KUNIT_CASE(fm_md_test_rule_random_walk),
	{}
};

static struct kunit_suite fm_md_suite = {
	.name = "dm-flushmirror-metadata",
	.test_cases = fm_md_cases,
};

kunit_test_suites(&fm_md_suite);
