// SPDX-License-Identifier: GPL-2.0
/*
 * dm-flushmirror: the metadata device of a resumable migration, its
 * on-disk format and its I/O.  See dm-flushmirror-metadata.h for the
 * format and Documentation/flushmirror.rst for the rules.
 *
 * Copyright (C) 2026 The dm-flushmirror authors
 */

#include "dm-flushmirror-metadata.h"

#include <linux/bio.h>
#include <linux/bitmap.h>
#include <linux/blkdev.h>
#include <linux/crc32c.h>
#include <linux/device-mapper.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/vmalloc.h>

#define DM_MSG_PREFIX "flushmirror"

/* Seeds of the two checksums, so that one cannot pass for the other. */
#define FM_MD_SB_CSUM_XOR	0x46534231U
#define FM_MD_BM_CSUM_XOR	0x464d4231U

/**
 * struct fm_md_disk_sb - a superblock as it is on disk (little-endian)
 * @crc: crc32c of the rest of the block
 * @magic: %FM_MD_MAGIC
 * @version: %FM_MD_VERSION
 * @block_size: %FM_MD_BLOCK_SIZE
 * @seq: commit number
 * @nr_regions: regions
 * @target_len: mapped length, sectors
 * @src_sectors: source size
 * @dst_sectors: destination size
 * @region_size: sectors per region
 * @bitmap_blocks: blocks per bitmap
 * @bitmap_crc: crc32c of the slot's bitmap blocks
 * @reserved: zero
 * @commit_time: wall-clock seconds
 *
 * The rest of the block is zero and covered by @crc.
 */
struct fm_md_disk_sb {
	__le32 crc;
	__le32 magic;
	__le32 version;
	__le32 block_size;
	__le64 seq;
	__le64 nr_regions;
	__le64 target_len;
	__le64 src_sectors;
	__le64 dst_sectors;
	__le32 region_size;
	__le32 bitmap_blocks;
	__le32 bitmap_crc;
	__le32 reserved;
	__le64 commit_time;
} __packed;

/* ------------------------------------------------------------------------
 * The format.  Pure: no I/O, no locks, no sleeping.
 * ------------------------------------------------------------------------
 */

/**
 * fm_md_bitmap_blocks - blocks of one bitmap of @nr_regions bits
 * @nr_regions: regions
 *
 * Return: the block count, at least 1.
 */
unsigned int fm_md_bitmap_blocks(u64 nr_regions)
{
	return max_t(u64, 1, DIV_ROUND_UP_ULL(nr_regions, FM_MD_BITS_PER_BLOCK));
}

/**
 * fm_md_required_sectors - the size a metadata device needs
 * @nr_regions: regions
 *
 * Two superblocks and, for each of two slots, two bitmaps.
 *
 * Return: sectors.
 */
u64 fm_md_required_sectors(u64 nr_regions)
{
	return (2 + 4ULL * fm_md_bitmap_blocks(nr_regions)) *
	       FM_MD_BLOCK_SECTORS;
}

static u32 fm_md_sb_crc(const void *block)
{
	return crc32c(~0U ^ FM_MD_SB_CSUM_XOR, block + sizeof(__le32),
		      FM_MD_BLOCK_SIZE - sizeof(__le32));
}

/**
 * fm_md_sb_encode - fill @block with the superblock for @h
 * @h: the header
 * @block: FM_MD_BLOCK_SIZE bytes
 */
void fm_md_sb_encode(const struct fm_md_header *h, void *block)
{
	struct fm_md_disk_sb *sb = block;

	memset(block, 0, FM_MD_BLOCK_SIZE);
	sb->magic = cpu_to_le32(FM_MD_MAGIC);
	sb->version = cpu_to_le32(FM_MD_VERSION);
	sb->block_size = cpu_to_le32(FM_MD_BLOCK_SIZE);
	sb->seq = cpu_to_le64(h->seq);
	sb->nr_regions = cpu_to_le64(h->geo.nr_regions);
	sb->target_len = cpu_to_le64(h->geo.target_len);
	sb->src_sectors = cpu_to_le64(h->geo.src_sectors);
	sb->dst_sectors = cpu_to_le64(h->geo.dst_sectors);
	sb->region_size = cpu_to_le32(h->geo.region_size);
	sb->bitmap_blocks = cpu_to_le32(h->bitmap_blocks);
	sb->bitmap_crc = cpu_to_le32(h->bitmap_crc);
	sb->commit_time = cpu_to_le64(h->commit_time);
	sb->crc = cpu_to_le32(fm_md_sb_crc(block));
}

