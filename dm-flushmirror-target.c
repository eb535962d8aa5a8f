// SPDX-License-Identifier: GPL-2.0
/*
 * dm-flushmirror: live migration of a block device with flush economy.
 *
 * Copyright (C) 2026 The dm-flushmirror authors
 *
 * The target serves reads from the source, copies the source to the
 * destination in the background with dm-kcopyd, sends every guest write to
 * a copied region to both devices, and forwards a guest flush to the
 * destination only when the generation counters say that a destination
 * flush adds durability (the method of US patent 8,935,502).
 *
 * See Documentation/flushmirror.rst for the table, status and messages.
 */

#include "dm-flushmirror.h"
#include "dm-flushmirror-metadata.h"

#include <linux/bio.h>
#include <linux/bitmap.h>
#include <linux/blkdev.h>
#include <linux/device-mapper.h>
#include <linux/dm-kcopyd.h>
#include <linux/hashtable.h>
#include <linux/jiffies.h>
#include <linux/log2.h>
#include <linux/math64.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/timekeeping.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#define DM_MSG_PREFIX "flushmirror"

#ifdef CONFIG_DM_FLUSHMIRROR_DEBUG
static bool debug_skip_dest_flush;
module_param(debug_skip_dest_flush, bool, 0644);
MODULE_PARM_DESC(debug_skip_dest_flush,
		 "Test only: complete destination flushes without issuing them, to prove the power-cut tests detect lost writes");
static unsigned int debug_flush_endio_delay_ms;
module_param(debug_flush_endio_delay_ms, uint, 0644);
MODULE_PARM_DESC(debug_flush_endio_delay_ms,
		 "Test only: end a destination flush's completion this long (at most 5000 ms) after it completed the guest flushes it covered, from a work item, to widen the window in which teardown could free the target under it");
static bool debug_md_skip_flush;
module_param(debug_md_skip_flush, bool, 0644);
MODULE_PARM_DESC(debug_md_skip_flush,
		 "Test only: metadata checkpoints commit without flushing the legs first, to prove the crash tests detect a map that claims too much");
#else
#define debug_skip_dest_flush false
#define debug_md_skip_flush false
#endif

/* ------------------------------------------------------------------------
 * The generation counters.  Pure: the caller holds flushmirror_c.lock.
 * ------------------------------------------------------------------------
 */

/*
 * fm_gen_request - ask for a shared destination flush that covers @need.
 * @force: issue one even if @wf already covers @need (copied data is not
 * counted by the generations, so the transition flush is never skipped).
 */
static enum fm_flush_action fm_gen_request(struct fm_gen *g, u64 need,
					   bool force)
{
	if (!force && g->wf >= need)
		return FM_FLUSH_NONE;
	if (!force && g->busy && g->mark >= need)
		return FM_FLUSH_WAIT;
	g->busy++;
	g->mark = g->wm;
	return FM_FLUSH_ISSUE;
}

/**
 * fm_gen_flush_arrive - account a guest flush and decide what it needs
 * @g: the counters
 * @policy: the flush policy in force
 *
 * Sets FR to SG.  With %FM_FLUSH_ISSUE the caller must issue a shared
 * destination flush; with %FM_FLUSH_OWN a destination flush of its own.
 * Either captures WM when it is issued.
 *
 * Context: any; the caller holds the lock that protects @g.
 * Return: the action, see &enum fm_flush_action.
 */
static enum fm_flush_action fm_gen_flush_arrive(struct fm_gen *g,
						enum fm_policy policy)
{
	g->fr = g->sg;
	if (policy == FM_POLICY_ALWAYS)
		return FM_FLUSH_OWN;
	/* Still copying or failed: the transition flush will cover it. */
	if (!g->in_sync || g->fr > g->wm)
		return FM_FLUSH_NONE;
	return fm_gen_request(g, g->fr, false);
}

/**
 * fm_gen_write_done - account a guest write completed to the guest
 * @g: the counters
 * @on_both: the write reached both legs successfully
 *
 * Context: any; the caller holds the lock that protects @g.
 */
static void fm_gen_write_done(struct fm_gen *g, bool on_both)
{
	g->sg++;
	if (g->in_sync && on_both)
		g->wm = g->sg;
}

/**
 * fm_gen_enter_sync - every region is copied and nothing is on one leg only
 * @g: the counters
 *
 * Sets WM to SG and decides the transition flush: the caller must issue it
 * and report synced when it completes successfully.
 *
 * Context: any; the caller holds the lock that protects @g.
 */
static void fm_gen_enter_sync(struct fm_gen *g)
{
	g->in_sync = true;
	g->wm = g->sg;
	fm_gen_request(g, g->wm, true);
}

/**
 * fm_gen_leave_sync - the destination no longer holds every write
 * @g: the counters
 *
 * WM freezes until the next fm_gen_enter_sync().
 *
 * Context: any; the caller holds the lock that protects @g.
 */
static void fm_gen_leave_sync(struct fm_gen *g)
{
	g->in_sync = false;
}

/**
 * fm_gen_flush_done - a shared destination flush completed
 * @g: the counters
 * @mark: the WM it captured when it was issued
 * @ok: it succeeded
 *
 * Context: any; the caller holds the lock that protects @g.
 */
static void fm_gen_flush_done(struct fm_gen *g, u64 mark, bool ok)
{
	g->busy--;
	if (ok)
		g->wf = max(g->wf, mark);
}

/**
 * fm_gen_own_flush_done - a policy-always destination flush completed
 * @g: the counters
 * @mark: the WM it captured when it was issued
 *
 * Context: any; the caller holds the lock that protects @g.
 */
static void fm_gen_own_flush_done(struct fm_gen *g, u64 mark)
{
	g->wf = max(g->wf, mark);
}

/* ------------------------------------------------------------------------
 * The region map.  Pure: the caller holds flushmirror_c.lock.
 * ------------------------------------------------------------------------
 */

static void fm_region_clear(struct fm_regions *rg, unsigned long r)
{
	if (__test_and_clear_bit(r, rg->copied)) {
		rg->nr_copied--;
		__set_bit(r / FM_CHUNK_REGIONS, rg->todo);
	}
}

/**
 * fm_region_route - decide where a guest write to region @r goes
 * @rg: the region map
 * @r: the region written
 * @failed: the destination has failed
 *
 * A write while failed goes to the source only and leaves its region to be
 * copied again after a retry.
 *
 * Context: any; the caller holds the lock that protects @rg.
 * Return: the route, see &enum fm_route.
 */
static enum fm_route fm_region_route(struct fm_regions *rg, unsigned long r,
				     bool failed)
{
	if (test_bit(r, rg->busy))
		return FM_ROUTE_DEFER;
	if (failed) {
		fm_region_clear(rg, r);
		return FM_ROUTE_SOURCE;
	}
	return test_bit(r, rg->copied) ? FM_ROUTE_MIRROR : FM_ROUTE_SOURCE;
}

/**
 * fm_region_redirty - copy_mode background: may a write to the copied
 *	region @r go to the source only, sending the region back to be copied?
 * @rg: the region map
 * @r: the region written
 *
 * Yes, the first time for each region: the copier then copies at most
 * twice the device, so the copy converges under any load.
 *
 * Context: any; the caller holds the lock that protects @rg.
 * Return: true if the region was sent back (the write goes to the source).
 */
static bool fm_region_redirty(struct fm_regions *rg, unsigned long r)
{
	if (__test_and_set_bit(r, rg->redirtied))
		return false;
	fm_region_clear(rg, r);
	return true;
}

/* The number of chunks of FM_CHUNK_REGIONS regions: bits in @rg->todo. */
static unsigned long fm_region_chunks(const struct fm_regions *rg)
{
	return DIV_ROUND_UP(rg->nr, FM_CHUNK_REGIONS);
}

/*
 * fm_region_scan - the first region in [@from, @to) that is neither copied
 * nor busy, looking only at the chunks whose todo bit is set; a chunk
 * looked at whole and found without work gets its bit cleared.
 */
static bool fm_region_scan(struct fm_regions *rg, unsigned long from,
			   unsigned long to, unsigned long *r)
{
	unsigned long c = from / FM_CHUNK_REGIONS, lo, hi, i;

	for_each_set_bit_from(c, rg->todo, DIV_ROUND_UP(to, FM_CHUNK_REGIONS)) {
		lo = max(from, c * FM_CHUNK_REGIONS);
		hi = min(to, (c + 1) * FM_CHUNK_REGIONS);
		i = lo;
		for_each_clear_bit_from(i, rg->copied, hi) {
			if (!test_bit(i, rg->busy)) {
				*r = i;
				return true;
			}
		}
		if (lo == c * FM_CHUNK_REGIONS &&
		    hi == min(rg->nr, (c + 1) * FM_CHUNK_REGIONS))
			__clear_bit(c, rg->todo);
	}
	return false;
}

/**
 * fm_region_claim - find a region to copy and mark it busy
 * @rg: the region map
 * @r: the region claimed
 *
 * Searches from the cursor to the end, then from the start to the cursor,
 * through the chunks that may hold work (&fm_regions.todo).
 *
 * Context: any; the caller holds the lock that protects @rg.
 * Return: true if a region was claimed.
 */
static bool fm_region_claim(struct fm_regions *rg, unsigned long *r)
{
	unsigned long i;

	/* From the cursor to the end, then from the start to the cursor. */
	if (!fm_region_scan(rg, rg->cursor, rg->nr, &i) &&
	    !fm_region_scan(rg, 0, rg->cursor, &i))
		return false;
	__set_bit(i, rg->busy);
	rg->cursor = i + 1 < rg->nr ? i + 1 : 0;
	*r = i;
	return true;
}

/**
 * fm_region_copied - a copy job for region @r ended
 * @rg: the region map
 * @r: the region
 * @ok: the copy succeeded
 *
 * Context: any; the caller holds the lock that protects @rg.
 * Return: true if every region is now copied.
 */
static bool fm_region_copied(struct fm_regions *rg, unsigned long r, bool ok)
{
	__clear_bit(r, rg->busy);
	if (ok && !__test_and_set_bit(r, rg->copied))
		rg->nr_copied++;
	else if (!ok)
		__set_bit(r / FM_CHUNK_REGIONS, rg->todo);
	return rg->nr_copied == rg->nr;
}

/* ------------------------------------------------------------------------
 * The copy throttle.  Pure: the caller holds flushmirror_c.lock.
 * ------------------------------------------------------------------------
 */

/**
 * fm_throttle_take - take @cost sectors of copy budget
 * @t: the bucket
 * @now: jiffies
 * @kibps: the rate, 0 for unlimited
 * @cost: the sectors about to be copied
 *
 * The bucket holds at most one second of budget, or @cost if that is more,
 * so that an idle copier does not burst above the rate.
 *
 * Context: any; the caller holds the lock that protects @t.
 * Return: 0 if the budget was taken, else the jiffies to wait before the
 * budget will be there.
 */
static unsigned long fm_throttle_take(struct fm_throttle *t,
				      unsigned long now, unsigned int kibps,
				      u64 cost)
{
	u64 per_sec = (u64)kibps * 2, cap, need;

	if (!kibps)
		return 0;
	cap = max(per_sec, cost);
	t->tokens += div_u64((u64)(now - t->stamp) * per_sec, HZ);
	t->tokens = min(t->tokens, cap);
	t->stamp = now;
	if (t->tokens >= cost) {
		t->tokens -= cost;
		return 0;
	}
	need = cost - t->tokens;
	return max_t(unsigned long, 1, DIV_ROUND_UP_ULL(need * HZ, per_sec));
}

