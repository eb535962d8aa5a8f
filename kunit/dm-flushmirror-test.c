// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit suites of dm-flushmirror: the flush decision, the region map, the
 * copy throttle and the argument parsers.
 *
 * Copyright (C) 2026 The dm-flushmirror authors
 *
 * dm-flushmirror-target.c includes this file at its end when
 * CONFIG_DM_FLUSHMIRROR_KUNIT_TEST is set, so the suites call the static
 * helpers directly, with no block device behind them.
 */

#include <kunit/test.h>
#include <linux/string.h>

/* ---- generation counters ---------------------------------------------- */

static void fm_test_check_invariants(struct kunit *test, const struct fm_gen *g)
{
	KUNIT_EXPECT_LE(test, g->wf, g->wm);
	KUNIT_EXPECT_LE(test, g->wm, g->sg);
	KUNIT_EXPECT_LE(test, g->fr, g->sg);
}

/* A device in sync with @n writes completed on both legs and flushed. */
static void fm_test_synced(struct fm_gen *g, unsigned int n)
{
	memset(g, 0, sizeof(*g));
	while (n--)
		fm_gen_write_done(g, false);
	fm_gen_enter_sync(g);
	fm_gen_flush_done(g, g->mark, true);
}

static void fm_gen_test_no_writes_no_flush(struct kunit *test)
{
	struct fm_gen g;

	fm_test_synced(&g, 5);
	KUNIT_EXPECT_EQ(test, g.wf, 5ULL);
	KUNIT_EXPECT_EQ(test, g.busy, 0U);
	/* Nothing written since the last destination flush. */
	KUNIT_EXPECT_EQ(test, fm_gen_flush_arrive(&g, FM_POLICY_GENERATION),
			FM_FLUSH_NONE);
	KUNIT_EXPECT_EQ(test, g.fr, 5ULL);
	KUNIT_EXPECT_EQ(test, g.busy, 0U);
	fm_test_check_invariants(test, &g);
}

static void fm_gen_test_new_writes_issue(struct kunit *test)
{
	struct fm_gen g;

	fm_test_synced(&g, 0);
	fm_gen_write_done(&g, true);
	fm_gen_write_done(&g, true);
	fm_gen_write_done(&g, true);
	KUNIT_EXPECT_EQ(test, g.wm, 3ULL);
	KUNIT_EXPECT_EQ(test, fm_gen_flush_arrive(&g, FM_POLICY_GENERATION),
			FM_FLUSH_ISSUE);
	KUNIT_EXPECT_EQ(test, g.busy, 1U);
	KUNIT_EXPECT_EQ(test, g.mark, 3ULL);
	/* A write that completes while the flush runs is not covered. */
	fm_gen_write_done(&g, true);
	fm_gen_flush_done(&g, 3, true);
	KUNIT_EXPECT_EQ(test, g.busy, 0U);
	KUNIT_EXPECT_EQ(test, g.wf, 3ULL);
	KUNIT_EXPECT_EQ(test, g.wm, 4ULL);
	fm_test_check_invariants(test, &g);
	/* The next guest flush needs the destination again. */
	KUNIT_EXPECT_EQ(test, fm_gen_flush_arrive(&g, FM_POLICY_GENERATION),
			FM_FLUSH_ISSUE);
	KUNIT_EXPECT_EQ(test, g.mark, 4ULL);
}

static void fm_gen_test_coalesce_in_flight(struct kunit *test)
{
	struct fm_gen g;

	fm_test_synced(&g, 0);
	fm_gen_write_done(&g, true);
	KUNIT_EXPECT_EQ(test, fm_gen_flush_arrive(&g, FM_POLICY_GENERATION),
			FM_FLUSH_ISSUE);
	/* Two more flushes with no new write: the one in flight covers both. */
	KUNIT_EXPECT_EQ(test, fm_gen_flush_arrive(&g, FM_POLICY_GENERATION),
			FM_FLUSH_WAIT);
	KUNIT_EXPECT_EQ(test, fm_gen_flush_arrive(&g, FM_POLICY_GENERATION),
			FM_FLUSH_WAIT);
	KUNIT_EXPECT_EQ(test, g.busy, 1U);
	fm_gen_flush_done(&g, 1, true);
	KUNIT_EXPECT_EQ(test, g.wf, 1ULL);
	fm_test_check_invariants(test, &g);
}

