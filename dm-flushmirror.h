/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-flushmirror: the pure state of the target.
 *
 * Copyright (C) 2026 The dm-flushmirror authors
 *
 * Everything in this header is plain data with no block device behind it:
 * the four generation counters that decide when a guest flush needs a
 * destination flush, the region map of the background copy, the copy
 * throttle and the parsed constructor arguments.  The helpers that change
 * them live in dm-flushmirror-target.c, take no locks and never sleep; the target
 * calls them with &flushmirror_c.lock held, and the KUnit suites call them
 * directly.
 */
#ifndef DM_FLUSHMIRROR_H
#define DM_FLUSHMIRROR_H

#include <linux/bits.h>
#include <linux/types.h>

#define FM_MIN_REGION_SIZE	8U		/* sectors: 4 KiB */
#define FM_MAX_REGION_SIZE	2097152U	/* sectors: 1 GiB */
/*
 * At most 2^28 regions: two 32 MiB bitmaps, and every count fits the
 * unsigned int that bitmap_set(), bitmap_weight() and friends take (and an
 * unsigned long on 32-bit builds).  With the default 512 KiB regions that
 * is 128 PiB; a larger device needs a larger region size.
 */
#define FM_MAX_REGIONS		BIT(28)
#define FM_MAX_COPY_JOBS	64U
#define FM_DEFAULT_COPY_JOBS	8U
#define FM_DEFAULT_CHECKPOINT	5U	/* seconds */
#define FM_MAX_CHECKPOINT	3600U

/**
 * enum fm_phase - what the target reports as its phase
 * @FM_COPYING: regions remain to be copied, the copier runs.
 * @FM_PAUSED: like @FM_COPYING, but the admin stopped the copier.
 * @FM_SYNCED: every region copied and the transition flush completed.
 * @FM_FAILED: the destination failed; the guest runs on the source alone.
 */
enum fm_phase {
	FM_COPYING,
	FM_PAUSED,
	FM_SYNCED,
	FM_FAILED,
};

/**
 * enum fm_policy - when a guest flush is forwarded to the destination
 * @FM_POLICY_GENERATION: only when the generation counters say it adds
 *	durability (the default).
 * @FM_POLICY_ALWAYS: every guest flush, in every phase, as dm-mirror does.
 */
enum fm_policy {
	FM_POLICY_GENERATION,
	FM_POLICY_ALWAYS,
};

/**
 * enum fm_flush_action - what a guest flush needs from the destination
 * @FM_FLUSH_NONE: nothing: the destination already holds it durably, or it
 *	is not promised anything yet (still copying, or failed).
 * @FM_FLUSH_WAIT: wait for a shared destination flush in flight that
 *	covers it.
 * @FM_FLUSH_ISSUE: issue a shared destination flush now and wait for it.
 * @FM_FLUSH_OWN: policy always: issue a destination flush of its own.
 */
enum fm_flush_action {
	FM_FLUSH_NONE,
	FM_FLUSH_WAIT,
	FM_FLUSH_ISSUE,
	FM_FLUSH_OWN,
};

/**
 * struct fm_gen - the generation counters (US patent 8,935,502)
 * @sg: source generation: guest write-type bios completed to the guest.
 * @wm: writes mirrored: @sg at the last instant both legs held every
 *	completed write.  Follows @sg while @in_sync, frozen otherwise.
 * @fr: flush request: @sg when the latest guest flush arrived.
 * @wf: writes flushed: the @wm captured when the latest completed
 *	destination flush was issued (the highest, if they complete out of
 *	order).  Invariant: @wf <= @wm <= @sg, @fr <= @sg.
 * @mark: the @wm when the latest shared destination flush was decided; the
 *	flush captures at least that.  A guest flush with FR <= @mark waits for
 *	it while it is in flight (if it completed, @wf >= @mark already).
 * @busy: shared destination flushes decided and not yet completed.
 * @in_sync: every region is copied and nothing in flight is on one leg
 *	only, so each completed write is on both legs and @wm follows @sg.
 */
struct fm_gen {
	u64 sg;
	u64 wm;
	u64 fr;
	u64 wf;
	u64 mark;
	unsigned int busy;
	bool in_sync;
};

/**
 * enum fm_route - where a guest write to a region goes
 * @FM_ROUTE_SOURCE: to the source only; the copier copies the region later.
 * @FM_ROUTE_MIRROR: to both legs; completes when both have.
 * @FM_ROUTE_DEFER: the region is being copied: wait for the copy to end.
 */
enum fm_route {
	FM_ROUTE_SOURCE,
	FM_ROUTE_MIRROR,
	FM_ROUTE_DEFER,
};

/**
 * struct fm_regions - the region map of the background copy
 * @nr: number of regions (the last one may be short).
 * @nr_copied: number of bits set in @copied.
 * @copied: bit set when the region holds the same data on both legs, so
 *	writes to it must go to both.  Cleared when a write to it reaches one
 *	leg only (source error, destination error, written while failed).
 * @busy: bit set while a copy job owns the region; writes to it wait.
 *	A busy region is never copied.
 * @todo: one bit per chunk of %FM_CHUNK_REGIONS regions, set when the
 *	chunk may hold a region to copy.  Every region neither copied nor
 *	busy has its chunk's bit set; a search clears the bit of a chunk it
 *	found nothing in, so that the search for work (with interrupts off)
 *	looks at the chunks with work and not at the whole map.
 * @cursor: the region where the next search for work starts.
 * @redirtied: with copy_mode background, bit set when a write while
 *	copying sent the region back to be copied; it is sent back at most
 *	once, so the copy converges whatever the load.
 */
struct fm_regions {
	unsigned long nr;
	unsigned long nr_copied;
	unsigned long *copied;
	unsigned long *busy;
	unsigned long *todo;
	unsigned long cursor;
	unsigned long *redirtied;
};

#define FM_CHUNK_REGIONS	1024UL

/**
 * struct fm_throttle - token bucket for the copy rate
 * @tokens: sectors that may be copied now without exceeding the rate.
 * @stamp: jiffies of the last refill.
 */
struct fm_throttle {
	u64 tokens;
	unsigned long stamp;
};

/**
 * enum fm_copy_mode - what a guest write to a copied region does while
 *	the device is still copying
 * @FM_COPY_SYNC: it goes to both legs (the default).
 * @FM_COPY_BACKGROUND: the first such write to a region sends it back to
 *	be copied and goes to the source only; later ones go to both legs.
 */
enum fm_copy_mode {
	FM_COPY_SYNC,
	FM_COPY_BACKGROUND,
};

/**
 * struct fm_config - the feature arguments of a table line
 * @nosync: the destination is known identical: start synced.
 * @policy: the flush policy.
 * @copy_rate: KiB/s the copier may read, 0 for unlimited.
 * @copy_jobs: regions copied at once, 1..FM_MAX_COPY_JOBS.
 * @md_path: the metadata device of "metadata <dev>", NULL without it;
 *	points into the table line, so only valid while it is loaded.
 * @discard_md: "discard_metadata": format the metadata device whatever it
 *	holds (acts at the load; not printed back in the table).
 * @checkpoint: seconds between checkpoints of the metadata.
 * @copy_mode: see &enum fm_copy_mode.
 */
struct fm_config {
	bool nosync;
	enum fm_policy policy;
	unsigned int copy_rate;
	unsigned int copy_jobs;
	const char *md_path;
	bool discard_md;
	unsigned int checkpoint;
	enum fm_copy_mode copy_mode;
};

#endif /* DM_FLUSHMIRROR_H */
