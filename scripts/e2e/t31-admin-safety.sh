#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-qemu: skip (the admin command against real lvm2, cryptsetup and QEMU: user space, the same under UML; nested QEMU is slow under TCG)
# fm-timeout: 400
# t31-admin-safety: scripts/flushmirror refuses what would lose data
# (issue 10, points 1, 2, 3 (refusal), 4 and 6), with the real components:
#  - a destination held open by a real qemu-system-x86_64 (-S, through a
#    private device node as libvirt makes them), the whole disk or one of
#    its partitions (loop device with a DOS partition table); a partition
#    held by a dm device;
#  - a destination with a signature: ext4, a DOS partition table,
#    LVM2_member (pvcreate), crypto_LUKS (cryptsetup luksFormat);
#  - a VM disk that is a LUKS2 dm-crypt device (cryptsetup open), a
#    dm-mirror, an LVM LV (lvm2 with this test's own lvm.conf), a multipath
#    map (dm uuid mpath-...);
#  - a destination with 4096-byte logical blocks under a 512-byte disk.
# Every refusal must name its reason and change nothing: the VM disk's table
# is the same and it is not suspended, no helper <disk>-fmsrc exists and
# the destination's bytes are the same.  Then what is allowed works: a
# striped disk starts and aborts; --force migrates onto the ext4 disk and
# complete leaves the destination equal to the source.
# FM_CMD (kernel command line / environment) runs another flushmirror.
. "$(dirname "$0")/lib.sh"
e2e_setup

FM=${FM_CMD:-$FM_REPO/scripts/flushmirror}
MIB=32
info "flushmirror command: $FM"
for t in qemu-system-x86_64 cryptsetup lvm wipefs losetup mkfs.ext4; do
	command -v $t >/dev/null || die "$t not found"
done
# a distribution kernel (Debian 6.1 guest) has these as modules; the UML
# kernel has them built in
for m in dm-crypt dm-mirror loop; do
	modprobe -q "$m" 2>/dev/null
done
HAVE_CRYPT=0
dmsetup targets | grep -q '^crypt ' && HAVE_CRYPT=1

nb_create fb_src $MIB || die "cannot create fb_src"
dd if=/dev/urandom of=/dev/fb_src bs=1M count=4 oflag=direct status=none ||
	die "cannot fill fb_src"
N=$(dev_sectors /dev/fb_src)
dm_create fb_vm "0 $N linear /dev/fb_src 0" || die "cannot create the VM disk"
FM_ATEXIT+=("dm_remove fb_vm-fmsrc")

# snapshot VM DST: what a refusal must leave as it is
snapshot() {
	SNAP_VM=$1 SNAP_DST=$2
	SNAP_TABLE=$(dmsetup table "$1")
	SNAP_SUM=$(rd "$2" | md5sum)
}
unchanged() {
	local t
	t=$(dmsetup table "$SNAP_VM")
	[ "$t" = "$SNAP_TABLE" ] ||
		{ echo "table of $SNAP_VM is now '$t', was '$SNAP_TABLE'"; return 1; }
	! dmsetup info "$SNAP_VM" | grep -q SUSPENDED ||
		{ echo "$SNAP_VM left suspended"; return 1; }
	! dm_exists "$SNAP_VM-fmsrc" ||
		{ echo "helper $SNAP_VM-fmsrc left behind"; return 1; }
	[ "$(rd "$SNAP_DST" | md5sum)" = "$SNAP_SUM" ] ||
		{ echo "bytes of $SNAP_DST changed"; return 1; }
}

# refuse CHECK WANTS VM DST [OPTIONS...]: "flushmirror start VM DST OPTIONS"
# must fail, its output must match each of the ';'-separated extended
# regular expressions in WANTS (case-insensitive), and nothing may change.
# A command that started anyway is aborted afterwards.
refuse() {
	local name=$1 wants=$2 vm=$3 dst=$4 out rc w why miss=
	shift 4
	snapshot "$vm" "$dst"
	out=$("$FM" start "$vm" "$dst" "$@" 2>&1)
	rc=$?
	echo "$out" | sed 's/^/# | /'
	IFS=';' read -r -a w <<<"$wants"
	for why in "${w[@]}"; do
		echo "$out" | grep -qiE -- "$why" || miss+=" /$why/"
	done
	if [ $rc -eq 0 ]; then
		fail "$name" "'start $vm $dst $*' succeeded: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
	elif [ $rc -ne 1 ] || [ -n "$miss" ]; then
		fail "$name" "exit $rc, missing$miss in: $(echo "$out" | tr '\n' ' ' | cut -c1-400)"
	else
		pass "$name"
	fi
	if why=$(unchanged); then
		pass "$name-changes-nothing"
	else
		fail "$name-changes-nothing" "$why"
	fi
	if dm_exists "$vm-fmsrc" && [ -z "${REFUSE_KEEP:-}" ]; then
		"$FM" abort "$vm" >/dev/null 2>&1 || dm_remove "$vm-fmsrc"
	fi
}