static void fm_gen_test_newer_writes_issue_again(struct kunit *test)
{
	struct fm_gen g;

	fm_test_synced(&g, 0);
	fm_gen_write_done(&g, true);
	KUNIT_EXPECT_EQ(test, fm_gen_flush_arrive(&g, FM_POLICY_GENERATION),
			FM_FLUSH_ISSUE);
	/*
	 * A write completed after the flush in flight was issued: it does not
	 * cover the next guest flush, which issues its own (WF < FR <= WM)
	 * rather than waiting for two flush times.
	 */
	fm_gen_write_done(&g, true);
	KUNIT_EXPECT_EQ(test, fm_gen_flush_arrive(&g, FM_POLICY_GENERATION),
			FM_FLUSH_ISSUE);
	KUNIT_EXPECT_EQ(test, g.busy, 2U);
	KUNIT_EXPECT_EQ(test, g.mark, 2ULL);
	/* ... and a third one with no newer write shares the second. */
	KUNIT_EXPECT_EQ(test, fm_gen_flush_arrive(&g, FM_POLICY_GENERATION),
			FM_FLUSH_WAIT);
	/* Out of order: the newer flush completes first. */
	fm_gen_flush_done(&g, 2, true);
	KUNIT_EXPECT_EQ(test, g.wf, 2ULL);
	fm_gen_flush_done(&g, 1, true);
	KUNIT_EXPECT_EQ(test, g.wf, 2ULL);
	KUNIT_EXPECT_EQ(test, g.busy, 0U);
	fm_test_check_invariants(test, &g);
}

static void fm_gen_test_copying_no_flush(struct kunit *test)
{
	struct fm_gen g = { };

	/* Copying: writes count in SG only; flushes never reach the dest. */
	fm_gen_write_done(&g, false);
	fm_gen_write_done(&g, true);
	KUNIT_EXPECT_EQ(test, g.sg, 2ULL);
	KUNIT_EXPECT_EQ(test, g.wm, 0ULL);
	KUNIT_EXPECT_EQ(test, fm_gen_flush_arrive(&g, FM_POLICY_GENERATION),
			FM_FLUSH_NONE);
	KUNIT_EXPECT_EQ(test, g.fr, 2ULL);
	KUNIT_EXPECT_EQ(test, g.busy, 0U);
	fm_test_check_invariants(test, &g);
}

static void fm_gen_test_failed_freezes_wm(struct kunit *test)
{
	struct fm_gen g;

	fm_test_synced(&g, 2);
	fm_gen_write_done(&g, true);
	fm_gen_leave_sync(&g);
	fm_gen_write_done(&g, true);
	fm_gen_write_done(&g, false);
	KUNIT_EXPECT_EQ(test, g.wm, 3ULL);
	KUNIT_EXPECT_EQ(test, g.sg, 5ULL);
	/* FR > WM: no destination flush now. */
	KUNIT_EXPECT_EQ(test, fm_gen_flush_arrive(&g, FM_POLICY_GENERATION),
			FM_FLUSH_NONE);
	fm_test_check_invariants(test, &g);
}

static void fm_gen_test_out_of_order(struct kunit *test)
{
	struct fm_gen g;

	/*
	 * Writes A, B, C in flight; C completes first, then a flush: it covers
	 * C only, and must not wait for A and B.
	 */
	fm_test_synced(&g, 0);
	fm_gen_write_done(&g, true);	/* C */
	KUNIT_EXPECT_EQ(test, fm_gen_flush_arrive(&g, FM_POLICY_GENERATION),
			FM_FLUSH_ISSUE);
	KUNIT_EXPECT_EQ(test, g.fr, 1ULL);
	fm_gen_write_done(&g, true);	/* A */
	fm_gen_write_done(&g, true);	/* B */
	fm_gen_flush_done(&g, 1, true);
	KUNIT_EXPECT_EQ(test, g.wf, 1ULL);
	KUNIT_EXPECT_EQ(test, g.wm, 3ULL);
	fm_test_check_invariants(test, &g);
}

static void fm_gen_test_transition(struct kunit *test)
{
	struct fm_gen g = { };

	fm_gen_write_done(&g, false);
	fm_gen_write_done(&g, false);
	/* Copied data is not counted: the transition flush is never skipped. */
	fm_gen_enter_sync(&g);
	KUNIT_EXPECT_EQ(test, g.busy, 1U);
	KUNIT_EXPECT_EQ(test, g.wm, 2ULL);
	KUNIT_EXPECT_EQ(test, g.mark, 2ULL);
	KUNIT_EXPECT_TRUE(test, g.in_sync);
	/* A guest flush meanwhile shares the transition flush. */
	KUNIT_EXPECT_EQ(test, fm_gen_flush_arrive(&g, FM_POLICY_GENERATION),
			FM_FLUSH_WAIT);
	KUNIT_EXPECT_EQ(test, g.busy, 1U);
	fm_gen_flush_done(&g, 2, true);
	KUNIT_EXPECT_EQ(test, g.wf, 2ULL);

	/* Nothing written at all, WF = WM = SG = 0: still one flush. */
	memset(&g, 0, sizeof(g));
	fm_gen_enter_sync(&g);
	KUNIT_EXPECT_EQ(test, g.busy, 1U);
	/* A flush from before a failure may still be in flight: one more. */
	fm_gen_leave_sync(&g);
	fm_gen_enter_sync(&g);
	KUNIT_EXPECT_EQ(test, g.busy, 2U);
}