/**
 * fm_md_sb_decode - read the superblock in @block
 * @block: FM_MD_BLOCK_SIZE bytes
 * @h: filled in when the superblock is valid
 *
 * Return: 0 if valid; -ENODATA if the block is all zero (never written);
 * -EBADMSG if it is not a superblock or fails its checksum (a torn or
 * foreign block); -EPROTONOSUPPORT for a valid superblock of another
 * format version or block size.
 */
int fm_md_sb_decode(const void *block, struct fm_md_header *h)
{
	const struct fm_md_disk_sb *sb = block;

	if (!memchr_inv(block, 0, FM_MD_BLOCK_SIZE))
		return -ENODATA;
	if (le32_to_cpu(sb->magic) != FM_MD_MAGIC ||
	    le32_to_cpu(sb->crc) != fm_md_sb_crc(block))
		return -EBADMSG;
	if (le32_to_cpu(sb->version) != FM_MD_VERSION ||
	    le32_to_cpu(sb->block_size) != FM_MD_BLOCK_SIZE)
		return -EPROTONOSUPPORT;
	h->seq = le64_to_cpu(sb->seq);
	h->geo.nr_regions = le64_to_cpu(sb->nr_regions);
	h->geo.target_len = le64_to_cpu(sb->target_len);
	h->geo.src_sectors = le64_to_cpu(sb->src_sectors);
	h->geo.dst_sectors = le64_to_cpu(sb->dst_sectors);
	h->geo.region_size = le32_to_cpu(sb->region_size);
	h->bitmap_blocks = le32_to_cpu(sb->bitmap_blocks);
	h->bitmap_crc = le32_to_cpu(sb->bitmap_crc);
	h->commit_time = le64_to_cpu(sb->commit_time);
	return 0;
}

/**
 * fm_md_choose_slot - the slot holding the newest valid commit
 * @rc: fm_md_sb_decode()'s result for each slot
 * @h: the decoded headers
 *
 * A superblock found in the wrong slot for its number is not valid.
 *
 * Return: 0 or 1, or -1 if neither slot is valid.
 */
int fm_md_choose_slot(const int rc[2], const struct fm_md_header h[2])
{
	bool ok0 = !rc[0] && h[0].seq % 2 == 0;
	bool ok1 = !rc[1] && h[1].seq % 2 == 1;

	if (ok0 && ok1)
		return h[1].seq > h[0].seq ? 1 : 0;
	if (ok0)
		return 0;
	return ok1 ? 1 : -1;
}

/**
 * fm_md_mismatch - does a superblock describe this table?
 * @h: the header
 * @geo: the table's geometry
 *
 * Return: NULL if it does, else the error for the table load.
 */
const char *fm_md_mismatch(const struct fm_md_header *h,
			   const struct fm_md_geometry *geo)
{
	if (h->geo.region_size != geo->region_size)
		return "Metadata was written with another region size";
	if (h->geo.target_len != geo->target_len ||
	    h->geo.nr_regions != geo->nr_regions)
		return "Metadata was written for another mapped length";
	if (h->geo.src_sectors != geo->src_sectors)
		return "Source device size differs from the metadata's";
	if (h->geo.dst_sectors != geo->dst_sectors)
		return "Destination device size differs from the metadata's";
	if (h->bitmap_blocks != fm_md_bitmap_blocks(geo->nr_regions))
		return "Metadata superblock is inconsistent";
	return NULL;
}

/**
 * fm_md_encode_block - block @block of bitmap @bm, as it is on disk
 * @bm: the bitmap
 * @nbits: its bits
 * @block: which block
 * @out: FM_MD_BLOCK_SIZE bytes: bit i of the block is bit (i % 8) of
 *	byte i / 8; bits past @nbits are zero
 */
void fm_md_encode_block(const unsigned long *bm, unsigned long nbits,
			unsigned int block, void *out)
{
	unsigned long first = block * FM_MD_BITS_PER_BLOCK;
	unsigned long n = nbits > first ?
		min(nbits - first, FM_MD_BITS_PER_BLOCK) : 0;
	__le32 *le = out;
	u32 *w = out;
	unsigned int i;

	memset(out, 0, FM_MD_BLOCK_SIZE);
	if (!n)
		return;
	bitmap_to_arr32(w, bm + first / BITS_PER_LONG, n);
	for (i = 0; i < DIV_ROUND_UP(n, 32); i++)
		le[i] = cpu_to_le32(w[i]);
}