# nb_create_bs NAME SIZE_MIB BLOCKSIZE: as nb_create, other block size
nb_create_bs() {
	local d=$NB_CFG/$1
	mkdir "$d" || return 1
	FM_NBS+=("$1")
	echo "$2" >"$d/size" && echo 1 >"$d/memory_backed" &&
	echo "$3" >"$d/blocksize" && echo 1 >"$d/power" &&
	wait_bdev "/dev/$1" 10
}

# qemu_hold DEV: a real QEMU (not running its guest: -S) with DEV open as
# a raw drive, through a device node of its own (libvirt gives each QEMU a
# private /dev); sets QPID once QEMU has the device open.
qemu_hold() {
	local dev=$1 node want i f ma mi
	IFS=: read -r ma mi <<<"$(devno "$dev")"
	want=$(printf '%x:%x' "$ma" "$mi")
	mkdir -p "$E2E_TMP/qdev"
	node=$E2E_TMP/qdev/$(basename "$dev")
	rm -f "$node"
	mknod "$node" b "$ma" "$mi" || return 1
	bg_start qemu-system-x86_64 -S -nodefaults -display none -machine none \
		-accel tcg,tb-size=16 -m 16 -monitor none -serial none \
		-drive file="$node",format=raw,if=none,id=d0 \
		>"$E2E_TMP/qemu-$(basename "$dev").log" 2>&1 </dev/null
	QPID=$BG_PID
	for ((i = 0; i < 1200; i++)); do
		kill -0 $QPID 2>/dev/null || break
		for f in /proc/$QPID/fd/*; do
			[ -b "$f" ] || continue
			[ "$(stat -L -c '%t:%T' "$f")" = "$want" ] && return 0
		done
		sleep 0.1
	done
	echo "# qemu did not open $node: $(head -c 400 "$E2E_TMP/qemu-$(basename "$dev").log")" >&2
	return 1
}

qemu_stop() {
	kill "$QPID" 2>/dev/null
	wait "$QPID" 2>/dev/null
}

# ---------------------------------------------------------------- 1. in use
nb_create fb_d1 $MIB || die "cannot create fb_d1"
if qemu_hold /dev/fb_d1; then
	pass qemu-holds-destination
	info "qemu $QPID: $(tr '\0' ' ' </proc/$QPID/cmdline)"
	refuse refuse-destination-open-by-qemu "open by process $QPID;qemu" fb_vm /dev/fb_d1
	qemu_stop
else
	fail qemu-holds-destination "qemu-system-x86_64 did not open /dev/fb_d1"
	qemu_stop
fi

# a partition of the destination held by QEMU (loop device, DOS table)
le32() {
	printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $((($1 >> 8) & 255)) \
		$((($1 >> 16) & 255)) $((($1 >> 24) & 255))
}
truncate -s $((MIB + 8))M "$E2E_TMP/parted.img"
printf "\\x00\\x00\\x00\\x00\\x83\\x00\\x00\\x00$(le32 2048)$(le32 16384)" |
	dd of="$E2E_TMP/parted.img" bs=1 seek=446 conv=notrunc status=none
printf '\x55\xaa' | dd of="$E2E_TMP/parted.img" bs=1 seek=510 conv=notrunc status=none
LOOP=$(losetup -f --show -P "$E2E_TMP/parted.img" 2>"$E2E_TMP/losetup.err") || LOOP=
[ -z "$LOOP" ] || FM_ATEXIT+=("losetup -d $LOOP")
if [ -z "$LOOP" ]; then
	skip loop-partition "no loop device: $(head -c 200 "$E2E_TMP/losetup.err")"
elif ! wait_bdev "${LOOP}p1" 10; then
	fail loop-partition "no ${LOOP}p1 ($(ls /sys/class/block/ | tr '\n' ' '))"
elif qemu_hold "${LOOP}p1"; then
	pass qemu-holds-destination-partition
	refuse refuse-destination-partition-open-by-qemu \
		"${LOOP#/dev/}p1.*open by process $QPID;qemu" fb_vm "$LOOP"
	qemu_stop
else
	fail qemu-holds-destination-partition "qemu-system-x86_64 did not open ${LOOP}p1"
	qemu_stop
fi

# a partition of the destination held by a dm device (holders of the partition)
if [ -z "$LOOP" ]; then
	skip refuse-destination-partition-held "no loop device"
elif [ -b "${LOOP}p1" ] && dm_create fb_ph "0 8 linear ${LOOP}p1 0"; then
	refuse refuse-destination-partition-held "${LOOP#/dev/}p1 is held by" fb_vm "$LOOP"
	dm_remove fb_ph
else
	fail partition-holder-created "cannot create fb_ph over ${LOOP}p1"
fi

# ---------------------------------------------------------------- 2. signatures
nb_create fb_d2 $MIB || die "cannot create fb_d2"
mkfs.ext4 -q -F -L fbdata /dev/fb_d2 || die "mkfs.ext4 failed"
refuse refuse-ext4-destination "ext4;--force" fb_vm /dev/fb_d2
if [ -n "$LOOP" ]; then
	refuse refuse-partition-table-destination "dos|partition" fb_vm "$LOOP"
else
	skip refuse-partition-table-destination "no loop device"
fi

nb_create fb_luks $((MIB + 16)) || die "cannot create fb_luks"
head -c 32 /dev/urandom >"$E2E_TMP/key"
if [ $HAVE_CRYPT = 0 ]; then
	skip luks-format "no dm-crypt target in this kernel"
elif cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 \
	--pbkdf-force-iterations 1000 --key-file "$E2E_TMP/key" /dev/fb_luks \
	>"$E2E_TMP/luks.log" 2>&1; then
	pass luks-format
	refuse refuse-luks-destination "crypto_LUKS" fb_vm /dev/fb_luks
else
	fail luks-format "$(head -c 300 "$E2E_TMP/luks.log")"
fi

# lvm2 with a configuration of its own: no udev, only our devices
nb_create fb_pv $MIB || die "cannot create fb_pv"
nb_create fb_d3 $MIB || die "cannot create fb_d3"
export LVM_SYSTEM_DIR=$E2E_TMP/lvm LVM_SUPPRESS_FD_WARNINGS=1
mkdir -p "$LVM_SYSTEM_DIR"
cat >"$LVM_SYSTEM_DIR/lvm.conf" <<'EOF'
devices {
	scan = [ "/dev" ]
	filter = [ "a|^/dev/fb_pv$|", "a|^/dev/fb_d3$|", "r|.*|" ]
	types = [ "nullb", 16 ]
	obtain_device_list_from_udev = 0
	external_device_info_source = "none"
	use_devicesfile = 0
	multipath_component_detection = 0
	md_component_detection = 0
}
activation {
	udev_sync = 0
	udev_rules = 0
	verify_udev_operations = 0
	monitoring = 0
}
global {
	use_lvmpolld = 0
	event_activation = 0
}
backup {
	backup = 0
	archive = 0
}
EOF
FM_ATEXIT+=("vgchange -an fbvg >/dev/null 2>&1")
if lvm pvcreate -y /dev/fb_pv /dev/fb_d3 >"$E2E_TMP/lvm.log" 2>&1; then
	pass lvm-pvcreate
	refuse refuse-lvm-pv-destination "LVM2_member" fb_vm /dev/fb_d3
else
	fail lvm-pvcreate "$(head -c 400 "$E2E_TMP/lvm.log")"
fi

# ---------------------------------------------------------------- 3. LVM, multipath
nb_create fb_d5 $MIB || die "cannot create fb_d5"
if lvm vgcreate fbvg /dev/fb_pv >>"$E2E_TMP/lvm.log" 2>&1 &&
   lvm lvcreate -y -n lv0 -L 16m --zero n --wipesignatures n fbvg \
	>>"$E2E_TMP/lvm.log" 2>&1 && wait_bdev /dev/mapper/fbvg-lv0 10; then
	pass lvm-lv-created
	info "fbvg-lv0: uuid $(dmsetup info -c --noheadings -o uuid fbvg-lv0), table $(dmsetup table fbvg-lv0)"
	REFUSE_KEEP=1 refuse refuse-lvm-lv \
		"LVM logical volume;lvchange --refresh;vgextend fbvg /dev/fb_d5;pvmove -n lv0 /dev/fb_pv /dev/fb_d5" \
		fbvg-lv0 /dev/fb_d5
	# The danger refused (issue 10, 3): had start gone on, complete would
	# leave the LV on the destination, and LVM's next refresh would put it
	# back on its PV (the stale source) with the new data stranded.
	if dm_exists fbvg-lv0-fmsrc; then
		info "start went on: completing the migration of fbvg-lv0"
		timeout 120 "$FM" wait --interval 1 fbvg-lv0 >/dev/null 2>&1
		"$FM" complete fbvg-lv0 2>&1 | sed 's/^/# | /'
	fi
	dd if=/dev/urandom of="$E2E_TMP/lvnew" bs=1M count=1 status=none
	dd if="$E2E_TMP/lvnew" of=/dev/mapper/fbvg-lv0 bs=1M oflag=direct status=none
	lvm lvchange --refresh fbvg/lv0 >>"$E2E_TMP/lvm.log" 2>&1 ||
		fail lvm-refresh "lvchange --refresh failed: $(tail -n 2 "$E2E_TMP/lvm.log" | tr '\n' ' ')"
	check lvm-refresh-keeps-new-data same_at "$E2E_TMP/lvnew" /dev/mapper/fbvg-lv0 0
else
	fail lvm-lv-created "$(tail -c 600 "$E2E_TMP/lvm.log" | tr '\n' ' ')"
fi

nb_create fb_mpb $MIB || die "cannot create fb_mpb"
if timeout 60 dmsetup create fb_mp --uuid mpath-fbtest0001 \
	--table "0 $N linear /dev/fb_mpb 0" && FM_DMS+=(fb_mp) &&
   wait_bdev /dev/mapper/fb_mp 5; then
	refuse refuse-multipath-map "multipath map;multipathd" fb_mp /dev/fb_d1
else
	fail multipath-map-created "dmsetup create --uuid mpath-fbtest0001 failed"
fi

# ---------------------------------------------------------------- 4. tables
if [ $HAVE_CRYPT = 0 ]; then
	skip refuse-crypt-disk "no dm-crypt target in this kernel"
elif cryptsetup open --key-file "$E2E_TMP/key" \
	/dev/fb_luks fb_cvm >>"$E2E_TMP/luks.log" 2>&1 &&
   FM_DMS+=(fb_cvm) && wait_bdev /dev/mapper/fb_cvm 5; then
	pass luks-open
	info "fb_cvm: $(dmsetup table fb_cvm | awk '{ $5 = "<key>"; print }')"
	dd if=/dev/urandom of=/dev/mapper/fb_cvm bs=1M count=2 oflag=direct status=none
	csum=$(rd /dev/mapper/fb_cvm | md5sum)
	refuse refuse-crypt-disk "crypt;key" fb_cvm /dev/fb_d1
	[ "$(rd /dev/mapper/fb_cvm | md5sum)" = "$csum" ] &&
		pass crypt-disk-reads-the-same ||
		fail crypt-disk-reads-the-same "the decrypted contents of fb_cvm changed"
else
	fail luks-open "$(tail -c 400 "$E2E_TMP/luks.log" | tr '\n' ' ')"
fi

nb_create fb_m1 $MIB || die "cannot create fb_m1"
nb_create fb_m2 $MIB || die "cannot create fb_m2"
if dm_create fb_mir "0 $N mirror core 1 1024 2 /dev/fb_m1 0 /dev/fb_m2 0 0"; then
	refuse refuse-mirror-disk "mirror;log" fb_mir /dev/fb_d1
else
	fail mirror-disk-created "dmsetup create fb_mir (mirror) failed"
fi

# a striped disk is understood: start and abort
nb_create fb_s1 $((MIB / 2)) || die "cannot create fb_s1"
nb_create fb_s2 $((MIB / 2)) || die "cannot create fb_s2"
nb_create fb_d4 $MIB || die "cannot create fb_d4"
dm_create fb_str "0 $N striped 2 128 /dev/fb_s1 0 /dev/fb_s2 0" ||
	die "cannot create fb_str"
FM_ATEXIT+=("dm_remove fb_str-fmsrc")
str_table=$(dmsetup table fb_str)
check striped-disk-start "$FM" start fb_str /dev/fb_d4 --copy-rate 1024
set -- $(dmsetup table fb_str)
[ "${3:-}" = flushmirror ] && pass striped-disk-migrating ||
	fail striped-disk-migrating "table: $(dmsetup table fb_str)"
check striped-disk-abort "$FM" abort fb_str
[ "$(dmsetup table fb_str)" = "$str_table" ] && ! dm_exists fb_str-fmsrc &&
	pass striped-disk-restored ||
	fail striped-disk-restored "table: $(dmsetup table fb_str)"

# ---------------------------------------------------------------- 6. block size
if nb_create_bs fb_4k $MIB 4096; then
	info "fb_4k: $(blockdev --getss /dev/fb_4k)-byte logical blocks, fb_vm $(blockdev --getss /dev/mapper/fb_vm)"
	refuse refuse-4k-destination-under-512 "4096;512" fb_vm /dev/fb_4k
else
	fail null-blk-4k "cannot create a 4096-byte null_blk"
fi

# ---------------------------------------------------------------- 2. --force
snapshot fb_vm /dev/fb_d2
check force-overwrites-ext4 "$FM" start fb_vm /dev/fb_d2 --force --region-size 64K
check force-migration-synced timeout 120 "$FM" wait --interval 1 fb_vm
check force-migration-complete "$FM" complete fb_vm
set -- $(dmsetup table fb_vm)
[ "${3:-}" = linear ] && [ "${4:-}" = "$(devno /dev/fb_d2)" ] &&
	pass force-disk-on-destination ||
	fail force-disk-on-destination "table: $(dmsetup table fb_vm)"
check force-destination-equals-source dcmp /dev/fb_d2 /dev/fb_src
