# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
# scripts/vm/vm-lib.sh - a real QEMU virtual machine on a test disk, for
# scripts/e2e/t42-vm-migrate.sh (sourced after scripts/e2e/lib.sh) and
# the demo, scripts/demo-guest.sh.  It uses what lib.sh sets: FM_REPO,
# E2E_TMP (a scratch directory) and FM_PIDS (background processes, an
# array it appends QEMU to); the demo sets them itself.
#
# The VM: qemu-system-x86_64 (TCG), Debian's kernel /boot/vmlinuz-$VM_KVER
# with a busybox initramfs made here (busybox-static, the virtio modules of
# /lib/modules/$VM_KVER, scripts/vm/vm-init.sh as /init), one virtio-blk
# disk: the host block device under test with cache=none (O_DIRECT) and
# aio=native, so that every flush of the guest reaches it as a flush
# (fdatasync of the device: REQ_PREFLUSH).  The kernel console goes to
# $VM_DIR/console.log, the writer's control channel (vm-init.sh) is the
# second serial port: a pipe $VM_DIR/ctl.in / ctl.out; everything the VM
# says there is appended to $VM_DIR/out.  VM_CACHE, VM_AIO (QEMU's -drive
# cache= and aio=; VM_CACHE=unsafe VM_AIO=threads drops the guest's
# flushes: a wrong setup the tests must catch), VM_MEM (MiB, default 160),
# VM_BIOS (QEMU's -bios: the demo takes qboot, which boots the kernel
# sooner than the default SeaBIOS).
# no_timer_check: on a loaded host TCG can be so slow that the kernel's
# early check of the timer interrupt fails ("IO-APIC + timer doesn't
# work!", a panic at boot, seen under UML with the demo).

VM_DIR=
VM_PID=
VM_CAT=

# vm_kver: the newest Debian 6.1 kernel with its modules (empty: none)
vm_kver() {
	local k v=
	for k in /boot/vmlinuz-6.1.0-*-amd64; do
		[ -f "$k" ] || continue
		k=${k#/boot/vmlinuz-}
		[ -f "/lib/modules/$k/modules.dep" ] || continue
		if [ -z "$v" ] || [ "$(printf '%s\n%s\n' "$v" "$k" | sort -V | tail -n 1)" = "$k" ]; then
			v=$k
		fi
	done
	echo "$v"
}

# vm_missing: what is missing to boot the VM (empty: all there)
vm_missing() {
	local t miss=
	for t in qemu-system-x86_64 cpio gzip modprobe mkfifo; do
		command -v $t >/dev/null || miss+="$t "
	done
	[ -n "$(vm_kver)" ] || miss+="/boot/vmlinuz-6.1.0-*-amd64 with its modules "
	# (ldd fails on a static executable)
	[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 ||
		miss+="a static /bin/busybox (busybox-static) "
	echo "$miss"
}

# vm_initramfs OUT: the initramfs (gzip'ed cpio) for $VM_KVER
vm_initramfs() {
	local out=$1 ird=$E2E_TMP/initramfs a ko b
	rm -rf "$ird"
	mkdir -p "$ird"/{bin,dev,proc,sys,tmp,lib/modules} || return 1
	cp /bin/busybox "$ird/bin/busybox" || return 1
	for a in sh mount insmod stty sleep cat mkdir mv rm dd sync; do
		ln -s busybox "$ird/bin/$a"
	done
	cp "$FM_REPO/scripts/vm/vm-init.sh" "$ird/init" && chmod 755 "$ird/init" || return 1
	: >"$ird/modules.list"
	for a in virtio_pci virtio_blk; do
		modprobe -S "$VM_KVER" --show-depends $a || return 1
	done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' >"$E2E_TMP/vm-modules"
	while read -r ko; do
		b=$(basename "$ko")
		case $ko in
		*.ko) cp "$ko" "$ird/lib/modules/$b" ;;
		*.ko.xz) b=${b%.xz}; xz -dc "$ko" >"$ird/lib/modules/$b" ;;
		*.ko.zst) b=${b%.zst}; zstd -qdc "$ko" >"$ird/lib/modules/$b" ;;
		*) echo "unknown module file $ko" >&2; return 1 ;;
		esac || return 1
		echo "$b" >>"$ird/modules.list"
	done <"$E2E_TMP/vm-modules"
	grep -q virtio_blk "$ird/modules.list" || { echo "no virtio_blk module" >&2; return 1; }
	(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
}