/**
 * fm_md_decode_block - set bits of @bm from block @block as on disk
 * @in: FM_MD_BLOCK_SIZE bytes in the layout of fm_md_encode_block()
 * @nbits: bits of @bm
 * @block: which block
 * @bm: the bitmap; the block's bits are replaced, bits past @nbits ignored
 */
void fm_md_decode_block(const void *in, unsigned long nbits,
			unsigned int block, unsigned long *bm)
{
	unsigned long first = block * FM_MD_BITS_PER_BLOCK;
	unsigned long n = nbits > first ?
		min(nbits - first, FM_MD_BITS_PER_BLOCK) : 0;
	u32 w[64];
	unsigned long done;
	unsigned int i, k;
	const __le32 *le = in;

	/* in steps of 2048 bits, a multiple of BITS_PER_LONG */
	for (done = 0; done < n; done += 64 * 32) {
		k = DIV_ROUND_UP(min(n - done, 64UL * 32), 32);
		for (i = 0; i < k; i++)
			w[i] = le32_to_cpu(le[done / 32 + i]);
		bitmap_from_arr32(bm + (first + done) / BITS_PER_LONG, w,
				  min(n - done, 64UL * 32));
	}
}

/**
 * fm_md_next_state - what a commit writes
 * @nbits: regions
 * @md: the metadata, for the last commit's bits
 * @snap: the copied regions when the flush of both legs that this commit
 *	relies on was about to be issued (for a commit without flush: @cur)
 * @cur: the copied regions now
 * @touched: regions a write started on, or waits to start on, since @snap
 *	was taken
 * @keep: regions with writes in flight when @snap was taken (or NULL)
 * @flushed: that flush of both legs completed without error
 * @new_copied: out: copied bits to write
 * @new_intent: out: intent bits to write
 *
 * The rules, for a region r:
 *  - copied[r] is written as 1 only if r was copied at @snap and still is,
 *    and either @flushed (the flush covers the copy and every write that
 *    completed before @snap) or it was 1 already.
 *  - intent[r] stays 1 unless @flushed: without a flush nothing shows that
 *    both legs hold the region's writes durably.
 *  - intent[r] is 1 for every region written (or waiting to be) since
 *    @snap, or in flight at it, if copied[r] is written as 1.
 *  - intent[r] is written as 0 where copied[r] is 0: such a region is
 *    copied again at load whatever its intent.
 */
void fm_md_next_state(unsigned long nbits, const struct fm_md *md,
		      const unsigned long *snap, const unsigned long *cur,
		      const unsigned long *touched, const unsigned long *keep,
		      bool flushed, unsigned long *new_copied,
		      unsigned long *new_intent)
{
	bitmap_and(new_copied, snap, cur, nbits);
	if (flushed) {
		bitmap_copy(new_intent, touched, nbits);
	} else {
		bitmap_and(new_copied, new_copied, md->copied, nbits);
		bitmap_or(new_intent, touched, md->intent, nbits);
	}
	if (keep)
		bitmap_or(new_intent, new_intent, keep, nbits);
	bitmap_and(new_intent, new_intent, new_copied, nbits);
}

/**
 * fm_md_mark_unsafe - add the regions a state records as copied without
 *	intent to @unsafe: a write to one of them must wait until a commit
 *	records its intent
 * @unsafe: the bitmap added to
 * @copied: the state's copied bits
 * @intent: the state's intent bits
 * @nbits: regions
 */
void fm_md_mark_unsafe(unsigned long *unsafe, const unsigned long *copied,
		       const unsigned long *intent, unsigned long nbits)
{
	unsigned int i;

	for (i = 0; i < BITS_TO_LONGS(nbits); i++)
		unsafe[i] |= copied[i] & ~intent[i];
}

/* ------------------------------------------------------------------------
 * I/O.  Process context; synchronous.
 * ------------------------------------------------------------------------
 */