static void fm_gen_test_flush_error(struct kunit *test)
{
	struct fm_gen g = { };

	fm_gen_write_done(&g, false);
	fm_gen_enter_sync(&g);
	fm_gen_flush_done(&g, 1, false);
	KUNIT_EXPECT_EQ(test, g.wf, 0ULL);
	KUNIT_EXPECT_EQ(test, g.busy, 0U);
}

static void fm_gen_test_policy_always(struct kunit *test)
{
	struct fm_gen g = { };

	/* Every phase, even with nothing new: a destination flush of its own. */
	KUNIT_EXPECT_EQ(test, fm_gen_flush_arrive(&g, FM_POLICY_ALWAYS),
			FM_FLUSH_OWN);
	fm_test_synced(&g, 3);
	KUNIT_EXPECT_EQ(test, fm_gen_flush_arrive(&g, FM_POLICY_ALWAYS),
			FM_FLUSH_OWN);
	KUNIT_EXPECT_EQ(test, fm_gen_flush_arrive(&g, FM_POLICY_ALWAYS),
			FM_FLUSH_OWN);
	KUNIT_EXPECT_EQ(test, g.busy, 0U);
	fm_gen_write_done(&g, true);
	fm_gen_own_flush_done(&g, 4);
	fm_gen_own_flush_done(&g, 3);	/* completes out of order */
	KUNIT_EXPECT_EQ(test, g.wf, 4ULL);
	fm_test_check_invariants(test, &g);
}

/*
 * A random walk over every operation, driven the way the target drives
 * them: writes complete on both legs or on one only (a source-only write
 * while copying or failed; while in sync only after a failing leg took the
 * target out of sync, as fm_region_unsynced() and fm_dest_failed() do
 * before fm_gen_write_done()), shared destination flushes complete in
 * random order, some of them with an error (which fails the destination).
 * Checks the invariants after every step; that a guest flush told to wait
 * is covered by a flush in flight; and economy (G5): a guest flush never
 * issues a destination flush when one in flight already covers it, nor
 * when the last completed one does (no new writes since), and it never
 * goes without one it needs.
 */
static void fm_gen_test_random_walk(struct kunit *test)
{
	unsigned int i, n = 0, k, issued = 0, waited = 0, none = 0, one_leg = 0;
	u64 marks[32], need, wf0, wm0, sg0;
	enum fm_flush_action act;
	u32 seed = 12345;
	struct fm_gen g = { };
	bool covered, ok;

	for (i = 0; i < 20000; i++) {
		seed = seed * 1103515245 + 12345;
		sg0 = g.sg;
		wm0 = g.wm;
		wf0 = g.wf;
		switch ((seed >> 16) % 7) {
		case 0:
		case 1:
			fm_gen_write_done(&g, true);
			KUNIT_ASSERT_EQ(test, g.sg, sg0 + 1);
			KUNIT_ASSERT_EQ(test, g.wm, g.in_sync ? g.sg : wm0);
			break;
		case 6:
			/* On one leg only: never counted as mirrored. */
			if (g.in_sync) {
				if (seed & 0x300000) {
					fm_gen_write_done(&g, true);
					break;
				}
				fm_gen_leave_sync(&g);
			}
			fm_gen_write_done(&g, false);
			one_leg++;
			KUNIT_ASSERT_EQ(test, g.sg, sg0 + 1);
			KUNIT_ASSERT_EQ(test, g.wm, wm0);
			break;
		case 2:
			if (n == ARRAY_SIZE(marks))
				break;
			/* FR will be SG: is it covered by a flush in flight? */
			need = g.sg;
			covered = false;
			for (k = 0; k < n; k++)
				if (marks[k] >= need)
					covered = true;
			act = fm_gen_flush_arrive(&g, FM_POLICY_GENERATION);
			KUNIT_ASSERT_EQ(test, g.fr, need);
			switch (act) {
			case FM_FLUSH_ISSUE:
				/* Economy: none in flight or done covers it */
				KUNIT_ASSERT_FALSE(test, covered);
				KUNIT_ASSERT_LT(test, wf0, need);
				KUNIT_ASSERT_TRUE(test, g.in_sync);
				KUNIT_ASSERT_GE(test, g.wm, need);
				marks[n++] = g.wm;
				issued++;
				break;
			case FM_FLUSH_WAIT:
				/* Some flush in flight covers it. */
				KUNIT_ASSERT_TRUE(test, covered);
				KUNIT_ASSERT_TRUE(test, g.in_sync);
				KUNIT_ASSERT_LT(test, wf0, need);
				waited++;
				break;
			case FM_FLUSH_NONE:
				/* Durable already, or promised nothing yet. */
				KUNIT_ASSERT_TRUE(test,
						  !g.in_sync || wf0 >= need);
				none++;
				break;
			default:
				KUNIT_FAIL(test, "flush_arrive returned %d",
					   act);
				return;
			}
			break;
		case 3:
			if (!n)
				break;
			k = (seed >> 8) % n;
			/* A failed destination flush fails the destination. */
			ok = (seed & 0x700000) != 0;
			fm_gen_flush_done(&g, marks[k], ok);
			KUNIT_ASSERT_EQ(test, g.wf,
					ok ? max(wf0, marks[k]) : wf0);
			if (!ok)
				fm_gen_leave_sync(&g);
			marks[k] = marks[--n];
			break;
		case 4:
			if (!g.in_sync && (seed & 0x100000) &&
			    n < ARRAY_SIZE(marks)) {
				fm_gen_enter_sync(&g);
				KUNIT_ASSERT_EQ(test, g.wm, g.sg);
				marks[n++] = g.wm;
			}
			break;
		case 5:
			if (g.in_sync && !(seed & 0x300000))
				fm_gen_leave_sync(&g);
			break;
		}
		KUNIT_ASSERT_EQ(test, g.busy, n);
		KUNIT_ASSERT_LE(test, g.wf, g.wm);
		KUNIT_ASSERT_LE(test, g.wm, g.sg);
		KUNIT_ASSERT_LE(test, g.fr, g.sg);
		KUNIT_ASSERT_GE(test, g.wm, wm0);
		KUNIT_ASSERT_GE(test, g.wf, wf0);
		if (g.in_sync)
			KUNIT_ASSERT_EQ(test, g.wm, g.sg);
	}
	/* The walk went through every decision, not only the easy ones. */
	KUNIT_EXPECT_GT(test, issued, 100U);
	KUNIT_EXPECT_GT(test, waited, 100U);
	KUNIT_EXPECT_GT(test, none, 100U);
	KUNIT_EXPECT_GT(test, one_leg, 100U);
}