# vm_start DISK: boot the VM on DISK (background); $VM_PID is QEMU's pid
vm_start() {
	local disk=$1
	VM_DIR=$E2E_TMP/vm
	mkdir -p "$VM_DIR" && rm -f "$VM_DIR"/ctl.in "$VM_DIR"/ctl.out &&
		mkfifo "$VM_DIR/ctl.in" "$VM_DIR/ctl.out" || return 1
	: >"$VM_DIR/out"
	qemu-system-x86_64 -M pc -accel tcg,tb-size=${VM_TB_MIB:-64} -cpu qemu64 \
		-smp 1 -m ${VM_MEM:-160} -nodefaults -no-user-config -display none \
		-no-reboot ${VM_BIOS:+-bios "$VM_BIOS"} \
		-kernel "/boot/vmlinuz-$VM_KVER" -initrd "$VM_IRD" \
		-append "console=ttyS0 panic=-1 no_timer_check rdinit=/init ${VM_APPEND:-}" \
		-serial "file:$VM_DIR/console.log" \
		-chardev "pipe,id=ctl,path=$VM_DIR/ctl" -serial chardev:ctl \
		-drive "file=$disk,format=raw,if=none,id=d0,cache=${VM_CACHE:-none},aio=${VM_AIO:-native}" \
		-device virtio-blk-pci,drive=d0 \
		>"$VM_DIR/qemu.out" 2>&1 &
	VM_PID=$!
	FM_PIDS+=("$VM_PID")
	# (after QEMU opened the FIFOs read-write: no open blocks)
	cat "$VM_DIR/ctl.out" >>"$VM_DIR/out" &
	VM_CAT=$!
	FM_PIDS+=("$VM_CAT")
}

# vm_send LINE: a command to the VM's writer
vm_send() { echo "$1" >"$VM_DIR/ctl.in"; }

# vm_wait_line REGEX SECONDS: wait until the VM said a line matching REGEX
vm_wait_line() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		grep -qE "$1" "$VM_DIR/out" && return 0
		kill -0 "$VM_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# vm_acks [FILE]: records acknowledged (fsynced) so far
vm_acks() { grep -c '^ack ' "${1:-$VM_DIR/out}"; }

# vm_stop: ask the writer to stop and wait for QEMU (SIGKILL after 60 s);
# returns QEMU's exit status
vm_stop() {
	local i rc
	vm_send stop
	for ((i = 0; i < 600; i++)); do
		kill -0 "$VM_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$VM_PID" 2>/dev/null && kill -KILL "$VM_PID"
	wait "$VM_PID"
	rc=$?
	kill "$VM_CAT" 2>/dev/null
	wait "$VM_CAT" 2>/dev/null
	VM_PID= VM_CAT=
	return $rc
}

# vm_check_records IMAGE OUT [SINCE]: every record the VM acknowledged in
# OUT (complete lines; from line SINCE on, default 1) holds its contents
# in IMAGE (a file or device read as is); prints "checked lost" and the
# first losses to stderr
vm_check_records() {
	"${PY:-/usr/bin/python3}" - "$@" <<'PYEOF'
import sys
img, out = sys.argv[1], sys.argv[2]
since = int(sys.argv[3]) if len(sys.argv) > 3 else 1
data = open(out, "rb").read()
data = data[:data.rfind(b"\n") + 1].decode(errors="replace").splitlines()
f = open(img, "rb")
checked = lost = 0
for n, l in enumerate(data, 1):
    w = l.split()
    if n < since or len(w) != 3 or w[0] != "ack":
        continue
    blk, seq = int(w[1]), int(w[2])
    want = (("%-63s\n" % ("fmrec %d %d" % (blk, seq))) * 64).encode()
    f.seek(blk * 4096)
    got = f.read(4096)
    checked += 1
    if got != want:
        lost += 1
        if lost <= 5:
            print("block %d seq %d: found %r" % (blk, seq, got[:30]), file=sys.stderr)
print(checked, lost)
PYEOF
}