/* Sector of block @b of slot @slot's bitmaps (copied: 0.., intent: bm..). */
static sector_t fm_md_bitmap_sector(struct fm_md *md, unsigned int slot,
				    unsigned int b)
{
	return (sector_t)(2 + slot * 2 * md->bm_blocks + b) *
	       FM_MD_BLOCK_SECTORS;
}

/*
 * fm_md_rw - read or write @blocks blocks at @sector from @buf (vmalloc
 * memory if @vmem, else kmalloc) and wait.
 */
static int fm_md_rw(struct fm_md *md, blk_opf_t opf, sector_t sector,
		    void *buf, unsigned int blocks, bool vmem)
{
	unsigned int n, i;
	struct bio *bio;
	void *p;
	int r;

	if (vmem && op_is_write(opf))
		flush_kernel_vmap_range(buf, blocks * FM_MD_BLOCK_SIZE);
	while (blocks) {
		n = min_t(unsigned int, blocks, BIO_MAX_VECS);
		bio = bio_alloc(md->bdev, n, opf, GFP_NOIO);
		bio->bi_iter.bi_sector = sector;
		for (i = 0; i < n; i++) {
			p = buf + i * FM_MD_BLOCK_SIZE;
			__bio_add_page(bio, vmem ? vmalloc_to_page(p) :
				       virt_to_page(p), FM_MD_BLOCK_SIZE,
				       offset_in_page(p));
		}
		r = submit_bio_wait(bio);
		bio_put(bio);
		if (r)
			return r;
		if (vmem && !op_is_write(opf))
			invalidate_kernel_vmap_range(buf, n * FM_MD_BLOCK_SIZE);
		blocks -= n;
		sector += (sector_t)n * FM_MD_BLOCK_SECTORS;
		buf += n * FM_MD_BLOCK_SIZE;
	}
	return 0;
}

static u32 fm_md_bitmap_crc(struct fm_md *md, unsigned int slot)
{
	return crc32c(~0U ^ FM_MD_BM_CSUM_XOR, md->img[slot],
		      2 * md->bm_blocks * FM_MD_BLOCK_SIZE);
}

/**
 * fm_md_commit - write a new state and make it durable
 * @md: the metadata
 * @copied: copied bits (fm_md_next_state())
 * @intent: intent bits
 *
 * Writes the bitmap blocks of the other slot than the last commit's that
 * differ from what it holds, waits, then writes that slot's superblock
 * with REQ_PREFLUSH | REQ_FUA.  A state equal to the last commit's is not
 * written again.
 *
 * Context: process; the caller serialises commits.
 * Return: 0, or the I/O error; after an error the last commit stays the
 * one a load uses.
 */
int fm_md_commit(struct fm_md *md, const unsigned long *copied,
		 const unsigned long *intent)
{
	unsigned int slot = (md->seq + 1) % 2, b, end, nb = 2 * md->bm_blocks;
	unsigned long nbits = md->geo.nr_regions;
	struct fm_md_header h;
	void *dst;
	int r;

	if (md->commits && bitmap_equal(copied, md->copied, nbits) &&
	    bitmap_equal(intent, md->intent, nbits))
		return 0;

	bitmap_zero(md->dirty, nb);
	for (b = 0; b < nb; b++) {
		if (b < md->bm_blocks)
			fm_md_encode_block(copied, nbits, b, md->block);
		else
			fm_md_encode_block(intent, nbits, b - md->bm_blocks,
					   md->block);
		dst = md->img[slot] + (size_t)b * FM_MD_BLOCK_SIZE;
		if (md->img_valid[slot] &&
		    !memcmp(dst, md->block, FM_MD_BLOCK_SIZE))
			continue;
		memcpy(dst, md->block, FM_MD_BLOCK_SIZE);
		__set_bit(b, md->dirty);
	}
	/* until the superblock is written, the slot holds what it holds */
	md->img_valid[slot] = false;
	for_each_set_bitrange(b, end, md->dirty, nb) {
		r = fm_md_rw(md, REQ_OP_WRITE | REQ_SYNC,
			     fm_md_bitmap_sector(md, slot, b),
			     md->img[slot] + (size_t)b * FM_MD_BLOCK_SIZE,
			     end - b, true);
		if (r)
			return r;
	}

	h.seq = md->seq + 1;
	h.geo = md->geo;
	h.bitmap_blocks = md->bm_blocks;
	h.bitmap_crc = fm_md_bitmap_crc(md, slot);
	h.commit_time = ktime_get_real_seconds();
	fm_md_sb_encode(&h, md->block);
	r = fm_md_rw(md, REQ_OP_WRITE | REQ_SYNC | REQ_PREFLUSH | REQ_FUA,
		     (sector_t)slot * FM_MD_BLOCK_SECTORS, md->block, 1, false);
	if (r)
		return r;

	md->img_valid[slot] = true;
	md->seq = h.seq;
	md->commit_time = h.commit_time;
	md->commits++;
	bitmap_copy(md->copied, copied, nbits);
	bitmap_copy(md->intent, intent, nbits);
	return 0;
}

