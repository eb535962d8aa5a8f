#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 400
# t10-table: constructor argument checking (SPEC.md section 3).
# Every malformed table is rejected with a specific error, leaves no device
# and holds no reference on the legs; a valid table still works afterwards;
# "dmsetup table" prints the arguments back normalized and that printed
# table can be loaded again.
. "$(dirname "$0")/lib.sh"
e2e_setup

nb_create fmt_src 16 || die "cannot create null_blk fmt_src"
nb_create fmt_dst 16 || die "cannot create null_blk fmt_dst"
nb_create fmt_small 8 || die "cannot create null_blk fmt_small"
S=/dev/fmt_src D=/dev/fmt_dst
N=$(dev_sectors $S)

holders() { ls /sys/block/fmt_src/holders /sys/block/fmt_dst/holders \
	/sys/block/fmt_small/holders 2>/dev/null | grep -v '^/sys\|^$' | tr '\n' ' '; }

# reject NAME "ARGS after 'flushmirror'" [LEN] [ERROR-REGEX]: rejected, no
# device left, legs not held, a specific error (matching ERROR-REGEX if given)
reject() {
	local name=$1 args=$2 len=${3:-$N} want=${4:-} out rc logline before
	before=$(dmesg | wc -l)
	out=$(timeout 30 dmsetup create fmt_bad --table "0 $len flushmirror $args" 2>&1)
	rc=$?
	logline=$(dmesg | tail -n +$((before + 1)) | grep -E 'device-mapper: (table|flushmirror)' | head -n 2 | tr '\n' ' ')
	if [ $rc -eq 0 ]; then
		fail "reject-$name" "table accepted: '$args'"
		dmsetup remove fmt_bad 2>/dev/null
		return
	fi
	if dm_exists fmt_bad; then
		fail "reject-$name" "rejected but device fmt_bad left behind"
		dmsetup remove fmt_bad 2>/dev/null
		return
	fi
	if [ -n "$(holders)" ]; then
		fail "reject-$name" "legs still held after rejection: $(holders)"
		return
	fi
	if [ -z "$logline" ] || echo "$logline" | grep -q 'Unknown error'; then
		fail "reject-$name" "no specific error in kernel log: '$logline'"
		return
	fi
	if [ -n "$want" ] && ! echo "$logline" | grep -qiE "$want"; then
		fail "reject-$name" "error does not say what is wrong (want /$want/): '$logline'"
		return
	fi
	pass "reject-$name"
	info "  $name: $logline"
}

# argument count
reject argc-0 ""
reject argc-1 "$S"
reject argc-2 "$S $D"
reject argc-extra "$S $D 8 0 extra"
# region size
reject region-nonnumeric "$S $D abc"
reject region-trailing-junk "$S $D 8k"
reject region-not-pow2 "$S $D 24"
reject region-not-pow2-12 "$S $D 12"
reject region-lt-8 "$S $D 4"
reject region-1 "$S $D 1"
reject region-0 "$S $D 0"
reject region-negative "$S $D -8"
reject region-overflow "$S $D 18446744073709551616"
reject region-huge-pow2 "$S $D 4294967296"
# features
reject feat-unknown "$S $D 8 1 foo" "" "unknown"
reject feat-unknown-2 "$S $D 8 2 nosync bar" "" "unknown"
reject feat-unknown-3 "$S $D 8 2 foo bar" "" "unknown"
reject feat-policy-foo "$S $D 8 2 flush_policy foo"
reject feat-policy-missing "$S $D 8 1 flush_policy"
reject feat-jobs-0 "$S $D 8 2 copy_jobs 0"
reject feat-jobs-65 "$S $D 8 2 copy_jobs 65"
reject feat-jobs-junk "$S $D 8 2 copy_jobs x"
reject feat-jobs-missing "$S $D 8 1 copy_jobs"
reject feat-rate-negative "$S $D 8 2 copy_rate -1"
reject feat-rate-junk "$S $D 8 2 copy_rate junk"
reject feat-rate-missing "$S $D 8 1 copy_rate"
reject feat-count-nonnumeric "$S $D 8 x nosync"
reject feat-count-too-big "$S $D 8 3 nosync"
reject feat-count-too-small "$S $D 8 1 nosync copy_jobs 4"
reject feat-count-negative "$S $D 8 -1 nosync"
reject feat-duplicate-nosync "$S $D 8 2 nosync nosync"
reject feat-duplicate-jobs "$S $D 8 4 copy_jobs 2 copy_jobs 3"
reject feat-count-huge "$S $D 8 4294967297 nosync"
reject feat-jobs-huge "$S $D 8 2 copy_jobs 4294967297"
reject feat-rate-huge "$S $D 8 2 copy_rate 4294967296"
# devices
reject dest-too-small "$S /dev/fmt_small 8"
reject length-beyond-source "$S $D 8" $((N + 8))
reject same-device "$S $S 8"
reject same-device-majmin "$S $(printf '%d:%d' $(stat -L -c '0x%t 0x%T' $S)) 8"
reject no-source "/dev/nonexistent $D 8"
reject no-dest "$S /dev/nonexistent 8"
reject bad-majmin "$S 250:12345 8"