/* ------------------------------------------------------------------------
 * Argument parsing.  Pure: no device is opened.
 * ------------------------------------------------------------------------
 */

/**
 * fm_parse_region_size - parse the region size argument
 * @arg: the argument
 * @size: the size in sectors
 * @error: set to a message on failure
 *
 * Context: process.
 * Return: 0 or -EINVAL.
 */
static int fm_parse_region_size(const char *arg, unsigned int *size, char **error)
{
	if (kstrtouint(arg, 10, size)) {
		*error = "Invalid region size: not a number";
		return -EINVAL;
	}
	if (!is_power_of_2(*size)) {
		*error = "Invalid region size: not a power of two";
		return -EINVAL;
	}
	if (*size < FM_MIN_REGION_SIZE) {
		*error = "Invalid region size: below 8 sectors";
		return -EINVAL;
	}
	if (*size > FM_MAX_REGION_SIZE) {
		*error = "Invalid region size: above 2097152 sectors";
		return -EINVAL;
	}
	return 0;
}

/*
 * fm_read_uint - shift a decimal argument within [@min, @max].  Unlike
 * dm_read_arg(), whose sscanf() wraps out-of-range values silently, it
 * rejects anything kstrtouint() does not take whole.
 */
static int fm_read_uint(struct dm_arg_set *as, unsigned int min,
			unsigned int max, unsigned int *value, char *msg,
			char **error)
{
	const char *arg = dm_shift_arg(as);

	if (!arg || kstrtouint(arg, 10, value) || *value < min ||
	    *value > max) {
		*error = msg;
		return -EINVAL;
	}
	return 0;
}

static int fm_parse_policy(const char *arg, enum fm_policy *policy)
{
	if (!strcasecmp(arg, "generation"))
		*policy = FM_POLICY_GENERATION;
	else if (!strcasecmp(arg, "always"))
		*policy = FM_POLICY_ALWAYS;
	else
		return -EINVAL;
	return 0;
}

static const char *fm_policy_name(enum fm_policy policy)
{
	return policy == FM_POLICY_ALWAYS ? "always" : "generation";
}

/**
 * fm_parse_features - parse the optional feature arguments
 * @as: the remaining arguments, starting with the feature count
 * @cfg: filled in; defaults for what is absent
 * @error: set to a message on failure
 *
 * Context: process.
 * Return: 0 or -EINVAL.
 */
static int fm_parse_features(struct dm_arg_set *as, struct fm_config *cfg,
			     char **error)
{
	enum { NOSYNC, FLUSH_POLICY, COPY_RATE, COPY_JOBS, METADATA,
	       DISCARD_MD, CHECKPOINT, COPY_MODE, NR_FEATURES };
	static const char * const names[NR_FEATURES] = {
		[NOSYNC] = "nosync",
		[FLUSH_POLICY] = "flush_policy",
		[COPY_RATE] = "copy_rate",
		[COPY_JOBS] = "copy_jobs",
		[METADATA] = "metadata",
		[DISCARD_MD] = "discard_metadata",
		[CHECKPOINT] = "checkpoint_interval",
		[COPY_MODE] = "copy_mode",
	};
	unsigned int argc, seen = 0, i;
	const char *name;
	int r;

	cfg->nosync = false;
	cfg->policy = FM_POLICY_GENERATION;
	cfg->copy_rate = 0;
	cfg->copy_jobs = FM_DEFAULT_COPY_JOBS;
	cfg->md_path = NULL;
	cfg->discard_md = false;
	cfg->checkpoint = FM_DEFAULT_CHECKPOINT;
	cfg->copy_mode = FM_COPY_SYNC;

	if (!as->argc)
		return 0;
	r = fm_read_uint(as, 0, 14, &argc,
			 "Invalid number of feature arguments", error);
	if (r)
		return r;
	if (argc > as->argc) {
		*error = "Feature count exceeds the arguments given";
		return -EINVAL;
	}

	while (argc--) {
		name = dm_shift_arg(as);
		for (i = 0; i < NR_FEATURES; i++)
			if (!strcasecmp(name, names[i]))
				break;
		if (i == NR_FEATURES) {
			*error = "Unknown feature argument";
			return -EINVAL;
		}
		if (seen & BIT(i)) {
			*error = "Duplicate feature argument";
			return -EINVAL;
		}
		seen |= BIT(i);
		if (i == NOSYNC) {
			cfg->nosync = true;
			continue;
		}
		if (i == DISCARD_MD) {
			cfg->discard_md = true;
			continue;
		}
		if (!argc--) {
			*error = "Feature argument lacks its value";
			return -EINVAL;
		}
		switch (i) {
		case FLUSH_POLICY:
			if (fm_parse_policy(dm_shift_arg(as), &cfg->policy)) {
				*error = "Invalid flush_policy: expected generation or always";
				return -EINVAL;
			}
			break;
		case COPY_RATE:
			r = fm_read_uint(as, 0, UINT_MAX, &cfg->copy_rate,
					 "Invalid copy_rate: expected KiB/s",
					 error);
			break;
		case COPY_JOBS:
			r = fm_read_uint(as, 1, FM_MAX_COPY_JOBS,
					 &cfg->copy_jobs,
					 "Invalid copy_jobs: expected 1 to 64",
					 error);
			break;
		case METADATA:
			cfg->md_path = dm_shift_arg(as);
			break;
		case COPY_MODE:
			name = dm_shift_arg(as);
			if (!strcasecmp(name, "background")) {
				cfg->copy_mode = FM_COPY_BACKGROUND;
			} else if (!strcasecmp(name, "sync")) {
				cfg->copy_mode = FM_COPY_SYNC;
			} else {
				*error = "Invalid copy_mode: expected sync or background";
				return -EINVAL;
			}
			break;
		case CHECKPOINT:
			r = fm_read_uint(as, 1, FM_MAX_CHECKPOINT,
					 &cfg->checkpoint,
					 "Invalid checkpoint_interval: expected 1 to 3600 seconds",
					 error);
			break;
		}
		if (r)
			return r;
	}
	if (!cfg->md_path && (seen & (BIT(DISCARD_MD) | BIT(CHECKPOINT)))) {
		*error = "discard_metadata and checkpoint_interval need the metadata feature";
		return -EINVAL;
	}
	return 0;
}

/**
 * enum fm_msg_cmd - the messages the target takes
 * @FM_MSG_PAUSE: stop the copier.
 * @FM_MSG_RESUME: restart it.
 * @FM_MSG_COPY_RATE: set the copy rate.
 * @FM_MSG_FLUSH_POLICY: set the flush policy.
 * @FM_MSG_RETRY: after a failure, copy again what is out of sync.
 */
enum fm_msg_cmd {
	FM_MSG_PAUSE,
	FM_MSG_RESUME,
	FM_MSG_COPY_RATE,
	FM_MSG_FLUSH_POLICY,
	FM_MSG_RETRY,
};

/**
 * struct fm_msg - a parsed message
 * @cmd: the command
 * @rate: the rate of %FM_MSG_COPY_RATE
 * @policy: the policy of %FM_MSG_FLUSH_POLICY
 */
struct fm_msg {
	enum fm_msg_cmd cmd;
	unsigned int rate;
	enum fm_policy policy;
};

/**
 * fm_parse_message - parse a message
 * @argc: argument count
 * @argv: arguments
 * @msg: filled in
 * @why: set to what was wrong on failure
 *
 * Context: process.
 * Return: 0 or -EINVAL.
 */
static int fm_parse_message(unsigned int argc, char **argv,
			    struct fm_msg *msg, const char **why)
{
	static const struct {
		const char *name;
		enum fm_msg_cmd cmd;
		unsigned int argc;
	} cmds[] = {
		{ "pause", FM_MSG_PAUSE, 1 },
		{ "resume", FM_MSG_RESUME, 1 },
		{ "copy_rate", FM_MSG_COPY_RATE, 2 },
		{ "flush_policy", FM_MSG_FLUSH_POLICY, 2 },
		{ "retry", FM_MSG_RETRY, 1 },
	};
	unsigned int i;