/*
 * fm_md_load_slot - read slot @slot's bitmaps, check them against @h and
 * decode them into md->copied and md->intent.
 */
static int fm_md_load_slot(struct fm_md *md, unsigned int slot,
			   const struct fm_md_header *h)
{
	unsigned long nbits = md->geo.nr_regions;
	unsigned int b;
	int r;

	r = fm_md_rw(md, REQ_OP_READ, fm_md_bitmap_sector(md, slot, 0),
		     md->img[slot], 2 * md->bm_blocks, true);
	if (r)
		return r;
	if (fm_md_bitmap_crc(md, slot) != h->bitmap_crc)
		return -EBADMSG;
	md->img_valid[slot] = true;
	for (b = 0; b < md->bm_blocks; b++) {
		fm_md_decode_block(md->img[slot] + (size_t)b * FM_MD_BLOCK_SIZE,
				   nbits, b, md->copied);
		fm_md_decode_block(md->img[slot] +
				   (size_t)(md->bm_blocks + b) * FM_MD_BLOCK_SIZE,
				   nbits, b, md->intent);
	}
	md->seq = h->seq;
	md->commit_time = h->commit_time;
	return 0;
}

/*
 * fm_md_format - write an empty state (nothing copied, no intent) to both
 * slots, numbered after any commit the device holds so that none of them
 * can win at the next load.
 */
static int fm_md_format(struct fm_md *md, const int rc[2],
			const struct fm_md_header h[2])
{
	int r;

	md->seq = 0;
	if (!rc[0])
		md->seq = h[0].seq;
	if (!rc[1])
		md->seq = max(md->seq, h[1].seq);
	bitmap_zero(md->copied, md->geo.nr_regions);
	bitmap_zero(md->intent, md->geo.nr_regions);
	md->img_valid[0] = false;
	md->img_valid[1] = false;
	md->formatted = true;
	/* two commits: the first writes one slot, the second the other */
	r = fm_md_commit(md, md->copied, md->intent);
	if (!r) {
		md->commits = 0;	/* not skipped as "unchanged" */
		r = fm_md_commit(md, md->copied, md->intent);
	}
	md->commits = 0;
	return r;
}

/*
 * fm_md_read - take the newest usable commit from the device (formatting a
 * blank one, or any one if @discard).  See fm_md_open().
 */
static int fm_md_read(struct fm_md *md, bool discard, char **error)
{
	const struct fm_md_geometry *geo = &md->geo;
	struct fm_md_header h[2] = {};
	int rc[2], slot, r, i;
	const char *why;

	md->img_valid[0] = false;
	md->img_valid[1] = false;
	for (i = 0; i < 2; i++) {
		r = fm_md_rw(md, REQ_OP_READ, (sector_t)i * FM_MD_BLOCK_SECTORS,
			     md->block, 1, false);
		if (r) {
			*error = "Cannot read the metadata device";
			return r;
		}
		rc[i] = fm_md_sb_decode(md->block, &h[i]);
	}

	if (discard || (rc[0] == -ENODATA && rc[1] == -ENODATA)) {
		r = fm_md_format(md, rc, h);
		if (r) {
			*error = "Cannot write the metadata device";
			return r;
		}
		return 0;
	}

	slot = fm_md_choose_slot(rc, h);
	if (slot < 0) {
		if (rc[0] == -EPROTONOSUPPORT || rc[1] == -EPROTONOSUPPORT)
			*error = "Metadata format version not supported";
		else
			*error = "Metadata device not blank, no valid superblock";
		return -EINVAL;
	}
	why = fm_md_mismatch(&h[slot], geo);
	if (why) {
		*error = (char *)why;
		return -EINVAL;
	}
	r = fm_md_load_slot(md, slot, &h[slot]);
	if (r == -EBADMSG && !rc[!slot] && h[!slot].seq + 1 == h[slot].seq &&
	    !fm_md_mismatch(&h[!slot], geo)) {
		DMWARN("metadata commit %llu fails its checksum: using commit %llu",
		       h[slot].seq, h[!slot].seq);
		r = fm_md_load_slot(md, !slot, &h[!slot]);
	}
	if (r)
		*error = r == -EBADMSG ? "Metadata bitmaps fail their checksum" :
					 "Cannot read the metadata device";
	return r;
}