static struct kunit_case fm_gen_cases[] = {
	KUNIT_CASE(fm_gen_test_no_writes_no_flush),
	KUNIT_CASE(fm_gen_test_new_writes_issue),
	KUNIT_CASE(fm_gen_test_coalesce_in_flight),
	KUNIT_CASE(fm_gen_test_newer_writes_issue_again),
	KUNIT_CASE(fm_gen_test_copying_no_flush),
	KUNIT_CASE(fm_gen_test_failed_freezes_wm),
	KUNIT_CASE(fm_gen_test_out_of_order),
	KUNIT_CASE(fm_gen_test_transition),
	KUNIT_CASE(fm_gen_test_flush_error),
	KUNIT_CASE(fm_gen_test_policy_always),
	KUNIT_CASE(fm_gen_test_random_walk),
	{}
};

static struct kunit_suite fm_gen_suite = {
	.name = "dm-flushmirror-generations",
	.test_cases = fm_gen_cases,
};

/* ---- region map -------------------------------------------------------- */

static struct fm_regions *fm_test_regions(struct kunit *test, unsigned long nr)
{
	struct fm_regions *rg = kunit_kzalloc(test, sizeof(*rg), GFP_KERNEL);

	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, rg);
	rg->nr = nr;
	rg->copied = kunit_kzalloc(test, BITS_TO_LONGS(nr) * sizeof(long),
				   GFP_KERNEL);
	rg->busy = kunit_kzalloc(test, BITS_TO_LONGS(nr) * sizeof(long),
				 GFP_KERNEL);
	rg->todo = kunit_kzalloc(test, BITS_TO_LONGS(fm_region_chunks(rg)) *
				 sizeof(long), GFP_KERNEL);
	rg->redirtied = kunit_kzalloc(test, BITS_TO_LONGS(nr) * sizeof(long),
				      GFP_KERNEL);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, rg->redirtied);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, rg->copied);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, rg->busy);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, rg->todo);
	/* every chunk may hold work, as fm_ctr() starts */
	bitmap_fill(rg->todo, fm_region_chunks(rg));
	return rg;
}

static void fm_region_test_route(struct kunit *test)
{
	struct fm_regions *rg = fm_test_regions(test, 4);
	unsigned long r;

	KUNIT_EXPECT_EQ(test, fm_region_route(rg, 0, false), FM_ROUTE_SOURCE);
	KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &r));
	KUNIT_EXPECT_EQ(test, r, 0UL);
	/* Being copied: the write waits for the copy. */
	KUNIT_EXPECT_EQ(test, fm_region_route(rg, 0, false), FM_ROUTE_DEFER);
	KUNIT_EXPECT_EQ(test, fm_region_route(rg, 0, true), FM_ROUTE_DEFER);
	KUNIT_EXPECT_FALSE(test, fm_region_copied(rg, 0, true));
	/* Copied: mirrored. */
	KUNIT_EXPECT_EQ(test, fm_region_route(rg, 0, false), FM_ROUTE_MIRROR);
	KUNIT_EXPECT_EQ(test, rg->nr_copied, 1UL);
	/* Written while failed: source only, and remembered for a retry. */
	KUNIT_EXPECT_EQ(test, fm_region_route(rg, 0, true), FM_ROUTE_SOURCE);
	KUNIT_EXPECT_EQ(test, rg->nr_copied, 0UL);
	KUNIT_EXPECT_FALSE(test, test_bit(0, rg->copied));
	KUNIT_EXPECT_EQ(test, fm_region_route(rg, 0, false), FM_ROUTE_SOURCE);
}

