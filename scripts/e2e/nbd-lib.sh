# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
# scripts/e2e/nbd-lib.sh - a remote destination over NBD for the e2e tests
# (issue 11).  Sourced after lib.sh (and after e2e_setup).
#
# Inside the guest, a "remote host" network namespace ($NBD_NS) is joined
# to the default namespace (the "VM host") by a veth pair with private
# addresses ($NBD_HOST_IP here, $NBD_REMOTE_IP there) and nothing else; a
# netem qdisc on both ends adds half the round trip each way, and a cut is
# "netem loss 100%" on both ends: a link that hangs, not one that errors.
# In the remote namespace Debian's nbd-server (config in $E2E_TMP, pid file
# there, every process of the namespace killed at exit) exports a null_blk;
# in the default namespace nbd-client connects /dev/nbdN with a timeout,
# through netlink when the kernel has it, else with -nonetlink
# ($NBD_MODE says which worked).
#
#   nbd_init                 modules (Debian: nbd veth sch_netem), cleanup
#   nbd_bed SRC DST DL MIB RTT_MS
#                            the two-host bed of t37 and t43, all of it
#   nbd_net_up RTT_MS        namespace, veth, addresses, netem delay
#   nbd_delay RTT_MS         change the round trip
#   nbd_cut / nbd_restore    drop every packet both ways / stop dropping
#   nbd_link_down / _up      the VM host's end of the veth pair down / up
#   nbd_server_start DEV     export DEV (export name "fm") and wait for it
#   nbd_server_stop          kill every process of $NBD_NS (the server and
#                            the children serving its connections)
#   nbd_connect [DEV]        connect a free /dev/nbdN (or DEV): $NBD_DEV
#   nbd_disconnect DEV
#   nbd_relink DM LEN [T]    a new connection under the dm-linear DM
#   nbd_flushes              flushes completed by the exported device
#
# nbd-server 3.24 has no "do not daemonize" switch that keeps serving more
# than one client (-d serves one connection and exits), so it runs as the
# daemon it is: its pid file is in $E2E_TMP and the cleanup kills every
# process in $NBD_NS (ip netns pids), which only this test put there.
# The export is configured with flush = true (without it the kernel's nbd
# client advertises no write cache and the block layer drops every flush
# before it reaches the device) and trim = true; fua stays off: nbd-server
# would answer each FUA write with an fdatasync() of the whole export, and
# without it the block layer sends a FUA write to nbd as write + flush, the
# same cost, counted the same way.

NBD_NS=${NBD_NS:-fmr_remote}
NBD_HOST_IF=fmr_h
NBD_REMOTE_IF=fmr_r
NBD_HOST_IP=10.211.37.1
NBD_REMOTE_IP=10.211.37.2
NBD_PORT=10809
NBD_EXPORT=fm
NBD_TIMEOUT=${NBD_TIMEOUT:-10}	# nbd-client -timeout, seconds (0: none)
NBD_MODE=			# netlink or ioctl, set by nbd_connect
NBD_DEVS=()			# /dev/nbdN connected by nbd_connect
NBD_RTT=0
NBD_SERVED=			# device exported by nbd_server_start

# nbd_init: the kernel pieces (built into the UML kernel; modules on
# Debian's), /run/netns (tmpfs in the guest) and the cleanup
nbd_init() {
	local m
	for m in nbd veth sch_netem; do
		modprobe -q "$m" 2>/dev/null
	done
	[ -b /dev/nbd0 ] || { echo "no /dev/nbd0: no NBD in this kernel (CONFIG_BLK_DEV_NBD)" >&2; return 1; }
	command -v nbd-server >/dev/null && command -v nbd-client >/dev/null &&
		command -v ip >/dev/null && command -v tc >/dev/null ||
		{ echo "nbd-server, nbd-client, ip or tc missing on the host" >&2; return 1; }
	mkdir -p /run/netns
	FM_ATEXIT+=(nbd_cleanup)
}

# nbd_rexec CMD...: CMD in the remote namespace
nbd_rexec() { ip netns exec "$NBD_NS" "$@"; }

# nbd_net_up RTT_MS: the two "hosts" and the link between them
nbd_net_up() {
	ip netns add "$NBD_NS" || { echo "ip netns add failed (CONFIG_NET_NS?)" >&2; return 1; }
	ip link add "$NBD_HOST_IF" type veth peer name "$NBD_REMOTE_IF" ||
		{ echo "cannot create a veth pair (CONFIG_VETH?)" >&2; return 1; }
	ip link set "$NBD_REMOTE_IF" netns "$NBD_NS" &&
	ip addr add "$NBD_HOST_IP/30" dev "$NBD_HOST_IF" &&
	ip link set "$NBD_HOST_IF" up &&
	ip -n "$NBD_NS" link set lo up &&
	ip -n "$NBD_NS" addr add "$NBD_REMOTE_IP/30" dev "$NBD_REMOTE_IF" &&
	ip -n "$NBD_NS" link set "$NBD_REMOTE_IF" up || return 1
	tc qdisc add dev "$NBD_HOST_IF" root netem delay 0ms &&
	tc -n "$NBD_NS" qdisc add dev "$NBD_REMOTE_IF" root netem delay 0ms ||
		{ echo "cannot add a netem qdisc (CONFIG_NET_SCH_NETEM?)" >&2; return 1; }
	nbd_delay "$1"
}

