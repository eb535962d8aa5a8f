/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-flushmirror: the metadata device of a resumable migration.
 *
 * Copyright (C) 2026 The dm-flushmirror authors
 *
 * With the feature argument "metadata <dev>" the target keeps two facts
 * per region on a small device of its own, so that a host crash or a
 * reboot in the middle of a copy does not start it over:
 *
 *   copied  the region was equal on both legs and durable on both when the
 *           fact was written (a flush of both legs, issued after the copy
 *           and the writes it covers completed, preceded the commit);
 *   intent  a write to the region may be on one leg only.
 *
 * A region recorded as copied and without intent is kept at the next table
 * load; every other region is copied again.
 *
 * On-disk format (version 1), in blocks of FM_MD_BLOCK_SIZE bytes:
 *
 *   block 0, 1        superblock of slot 0 and of slot 1
 *   block 2 ...       slot 0's bitmaps: copied, then intent, each
 *                     bitmap_blocks blocks, little-endian bit order
 *   then              slot 1's bitmaps, laid out the same way
 *
 * Commit n writes slot n % 2: first the bitmap blocks that differ from
 * what that slot held, then (after those completed) the superblock with
 * REQ_PREFLUSH | REQ_FUA.  A commit only ever overwrites the slot of the
 * commit before the previous one, so a crash at any point leaves the
 * previous commit whole; a torn superblock fails its checksum and the
 * other slot is used.  Each superblock holds a crc32c of itself and of its
 * slot's bitmaps.
 *
 * This unit is the format and its I/O; when the target commits what is the
 * target's business (dm-flushmirror-target.c).  The pure helpers (encode,
 * decode, slot choice, the next state) take no locks and never sleep.
 */
#ifndef DM_FLUSHMIRROR_METADATA_H
#define DM_FLUSHMIRROR_METADATA_H

#include <linux/blk_types.h>
#include <linux/types.h>

#define FM_MD_MAGIC		0x444d4d46U	/* "FMMD" little-endian */
#define FM_MD_VERSION		1U
#define FM_MD_BLOCK_SIZE	4096U
#define FM_MD_BLOCK_SECTORS	(FM_MD_BLOCK_SIZE >> SECTOR_SHIFT)
#define FM_MD_BITS_PER_BLOCK	(FM_MD_BLOCK_SIZE * 8UL)

/**
 * struct fm_md_geometry - what a metadata device must describe to be used
 * @region_size: sectors per region
 * @nr_regions: regions of the mapped length
 * @target_len: the mapped length, in sectors
 * @src_sectors: the source device's size
 * @dst_sectors: the destination device's size
 */
struct fm_md_geometry {
	u32 region_size;
	u64 nr_regions;
	u64 target_len;
	u64 src_sectors;
	u64 dst_sectors;
};

/**
 * struct fm_md_header - a superblock, decoded
 * @seq: commit number; the superblock lives in slot @seq % 2
 * @geo: the geometry it was written for
 * @bitmap_blocks: blocks of each bitmap
 * @bitmap_crc: crc32c of the slot's bitmap blocks
 * @commit_time: wall-clock seconds of the commit
 */
struct fm_md_header {
	u64 seq;
	struct fm_md_geometry geo;
	u32 bitmap_blocks;
	u32 bitmap_crc;
	u64 commit_time;
};

/**
 * struct fm_md - an open metadata device
 * @bdev: the device
 * @geo: its geometry
 * @bm_blocks: blocks of each bitmap
 * @seq: the last commit's number
 * @copied: the copied bits of the last commit
 * @intent: the intent bits of the last commit
 * @img: per slot, the bitmap blocks as that slot holds them on disk
 * @img_valid: @img[slot] is known to match the disk
 * @dirty: scratch: the blocks a commit writes
 * @block: scratch: one block (superblocks, encoding)
 * @commits: commits since the table was loaded
 * @commit_time: wall-clock seconds of the last commit
 * @formatted: the device was blank (or discarded) at load and was formatted
 */
struct fm_md {
	struct block_device *bdev;
	struct fm_md_geometry geo;
	unsigned int bm_blocks;
	u64 seq;
	unsigned long *copied;
	unsigned long *intent;
	void *img[2];
	bool img_valid[2];
	unsigned long *dirty;
	void *block;
	u64 commits;
	u64 commit_time;
	bool formatted;
};

unsigned int fm_md_bitmap_blocks(u64 nr_regions);
u64 fm_md_required_sectors(u64 nr_regions);
void fm_md_sb_encode(const struct fm_md_header *h, void *block);
int fm_md_sb_decode(const void *block, struct fm_md_header *h);
int fm_md_choose_slot(const int rc[2], const struct fm_md_header h[2]);
const char *fm_md_mismatch(const struct fm_md_header *h,
			   const struct fm_md_geometry *geo);
void fm_md_encode_block(const unsigned long *bm, unsigned long nbits,
			unsigned int block, void *out);
void fm_md_decode_block(const void *in, unsigned long nbits,
			unsigned int block, unsigned long *bm);
void fm_md_next_state(unsigned long nbits, const struct fm_md *md,
		      const unsigned long *snap, const unsigned long *cur,
		      const unsigned long *touched, const unsigned long *keep,
		      bool flushed, unsigned long *new_copied,
		      unsigned long *new_intent);
void fm_md_mark_unsafe(unsigned long *unsafe, const unsigned long *copied,
		       const unsigned long *intent, unsigned long nbits);

int fm_md_open(struct block_device *bdev, const struct fm_md_geometry *geo,
	       bool discard, struct fm_md **mdp, char **error);
int fm_md_reread(struct fm_md *md, char **error);
int fm_md_commit(struct fm_md *md, const unsigned long *copied,
		 const unsigned long *intent);
void fm_md_free(struct fm_md *md);

#endif /* DM_FLUSHMIRROR_METADATA_H */