static void fm_region_test_claim_order(struct kunit *test)
{
	struct fm_regions *rg = fm_test_regions(test, 100);
	unsigned long r, i;

	/* Regions 10..89 are copied already; 95 is busy. */
	bitmap_set(rg->copied, 10, 80);
	rg->nr_copied = 80;
	set_bit(95, rg->busy);
	rg->cursor = 93;
	KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &r));
	KUNIT_EXPECT_EQ(test, r, 93UL);
	KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &r));
	KUNIT_EXPECT_EQ(test, r, 94UL);
	/* Skips busy 95. */
	KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &r));
	KUNIT_EXPECT_EQ(test, r, 96UL);
	for (i = 97; i < 100; i++) {
		KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &r));
		KUNIT_EXPECT_EQ(test, r, i);
	}
	/* Wraps to the start. */
	for (i = 0; i < 10; i++) {
		KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &r));
		KUNIT_EXPECT_EQ(test, r, i);
	}
	for (i = 90; i < 93; i++) {
		KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &r));
		KUNIT_EXPECT_EQ(test, r, i);
	}
	/* Everything is copied or busy now. */
	KUNIT_EXPECT_FALSE(test, fm_region_claim(rg, &r));
}

static void fm_region_test_copy_done(struct kunit *test)
{
	struct fm_regions *rg = fm_test_regions(test, 3);
	unsigned long r, a, b, c;

	KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &a));
	KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &b));
	KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &c));
	KUNIT_EXPECT_FALSE(test, fm_region_copied(rg, a, true));
	/* A failed copy leaves the region to copy again. */
	KUNIT_EXPECT_FALSE(test, fm_region_copied(rg, b, false));
	KUNIT_EXPECT_FALSE(test, test_bit(b, rg->busy));
	KUNIT_EXPECT_FALSE(test, fm_region_copied(rg, c, true));
	KUNIT_EXPECT_EQ(test, rg->nr_copied, 2UL);
	KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &r));
	KUNIT_EXPECT_EQ(test, r, b);
	KUNIT_EXPECT_TRUE(test, fm_region_copied(rg, r, true));
	KUNIT_EXPECT_FALSE(test, fm_region_claim(rg, &r));
}

/*
 * The chunk summary: a search clears the bits of chunks without work, and
 * every way a region becomes work again (a write that reaches one leg, a
 * failed copy) sets its chunk's bit, or the copier would never find it.
 */
static void fm_region_test_chunks(struct kunit *test)
{
	unsigned long nr = 8 * FM_CHUNK_REGIONS + 5, r;
	struct fm_regions *rg = fm_test_regions(test, nr);

	/* all copied but two regions, in chunks 3 and 8 (the short one) */
	bitmap_set(rg->copied, 0, nr);
	__clear_bit(3 * FM_CHUNK_REGIONS + 7, rg->copied);
	__clear_bit(nr - 1, rg->copied);
	rg->nr_copied = nr - 2;
	KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &r));
	KUNIT_EXPECT_EQ(test, r, 3 * FM_CHUNK_REGIONS + 7);
	KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &r));
	KUNIT_EXPECT_EQ(test, r, nr - 1);
	KUNIT_EXPECT_FALSE(test, fm_region_claim(rg, &r));
	/* the searches left no chunk marked but the cursor's own */
	KUNIT_EXPECT_LE(test, bitmap_weight(rg->todo, 9), 1U);

	/* a failed copy is work again */
	KUNIT_EXPECT_FALSE(test, fm_region_copied(rg, 3 * FM_CHUNK_REGIONS + 7,
						  false));
	KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &r));
	KUNIT_EXPECT_EQ(test, r, 3 * FM_CHUNK_REGIONS + 7);
	KUNIT_EXPECT_FALSE(test, fm_region_copied(rg, r, true));
	KUNIT_EXPECT_TRUE(test, fm_region_copied(rg, nr - 1, true));
	KUNIT_EXPECT_FALSE(test, fm_region_claim(rg, &r));

	/* a copied region written on one leg only is work again */
	fm_region_clear(rg, 5 * FM_CHUNK_REGIONS + 1);
	KUNIT_EXPECT_TRUE(test, test_bit(5, rg->todo));
	KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &r));
	KUNIT_EXPECT_EQ(test, r, 5 * FM_CHUNK_REGIONS + 1);
	/* written while failed: the route clears it, the chunk is marked */
	KUNIT_EXPECT_TRUE(test, fm_region_copied(rg, r, true));
	KUNIT_EXPECT_EQ(test, fm_region_route(rg, 2, true), FM_ROUTE_SOURCE);
	KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &r));
	KUNIT_EXPECT_EQ(test, r, 2UL);
}