/**
 * fm_md_reread - take the newest commit from the device again
 * @md: the metadata
 * @error: what is wrong, on failure
 *
 * For the first resume of a table: a table loaded over a live one read the
 * metadata before the live one's last checkpoint (at its suspend).
 *
 * Context: process; no commit runs.
 * Return: 0 or a negative errno.
 */
int fm_md_reread(struct fm_md *md, char **error)
{
	return fm_md_read(md, false, error);
}

/**
 * fm_md_free - release an open metadata device (the caller puts the device)
 * @md: the metadata, or NULL
 */
void fm_md_free(struct fm_md *md)
{
	if (!md)
		return;
	kvfree(md->copied);
	kvfree(md->intent);
	vfree(md->img[0]);
	vfree(md->img[1]);
	bitmap_free(md->dirty);
	kfree(md->block);
	kfree(md);
}

/**
 * fm_md_open - read the metadata of a table, or format a blank device
 * @bdev: the metadata device
 * @geo: the table's geometry
 * @discard: format it whatever it holds (the discard_metadata feature)
 * @mdp: the open metadata
 * @error: the table load's error on failure
 *
 * A device whose two superblocks are all zero is blank and is formatted.
 * Otherwise the newest valid commit is used; if its bitmaps fail their
 * checksum, the commit before it (in the other slot) is.  A device with
 * no usable commit, or one written for another geometry, is refused
 * unless @discard.
 *
 * Context: process (the table load).
 * Return: 0 or a negative errno.
 */
int fm_md_open(struct block_device *bdev, const struct fm_md_geometry *geo,
	       bool discard, struct fm_md **mdp, char **error)
{
	unsigned long longs = BITS_TO_LONGS(geo->nr_regions);
	struct fm_md *md;
	int r;

	if (bdev_nr_sectors(bdev) < fm_md_required_sectors(geo->nr_regions)) {
		DMERR("metadata device too small: %llu sectors needed for %llu regions",
		      fm_md_required_sectors(geo->nr_regions), geo->nr_regions);
		*error = "Metadata device too small for the number of regions";
		return -EINVAL;
	}
	if (bdev_logical_block_size(bdev) > FM_MD_BLOCK_SIZE) {
		*error = "Metadata device's logical block size exceeds 4 KiB";
		return -EINVAL;
	}

	md = kzalloc(sizeof(*md), GFP_KERNEL);
	if (!md)
		goto nomem;
	md->bdev = bdev;
	md->geo = *geo;
	md->bm_blocks = fm_md_bitmap_blocks(geo->nr_regions);
	md->copied = kvcalloc(longs, sizeof(long), GFP_KERNEL | __GFP_NOWARN);
	md->intent = kvcalloc(longs, sizeof(long), GFP_KERNEL | __GFP_NOWARN);
	md->img[0] = vzalloc(2 * md->bm_blocks * FM_MD_BLOCK_SIZE);
	md->img[1] = vzalloc(2 * md->bm_blocks * FM_MD_BLOCK_SIZE);
	md->dirty = bitmap_zalloc(2 * md->bm_blocks, GFP_KERNEL);
	md->block = kmalloc(FM_MD_BLOCK_SIZE, GFP_KERNEL);
	if (!md->copied || !md->intent || !md->img[0] || !md->img[1] ||
	    !md->dirty || !md->block)
		goto nomem;

	r = fm_md_read(md, discard, error);
	if (r)
		goto bad;
	*mdp = md;
	return 0;

nomem:
	*error = "Cannot allocate metadata";
	r = -ENOMEM;
bad:
	fm_md_free(md);
	return r;
}

#if IS_ENABLED(CONFIG_DM_FLUSHMIRROR_KUNIT_TEST)
#include "kunit/dm-flushmirror-metadata-test.c"
#endif