	if (!argc) {
		*why = "empty message";
		return -EINVAL;
	}
	for (i = 0; i < ARRAY_SIZE(cmds); i++)
		if (!strcasecmp(argv[0], cmds[i].name))
			break;
	if (i == ARRAY_SIZE(cmds)) {
		*why = "unknown message";
		return -EINVAL;
	}
	if (argc != cmds[i].argc) {
		*why = "wrong number of arguments";
		return -EINVAL;
	}
	msg->cmd = cmds[i].cmd;
	if (msg->cmd == FM_MSG_COPY_RATE && kstrtouint(argv[1], 10, &msg->rate)) {
		*why = "copy_rate is not a number of KiB/s";
		return -EINVAL;
	}
	if (msg->cmd == FM_MSG_FLUSH_POLICY &&
	    fm_parse_policy(argv[1], &msg->policy)) {
		*why = "flush_policy is neither generation nor always";
		return -EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * The target.
 * ------------------------------------------------------------------------
 */

/**
 * enum fm_job_state - the life of a copy job
 * @FM_JOB_IDLE: the slot is free.
 * @FM_JOB_WAITING: the region is claimed; guest writes to it (source-only
 *	or mirrored) are still in flight and the copy starts when the last
 *	one ends, so that the copy reads what they wrote to the source.
 * @FM_JOB_READY: nothing in flight: the copier submits its next chunk to
 *	kcopyd.
 * @FM_JOB_RUNNING: kcopyd copies a chunk of the region.
 */
enum fm_job_state {
	FM_JOB_IDLE,
	FM_JOB_WAITING,
	FM_JOB_READY,
	FM_JOB_RUNNING,
};

struct flushmirror_c;

/**
 * struct fm_job - one region being copied
 * @fm: the target
 * @region: the region it owns (its bit is set in fm_regions::busy)
 * @state: see &enum fm_job_state
 * @writes: guest writes to @region still in flight (WAITING only)
 * @done: sectors of @region copied so far: a region is copied in chunks of
 *	FM_COPY_CHUNK sectors, so that a suspend waits for one chunk per
 *	job, not for whole regions
 * @epoch: flushmirror_c::copy_epoch when the job started: a job that ends
 *	in a later epoch (the destination failed meanwhile) does not mark
 *	its region copied
 * @waiting: guest writes to @region that wait for the copy to end, linked
 *	through fm_io::list; they are routed again when it ends.
 */
struct fm_job {
	struct flushmirror_c *fm;
	unsigned long region;
	enum fm_job_state state;
	unsigned int writes;
	sector_t done;
	u64 epoch;
	struct list_head waiting;
};

/**
 * enum fm_io_kind - what the target did with a guest bio
 * @FM_IO_PLAIN: remapped to the source, nothing to account (reads).
 * @FM_IO_SOURCE: a write remapped to the source only.
 * @FM_IO_MIRROR: a write held while clones go to both legs.
 * @FM_IO_FLUSH: a flush remapped to the source, no destination part.
 * @FM_IO_FLUSH_HELD: a flush held while a source clone and a destination
 *	flush run; or a FUA write held for the destination flush that makes
 *	it durable there (see fm_mirror_done()).
 */
enum fm_io_kind {
	FM_IO_PLAIN,
	FM_IO_SOURCE,
	FM_IO_MIRROR,
	FM_IO_FLUSH,
	FM_IO_FLUSH_HELD,
};

/**
 * struct fm_io - per-bio data
 * @fm: the target
 * @kind: see &enum fm_io_kind
 * @region: the region a write goes to
 * @list: on fm_job::waiting, or on flushmirror_c::flush_waiters
 * @node: in flushmirror_c::inflight while a write is in flight on its
 *	leg(s), whatever its route
 * @legs: parts not yet finished of a held bio; the last one completes it
 * @src_status: status of the source part
 * @dst_status: status of the destination part
 * @fr: of a guest flush: the SG it must see flushed on the destination
 * @mark: of a policy-always destination flush: the WM it captured
 * @dst_fua: send the destination leg with REQ_FUA (only when in sync)
 */
struct fm_io {
	struct flushmirror_c *fm;
	enum fm_io_kind kind;
	unsigned long region;
	struct list_head list;
	struct hlist_node node;
	atomic_t legs;
	blk_status_t src_status;
	blk_status_t dst_status;
	u64 fr;
	u64 mark;
	bool dst_fua;
};

/**
 * struct fm_dflush - a shared destination flush
 * @fm: the target
 * @mark: the WM it captured when it was issued
 * @sync: it is the transition flush: its success makes the phase synced,
 *	if the target is still in the sync attempt it was issued in
 * @epoch: flushmirror_c::sync_epoch when it was issued
 * @bio: the flush bio, allocated from flushmirror_c::bs
 */
struct fm_dflush {
	struct flushmirror_c *fm;
	u64 mark;
	bool sync;
	u64 epoch;
	struct bio bio;
};

#define FM_INFLIGHT_BITS 8

/**
 * struct flushmirror_c - the target
 * @ti: the dm target
 * @src: the source device (authoritative: every read goes there)
 * @dst: the destination device
 * @region_size: sectors per region, a power of two
 * @region_shift: log2(@region_size)
 * @cfg: the feature arguments; copy_rate and policy change by message
 * @lock: protects every field below it except where noted; taken with
 *	interrupts off, since bio completions take it
 * @phase: the reported phase
 * @gen: the generation counters
 * @rg: the region map
 * @thr: the copy throttle
 * @jobs: copy job slots, the first cfg.copy_jobs are used
 * @active_jobs: slots not idle
 * @suspending: between presuspend and resume: start no copy job
 * @inflight: every guest write in flight on its leg(s), source-only or
 *	mirrored, hashed by region: a copy of the region waits for them all
 * @flush_waiters: held guest flushes that wait for a shared destination
 *	flush, linked through fm_io::list
 * @guest_flushes: guest flush bios seen
 * @dest_flushes: destination flushes issued
 * @dest_errors: destination I/O errors seen (writes, flushes, copies)
 * @src_errors: source read errors of the copier (the region stays to be
 *	copied; the copier backs off, see fm_copy_backoff())
 * @src_backoff: jiffies the copier waits after the next source read
 *	error: doubles with every consecutive one, reset by a good copy
 * @claim_after: jiffies before which the copier claims no region (the
 *	back-off after a source read error); chunks of running jobs go on
 * @sync_epoch: the sync attempt: moves each time the target leaves sync,
 *	so that a transition flush of an earlier attempt reports nothing
 * @copy_epoch: moves each time the destination fails, so that copy jobs
 *	running across a failure and a retry do not count for the retry
 * @recopy_all: since the last retry, a destination flush failed, or the
 *	destination failed while it has a volatile write cache: what that
 *	cache held may be lost, so a retry copies every region again
 * @dflush_bios: shared destination flush bios allocated and not yet done
 *	with (their completion releases it last, under @lock: teardown
 *	waits for 0 before it frees the bio set and @fm)
 * @flush_queued: shared destination flushes decided where no bio can be
 *	submitted (under @lock, or in a completion); @flush_work issues them
 * @sync_queued: one of them is the transition flush
 * @events_queued: phase changes whose dm event @event_work has not raised
 *	yet: one event each, however close together they come
 * @wq: runs @copy_work, @flush_work and @event_work
 * @copy_work: the copier: claims regions and submits copy jobs
 * @flush_work: issues the queued destination flushes
 * @event_work: raises the dm event of a phase change
 * @kcopyd: the kcopyd client
 * @bs: bio set for the clones sent to each leg and the destination
 *	flushes (front_pad holds a &struct fm_dflush)
 * @wait: woken, under @lock, when a copy job or a shared flush ends
 *	(suspend waits with wait_event_lock_irq(): a completion's wake-up is
 *	its last touch of @fm)
 * @md_failed: the last metadata commit failed: writes do not wait for
 *	the metadata until a commit succeeds again (under @lock)
 * @md_waiting: writes that wait for a commit to record their region's
 *	intent, linked through fm_io::list (under @lock)
 * @md_touched: regions a write started on, or waits to start on, since
 *	the last checkpoint began (under @lock)
 * @md_unsafe: regions that the metadata device records, or may be
 *	recording, as copied without intent: a write to one waits on
 *	@md_waiting (under @lock)
 * @md_commits: commits since the load (under @lock, for the status)
 * @md_commit_time: wall-clock seconds of the last commit (under @lock)
 * @md_held: writes that waited on @md_waiting (under @lock)
 * @md_kept: regions the metadata let the load keep as copied
 * @md_dev: the metadata device, NULL without the metadata feature
 * @md: the open metadata (dm-flushmirror-metadata.c)
 * @md_mutex: serialises commits: @md_work and the last checkpoint of a
 *	suspend; protects the md_* scratch bitmaps and @md_next
 * @md_work: commits what @md_waiting needs, and checkpoints every
 *	cfg.checkpoint seconds
 * @md_next: jiffies of the next checkpoint
 * @md_stopped: suspended after the last checkpoint: commit nothing
 * @md_loaded: the state was taken again at the first resume
 * @md_snap: scratch: rg.copied when a checkpoint began
 * @md_keep: scratch: regions with writes in flight when it began
 * @md_new_copied: scratch: the copied bits a commit writes
 * @md_new_intent: scratch: the intent bits a commit writes
 */
struct flushmirror_c {
	struct dm_target *ti;
	struct dm_dev *src;
	struct dm_dev *dst;
	unsigned int region_size;
	unsigned int region_shift;
	struct fm_config cfg;

	spinlock_t lock;	/* protects the fields below, see above */
	enum fm_phase phase;
	struct fm_gen gen;
	struct fm_regions rg;
	struct fm_throttle thr;
	struct fm_job jobs[FM_MAX_COPY_JOBS];
	unsigned int active_jobs;
	bool suspending;
	DECLARE_HASHTABLE(inflight, FM_INFLIGHT_BITS);
	struct list_head flush_waiters;
	u64 guest_flushes;
	u64 dest_flushes;
	u64 dest_errors;
	u64 src_errors;
	unsigned long src_backoff;
	unsigned long claim_after;
	u64 sync_epoch;
	u64 copy_epoch;
	bool recopy_all;
	unsigned int dflush_bios;
	unsigned int flush_queued;
	bool sync_queued;
	unsigned int events_queued;

	struct workqueue_struct *wq;
	struct delayed_work copy_work;
	struct work_struct flush_work;
	struct work_struct event_work;
	struct dm_kcopyd_client *kcopyd;
	struct bio_set bs;
	wait_queue_head_t wait;

	bool md_failed;		/* under @lock, as the next five */
	struct list_head md_waiting;
	unsigned long *md_touched;
	unsigned long *md_unsafe;
	u64 md_commits;
	u64 md_commit_time;
	u64 md_held;
	unsigned long md_kept;
	struct dm_dev *md_dev;
	struct fm_md *md;
	struct mutex md_mutex;	/* serialises commits, see above */
	struct delayed_work md_work;
	unsigned long md_next;
	bool md_stopped;
	bool md_loaded;
	unsigned long *md_snap;
	unsigned long *md_keep;
	unsigned long *md_new_copied;
	unsigned long *md_new_intent;
};

static const char * const fm_phase_names[] = {
	[FM_COPYING] = "copying",
	[FM_PAUSED] = "paused",
	[FM_SYNCED] = "synced",
	[FM_FAILED] = "failed",
};

/* Context: any, with fm->lock held. */
static void fm_set_phase(struct flushmirror_c *fm, enum fm_phase phase)
{
	if (fm->phase == phase)
		return;
	fm->phase = phase;
	fm->events_queued++;
	queue_work(fm->wq, &fm->event_work);
}

/* Context: any, with fm->lock held. */
static void fm_kick_copier(struct flushmirror_c *fm)
{
	mod_delayed_work(fm->wq, &fm->copy_work, 0);
}

/*
 * fm_dest_failed - a destination I/O failed: the guest goes on with the
 * source alone.  Regions written from now on are left to a retry.  A
 * failing device with a volatile cache (one that vanishes, say) may have
 * dropped writes it had completed, so the retry must copy everything.
 * Context: any, with fm->lock held.
 */
static void fm_dest_failed(struct flushmirror_c *fm)
{
	fm->dest_errors++;
	fm->copy_epoch++;
	if (bdev_write_cache(fm->dst->bdev))
		fm->recopy_all = true;
	if (fm->phase == FM_FAILED)
		return;
	fm_gen_leave_sync(&fm->gen);
	fm->sync_epoch++;
	fm_set_phase(fm, FM_FAILED);
}

/*
 * fm_region_unsynced - region @r no longer holds the same data on both
 * legs.  If the device was in sync it goes back to copying.
 * Context: any, with fm->lock held.
 */
static void fm_region_unsynced(struct flushmirror_c *fm, unsigned long r)
{
	fm_region_clear(&fm->rg, r);
	if (fm->phase == FM_FAILED || !fm->gen.in_sync)
		return;
	fm_gen_leave_sync(&fm->gen);
	fm->sync_epoch++;
	/* an admin's pause holds: the copier resumes on "resume" */
	if (fm->phase == FM_PAUSED)
		return;
	fm_set_phase(fm, FM_COPYING);
	fm_kick_copier(fm);
}

/*
 * fm_queue_dest_flush - have fm_flush_work() issue a shared destination
 * flush decided where no bio can be submitted.
 * Context: any, with fm->lock held.
 */
static void fm_queue_dest_flush(struct flushmirror_c *fm, bool sync)
{
	fm->dest_flushes++;
	fm->flush_queued++;
	fm->sync_queued |= sync;
	queue_work(fm->wq, &fm->flush_work);
}

/*
 * fm_md_hold - with a metadata device, may the write @io start now?
 * It may unless its region is recorded (or may be being recorded) as
 * copied without intent: then a crash while it is on one leg only would
 * leave a region that the next load keeps though the legs differ.  Such
 * a write waits on md_waiting until fm_md_work() commits the intent.
 * Either way the region counts as touched, so the next commit keeps (or
 * sets) its intent.
 * Return: true if @io was queued to wait.
 * Context: any, with fm->lock held.
 */
static bool fm_md_hold(struct flushmirror_c *fm, struct fm_io *io)
{
	__set_bit(io->region, fm->md_touched);
	if (fm->md_failed || !test_bit(io->region, fm->md_unsafe))
		return false;
	fm->md_held++;
	list_add_tail(&io->list, &fm->md_waiting);
	mod_delayed_work(fm->wq, &fm->md_work, 0);
	return true;
}

/* ------------------------------------------------------------------------
 * Completing held bios.
 * ------------------------------------------------------------------------
 */

/* Context: any, with fm->lock held. */
static struct fm_job *fm_find_job(struct flushmirror_c *fm, unsigned long r)
{
	unsigned int i;

	for (i = 0; i < fm->cfg.copy_jobs; i++)
		if (fm->jobs[i].state != FM_JOB_IDLE && fm->jobs[i].region == r)
			return &fm->jobs[i];
	return NULL;
}

/*
 * fm_write_ended - a guest write to io->region is no longer in flight on
 * any leg.  A copy job that claimed the region waits for every such write
 * (mirrored ones too: a copy that read the source before a mirrored write
 * landed there would write the old data over it on the destination); the
 * last one lets it start.
 * Context: any, with fm->lock held.
 */
static void fm_write_ended(struct flushmirror_c *fm, struct fm_io *io)
{
	struct fm_job *job;

	hash_del(&io->node);
	if (!test_bit(io->region, fm->rg.busy))
		return;
	job = fm_find_job(fm, io->region);
	if (job->state == FM_JOB_WAITING && !--job->writes) {
		job->state = FM_JOB_READY;
		fm_kick_copier(fm);
	}
}

static struct bio *fm_io_bio(struct fm_io *io)
{
	return dm_bio_from_per_bio_data(io, sizeof(*io));
}

/*
 * fm_mirror_done - both legs of a mirrored write finished.
 * Context: bio completion (any, often hard interrupt).
 */
static void fm_mirror_done(struct fm_io *io)
{
	struct flushmirror_c *fm = io->fm;
	struct bio *bio = fm_io_bio(io);
	bool ok = !io->src_status && !io->dst_status;
	enum fm_flush_action act;
	unsigned long flags;

	spin_lock_irqsave(&fm->lock, flags);
	fm_write_ended(fm, io);
	if (io->dst_status)
		fm_dest_failed(fm);
	if (!ok)
		fm_region_unsynced(fm, io->region);
	fm_gen_write_done(&fm->gen, ok);
	/*
	 * A FUA write issued while copying reached the destination without
	 * FUA; if the device got in sync meanwhile, the guest is promised it
	 * is durable there too: hold it for a destination flush.
	 */
	if (ok && (bio->bi_opf & REQ_FUA) && !io->dst_fua && fm->gen.in_sync) {
		act = fm_gen_request(&fm->gen, fm->gen.wm, false);
		if (act != FM_FLUSH_NONE) {
			io->kind = FM_IO_FLUSH_HELD;
			io->fr = fm->gen.wm;
			atomic_set(&io->legs, 1);
			list_add_tail(&io->list, &fm->flush_waiters);
			if (act == FM_FLUSH_ISSUE)
				fm_queue_dest_flush(fm, false);
			spin_unlock_irqrestore(&fm->lock, flags);
			return;
		}
	}
	spin_unlock_irqrestore(&fm->lock, flags);

	bio->bi_status = io->src_status;
	bio_endio(bio);
}

/*
 * fm_leg_done - one part of a held bio finished; the last completes it.
 * Context: bio completion (any).
 */
static void fm_leg_done(struct fm_io *io)
{
	struct bio *bio;

	if (!atomic_dec_and_test(&io->legs))
		return;
	if (io->kind == FM_IO_MIRROR) {
		fm_mirror_done(io);
		return;
	}
	/* A held flush: the destination part never fails the guest. */
	bio = fm_io_bio(io);
	bio->bi_status = io->src_status;
	bio_endio(bio);
}

static void fm_src_endio(struct bio *clone)
{
	struct fm_io *io = clone->bi_private;

	io->src_status = clone->bi_status;
	bio_put(clone);
	fm_leg_done(io);
}

static void fm_dst_endio(struct bio *clone)
{
	struct fm_io *io = clone->bi_private;

	io->dst_status = clone->bi_status;
	bio_put(clone);
	fm_leg_done(io);
}

/*
 * fm_own_flush_endio - a policy-always destination flush completed.
 * Context: bio completion (any).
 */
static void fm_own_flush_endio(struct bio *clone)
{
	struct fm_io *io = clone->bi_private;
	struct flushmirror_c *fm = io->fm;
	unsigned long flags;

	spin_lock_irqsave(&fm->lock, flags);
	if (clone->bi_status) {
		fm->recopy_all = true;
		fm_dest_failed(fm);
	} else {
		fm_gen_own_flush_done(&fm->gen, io->mark);
	}
	spin_unlock_irqrestore(&fm->lock, flags);
	bio_put(clone);
	fm_leg_done(io);
}

/* The end of a destination flush's completion: its last touch of @fm. */
static void fm_dflush_release(struct flushmirror_c *fm)
{
	unsigned long flags;

	/* Teardown may free @fm once this is seen. */
	spin_lock_irqsave(&fm->lock, flags);
	fm->dflush_bios--;
	wake_up_all(&fm->wait);
	spin_unlock_irqrestore(&fm->lock, flags);
}

#ifdef CONFIG_DM_FLUSHMIRROR_DEBUG
struct fm_debug_tail {
	struct delayed_work dw;
	struct flushmirror_c *fm;
};

static void fm_debug_tail_fn(struct work_struct *work)
{
	struct fm_debug_tail *t = container_of(to_delayed_work(work),
					       struct fm_debug_tail, dw);

	fm_dflush_release(t->fm);
	kfree(t);
}

/*
 * fm_debug_defer_release - with debug_flush_endio_delay_ms set, end this
 * completion later from a work item (it still holds @fm until then).
 * Return: true if it did, and the caller must not release.
 */
static bool fm_debug_defer_release(struct flushmirror_c *fm)
{
	unsigned int ms = READ_ONCE(debug_flush_endio_delay_ms);
	struct fm_debug_tail *t;

	if (!ms)
		return false;
	t = kmalloc(sizeof(*t), GFP_ATOMIC);
	if (!t)
		return false;
	t->fm = fm;
	INIT_DELAYED_WORK(&t->dw, fm_debug_tail_fn);
	schedule_delayed_work(&t->dw, msecs_to_jiffies(min(ms, 5000U)));
	return true;
}
#else
static inline bool fm_debug_defer_release(struct flushmirror_c *fm)
{
	return false;
}
#endif

/*
 * fm_dest_flush_endio - a shared destination flush completed: move WF and
 * release the guest flushes it covers.
 * Context: bio completion (any).
 */
static void fm_dest_flush_endio(struct bio *bio)
{
	struct fm_dflush *df = container_of(bio, struct fm_dflush, bio);
	struct flushmirror_c *fm = df->fm;
	bool ok = !bio->bi_status;
	struct fm_io *io, *tmp;
	unsigned long flags;
	LIST_HEAD(done);

	spin_lock_irqsave(&fm->lock, flags);
	fm_gen_flush_done(&fm->gen, df->mark, ok);
	if (!ok) {
		fm->recopy_all = true;
		fm_dest_failed(fm);
	} else if (df->sync && df->epoch == fm->sync_epoch &&
		   fm->gen.in_sync && fm->phase != FM_FAILED) {
		fm_set_phase(fm, FM_SYNCED);
	}
	list_for_each_entry_safe(io, tmp, &fm->flush_waiters, list)
		if (io->fr <= fm->gen.wf || !fm->gen.in_sync || !ok)
			list_move_tail(&io->list, &done);
	spin_unlock_irqrestore(&fm->lock, flags);
	bio_put(bio);

	list_for_each_entry_safe(io, tmp, &done, list) {
		list_del_init(&io->list);
		fm_leg_done(io);
	}
	if (!fm_debug_defer_release(fm))
		fm_dflush_release(fm);
}

/*
 * fm_issue_dest_flush - issue a shared destination flush that the caller
 * decided (fm_gen_request() said %FM_FLUSH_ISSUE) and accounted.  It
 * captures WM now, which is at least the WM of the decision.
 * Context: process (allocates and submits a bio).
 */
static void fm_issue_dest_flush(struct flushmirror_c *fm, bool sync)
{
	struct fm_dflush *df;
	struct bio *bio;

	bio = bio_alloc_bioset(fm->dst->bdev, 0,
			       REQ_OP_WRITE | REQ_PREFLUSH | REQ_SYNC,
			       GFP_NOIO, &fm->bs);
	df = container_of(bio, struct fm_dflush, bio);
	df->fm = fm;
	df->sync = sync;
	spin_lock_irq(&fm->lock);
	df->mark = fm->gen.wm;
	df->epoch = fm->sync_epoch;
	fm->dflush_bios++;
	spin_unlock_irq(&fm->lock);
	bio->bi_end_io = fm_dest_flush_endio;
	if (debug_skip_dest_flush)
		bio_endio(bio);
	else
		submit_bio_noacct(bio);
}

static void fm_flush_work(struct work_struct *ws)
{
	struct flushmirror_c *fm = container_of(ws, struct flushmirror_c,
						flush_work);
	unsigned int n;
	bool sync;

	spin_lock_irq(&fm->lock);
	n = fm->flush_queued;
	sync = fm->sync_queued;
	fm->flush_queued = 0;
	fm->sync_queued = false;
	spin_unlock_irq(&fm->lock);

	while (n--) {
		fm_issue_dest_flush(fm, sync);
		sync = false;
	}
}

/* ------------------------------------------------------------------------
 * The map path.
 * ------------------------------------------------------------------------
 */

static struct bio *fm_clone(struct flushmirror_c *fm, struct bio *bio,
			    struct dm_dev *dev, bio_end_io_t *end_io,
			    struct fm_io *io)
{
	struct bio *clone = bio_alloc_clone(dev->bdev, bio, GFP_NOIO, &fm->bs);

	clone->bi_end_io = end_io;
	clone->bi_private = io;
	return clone;
}

/*
 * fm_map_flush - a guest flush: flush the source, and the destination when
 * the counters ask for it.
 * Context: process (map).
 */
static int fm_map_flush(struct flushmirror_c *fm, struct fm_io *io,
			struct bio *bio)
{
	enum fm_flush_action act;
	struct bio *src, *dst;

	/* Set before a shared flush completion can see @io on the list. */
	io->src_status = BLK_STS_OK;
	atomic_set(&io->legs, 2);

	spin_lock_irq(&fm->lock);
	fm->guest_flushes++;
	act = fm_gen_flush_arrive(&fm->gen, fm->cfg.policy);
	io->fr = fm->gen.fr;
	io->mark = fm->gen.wm;
	if (act == FM_FLUSH_WAIT || act == FM_FLUSH_ISSUE)
		list_add_tail(&io->list, &fm->flush_waiters);
	if (act == FM_FLUSH_ISSUE || act == FM_FLUSH_OWN)
		fm->dest_flushes++;
	spin_unlock_irq(&fm->lock);

	if (act == FM_FLUSH_NONE) {
		io->kind = FM_IO_FLUSH;
		bio_set_dev(bio, fm->src->bdev);
		return DM_MAPIO_REMAPPED;
	}

	io->kind = FM_IO_FLUSH_HELD;
	src = fm_clone(fm, bio, fm->src, fm_src_endio, io);
	if (act == FM_FLUSH_OWN) {
		dst = fm_clone(fm, bio, fm->dst, fm_own_flush_endio, io);
		submit_bio_noacct(src);
		if (debug_skip_dest_flush)
			bio_endio(dst);
		else
			submit_bio_noacct(dst);
		return DM_MAPIO_SUBMITTED;
	}
	submit_bio_noacct(src);
	if (act == FM_FLUSH_ISSUE)
		fm_issue_dest_flush(fm, false);
	return DM_MAPIO_SUBMITTED;
}

/*
 * fm_route_write - send a guest write where the region map says, once
 * the metadata (if any) allows it to start.
 * Return: DM_MAPIO_REMAPPED if the caller must send @bio to the source,
 * else DM_MAPIO_SUBMITTED (held, or waiting for the copy of its region).
 * Context: process (map, the end of a copy job, or a metadata commit).
 */
static int fm_route_write(struct flushmirror_c *fm, struct fm_io *io,
			  struct bio *bio)
{
	struct bio *src, *dst;
	enum fm_route route;
	struct fm_job *job;

	spin_lock_irq(&fm->lock);
	route = fm_region_route(&fm->rg, io->region, fm->phase == FM_FAILED);
	if (route == FM_ROUTE_DEFER) {
		job = fm_find_job(fm, io->region);
		list_add_tail(&io->list, &job->waiting);
		spin_unlock_irq(&fm->lock);
		return DM_MAPIO_SUBMITTED;
	}
	if (route == FM_ROUTE_MIRROR && !fm->gen.in_sync &&
	    fm->cfg.copy_mode == FM_COPY_BACKGROUND &&
	    fm_region_redirty(&fm->rg, io->region))
		route = FM_ROUTE_SOURCE;
	if (fm->md && fm_md_hold(fm, io)) {
		spin_unlock_irq(&fm->lock);
		return DM_MAPIO_SUBMITTED;
	}
	if (route == FM_ROUTE_SOURCE) {
		io->kind = FM_IO_SOURCE;
		hash_add(fm->inflight, &io->node, io->region);
		spin_unlock_irq(&fm->lock);
		bio_set_dev(bio, fm->src->bdev);
		return DM_MAPIO_REMAPPED;
	}
	io->kind = FM_IO_MIRROR;
	io->dst_fua = fm->gen.in_sync;
	hash_add(fm->inflight, &io->node, io->region);
	spin_unlock_irq(&fm->lock);

	io->src_status = BLK_STS_OK;
	io->dst_status = BLK_STS_OK;
	atomic_set(&io->legs, 2);
	src = fm_clone(fm, bio, fm->src, fm_src_endio, io);
	dst = fm_clone(fm, bio, fm->dst, fm_dst_endio, io);
	if (!io->dst_fua)
		dst->bi_opf &= ~REQ_FUA;
	submit_bio_noacct(src);
	submit_bio_noacct(dst);
	return DM_MAPIO_SUBMITTED;
}

static int fm_map(struct dm_target *ti, struct bio *bio)
{
	struct flushmirror_c *fm = ti->private;
	struct fm_io *io = dm_per_bio_data(bio, sizeof(struct fm_io));
	sector_t sector, end;

	io->fm = fm;
	io->kind = FM_IO_PLAIN;
	INIT_LIST_HEAD(&io->list);

	if (bio->bi_opf & REQ_PREFLUSH)
		return fm_map_flush(fm, io, bio);

	sector = dm_target_offset(ti, bio->bi_iter.bi_sector);
	bio->bi_iter.bi_sector = sector;
	if (!op_is_write(bio_op(bio))) {
		bio_set_dev(bio, fm->src->bdev);
		return DM_MAPIO_REMAPPED;
	}

	/*
	 * dm core splits reads and writes at max_io_len (a region), but not
	 * discards and write-zeroes: dm_accept_partial_bio() trims those to
	 * the region, and dm core sends the rest as a new bio.
	 */
	end = round_up(sector + 1, fm->region_size);
	if (sector + bio_sectors(bio) > end)
		dm_accept_partial_bio(bio, end - sector);
	io->region = sector >> fm->region_shift;
	return fm_route_write(fm, io, bio);
}

/*
 * fm_end_io - the source completed a bio that map remapped, or the target
 * completed a held one.  Source-only writes are accounted here.
 * Context: bio completion (any).
 */
static int fm_end_io(struct dm_target *ti, struct bio *bio,
		     blk_status_t *error)
{
	struct flushmirror_c *fm = ti->private;
	struct fm_io *io = dm_per_bio_data(bio, sizeof(struct fm_io));
	unsigned long flags;

	if (io->kind != FM_IO_SOURCE)
		return DM_ENDIO_DONE;

	spin_lock_irqsave(&fm->lock, flags);
	fm_write_ended(fm, io);
	fm_gen_write_done(&fm->gen, false);
	spin_unlock_irqrestore(&fm->lock, flags);
	return DM_ENDIO_DONE;
}

/* ------------------------------------------------------------------------
 * The copier.
 * ------------------------------------------------------------------------
 */

/*
 * fm_check_synced - begin the transition to synced once every region is
 * copied.  Context: any, with fm->lock held.
 */
static void fm_check_synced(struct flushmirror_c *fm)
{
	if (fm->gen.in_sync || fm->phase == FM_FAILED ||
	    fm->rg.nr_copied != fm->rg.nr)
		return;
	fm_gen_enter_sync(&fm->gen);
	fm_queue_dest_flush(fm, true);
}

#define FM_SRC_BACKOFF_MIN	HZ
#define FM_SRC_BACKOFF_MAX	(60 * HZ)

/*
 * fm_copy_backoff - the copier could not read a region from the source.
 * That is no fault of the destination: the phase stays, the region stays
 * to be copied, and the copier claims no region for a while (1 s, doubling
 * with each consecutive read error up to 60 s; jobs already running go
 * on), so that a region that stays unreadable is retried without a busy
 * loop and shows as a growing src_errors count and a log line naming it.
 * Context: any, with fm->lock held.
 */
static void fm_copy_backoff(struct flushmirror_c *fm, unsigned long r)
{
	fm->src_errors++;
	DMERR_LIMIT("%s: source read error copying region %lu (%llu so far), retry in %u s",
		    dm_table_device_name(fm->ti->table), r, fm->src_errors,
		    jiffies_to_msecs(fm->src_backoff) / 1000);
	fm->claim_after = jiffies + fm->src_backoff;
	fm->src_backoff = min(fm->src_backoff * 2, FM_SRC_BACKOFF_MAX);
}

/*
 * A region is copied in chunks of 4 MiB: what kcopyd keeps in flight for
 * one copy anyway (8 sub-jobs of 512 KiB by default), so chunks cost no
 * throughput, and a suspend waits for at most one chunk per job.
 */
#define FM_COPY_CHUNK	8192U	/* sectors */

/* The sectors of region @r (the last one may be short). */
static sector_t fm_region_len(struct flushmirror_c *fm, unsigned long r)
{
	sector_t start = (sector_t)r << fm->region_shift;

	return min_t(sector_t, fm->region_size, fm->ti->len - start);
}

/*
 * fm_copy_done - kcopyd copied a chunk of a region.  The next chunk goes
 * to the copier, unless this was the last one, something failed, or a
 * suspend began: then the job ends, and its region counts as copied only
 * if every chunk was copied in the job's epoch.
 * Context: kcopyd's callback (process).
 */
static void fm_copy_done(int read_err, unsigned long write_err, void *context)
{
	struct fm_job *job = context;
	struct flushmirror_c *fm = job->fm;
	bool ok = !read_err && !write_err;
	struct fm_io *io, *tmp;
	LIST_HEAD(waiting);

	spin_lock_irq(&fm->lock);
	ok = ok && job->epoch == fm->copy_epoch;
	if (ok && job->done + FM_COPY_CHUNK < fm_region_len(fm, job->region)) {
		if (!fm->suspending) {
			job->done += FM_COPY_CHUNK;
			job->state = FM_JOB_READY;
			fm_kick_copier(fm);
			spin_unlock_irq(&fm->lock);
			return;
		}
		/* stopped between chunks: copied again after the resume */
		ok = false;
	}
	fm_region_copied(&fm->rg, job->region, ok);
	if (write_err)
		fm_dest_failed(fm);
	else if (read_err)
		fm_copy_backoff(fm, job->region);
	else
		fm->src_backoff = FM_SRC_BACKOFF_MIN;
	list_splice_init(&job->waiting, &waiting);
	/* the slot is free; it stays counted in active_jobs until the end */
	job->state = FM_JOB_IDLE;
	fm_check_synced(fm);
	spin_unlock_irq(&fm->lock);

	list_for_each_entry_safe(io, tmp, &waiting, list) {
		list_del_init(&io->list);
		if (fm_route_write(fm, io, fm_io_bio(io)) == DM_MAPIO_REMAPPED)
			dm_submit_bio_remap(fm_io_bio(io), NULL);
	}

	/* The last touch of @fm: presuspend waits for active_jobs == 0. */
	spin_lock_irq(&fm->lock);
	fm->active_jobs--;
	fm_kick_copier(fm);
	wake_up_all(&fm->wait);
	spin_unlock_irq(&fm->lock);
}

/* Context: any, with fm->lock held. */
static bool fm_may_start_copy(struct flushmirror_c *fm)
{
	return fm->phase == FM_COPYING && !fm->suspending &&
	       fm->active_jobs < fm->cfg.copy_jobs;
}

/* Context: any, with fm->lock held. */
static unsigned int fm_count_inflight(struct flushmirror_c *fm,
				      unsigned long r)
{
	unsigned int n = 0;
	struct fm_io *io;

	hash_for_each_possible(fm->inflight, io, node, r)
		n += io->region == r;
	return n;
}

/* Context: any, with fm->lock held. */
static void fm_start_job(struct flushmirror_c *fm, unsigned long r)
{
	struct fm_job *job = NULL;
	unsigned int i;

	for (i = 0; i < fm->cfg.copy_jobs; i++) {
		if (fm->jobs[i].state == FM_JOB_IDLE) {
			job = &fm->jobs[i];
			break;
		}
	}
	job->region = r;
	job->done = 0;
	job->epoch = fm->copy_epoch;
	job->writes = fm_count_inflight(fm, r);
	job->state = job->writes ? FM_JOB_WAITING : FM_JOB_READY;
	fm->active_jobs++;
}

/* Copy the next chunk of @job's region.  Context: process. */
static void fm_submit_copy(struct flushmirror_c *fm, struct fm_job *job)
{
	sector_t start = (sector_t)job->region << fm->region_shift;
	struct dm_io_region from, to;

	from.bdev = fm->src->bdev;
	from.sector = start + job->done;
	from.count = min_t(sector_t, FM_COPY_CHUNK,
			   fm_region_len(fm, job->region) - job->done);
	to = from;
	to.bdev = fm->dst->bdev;
	dm_kcopyd_copy(fm->kcopyd, &from, 1, &to, 0, fm_copy_done, job);
}

/*
 * fm_copy_work - the copier.
 *   1. Claim regions for free job slots while the phase, the back-off
 *      after a source read error and the throttle allow it.
 *   2. Submit the next chunk of every job that no write in flight holds
 *      back any more.
 * Context: process (fm->wq).
 */
static void fm_copy_work(struct work_struct *ws)
{
	struct flushmirror_c *fm = container_of(to_delayed_work(ws),
						struct flushmirror_c, copy_work);
	struct fm_job *ready[FM_MAX_COPY_JOBS];
	unsigned int i, n = 0;
	unsigned long r, delay;

	spin_lock_irq(&fm->lock);
	while (fm_may_start_copy(fm)) {
		if (time_before(jiffies, fm->claim_after)) {
			mod_delayed_work(fm->wq, &fm->copy_work,
					 fm->claim_after - jiffies);
			break;
		}
		delay = fm_throttle_take(&fm->thr, jiffies, fm->cfg.copy_rate,
					 fm->region_size);
		if (delay) {
			mod_delayed_work(fm->wq, &fm->copy_work, delay);
			break;
		}
		if (!fm_region_claim(&fm->rg, &r)) {
			/* nothing to copy: the budget stays for later */
			if (fm->cfg.copy_rate)
				fm->thr.tokens += fm->region_size;
			break;
		}
		fm_start_job(fm, r);
	}
	for (i = 0; i < fm->cfg.copy_jobs; i++) {
		if (fm->jobs[i].state == FM_JOB_READY) {
			fm->jobs[i].state = FM_JOB_RUNNING;
			ready[n++] = &fm->jobs[i];
		}
	}
	if (fm->phase == FM_COPYING || fm->phase == FM_PAUSED)
		fm_check_synced(fm);
	spin_unlock_irq(&fm->lock);

	for (i = 0; i < n; i++)
		fm_submit_copy(fm, ready[i]);
}

/* ------------------------------------------------------------------------
 * The metadata of a resumable migration (the metadata feature).
 *
 * A commit writes, per region, "copied" and "intent" (the rules are those
 * of fm_md_next_state()).  Two kinds:
 *   - an intent commit, as soon as a write waits on md_waiting: it adds
 *     intent for the touched regions and clears no bit but those of
 *     regions no longer copied; it needs no flush of the legs;
 *   - a checkpoint, every cfg.checkpoint seconds while something changed,
 *     and at every suspend: it snapshots the copied regions and the
 *     regions with writes in flight, flushes both legs, then records what
 *     the flush made durable: new copied regions, and intent cleared
 *     where no write has been since the snapshot.
 * Only fm_md_work() and fm_postsuspend() commit, under md_mutex.
 * ------------------------------------------------------------------------
 */

/*
 * fm_md_release - after a commit, route the writes that waited for it and
 * that may start now; the others wait for the next commit.
 * Context: process, with md_mutex held.
 */
static void fm_md_release(struct flushmirror_c *fm)
{
	struct fm_io *io, *tmp;
	LIST_HEAD(ready);

	spin_lock_irq(&fm->lock);
	list_for_each_entry_safe(io, tmp, &fm->md_waiting, list)
		if (fm->md_failed || !test_bit(io->region, fm->md_unsafe))
			list_move_tail(&io->list, &ready);
	spin_unlock_irq(&fm->lock);

	list_for_each_entry_safe(io, tmp, &ready, list) {
		list_del_init(&io->list);
		if (fm_route_write(fm, io, fm_io_bio(io)) == DM_MAPIO_REMAPPED)
			dm_submit_bio_remap(fm_io_bio(io), NULL);
	}
}

/*
 * fm_md_commit_state - compute the next state and commit it.
 * @snap: rg.copied when the flush this commit relies on was issued, or
 *	NULL for an intent commit (no flush: rg.copied now is used)
 * @flushed: that flush completed on both legs
 * A failed commit degrades the metadata (status "failed"): writes stop
 * waiting for it (the guest must not stall on a metadata device), the
 * mirror goes on, so the regions the device records as copied stay equal
 * on both legs, and every checkpoint tries again; the first commit that
 * succeeds ends the degradation.  What is not covered meanwhile is a host
 * crash while a write is on one leg only.
 * Context: process, with md_mutex held.
 */
static void fm_md_commit_state(struct flushmirror_c *fm,
			       const unsigned long *snap, bool flushed)
{
	unsigned long nr = fm->rg.nr;
	struct fm_io *io;
	int r;

	spin_lock_irq(&fm->lock);
	/* a write that waits has not started: it is touched all the same */
	list_for_each_entry(io, &fm->md_waiting, list)
		__set_bit(io->region, fm->md_touched);
	fm_md_next_state(nr, fm->md, snap ? snap : fm->rg.copied,
			 fm->rg.copied, fm->md_touched,
			 snap ? fm->md_keep : NULL, flushed,
			 fm->md_new_copied, fm->md_new_intent);
	/* while it is written, either state may be the one on the disk */
	fm_md_mark_unsafe(fm->md_unsafe, fm->md_new_copied,
			  fm->md_new_intent, nr);
	spin_unlock_irq(&fm->lock);

	r = fm_md_commit(fm->md, fm->md_new_copied, fm->md_new_intent);

	spin_lock_irq(&fm->lock);
	if (r) {
		if (!fm->md_failed)
			DMERR("%s: metadata commit failed (%d): degraded, retrying",
			      dm_table_device_name(fm->ti->table), r);
		fm->md_failed = true;
	} else {
		if (fm->md_failed)
			DMINFO("%s: metadata commits again",
			       dm_table_device_name(fm->ti->table));
		fm->md_failed = false;
		bitmap_zero(fm->md_unsafe, nr);
		fm_md_mark_unsafe(fm->md_unsafe, fm->md_new_copied,
				  fm->md_new_intent, nr);
		fm->md_commits = fm->md->commits;
		fm->md_commit_time = fm->md->commit_time;
	}
	spin_unlock_irq(&fm->lock);
	fm_md_release(fm);
}

/*
 * fm_md_checkpoint - make the copy's progress and the writes' durability
 * known to the metadata (see above).  Nothing is done when the device
 * already records the copied regions and no intent.
 * Context: process, with md_mutex held.
 */
static void fm_md_checkpoint(struct flushmirror_c *fm)
{
	unsigned long nr = fm->rg.nr;
	bool flushed, dst_ok, idle;
	struct fm_io *io;
	unsigned int bkt;

	spin_lock_irq(&fm->lock);
	idle = !fm->md_failed &&
	       (list_empty(&fm->md_waiting) &&
		bitmap_equal(fm->rg.copied, fm->md->copied, nr) &&
		bitmap_empty(fm->md->intent, nr));
	if (idle) {
		spin_unlock_irq(&fm->lock);
		return;
	}
	bitmap_copy(fm->md_snap, fm->rg.copied, nr);
	bitmap_zero(fm->md_keep, nr);
	hash_for_each(fm->inflight, bkt, io, node)
		__set_bit(io->region, fm->md_keep);
	bitmap_zero(fm->md_touched, nr);
	dst_ok = fm->phase != FM_FAILED;
	if (dst_ok && !debug_md_skip_flush)
		fm->dest_flushes++;
	spin_unlock_irq(&fm->lock);

	if (debug_md_skip_flush) {
		flushed = true;
	} else {
		flushed = !blkdev_issue_flush(fm->src->bdev) && dst_ok;
		if (dst_ok && blkdev_issue_flush(fm->dst->bdev)) {
			flushed = false;
			spin_lock_irq(&fm->lock);
			fm->recopy_all = true;
			fm_dest_failed(fm);
			spin_unlock_irq(&fm->lock);
		}
	}
	fm_md_commit_state(fm, fm->md_snap, flushed);
}

/*
 * fm_md_work - intent commits for the writes that wait, and the periodic
 * checkpoint.  Re-arms itself for the next checkpoint.
 * Context: process (fm->wq).
 */
static void fm_md_work(struct work_struct *ws)
{
	struct flushmirror_c *fm = container_of(to_delayed_work(ws),
						struct flushmirror_c, md_work);
	bool waiting;

	mutex_lock(&fm->md_mutex);
	if (fm->md_stopped) {
		mutex_unlock(&fm->md_mutex);
		return;
	}
	if (time_after_eq(jiffies, fm->md_next)) {
		fm_md_checkpoint(fm);
		fm->md_next = jiffies + fm->cfg.checkpoint * HZ;
	} else {
		spin_lock_irq(&fm->lock);
		waiting = !list_empty(&fm->md_waiting);
		spin_unlock_irq(&fm->lock);
		if (waiting)
			fm_md_commit_state(fm, NULL, false);
	}

	spin_lock_irq(&fm->lock);
	if (!list_empty(&fm->md_waiting))
		mod_delayed_work(fm->wq, &fm->md_work, 0);
	else
		queue_delayed_work(fm->wq, &fm->md_work,
				   time_after(fm->md_next, jiffies) ?
				   fm->md_next - jiffies : 0);
	spin_unlock_irq(&fm->lock);
	mutex_unlock(&fm->md_mutex);
}

/* Raise one dm event per phase change queued.  Context: workqueue. */
static void fm_event_work(struct work_struct *ws)
{
	struct flushmirror_c *fm = container_of(ws, struct flushmirror_c,
						event_work);
	unsigned int n;

	spin_lock_irq(&fm->lock);
	n = fm->events_queued;
	fm->events_queued = 0;
	spin_unlock_irq(&fm->lock);

	while (n--)
		dm_table_event(fm->ti->table);
}

/* ------------------------------------------------------------------------
 * Constructor and destructor.
 * ------------------------------------------------------------------------
 */

/*
 * fm_free - release everything fm_ctr() set up.  The kcopyd client goes
 * first: it waits for its callbacks (fm_copy_done()), which queue work on
 * fm->wq.
 */
static void fm_free(struct flushmirror_c *fm)
{
	if (fm->kcopyd)
		dm_kcopyd_client_destroy(fm->kcopyd);
	if (fm->wq)
		destroy_workqueue(fm->wq);
	bioset_exit(&fm->bs);
	kvfree(fm->rg.copied);
	kvfree(fm->rg.busy);
	kvfree(fm->rg.todo);
	kvfree(fm->rg.redirtied);
	fm_md_free(fm->md);
	kvfree(fm->md_touched);
	kvfree(fm->md_unsafe);
	kvfree(fm->md_snap);
	kvfree(fm->md_keep);
	kvfree(fm->md_new_copied);
	kvfree(fm->md_new_intent);
	if (fm->md_dev)
		dm_put_device(fm->ti, fm->md_dev);
	if (fm->dst)
		dm_put_device(fm->ti, fm->dst);
	if (fm->src)
		dm_put_device(fm->ti, fm->src);
	kfree(fm);
}

enum fm_dev_role { FM_DEV_SRC, FM_DEV_DST, FM_DEV_MD };

/*
 * fm_get_leg - open the source, the destination or the metadata device
 * (@role), refusing the flushmirror device itself: a table over its own device would
 * send every bio back to it.  dm core refuses that since Linux 6.5, 6.1
 * does not.  The check before the open reads the argument as dm core does
 * ("major:minor", else a path), so that every kernel gives the same error;
 * the check after it catches the other spellings 6.1 resolves (a hex
 * device number, a bare kernel name).  An argument that does not resolve is
 * left to dm_get_device() to report.  On error a leg already opened is put
 * by fm_free().  Context: process (ctr).
 */
static int fm_get_leg(struct dm_target *ti, const char *path,
		      struct dm_dev **leg, enum fm_dev_role role)
{
	static const char * const open_error[] = {
		[FM_DEV_SRC] = "Cannot open source device",
		[FM_DEV_DST] = "Cannot open destination device",
		[FM_DEV_MD] = "Cannot open metadata device",
	};
	static const char * const self_error[] = {
		[FM_DEV_SRC] = "Source is the flushmirror device itself",
		[FM_DEV_DST] = "Destination is the flushmirror device itself",
		[FM_DEV_MD] = "Metadata device is the flushmirror device itself",
	};
	dev_t self = disk_devt(dm_disk(dm_table_get_md(ti->table)));
	unsigned int major, minor;
	char dummy;
	dev_t dev;
	int r;

	if (sscanf(path, "%u:%u%c", &major, &minor, &dummy) == 2) {
		if (major == MAJOR(self) && minor == MINOR(self))
			goto is_self;
	} else if (!lookup_bdev(path, &dev) && dev == self) {
		goto is_self;
	}
	r = dm_get_device(ti, path, dm_table_get_mode(ti->table), leg);
	if (r) {
		ti->error = (char *)open_error[role];
		return r;
	}
	if ((*leg)->bdev->bd_dev != self)
		return 0;
is_self:
	ti->error = (char *)self_error[role];
	return -EINVAL;
}

/*
 * fm_open_devices - open both legs and check they suit the table.
 * Context: process (ctr).
 */
static int fm_open_devices(struct flushmirror_c *fm, char **argv)
{
	struct dm_target *ti = fm->ti;
	unsigned int bytes = fm->region_size << SECTOR_SHIFT;
	int r;

	r = fm_get_leg(ti, argv[0], &fm->src, FM_DEV_SRC);
	if (r)
		return r;
	r = fm_get_leg(ti, argv[1], &fm->dst, FM_DEV_DST);
	if (r)
		return r;
	if (fm->src->bdev == fm->dst->bdev) {
		ti->error = "Source and destination are the same device";
		return -EINVAL;
	}
	if (bdev_nr_sectors(fm->src->bdev) < ti->len) {
		ti->error = "Source device is smaller than the target length";
		return -EINVAL;
	}
	if (bdev_nr_sectors(fm->dst->bdev) < ti->len) {
		ti->error = "Destination device is smaller than the target length";
		return -EINVAL;
	}
	if (bytes < bdev_logical_block_size(fm->src->bdev) ||
	    bytes < bdev_logical_block_size(fm->dst->bdev)) {
		ti->error = "Region size is below a device's logical block size";
		return -EINVAL;
	}
	/*
	 * The stacked device takes the larger logical block size: under a
	 * running guest, 512-byte direct I/O would start to fail.
	 */
	if (bdev_logical_block_size(fm->dst->bdev) >
	    bdev_logical_block_size(fm->src->bdev)) {
		ti->error = "Destination logical block size exceeds the source's";
		return -EINVAL;
	}
	return 0;
}

/*
 * fm_md_take_state - start from the metadata's last commit: the regions
 * recorded as copied and without intent stay copied (all of them with
 * nosync), every other region is copied again.  A region kept is "unsafe"
 * until a commit records intent for it: its first write waits for that.
 * Context: process (ctr, preresume); nothing runs yet.
 */
static void fm_md_take_state(struct flushmirror_c *fm)
{
	unsigned long nr = fm->rg.nr;

	spin_lock_irq(&fm->lock);
	bitmap_andnot(fm->rg.copied, fm->md->copied, fm->md->intent, nr);
	fm->md_kept = bitmap_weight(fm->rg.copied, nr);
	bitmap_copy(fm->md_unsafe, fm->rg.copied, nr);
	if (fm->cfg.nosync)
		bitmap_fill(fm->rg.copied, nr);
	fm->rg.nr_copied = bitmap_weight(fm->rg.copied, nr);
	bitmap_fill(fm->rg.todo, fm_region_chunks(&fm->rg));
	fm->md_commit_time = fm->md->commit_time;
	spin_unlock_irq(&fm->lock);

	if (fm->md->formatted)
		DMINFO("%s: metadata device formatted",
		       dm_table_device_name(fm->ti->table));
	else
		DMINFO("%s: metadata commit %llu: %lu of %lu regions kept, %lu to copy again",
		       dm_table_device_name(fm->ti->table), fm->md->seq,
		       fm->md_kept, nr, nr - fm->md_kept);
}

/*
 * fm_md_load - open the metadata device (formatting it if blank) and take
 * its state.  Context: process (ctr), after the region map is allocated.
 */
static int fm_md_load(struct flushmirror_c *fm)
{
	struct dm_target *ti = fm->ti;
	unsigned long nr = fm->rg.nr, longs = BITS_TO_LONGS(nr);
	struct fm_md_geometry geo;
	int r;

	r = fm_get_leg(ti, fm->cfg.md_path, &fm->md_dev, FM_DEV_MD);
	if (r)
		return r;
	if (fm->md_dev->bdev == fm->src->bdev ||
	    fm->md_dev->bdev == fm->dst->bdev) {
		ti->error = "Metadata device is one of the legs";
		return -EINVAL;
	}
	geo.region_size = fm->region_size;
	geo.nr_regions = nr;
	geo.target_len = ti->len;
	geo.src_sectors = bdev_nr_sectors(fm->src->bdev);
	geo.dst_sectors = bdev_nr_sectors(fm->dst->bdev);
	r = fm_md_open(fm->md_dev->bdev, &geo, fm->cfg.discard_md, &fm->md,
		       &ti->error);
	if (r)
		return r;

	fm->md_touched = kvcalloc(longs, sizeof(long), GFP_KERNEL);
	fm->md_unsafe = kvcalloc(longs, sizeof(long), GFP_KERNEL);
	fm->md_snap = kvcalloc(longs, sizeof(long), GFP_KERNEL);
	fm->md_keep = kvcalloc(longs, sizeof(long), GFP_KERNEL);
	fm->md_new_copied = kvcalloc(longs, sizeof(long), GFP_KERNEL);
	fm->md_new_intent = kvcalloc(longs, sizeof(long), GFP_KERNEL);
	if (!fm->md_touched || !fm->md_unsafe || !fm->md_snap ||
	    !fm->md_keep || !fm->md_new_copied || !fm->md_new_intent) {
		ti->error = "Cannot allocate metadata bitmaps";
		return -ENOMEM;
	}
	fm->cfg.md_path = NULL;	/* it points into the table line */
	fm_md_take_state(fm);
	return 0;
}

/*
 * fm_ctr - construct a flushmirror target
 * <source_dev> <dest_dev> <region_size> [<#feature_args> [<feature_arg>]*]
 */
static int fm_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	struct flushmirror_c *fm;
	unsigned long longs;
	unsigned int i;
	u64 nr;
	int r;

	if (argc < 3) {
		ti->error = "Invalid argument count";
		return -EINVAL;
	}

	fm = kzalloc(sizeof(*fm), GFP_KERNEL);
	if (!fm) {
		ti->error = "Cannot allocate target context";
		return -ENOMEM;
	}
	fm->ti = ti;
	ti->private = fm;
	spin_lock_init(&fm->lock);

	r = fm_parse_region_size(argv[2], &fm->region_size, &ti->error);
	if (r)
		goto bad;
	fm->region_shift = ilog2(fm->region_size);
	dm_consume_args(&as, 3);
	r = fm_parse_features(&as, &fm->cfg, &ti->error);
	if (r)
		goto bad;
	if (as.argc) {
		ti->error = "Too many arguments: feature count does not match";
		r = -EINVAL;
		goto bad;
	}
	r = fm_open_devices(fm, argv);
	if (r)
		goto bad;

	nr = (ti->len >> fm->region_shift) +
	     !!(ti->len & (fm->region_size - 1));
	if (nr > FM_MAX_REGIONS) {
		ti->error = "Too many regions (more than 2^28): raise the region size";
		r = -EINVAL;
		goto bad;
	}
	fm->rg.nr = nr;
	longs = BITS_TO_LONGS(fm->rg.nr);
	fm->rg.copied = kvcalloc(longs, sizeof(long), GFP_KERNEL | __GFP_NOWARN);
	fm->rg.busy = kvcalloc(longs, sizeof(long), GFP_KERNEL | __GFP_NOWARN);
	fm->rg.redirtied = kvcalloc(longs, sizeof(long),
				    GFP_KERNEL | __GFP_NOWARN);
	fm->rg.todo = kvcalloc(BITS_TO_LONGS(fm_region_chunks(&fm->rg)),
			       sizeof(long), GFP_KERNEL | __GFP_NOWARN);
	if (!fm->rg.copied || !fm->rg.busy || !fm->rg.todo ||
	    !fm->rg.redirtied) {
		ti->error = "Cannot allocate region bitmaps";
		r = -ENOMEM;
		goto bad;
	}
	bitmap_fill(fm->rg.todo, fm_region_chunks(&fm->rg));
	if (fm->cfg.md_path) {
		r = fm_md_load(fm);
		if (r)
			goto bad;
	}
	if (fm->cfg.nosync) {
		bitmap_set(fm->rg.copied, 0, fm->rg.nr);
		fm->rg.nr_copied = fm->rg.nr;
		fm->gen.in_sync = true;
		fm->phase = FM_SYNCED;
	}

	r = bioset_init(&fm->bs, BIO_POOL_SIZE * 2,
			offsetof(struct fm_dflush, bio), BIOSET_NEED_RESCUER);
	if (r) {
		ti->error = "Cannot allocate bio set";
		goto bad;
	}
	fm->kcopyd = dm_kcopyd_client_create(NULL);
	if (IS_ERR(fm->kcopyd)) {
		r = PTR_ERR(fm->kcopyd);
		fm->kcopyd = NULL;
		ti->error = "Cannot create kcopyd client";
		goto bad;
	}
	fm->wq = alloc_workqueue("dm-flushmirror", WQ_MEM_RECLAIM, 0);
	if (!fm->wq) {
		ti->error = "Cannot allocate workqueue";
		r = -ENOMEM;
		goto bad;
	}

	fm->src_backoff = FM_SRC_BACKOFF_MIN;
	fm->claim_after = jiffies;
	hash_init(fm->inflight);
	INIT_LIST_HEAD(&fm->flush_waiters);
	init_waitqueue_head(&fm->wait);
	INIT_DELAYED_WORK(&fm->copy_work, fm_copy_work);
	INIT_WORK(&fm->flush_work, fm_flush_work);
	INIT_WORK(&fm->event_work, fm_event_work);
	INIT_LIST_HEAD(&fm->md_waiting);
	mutex_init(&fm->md_mutex);
	INIT_DELAYED_WORK(&fm->md_work, fm_md_work);
	for (i = 0; i < FM_MAX_COPY_JOBS; i++) {
		fm->jobs[i].fm = fm;
		INIT_LIST_HEAD(&fm->jobs[i].waiting);
	}
	/* Nothing runs until resume. */
	fm->suspending = true;

	r = dm_set_target_max_io_len(ti, fm->region_size);
	if (r)
		goto bad;
	ti->num_flush_bios = 1;
	ti->flush_supported = true;
	ti->num_discard_bios = 1;
	ti->num_write_zeroes_bios = 1;
	ti->per_io_data_size = sizeof(struct fm_io);
	return 0;

bad:
	fm_free(fm);
	return r;
}

static void fm_dtr(struct dm_target *ti)
{
	struct flushmirror_c *fm = ti->private;

	cancel_delayed_work_sync(&fm->copy_work);
	cancel_delayed_work_sync(&fm->md_work);
	flush_workqueue(fm->wq);
	mutex_destroy(&fm->md_mutex);
	fm_free(fm);
}

/* ------------------------------------------------------------------------
 * Suspend and resume.
 * ------------------------------------------------------------------------
 */

/*
 * fm_presuspend - stop the copier.
 *   1. Start no copy job from now on.
 *   2. Wait for the jobs that own a region: each ends and routes the
 *      writes that waited for it, so dm can drain them.  The wait is
 *      under fm->lock, which the end of a job holds for its last touch.
 *   3. Stop the copier work.
 */
static void fm_presuspend(struct dm_target *ti)
{
	struct flushmirror_c *fm = ti->private;

	spin_lock_irq(&fm->lock);
	fm->suspending = true;
	wait_event_lock_irq(fm->wait, !fm->active_jobs, fm->lock);
	spin_unlock_irq(&fm->lock);
	cancel_delayed_work_sync(&fm->copy_work);
}

/*
 * fm_restart_copier - end the stop fm_presuspend() began and let the copier
 * pick up regions again.  @reset_rate (on resume): no copy budget was saved
 * up while suspended, so the copy restarts without a burst above copy_rate.
 * Process context; takes fm->lock.
 */
static void fm_restart_copier(struct flushmirror_c *fm, bool reset_rate)
{
	spin_lock_irq(&fm->lock);
	if (reset_rate) {
		fm->thr.tokens = 0;
		fm->thr.stamp = jiffies;
	}
	fm->suspending = false;
	fm_kick_copier(fm);
	spin_unlock_irq(&fm->lock);
}

static void fm_presuspend_undo(struct dm_target *ti)
{
	fm_restart_copier(ti->private, false);
}

/*
 * fm_postsuspend - leave the destination ready for a switchover.  dm has
 * drained every guest bio.
 *   1. Wait for the shared destination flushes in flight, if any, and
 *      for their completions to be done with @fm and its bio set.
 *   2. If in sync and writes are not flushed yet, issue a last
 *      destination flush, and go back to 1: then WF = WM = SG.
 *   3. With metadata, a checkpoint: a clean stop (a reboot, a reload)
 *      keeps every region copied so far and leaves no intent behind.
 *      Then no commit until the next resume: a table loaded over this
 *      one may be resumed (and commit) before this one is destroyed.
 */
static void fm_postsuspend(struct dm_target *ti)
{
	struct flushmirror_c *fm = ti->private;
	enum fm_flush_action act;

	for (;;) {
		spin_lock_irq(&fm->lock);
		wait_event_lock_irq(fm->wait,
				    !fm->gen.busy && !fm->dflush_bios, fm->lock);
		act = FM_FLUSH_NONE;
		if (fm->gen.in_sync && fm->phase != FM_FAILED)
			act = fm_gen_request(&fm->gen, fm->gen.wm, false);
		if (act == FM_FLUSH_ISSUE)
			fm->dest_flushes++;
		spin_unlock_irq(&fm->lock);

		/* With none busy, a request never waits. */
		if (act != FM_FLUSH_ISSUE)
			break;
		fm_issue_dest_flush(fm, false);
	}

	if (fm->md) {
		mutex_lock(&fm->md_mutex);
		fm_md_checkpoint(fm);
		fm->md_stopped = true;
		mutex_unlock(&fm->md_mutex);
	}
}

/*
 * fm_preresume - at the first resume with metadata, read it again: a table
 * loaded over a live one (a reload) read it before the live one's last
 * checkpoint, which its suspend wrote.  Later resumes keep the state.
 */
static int fm_preresume(struct dm_target *ti)
{
	struct flushmirror_c *fm = ti->private;
	char *why = NULL;
	int r;

	if (!fm->md || fm->md_loaded)
		return 0;
	r = fm_md_reread(fm->md, &why);
	if (r) {
		DMERR("%s: cannot resume: %s", dm_table_device_name(ti->table),
		      why);
		return r;
	}
	fm_md_take_state(fm);
	fm->md_loaded = true;
	return 0;
}

static void fm_resume(struct dm_target *ti)
{
	struct flushmirror_c *fm = ti->private;

	fm_restart_copier(fm, true);
	if (fm->md) {
		mutex_lock(&fm->md_mutex);
		fm->md_stopped = false;
		fm->md_next = jiffies + fm->cfg.checkpoint * HZ;
		queue_delayed_work(fm->wq, &fm->md_work,
				   fm->cfg.checkpoint * HZ);
		mutex_unlock(&fm->md_mutex);
	}
}

/* ------------------------------------------------------------------------
 * Status and messages.
 * ------------------------------------------------------------------------
 */

static void fm_status(struct dm_target *ti, status_type_t type,
		      unsigned int status_flags, char *result,
		      unsigned int maxlen)
{
	struct flushmirror_c *fm = ti->private;
	unsigned int sz = 0, nfeat;
	struct fm_config cfg;

	switch (type) {
	case STATUSTYPE_INFO:
		spin_lock_irq(&fm->lock);
		DMEMIT("%s %lu/%lu %llu %llu %llu %llu %llu %llu %llu %llu",
		       fm_phase_names[fm->phase], fm->rg.nr_copied, fm->rg.nr,
		       fm->gen.sg, fm->gen.wm, fm->gen.fr, fm->gen.wf,
		       fm->guest_flushes, fm->dest_flushes, fm->dest_errors,
		       fm->src_errors);
		if (fm->md)
			DMEMIT(" metadata %s %llu %lld %lu %lu %llu",
			       fm->md_failed ? "failed" : "ok", fm->md_commits,
			       fm->md_commit_time ? ktime_get_real_seconds() -
			       (s64)fm->md_commit_time : -1LL,
			       fm->md_kept, fm->rg.nr - fm->md_kept,
			       fm->md_held);
		spin_unlock_irq(&fm->lock);
		break;

	case STATUSTYPE_TABLE:
		spin_lock_irq(&fm->lock);
		cfg = fm->cfg;
		spin_unlock_irq(&fm->lock);
		nfeat = cfg.nosync + 2 * (cfg.policy != FM_POLICY_GENERATION) +
			2 * !!cfg.copy_rate +
			2 * (cfg.copy_jobs != FM_DEFAULT_COPY_JOBS) +
			2 * !!fm->md_dev +
			2 * (cfg.checkpoint != FM_DEFAULT_CHECKPOINT) +
			2 * (cfg.copy_mode != FM_COPY_SYNC);
		DMEMIT("%s %s %u", fm->src->name, fm->dst->name,
		       fm->region_size);
		if (!nfeat)
			break;
		DMEMIT(" %u", nfeat);
		if (cfg.nosync)
			DMEMIT(" nosync");
		if (cfg.policy != FM_POLICY_GENERATION)
			DMEMIT(" flush_policy %s", fm_policy_name(cfg.policy));
		if (cfg.copy_rate)
			DMEMIT(" copy_rate %u", cfg.copy_rate);
		if (cfg.copy_jobs != FM_DEFAULT_COPY_JOBS)
			DMEMIT(" copy_jobs %u", cfg.copy_jobs);
		if (fm->md_dev)
			DMEMIT(" metadata %s", fm->md_dev->name);
		if (cfg.checkpoint != FM_DEFAULT_CHECKPOINT)
			DMEMIT(" checkpoint_interval %u", cfg.checkpoint);
		if (cfg.copy_mode != FM_COPY_SYNC)
			DMEMIT(" copy_mode background");
		break;

	case STATUSTYPE_IMA:
		DMEMIT_TARGET_NAME_VERSION(ti->type);
		DMEMIT(",source_device=%s,destination_device=%s;",
		       fm->src->name, fm->dst->name);
		break;
	}
}

static int fm_message(struct dm_target *ti, unsigned int argc, char **argv,
		      char *result, unsigned int maxlen)
{
	struct flushmirror_c *fm = ti->private;
	const char *why = NULL;
	struct fm_msg msg;
	int r;

	r = fm_parse_message(argc, argv, &msg, &why);
	if (r) {
		DMWARN("%s: message \"%s%s%s\" rejected: %s",
		       dm_table_device_name(ti->table), argc ? argv[0] : "",
		       argc > 1 ? " " : "", argc > 1 ? argv[1] : "", why);
		return r;
	}

	spin_lock_irq(&fm->lock);
	switch (msg.cmd) {
	case FM_MSG_PAUSE:
		if (fm->phase != FM_COPYING) {
			why = "pause: not copying";
			break;
		}
		fm_set_phase(fm, FM_PAUSED);
		break;
	case FM_MSG_RESUME:
		if (fm->phase != FM_PAUSED) {
			why = "resume: not paused";
			break;
		}
		fm_set_phase(fm, FM_COPYING);
		fm_kick_copier(fm);
		break;
	case FM_MSG_COPY_RATE:
		fm->cfg.copy_rate = msg.rate;
		fm_kick_copier(fm);
		break;
	case FM_MSG_FLUSH_POLICY:
		fm->cfg.policy = msg.policy;
		break;
	case FM_MSG_RETRY:
		if (fm->phase != FM_FAILED) {
			why = "retry: not failed";
			break;
		}
		if (fm->recopy_all) {
			/*
			 * Copy everything again.  Jobs still running started
			 * before the failure: their epoch keeps them from
			 * marking a region copied.
			 */
			bitmap_zero(fm->rg.copied, fm->rg.nr);
			fm->rg.nr_copied = 0;
			bitmap_fill(fm->rg.todo, fm_region_chunks(&fm->rg));
			fm->recopy_all = false;
		}
		fm_set_phase(fm, FM_COPYING);
		fm_kick_copier(fm);
		break;
	}
	spin_unlock_irq(&fm->lock);

	if (why) {
		DMWARN("%s: message \"%s\" rejected: %s",
		       dm_table_device_name(ti->table), argv[0], why);
		return -EINVAL;
	}
	return 0;
}

static int fm_iterate_devices(struct dm_target *ti,
			      iterate_devices_callout_fn fn, void *data)
{
	struct flushmirror_c *fm = ti->private;
	int r;

	r = fn(ti, fm->src, 0, ti->len, data);
	if (!r)
		r = fn(ti, fm->dst, 0, ti->len, data);
	return r;
}

/*
 * fm_io_hints - dm stacks the limits of both devices (the larger logical
 * block size wins).  io_min stays the legs'.  Where the legs give no
 * optimal size, suggest the region, capped at FM_MAX_IO_OPT: with large
 * regions mkfs would take it for a stripe unit and readahead would grow
 * with it.
 */
#define FM_MAX_IO_OPT	SZ_1M
static void fm_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	struct flushmirror_c *fm = ti->private;
	unsigned int bytes = fm->region_size << SECTOR_SHIFT;