/* copy_mode background: a copied region is sent back once, then mirrored */
static void fm_region_test_redirty(struct kunit *test)
{
	struct fm_regions *rg = fm_test_regions(test, 2048);
	unsigned long r;

	KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &r));
	fm_region_copied(rg, r, true);
	KUNIT_EXPECT_EQ(test, rg->nr_copied, 1UL);
	bitmap_zero(rg->todo, fm_region_chunks(rg));
	KUNIT_EXPECT_TRUE(test, fm_region_redirty(rg, r));
	KUNIT_EXPECT_EQ(test, rg->nr_copied, 0UL);
	KUNIT_EXPECT_FALSE(test, test_bit(r, rg->copied));
	/* its chunk is searched again */
	KUNIT_EXPECT_TRUE(test, test_bit(r / FM_CHUNK_REGIONS, rg->todo));
	KUNIT_EXPECT_EQ(test, fm_region_route(rg, r, false), FM_ROUTE_SOURCE);
	/* copied again: the next write is mirrored, not sent back */
	rg->cursor = 0;
	KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &r));
	KUNIT_EXPECT_EQ(test, r, 0UL);
	fm_region_copied(rg, r, true);
	KUNIT_EXPECT_FALSE(test, fm_region_redirty(rg, r));
	KUNIT_EXPECT_TRUE(test, test_bit(r, rg->copied));
	KUNIT_EXPECT_EQ(test, fm_region_route(rg, r, false), FM_ROUTE_MIRROR);
	/* another region has its own allowance */
	KUNIT_ASSERT_TRUE(test, fm_region_claim(rg, &r));
	fm_region_copied(rg, r, true);
	KUNIT_EXPECT_TRUE(test, fm_region_redirty(rg, r));
}

static struct kunit_case fm_region_cases[] = {
	KUNIT_CASE(fm_region_test_route),
	KUNIT_CASE(fm_region_test_chunks),
	KUNIT_CASE(fm_region_test_claim_order),
	KUNIT_CASE(fm_region_test_copy_done),
	KUNIT_CASE(fm_region_test_redirty),
	{}
};

static struct kunit_suite fm_region_suite = {
	.name = "dm-flushmirror-regions",
	.test_cases = fm_region_cases,
};

/* ---- throttle ---------------------------------------------------------- */

static void fm_throttle_test_rate(struct kunit *test)
{
	struct fm_throttle t = { .stamp = 1000 };

	/* Unlimited. */
	KUNIT_EXPECT_EQ(test, fm_throttle_take(&t, 1000, 0, 1 << 20), 0UL);
	/* 1024 KiB/s is 2048 sectors/s: 2048 sectors need a second. */
	KUNIT_EXPECT_EQ(test, fm_throttle_take(&t, 1000, 1024, 2048),
			(unsigned long)HZ);
	KUNIT_EXPECT_EQ(test, fm_throttle_take(&t, 1000 + HZ / 2, 1024, 2048),
			(unsigned long)(HZ - HZ / 2));
	KUNIT_EXPECT_EQ(test, fm_throttle_take(&t, 1000 + HZ, 1024, 2048), 0UL);
	KUNIT_EXPECT_EQ(test, t.tokens, 0ULL);
	/* An idle copier saves at most one second of budget. */
	KUNIT_EXPECT_EQ(test, fm_throttle_take(&t, 1000 + 100 * HZ, 1024, 2048),
			0UL);
	KUNIT_EXPECT_NE(test, fm_throttle_take(&t, 1000 + 100 * HZ, 1024, 1),
			0UL);
	/* A region larger than a second of budget is copied once it is due. */
	KUNIT_EXPECT_NE(test, fm_throttle_take(&t, 1000 + 200 * HZ, 1, 4096),
			0UL);
	KUNIT_EXPECT_EQ(test, fm_throttle_take(&t, 1000 + 2300 * HZ, 1, 4096),
			0UL);
}

static struct kunit_case fm_throttle_cases[] = {
	KUNIT_CASE(fm_throttle_test_rate),
	{}
};

static struct kunit_suite fm_throttle_suite = {
	.name = "dm-flushmirror-throttle",
	.test_cases = fm_throttle_cases,
};

/* ---- parsers ----------------------------------------------------------- */