# a table over its own device (bios would come back to it forever): every
# kernel must refuse it, also 6.1, whose dm core lets a reload through
if fm_create fmt_self $S $D 8; then
	self=$(dmsetup info -c --noheadings -o major,minor fmt_self | tr -d ' ')
	live=$(dmsetup table fmt_self)
	# dest-hex: the old hexadecimal dev_t spelling, which 6.1's dm core
	# also resolves (6.12's refuses it): rejected, by whichever
	hex=$(printf %x $(((${self%:*} << 8) | ${self#*:})))
	selfsrc="Source is the flushmirror device itself"
	selfdst="Destination is the flushmirror device itself"
	for leg in dest-path dest-majmin source-path dest-hex; do
		case $leg in
		dest-path) args="$S /dev/mapper/fmt_self 8" want=$selfdst ;;
		dest-majmin) args="$S $self 8" want=$selfdst ;;
		source-path) args="/dev/mapper/fmt_self $D 8" want=$selfsrc ;;
		dest-hex) args="$S $hex 8" want="$selfdst|Cannot open destination device" ;;
		esac
		before=$(dmesg | wc -l)
		if timeout 30 dmsetup reload fmt_self --table "0 $N flushmirror $args" 2>/dev/null; then
			fail "reject-self-$leg" "reload over itself accepted: '$args'"
			dmsetup clear fmt_self 2>/dev/null
			continue
		fi
		logline=$(dmesg | tail -n +$((before + 1)) | grep 'flushmirror:' | head -n 1)
		if echo "$logline" | grep -qE "flushmirror: ($want) \(-E"; then
			pass "reject-self-$leg"
		else
			fail "reject-self-$leg" "error: '$logline'"
		fi
	done
	check self-no-inactive-table test -z "$(dmsetup table --inactive fmt_self)"
	expect self-live-table-unchanged "$(dmsetup table fmt_self)" = "$live"
	dm_remove fmt_self
else
	fail reject-self "cannot create fmt_self"
fi

# ---- the kernel is still healthy: a valid table works
if fm_create fmt_ok $S $D 8; then
	pass valid-after-rejects
	if fm_status fmt_ok; then
		pass valid-status-parses
		expect valid-total-regions "$ST_TOTAL" -eq $((N / 8))
	else
		fail valid-status-parses "$ST_RAW"
	fi
	check_phase valid-synced fmt_ok synced 60
	dd if=/dev/urandom of=$E2E_TMP/pat bs=4k count=4 2>/dev/null
	dd if=$E2E_TMP/pat of=/dev/mapper/fmt_ok bs=4k seek=10 oflag=direct conv=fsync 2>/dev/null
	check valid-write-reaches-source same_at $E2E_TMP/pat $S $((10 * 4096))
	check valid-write-reaches-dest same_at $E2E_TMP/pat $D $((10 * 4096))
	dm_remove fmt_ok
	check valid-removed-no-holders test -z "$(holders)"
else
	fail valid-after-rejects "valid table rejected"
fi

# ---- tables printed back and reloaded
roundtrip() {	# roundtrip NAME FEATURE-WORDS...
	local name=$1 t1 t2 t3
	shift
	if ! fm_create fmt_rt $S $D 16 "$@"; then
		fail "table-$name-create" "rejected: $(fm_table $S $D 16 "$@")"
		return
	fi
	t1=$(dmsetup table fmt_rt)
	info "  $name: $t1"
	set -- $t1
	if [ "$1 $2 $3" = "0 $N flushmirror" ] && [ "$6" = 16 ]; then
		pass "table-$name-prints-args"
	else
		fail "table-$name-prints-args" "got '$t1'"
	fi
	if dm_reload fmt_rt "$t1"; then
		t2=$(dmsetup table fmt_rt)
		if [ "$t1" = "$t2" ]; then
			pass "table-$name-reload-same"
		else
			fail "table-$name-reload-same" "'$t1' reloaded prints '$t2'"
		fi
	else
		fail "table-$name-reload-same" "printed table rejected: '$t1'"
	fi
	fm_status fmt_rt
	case $ST_PHASE in copying|synced|paused) pass "table-$name-status-after-reload" ;;
	*) fail "table-$name-status-after-reload" "$ST_RAW" ;; esac
	dm_remove fmt_rt
}