	if (!limits->io_opt)
		limits->io_opt = min(bytes, FM_MAX_IO_OPT);
}

static struct target_type flushmirror_target = {
	.name = "flushmirror",
	.version = {1, 0, 0},
	.module = THIS_MODULE,
	.ctr = fm_ctr,
	.dtr = fm_dtr,
	.map = fm_map,
	.end_io = fm_end_io,
	.presuspend = fm_presuspend,
	.presuspend_undo = fm_presuspend_undo,
	.postsuspend = fm_postsuspend,
	.preresume = fm_preresume,
	.resume = fm_resume,
	.status = fm_status,
	.message = fm_message,
	.iterate_devices = fm_iterate_devices,
	.io_hints = fm_io_hints,
};

static int __init dm_flushmirror_init(void)
{
	return dm_register_target(&flushmirror_target);
}

static void __exit dm_flushmirror_exit(void)
{
	dm_unregister_target(&flushmirror_target);
}

module_init(dm_flushmirror_init);
module_exit(dm_flushmirror_exit);

MODULE_DESCRIPTION(DM_NAME " live mirror target with generation-counted flushes");
MODULE_AUTHOR("The dm-flushmirror authors");
MODULE_LICENSE("GPL");
MODULE_VERSION("1.0.0");

#if IS_ENABLED(CONFIG_DM_FLUSHMIRROR_KUNIT_TEST)
#include "kunit/dm-flushmirror-test.c"
#endif