static int fm_test_features(struct kunit *test, const char *line,
			    struct fm_config *cfg, char **error)
{
	struct dm_arg_set as;
	char **argv;
	int argc, r;

	argv = argv_split(GFP_KERNEL, line, &argc);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, argv);
	as.argc = argc;
	as.argv = argv;
	*error = NULL;
	r = fm_parse_features(&as, cfg, error);
	if (!r && as.argc)
		r = -E2BIG;
	argv_free(argv);
	return r;
}

static void fm_parse_test_region_size(struct kunit *test)
{
	static const struct {
		const char *arg;
		int r;
		unsigned int size;
	} cases[] = {
		{ "8", 0, 8 }, { "1024", 0, 1024 }, { "2097152", 0, 2097152 },
		{ "0", -EINVAL }, { "4", -EINVAL }, { "7", -EINVAL },
		{ "12", -EINVAL }, { "4194304", -EINVAL }, { "-8", -EINVAL },
		{ "8k", -EINVAL }, { "", -EINVAL }, { "99999999999999", -EINVAL },
	};
	unsigned int i, size;
	char *error;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		error = NULL;
		KUNIT_EXPECT_EQ_MSG(test, fm_parse_region_size(cases[i].arg,
							       &size, &error),
				    cases[i].r, "region size \"%s\"",
				    cases[i].arg);
		if (cases[i].r)
			KUNIT_EXPECT_NOT_ERR_OR_NULL(test, error);
		else
			KUNIT_EXPECT_EQ(test, size, cases[i].size);
	}
}

static void fm_parse_test_features_good(struct kunit *test)
{
	static const char all[] =
		"7 copy_jobs 64 nosync flush_policy always copy_rate 2048";
	static const char md[] =
		"5 metadata 253:7 checkpoint_interval 60 discard_metadata";
	struct fm_config cfg;
	char *error;

	KUNIT_EXPECT_EQ(test, fm_test_features(test, "", &cfg, &error), 0);
	KUNIT_EXPECT_FALSE(test, cfg.nosync);
	KUNIT_EXPECT_EQ(test, cfg.policy, FM_POLICY_GENERATION);
	KUNIT_EXPECT_EQ(test, cfg.copy_rate, 0U);
	KUNIT_EXPECT_EQ(test, cfg.copy_jobs, FM_DEFAULT_COPY_JOBS);

	KUNIT_EXPECT_EQ(test, fm_test_features(test, "0", &cfg, &error), 0);

	KUNIT_EXPECT_EQ(test, fm_test_features(test, all, &cfg, &error), 0);
	KUNIT_EXPECT_TRUE(test, cfg.nosync);
	KUNIT_EXPECT_EQ(test, cfg.policy, FM_POLICY_ALWAYS);
	KUNIT_EXPECT_EQ(test, cfg.copy_rate, 2048U);
	KUNIT_EXPECT_EQ(test, cfg.copy_jobs, 64U);

	KUNIT_EXPECT_EQ(test, fm_test_features(test, "2 copy_jobs 1", &cfg,
					       &error), 0);
	KUNIT_EXPECT_EQ(test, cfg.copy_jobs, 1U);
	KUNIT_EXPECT_EQ(test, cfg.copy_mode, FM_COPY_SYNC);
	KUNIT_EXPECT_NULL(test, cfg.md_path);

	KUNIT_EXPECT_EQ(test, fm_test_features(test, "2 copy_mode background",
					       &cfg, &error), 0);
	KUNIT_EXPECT_EQ(test, cfg.copy_mode, FM_COPY_BACKGROUND);
	KUNIT_EXPECT_EQ(test, fm_test_features(test, md, &cfg, &error), 0);
	KUNIT_EXPECT_NOT_NULL(test, cfg.md_path);
	KUNIT_EXPECT_EQ(test, cfg.checkpoint, 60U);
	KUNIT_EXPECT_TRUE(test, cfg.discard_md);
	KUNIT_EXPECT_EQ(test, fm_test_features(test, "2 metadata /dev/md0",
					       &cfg, &error), 0);
	KUNIT_EXPECT_EQ(test, cfg.checkpoint, FM_DEFAULT_CHECKPOINT);
	KUNIT_EXPECT_FALSE(test, cfg.discard_md);
}