# nbd_netem ARGS...: the same netem settings on both ends
nbd_netem() {
	tc qdisc change dev "$NBD_HOST_IF" root netem "$@" &&
	tc -n "$NBD_NS" qdisc change dev "$NBD_REMOTE_IF" root netem "$@"
}

# nbd_delay RTT_MS: half the round trip on each end (microseconds: 0.5 ms)
nbd_delay() {
	NBD_RTT=$1
	nbd_netem delay "$(awk -v r="$1" 'BEGIN { printf "%dus", r * 500 }')"
}

# nbd_cut: every packet lost both ways (the link hangs, nothing errors)
nbd_cut() {
	nbd_netem delay "$(awk -v r="$NBD_RTT" 'BEGIN { printf "%dus", r * 500 }')" loss 100%
}
nbd_restore() { nbd_delay "$NBD_RTT"; }

# nbd_link_down / nbd_link_up: the other cut, an interface down on the VM
# host (no carrier, its route gone): TCP gets no reset either, it only
# fails to send, so the connection hangs as with lost packets
nbd_link_down() { ip link set "$NBD_HOST_IF" down; }
nbd_link_up() { ip link set "$NBD_HOST_IF" up; }

# nbd_server_start DEV: nbd-server in the remote namespace exporting DEV
nbd_server_start() {
	local conf=$E2E_TMP/nbd-server.conf i
	NBD_SERVED=$1
	cat >"$conf" <<-EOF
	[generic]
		listenaddr = $NBD_REMOTE_IP
		port = $NBD_PORT
		allowlist = true
	[$NBD_EXPORT]
		exportname = $1
		flush = true
		trim = true
	EOF
	rm -f "$E2E_TMP/nbd-server.pid"
	nbd_rexec nbd-server -C "$conf" -p "$E2E_TMP/nbd-server.pid" \
		>"$E2E_TMP/nbd-server.log" 2>&1 ||
		{ echo "nbd-server failed: $(tr '\n' ' ' <"$E2E_TMP/nbd-server.log")" >&2; return 1; }
	for ((i = 0; i < 100; i++)); do
		[ -s "$E2E_TMP/nbd-server.pid" ] &&
			timeout 2 bash -c "exec 3<>/dev/tcp/$NBD_REMOTE_IP/$NBD_PORT" 2>/dev/null &&
			return 0
		sleep 0.1
	done
	echo "nbd-server not listening on $NBD_REMOTE_IP:$NBD_PORT" >&2
	return 1
}

# nbd_server_stop: the server and every child serving a connection (the
# fence of a dead connection: see t37's G6)
nbd_server_stop() {
	local p i
	for p in $(ip netns pids "$NBD_NS" 2>/dev/null); do
		kill "$p" 2>/dev/null
	done
	for ((i = 0; i < 50; i++)); do
		[ -z "$(ip netns pids "$NBD_NS" 2>/dev/null)" ] && return 0
		sleep 0.1
	done
	for p in $(ip netns pids "$NBD_NS" 2>/dev/null); do
		kill -9 "$p" 2>/dev/null
	done
	sleep 0.2
	[ -z "$(ip netns pids "$NBD_NS" 2>/dev/null)" ]
}

# nbd_free: the first /dev/nbdN with no connection (size 0, no pid) and
# no holder
nbd_free() {
	local d
	for d in /sys/block/nbd[0-9]*; do
		[ "$(cat "$d/size")" = 0 ] && [ ! -e "$d/pid" ] &&
			[ -z "$(ls "$d/holders" 2>/dev/null)" ] || continue
		echo "/dev/${d##*/}"
		return 0
	done
	return 1
}

# nbd_bed SRC DST DL MIB RTT_MS: the bed of the NBD tests: the link at
# RTT_MS, the null_blks SRC (the source, local) and DST (the exported
# destination) of MIB MiB with caches of 2 * MIB MiB, DST exported and
# connected, and the dm-linear DL over $NBD_DEV (the target's destination:
# nbd_relink puts a new connection under it).  Sets S, D, DL (device
# paths) and N (sectors); dies on any failure.
nbd_bed() {
	local src=$1 dst=$2 dl=$3 mib=$4 rtt=$5 t0=$SECONDS
	nbd_init 2>"$E2E_TMP/nbd-init.err" || die "NBD test bed: $(cat "$E2E_TMP/nbd-init.err")"
	nbd_net_up "$rtt" || die "cannot set up the link"
	nb_create "$src" "$mib" $((mib * 2)) || die "cannot create $src"
	nb_create "$dst" "$mib" $((mib * 2)) || die "cannot create $dst"
	S=/dev/$src D=/dev/$dst DL=/dev/mapper/$dl
	N=$(dev_sectors "$S")
	nbd_server_start "$D" || die "nbd-server did not start"
	nbd_connect || die "nbd-client failed"
	info "nbd: $NBD_DEV over $NBD_MODE, timeout ${NBD_TIMEOUT}s, round trip $rtt ms (set up in $((SECONDS - t0)) s)"
	dm_create "$dl" "0 $N linear $NBD_DEV 0" || die "cannot create $dl"
}