roundtrip default
roundtrip all nosync flush_policy always copy_rate 1000 copy_jobs 4
roundtrip reordered copy_jobs 64 copy_rate 0 flush_policy generation

# the printed table keeps the feature values
if fm_create fmt_rt $S $D 16 copy_jobs 7 flush_policy always copy_rate 123; then
	t=$(dmsetup table fmt_rt)
	ok=1
	for w in "copy_jobs 7" "flush_policy always" "copy_rate 123"; do
		case " $t " in *" $w "*) ;; *) ok=0 ;; esac
	done
	if [ $ok = 1 ]; then pass table-keeps-features; else fail table-keeps-features "'$t'"; fi
	dm_remove fmt_rt
else
	fail table-keeps-features "valid table rejected"
fi

# a reload with a rejected table leaves the live table in place
if fm_create fmt_rt $S $D 16; then
	t1=$(dmsetup table fmt_rt)
	check_not reload-bad-rejected timeout 30 dmsetup load fmt_rt --table "0 $N flushmirror $S $D 7"
	timeout 30 dmsetup clear fmt_rt 2>/dev/null
	t2=$(dmsetup table fmt_rt)
	if [ "$t1" = "$t2" ] && fm_status fmt_rt; then
		pass reload-bad-keeps-live-table
	else
		fail reload-bad-keeps-live-table "'$t1' -> '$t2' ($ST_RAW)"
	fi
	dm_remove fmt_rt
fi

# G11 (issue 9.2): region maps beyond 2^28 regions are refused with an
# error that names the cure (bitmap counts are unsigned int: at 2^32
# regions "nosync" used to set no bit and still report synced); the
# largest map works exactly.  The legs are dm "error" devices of 16 TiB
# (built into dm core; with nosync nothing reads them).
BIG=$((1 << 35))	# sectors: 16 TiB
if dm_create fmt_zs "0 $BIG error" && dm_create fmt_zd "0 $BIG error"; then
	ZS=/dev/mapper/fmt_zs ZD=/dev/mapper/fmt_zd
	reject regions-2^32 "$ZS $ZD 8 1 nosync" $BIG "too many regions.*region size"
	reject regions-2^31 "$ZS $ZD 8 1 nosync" $((BIG / 2)) "too many regions.*region size"
	reject regions-2^28+1 "$ZS $ZD 8 1 nosync" $(((1 << 31) + 8)) "too many regions"
	# 16 TiB with 64 KiB regions: 2^28 regions exactly
	if timeout 120 dmsetup create fmt_max --table "0 $BIG flushmirror $ZS $ZD 128 1 nosync"; then
		FM_DMS+=(fmt_max)
		fm_status fmt_max
		if [ "$ST_PHASE" = synced ] && [ "$ST_COPIED" = $((1 << 28)) ] &&
			[ "$ST_TOTAL" = $((1 << 28)) ]; then
			pass regions-2^28-nosync-exact
		else
			fail regions-2^28-nosync-exact "$ST_RAW"
		fi
		dm_remove fmt_max
	else
		fail regions-2^28-nosync-exact "the largest map was refused"
	fi
	dm_remove fmt_zs
	dm_remove fmt_zd
else
	fail regions-error-legs "cannot create the 16 TiB dm-error legs"
fi

# a destination with a larger logical block size than the source: the
# stacked device would move to 4096-byte blocks under the guest and its
# 512-byte direct I/O would fail (issue 10.6, kernel side), refused at
# create and as a live reload
d4k=$NB_CFG/fmt_4k
if mkdir "$d4k" && FM_NBS+=(fmt_4k) && echo 16 >"$d4k/size" &&
	echo 1 >"$d4k/memory_backed" && echo 4096 >"$d4k/blocksize" &&
	echo 1 >"$d4k/power" && wait_bdev /dev/fmt_4k 10; then
	reject dest-4k-under-512 "$S /dev/fmt_4k 8" $N "logical block size exceeds the source"
	if fm_create fmt_lbs $S $D 8; then
		check_not reload-dest-4k-refused \
			timeout 30 dmsetup load fmt_lbs --table "0 $N flushmirror $S /dev/fmt_4k 8"
		timeout 30 dmsetup clear fmt_lbs 2>/dev/null
		expect lbs-stays-512 "$(blockdev --getss /dev/mapper/fmt_lbs)" -eq 512 \
			"the live device's logical block size changed"
		dm_remove fmt_lbs
	else
		fail reload-dest-4k-refused "the 512-byte table was refused"
	fi
else
	fail dest-4k-under-512 "cannot create a 4096-byte null_blk"
fi