static void fm_parse_test_features_bad(struct kunit *test)
{
	static const char * const bad[] = {
		"1 bogus", "2 copy_jobs 0", "2 copy_jobs 65", "2 copy_jobs x",
		"2 copy_rate -1", "2 copy_rate 1k", "2 flush_policy sometimes",
		"1 flush_policy", "2 nosync nosync",
		"4 copy_rate 1 copy_rate 2", "8 nosync", "3 nosync", "x",
		"-1", "2 copy_rate 99999999999", "4294967297 nosync",
		"4294967298 nosync nosync",
		"2 copy_mode never", "1 copy_mode", "1 discard_metadata",
		"2 checkpoint_interval 5", "1 metadata",
		"4 metadata 1:2 checkpoint_interval 0",
		"4 metadata 1:2 checkpoint_interval 3601",
		"4 metadata 1:2 metadata 1:3", "15 nosync",
	};
	struct fm_config cfg;
	unsigned int i;
	char *error;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		KUNIT_EXPECT_NE_MSG(test, fm_test_features(test, bad[i], &cfg,
							   &error),
				    0, "features \"%s\"", bad[i]);
		KUNIT_EXPECT_NOT_ERR_OR_NULL_MSG(test, error, "features \"%s\"",
						 bad[i]);
	}
	/* The error names what is wrong. */
	fm_test_features(test, "1 foo", &cfg, &error);
	KUNIT_EXPECT_STREQ(test, error, "Unknown feature argument");
	fm_test_features(test, "2 foo 1", &cfg, &error);
	KUNIT_EXPECT_STREQ(test, error, "Unknown feature argument");
	fm_test_features(test, "1 copy_jobs", &cfg, &error);
	KUNIT_EXPECT_STREQ(test, error, "Feature argument lacks its value");
	fm_test_features(test, "2 nosync NoSync", &cfg, &error);
	KUNIT_EXPECT_STREQ(test, error, "Duplicate feature argument");
	fm_test_features(test, "2 checkpoint_interval 5", &cfg, &error);
	KUNIT_EXPECT_STREQ(test, error,
			   "discard_metadata and checkpoint_interval need the metadata feature");
	fm_test_features(test, "2 copy_mode fast", &cfg, &error);
	KUNIT_EXPECT_STREQ(test, error,
			   "Invalid copy_mode: expected sync or background");
	/* A count shorter than what follows leaves arguments over. */
	KUNIT_EXPECT_EQ(test, fm_test_features(test, "1 nosync copy_jobs 4",
					       &cfg, &error), -E2BIG);
}

static int fm_test_message(struct kunit *test, const char *line,
			   struct fm_msg *msg)
{
	const char *why = NULL;
	char **argv;
	int argc, r;

	argv = argv_split(GFP_KERNEL, line, &argc);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, argv);
	r = fm_parse_message(argc, argv, msg, &why);
	if (r)
		KUNIT_EXPECT_NOT_ERR_OR_NULL(test, why);
	argv_free(argv);
	return r;
}

static void fm_parse_test_messages(struct kunit *test)
{
	static const char * const bad[] = {
		"", "frobnicate", "pause now", "resume 1", "retry x",
		"copy_rate", "copy_rate -5", "copy_rate 10 20", "copy_rate ten",
		"flush_policy", "flush_policy never", "flush_policy always x",
	};
	struct fm_msg msg;
	unsigned int i;

	KUNIT_EXPECT_EQ(test, fm_test_message(test, "pause", &msg), 0);
	KUNIT_EXPECT_EQ(test, msg.cmd, FM_MSG_PAUSE);
	KUNIT_EXPECT_EQ(test, fm_test_message(test, "resume", &msg), 0);
	KUNIT_EXPECT_EQ(test, msg.cmd, FM_MSG_RESUME);
	KUNIT_EXPECT_EQ(test, fm_test_message(test, "retry", &msg), 0);
	KUNIT_EXPECT_EQ(test, msg.cmd, FM_MSG_RETRY);
	KUNIT_EXPECT_EQ(test, fm_test_message(test, "copy_rate 4096", &msg), 0);
	KUNIT_EXPECT_EQ(test, msg.cmd, FM_MSG_COPY_RATE);
	KUNIT_EXPECT_EQ(test, msg.rate, 4096U);
	KUNIT_EXPECT_EQ(test, fm_test_message(test, "flush_policy always", &msg),
			0);
	KUNIT_EXPECT_EQ(test, msg.cmd, FM_MSG_FLUSH_POLICY);
	KUNIT_EXPECT_EQ(test, msg.policy, FM_POLICY_ALWAYS);

	for (i = 0; i < ARRAY_SIZE(bad); i++)
		KUNIT_EXPECT_EQ_MSG(test, fm_test_message(test, bad[i], &msg),
				    -EINVAL, "message \"%s\"", bad[i]);
}

static struct kunit_case fm_parse_cases[] = {
	KUNIT_CASE(fm_parse_test_region_size),
	KUNIT_CASE(fm_parse_test_features_good),
	KUNIT_CASE(fm_parse_test_features_bad),
	KUNIT_CASE(fm_parse_test_messages),
	{}
};

static struct kunit_suite fm_parse_suite = {
	.name = "dm-flushmirror-parsers",
	.test_cases = fm_parse_cases,
};

kunit_test_suites(&fm_gen_suite, &fm_region_suite, &fm_throttle_suite,
		  &fm_parse_suite);