# nbd_connect [DEV]: connect DEV (default: a free one) to the export with
# -timeout $NBD_TIMEOUT; netlink first, -nonetlink if that fails.  Sets
# NBD_DEV and NBD_MODE.
nbd_connect() {
	local dev=${1:-} out i targs=()
	[ -n "$dev" ] || dev=$(nbd_free) || { echo "no free /dev/nbdN" >&2; return 1; }
	NBD_DEV=$dev
	[ "$NBD_TIMEOUT" -gt 0 ] && targs=(-timeout "$NBD_TIMEOUT")
	# netlink twice: right after a server restart one negotiation failed
	# once (t43), and -nonetlink then sticks for the rest of the test
	if [ "$NBD_MODE" != ioctl ] &&
	   { out=$(timeout 30 nbd-client "$NBD_REMOTE_IP" "$NBD_PORT" "$dev" \
		-N "$NBD_EXPORT" "${targs[@]}" 2>&1) ||
	     { echo "# nbd-client over netlink failed once: $(echo "$out" | tr '\n' ' ')" >&2
	       echo "# sockets: here $(ss -tano 2>/dev/null | grep ":$NBD_PORT" | tr -s ' ' | tr '\n' '|')" \
		"remote $(nbd_rexec ss -tano 2>/dev/null | grep ":$NBD_PORT" | tr -s ' ' | tr '\n' '|')" >&2
	       sleep 1
	       out=$(timeout 30 nbd-client "$NBD_REMOTE_IP" "$NBD_PORT" "$dev" \
		-N "$NBD_EXPORT" "${targs[@]}" 2>&1); }; }; then
		NBD_MODE=netlink
	else
		[ "$NBD_MODE" = ioctl ] ||
			echo "# nbd-client over netlink failed: $(echo "$out" | tr '\n' ' ')" >&2
		out=$(timeout 30 nbd-client "$NBD_REMOTE_IP" "$NBD_PORT" "$dev" \
			-N "$NBD_EXPORT" "${targs[@]}" -nonetlink 2>&1) ||
			{ echo "nbd-client -nonetlink failed: $(echo "$out" | tr '\n' ' ')" >&2; return 1; }
		NBD_MODE=ioctl
	fi
	case " ${NBD_DEVS[*]} " in *" $dev "*) ;; *) NBD_DEVS+=("$dev") ;; esac
	for ((i = 0; i < 50; i++)); do
		[ "$(cat "/sys/block/${dev#/dev/}/size")" != 0 ] && return 0
		sleep 0.1
	done
	echo "$dev has no size after nbd-client" >&2
	return 1
}

nbd_disconnect() { timeout 30 nbd-client -d "$1" >/dev/null 2>&1; }

# nbd_relink DM LEN [TIMEOUT]: a new NBD connection under the dm-linear DM
# (LEN sectors) that maps $NBD_DEV: an error table first (a dead nbd device
# cannot be connected again while a table holds it), the old device
# disconnected, a free one connected (-timeout TIMEOUT, default
# $NBD_TIMEOUT), the linear table back.  What sits on DM must be gone or
# failed (it sees errors in between).
nbd_relink() {
	local dm=$1 len=$2 t=${3:-$NBD_TIMEOUT} old=$NBD_DEV keep=$NBD_TIMEOUT rc=0
	dm_reload "$dm" "0 $len error" || return 1
	nbd_disconnect "$old"
	NBD_TIMEOUT=$t
	nbd_connect || rc=1
	NBD_TIMEOUT=$keep
	[ $rc -eq 0 ] && dm_reload "$dm" "0 $len linear $NBD_DEV 0"
}

# nbd_flushes: flushes the exported null_blk completed (stat field 16):
# nbd-server's fdatasync() of the export, one per NBD_CMD_FLUSH
nbd_flushes() { flush_count "$NBD_SERVED"; }

# nbd_cleanup (FM_ATEXIT): dm devices first (they hold the nbd devices; a
# dead link must not leave their removal waiting), nbd devices, the server,
# the namespace and the host's end of the veth pair
nbd_cleanup() {
	local i p
	ip netns list 2>/dev/null | grep -q "^$NBD_NS\b" && nbd_restore 2>/dev/null
	nbd_link_up 2>/dev/null
	for i in "${FM_PIDS[@]}"; do
		kill "$i" 2>/dev/null
	done
	for ((i = ${#FM_DMS[@]} - 1; i >= 0; i--)); do
		dm_remove "${FM_DMS[i]}"
	done
	for i in "${NBD_DEVS[@]}"; do
		nbd_disconnect "$i"
	done
	nbd_server_stop
	ip link del "$NBD_HOST_IF" 2>/dev/null
	ip netns del "$NBD_NS" 2>/dev/null
}
