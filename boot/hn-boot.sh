# hn-boot.sh: the hnforge boot logic, sourced by every initramfs the project
# builds (the Debian busybox /init and the Gentoo genkernel linuxrc hook).
# POSIX sh as busybox ash runs it: no arrays, no [[ ]], no bash expansions.
#
# It defines functions only; sourcing it has no effect beyond setting defaults.
# An initramfs calls one function, hn_prepare_root TARGET, which does in order:
#   hn_parse_cmdline            read the kernel command line
#   hn_wait_hostpart            find the host partition by label, with a timeout
#   hn_load_fs_modules TYPE     hook: the caller may load modules for btrfs/ext
#   hn_mount_hostpart           mount it read-write at $HN_HP
#   hn_rotate                   revert / verify / promote images; reboots after any rotation
#   hn_mount_image TARGET       loop-mount the image GRUB booted from at TARGET
#   mount --move $HN_HP TARGET/hostpart
# and on any failure calls hn_fail, which never waits at a prompt. The caller
# then switches root to TARGET.
#
# Files on the host partition (names relative to $HN_HP):
#   hn-root.img              the current image; GRUB boots its kernel. Exists at every instant.
#   hn-root-new.img          an update waiting; promoted only if it matches its sidecar
#   hn-root-new.img.sha256   sidecar written by the publish step (format below)
#   hn-root-old.img          the previous image (a hard link made before promotion)
#   hn-root-broken.img       the image a revert set aside
#   system-revert            flag: go back to hn-root-old.img at the next boot
#   hn-boot.log              one line per decision this module took (for the running system)
#
# Sidecar format (text, key=value per line, unknown keys ignored):
#   format=hnforge-sidecar-1
#   size=<bytes>
#   sha256=<64 lowercase hex>
#   version=<free text, informational>

# BEGIN boot contract: generated from pipeline/boot/contract.ts by `npm run generate`; do not edit
HN_CUR=hn-root.img
HN_NEW=hn-root-new.img
HN_SIDECAR=hn-root-new.img.sha256
HN_OLD=hn-root-old.img
HN_BROKEN=hn-root-broken.img
HN_FLAG=system-revert
HN_LOG=hn-boot.log
HN_SIDECAR_FORMAT=hnforge-sidecar-1
HN_HOSTPART_LABEL=hostpart
HN_KP_REAL_ROOT=real_root
HN_KP_HOSTPART=raw_loop_root_host_partition
HN_KP_TIMEOUT=hn.hostpart_timeout
HN_KP_ONFAIL=hn.onfail
HN_KP_VERIFY=hn.verify
HN_KP_STOP_AFTER=hn.test.stop_after
HN_DEFAULT_BOOT_SH=/lib/hn-boot.sh
HN_DEFAULT_ID_FILE=/etc/hn-initramfs-id
HN_DEFAULT_HP=/hostpart
HN_DOWNLOAD=hn-root-new.img.zst.part
HN_PARTIAL=hn-root-new.img.part
HN_UPDATE_LOG=hn-update.log
HN_UPDATE_LOCK=hn-update.lock
HN_RELEASE_FILE=/etc/hn-release
HN_DEFAULT_KEYRING=/etc/hnforge/keyring.gpg
HN_UPDATE_CONF=/etc/hn-update.conf
HN_EXIT_OK=0
HN_EXIT_UP_TO_DATE=1
HN_EXIT_USAGE=2
HN_EXIT_STORE=3
HN_EXIT_VERIFY=4
HN_EXIT_SPACE=5
HN_EXIT_LOCKED=6
# END boot contract

HN_HP=${HN_HP:-$HN_DEFAULT_HP}
HN_HOSTPART=${HN_HOSTPART:-LABEL=$HN_HOSTPART_LABEL}
HN_REAL_ROOT=${HN_REAL_ROOT:-/$HN_CUR}
HN_TIMEOUT=${HN_TIMEOUT:-30}
HN_ONFAIL=${HN_ONFAIL:-reboot}
HN_ROOT_MODE=${HN_ROOT_MODE:-ro}
HN_STOP_AFTER=${HN_STOP_AFTER:-}
HN_VERIFY=${HN_VERIFY:-sha256}
HN_CMDLINE_FILE=${HN_CMDLINE_FILE:-/proc/cmdline}
HN_ID_FILE=${HN_ID_FILE:-$HN_DEFAULT_ID_FILE}
HN_BOOT_SH=${HN_BOOT_SH:-$HN_DEFAULT_BOOT_SH}

# ---------------------------------------------------------------- reporting

hn_log() {
	echo "HN-BOOT: $*"
}

# A decision worth keeping: on the console and in $HN_HP/hn-boot.log.
hn_report() {
	hn_log "$*"
	if [ -d "$HN_HP" ] && [ -w "$HN_HP" ]; then
		echo "$(date -u '+%Y-%m-%dT%H:%M:%SZ' 2>/dev/null) $*" >>"$HN_HP/$HN_LOG" 2>/dev/null
	fi
}

# Seconds since boot with two decimals, for timing markers.
hn_now() {
	if [ -r /proc/uptime ]; then
		read -r hn_up _ </proc/uptime
		echo "$hn_up"
	else
		echo 0
	fi
}

# Seconds elapsed since T0 (an hn_now value), two decimals.
hn_since() {
	awk -v a="$1" -v b="$(hn_now)" 'BEGIN { printf "%.2f", b - a }'
}

# ------------------------------------------------------ actions tests replace

# Flush everything to disk. sync(2) waits for completion on Linux.
hn_sync() {
	sync
}

# Test-only: a power cut (no sync, no unmount). Unit tests redefine this.
hn_powercut() {
	echo o >/proc/sysrq-trigger
	sleep 30
}

# Before any reboot: unmount the host partition. sync(2) only commits the
# ext4 journal; GRUB reads the filesystem without replaying it, so a rename
# that is only in the journal is invisible to GRUB. Unmounting checkpoints it.
hn_release_hostpart() {
	hn_sync
	if grep -q " $HN_HP " /proc/mounts 2>/dev/null; then
		umount "$HN_HP" 2>/dev/null || mount -o remount,ro "$HN_HP" 2>/dev/null || hn_log "cannot release $HN_HP"
	fi
	hn_sync
}

# A hard reboot: busybox `reboot` without -f only signals init, which is us.
hn_reboot() {
	hn_log "rebooting now"
	hn_release_hostpart
	reboot -f
	sleep 30
}

hn_poweroff() {
	hn_log "powering off now"
	hn_release_hostpart
	poweroff -f
	sleep 30
}

# Called after each numbered step, before its sync: hn.test.stop_after=N cuts
# the power here, so a test can prove every intermediate state boots.
hn_step() {
	if [ -n "$HN_STOP_AFTER" ] && [ "$HN_STOP_AFTER" = "$1" ]; then
		hn_log "TEST power cut after step $1 ($2)"
		hn_powercut
	fi
}

# Unrecoverable in this boot: say why, then do what hn.onfail says (never a prompt).
hn_fail() {
	hn_log "FAIL: $*"
	case "$HN_ONFAIL" in
	poweroff) hn_log "FAIL outcome: power off ($HN_KP_ONFAIL=poweroff)"; hn_poweroff ;;
	*) hn_log "FAIL outcome: reboot in 5 s ($HN_KP_ONFAIL=reboot)"; sleep 5; hn_reboot ;;
	esac
	return 1
}

# -------------------------------------------------------------- command line

hn_parse_cmdline() {
	[ -r "$HN_CMDLINE_FILE" ] || return 0
	for hn_w in $(cat "$HN_CMDLINE_FILE"); do
		case "$hn_w" in
		"$HN_KP_HOSTPART"=*) HN_HOSTPART=${hn_w#*=} ;;
		"$HN_KP_REAL_ROOT"=*) HN_REAL_ROOT=${hn_w#*=} ;;
		"$HN_KP_TIMEOUT"=*) HN_TIMEOUT=${hn_w#*=} ;;
		"$HN_KP_ONFAIL"=*) HN_ONFAIL=${hn_w#*=} ;;
		"$HN_KP_VERIFY"=*) HN_VERIFY=${hn_w#*=} ;;
		"$HN_KP_STOP_AFTER"=*) HN_STOP_AFTER=${hn_w#*=} ;;
		ro) HN_ROOT_MODE=ro ;;
		rw) HN_ROOT_MODE=rw ;;
		esac
	done
	case "$HN_REAL_ROOT" in /*) ;; *) HN_REAL_ROOT=/$HN_REAL_ROOT ;; esac
	case "$HN_TIMEOUT" in '' | *[!0-9]*) HN_TIMEOUT=30 ;; esac
}

# ------------------------------------------------------------ host partition

# Resolves LABEL=, UUID= or a /dev path to a device node; prints it.
hn_findfs() {
	case "$1" in
	/dev/*) [ -b "$1" ] && echo "$1" ;;
	*) findfs "$1" 2>/dev/null ;;
	esac
}

hn_wait_hostpart() {
	hn_t0=$(hn_now)
	hn_i=0
	hn_n=$((HN_TIMEOUT * 10))
	while :; do
		HN_HOSTPART_DEV=$(hn_findfs "$HN_HOSTPART")
		if [ -n "$HN_HOSTPART_DEV" ]; then
			hn_log "host partition $HN_HOSTPART is $HN_HOSTPART_DEV"
			hn_log "HN-TIME hostpart=$(hn_since "$hn_t0")s (found at uptime $(hn_now)s)"
			return 0
		fi
		[ "$hn_i" -ge "$hn_n" ] && break
		[ $((hn_i % 50)) -eq 49 ] && hn_log "still waiting for host partition $HN_HOSTPART"
		usleep 100000 2>/dev/null || sleep 1
		hn_i=$((hn_i + 1))
	done
	hn_log "host partition $HN_HOSTPART not found after ${HN_TIMEOUT} s (kernel parameter $HN_KP_HOSTPART)"
	return 1
}

# Filesystem type from the superblock magic, for the few types that need
# modules loaded first (busybox-static has findfs but no blkid). Prints
# btrfs, ext or unknown.
hn_fstype() {
	if [ "$(dd if="$1" bs=1 skip=65600 count=8 2>/dev/null)" = "_BHRfS_M" ]; then
		echo btrfs
	elif [ "$(dd if="$1" bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1 | tr -d ' ')" = "53ef" ]; then
		echo ext
	else
		echo unknown
	fi
}

hn_mount_hostpart() {
	mkdir -p "$HN_HP"
	if ! mount -o rw,noatime "$HN_HOSTPART_DEV" "$HN_HP"; then
		hn_log "cannot mount host partition $HN_HOSTPART_DEV at $HN_HP"
		return 1
	fi
	return 0
}

# ------------------------------------------------------------- verification

hn_file_size() {
	stat -c %s "$1" 2>/dev/null
}

# hn_verify IMAGE SIDECAR: 0 if IMAGE matches SIDECAR; otherwise sets HN_REASON.
# Size first (a truncated copy fails instantly), then the sha256 (hn.verify=size skips it).
hn_verify() {
	HN_REASON=
	if [ ! -f "$2" ]; then
		HN_REASON="no checksum file ${2##*/}"
		return 1
	fi
	hn_fmt= hn_size= hn_sha=
	# `|| [ -n ... ]`: read fails on a last line without a newline but still fills
	# the variables; the TypeScript parser accepts such a file, so this one must too.
	while IFS='=' read -r hn_k hn_v || [ -n "$hn_k" ]; do
		case "$hn_k" in
		format) hn_fmt=$hn_v ;;
		size) hn_size=$hn_v ;;
		sha256) hn_sha=$hn_v ;;
		esac
	done <"$2"
	if [ "$hn_fmt" != "$HN_SIDECAR_FORMAT" ]; then
		HN_REASON="checksum file ${2##*/} has unknown format '$hn_fmt'"
		return 1
	fi
	case "$hn_size" in '' | *[!0-9]*)
		HN_REASON="checksum file ${2##*/} has no valid size"
		return 1
		;;
	esac
	case "$hn_sha" in *[!0-9a-f]* | '')
		HN_REASON="checksum file ${2##*/} has no valid sha256"
		return 1
		;;
	esac
	[ ${#hn_sha} -eq 64 ] || { HN_REASON="checksum file ${2##*/} has no valid sha256"; return 1; }
	hn_actual=$(hn_file_size "$1")
	if [ "$hn_actual" != "$hn_size" ]; then
		HN_REASON="size $hn_actual bytes, expected $hn_size (truncated or incomplete copy)"
		return 1
	fi
	[ "$HN_VERIFY" = size ] && return 0
	hn_t0=$(hn_now)
	hn_got=$(sha256sum "$1" 2>/dev/null | cut -d' ' -f1)
	hn_log "HN-TIME verify=$(hn_since "$hn_t0")s (sha256 of ${1##*/}, $hn_actual bytes)"
	if [ "$hn_got" != "$hn_sha" ]; then
		HN_REASON="sha256 mismatch (got ${hn_got:-nothing}, expected $hn_sha)"
		return 1
	fi
	return 0
}

# --------------------------------------------------------------- rotation

# Extra hard links left by an interrupted rotation are removed; a stale
# sidecar with no image is removed; a missing hn-root.img is restored from
# hn-root-old.img (only a manual mistake can cause that: no step below removes it).
hn_cleanup_leftovers() {
	cd "$HN_HP" || return 1
	for hn_f in "$HN_OLD.tmp" "$HN_BROKEN.tmp"; do
		if [ -e "$hn_f" ]; then
			rm -f "$hn_f"
			hn_log "removed leftover $hn_f (interrupted rotation)"
		fi
	done
	if [ -e "$HN_SIDECAR" ] && [ ! -e "$HN_NEW" ]; then
		rm -f "$HN_SIDECAR"
		hn_log "removed $HN_SIDECAR: no $HN_NEW beside it"
	fi
	if [ ! -e "$HN_CUR" ] && [ -e "$HN_OLD" ]; then
		mv -f "$HN_OLD" "$HN_CUR"
		hn_sync
		hn_report "$HN_CUR was missing: restored $HN_OLD as $HN_CUR"
	fi
	cd / || return 1
	return 0
}

# Moves FILE aside as FILE.SUFFIX (with its sidecar) and reports why.
hn_set_aside() {
	mv -f "$HN_HP/$1" "$HN_HP/$1.$2"
	[ -e "$HN_HP/$HN_SIDECAR" ] && mv -f "$HN_HP/$HN_SIDECAR" "$HN_HP/$HN_SIDECAR.$2"
	hn_report "$1 set aside as $1.$2: $3"
}

# Upgrade: at every instant hn-root.img names a complete, verified image.
#   1 link hn-root.img to hn-root-old.img.tmp
#   2 rename hn-root-old.img.tmp over hn-root-old.img (old and current now share an inode)
#   3 rename hn-root-new.img over hn-root.img (atomic: current is old or new, never missing)
#   4 remove the sidecar
#   5 reboot -f, so GRUB loads the new image's own kernel and initramfs
hn_upgrade() {
	cd "$HN_HP" || return 1
	if [ -e "$HN_OLD" ] && [ "$HN_CUR" -ef "$HN_OLD" ]; then
		hn_log "$HN_OLD already links $HN_CUR (resuming an interrupted update)"
	else
		rm -f "$HN_OLD.tmp"
		ln "$HN_CUR" "$HN_OLD.tmp" || { cd /; hn_log "cannot link $HN_CUR (filesystem without hard links?)"; return 1; }
		hn_step 1 "linked $HN_CUR to $HN_OLD.tmp"
		hn_sync
		mv -f "$HN_OLD.tmp" "$HN_OLD"
		hn_step 2 "renamed $HN_OLD.tmp to $HN_OLD"
		hn_sync
	fi
	rm -f "$HN_OLD.tmp"
	mv -f "$HN_NEW" "$HN_CUR"
	hn_step 3 "renamed $HN_NEW to $HN_CUR"
	hn_sync
	rm -f "$HN_SIDECAR"
	hn_step 4 "removed $HN_SIDECAR"
	hn_sync
	cd / || return 1
	hn_report "updated: $HN_NEW is now $HN_CUR, previous image kept as $HN_OLD"
	hn_log "HN-TIME rotate=$(hn_since "${HN_ROTATE_T0:-0}")s (update, verify included)"
	hn_step 5 "update done, before reboot"
	hn_reboot
	return 0
}

# Revert (system-revert present). Revert always wins over an update waiting:
#  11 hn-root-new.img (if any) set aside as hn-root-new.img.skipped
#  12 link hn-root.img to hn-root-broken.img.tmp
#  13 rename hn-root-broken.img.tmp over hn-root-broken.img
#  14 rename hn-root-old.img over hn-root.img
#  15 remove system-revert, then reboot -f (GRUB must load the old image's kernel)
# With no hn-root-old.img there is nothing to go back to (never was, or a
# revert already happened and the power failed before step 15): the flag is
# removed, reported, and the current image boots.
hn_revert() {
	cd "$HN_HP" || return 1
	if [ -e "$HN_NEW" ]; then
		hn_set_aside "$HN_NEW" skipped "$HN_FLAG is present; a revert and an update never happen in the same boot"
		hn_step 11 "set $HN_NEW aside"
		hn_sync
	fi
	if [ ! -e "$HN_OLD" ] || [ "$HN_CUR" -ef "$HN_OLD" ]; then
		[ -e "$HN_OLD" ] && rm -f "$HN_OLD"
		rm -f "$HN_FLAG"
		hn_sync
		cd / || return 1
		hn_report "$HN_FLAG present but no $HN_OLD to go back to (nothing to revert, or already reverted): flag removed, booting $HN_CUR"
		return 0
	fi
	rm -f "$HN_BROKEN.tmp"
	if [ -e "$HN_BROKEN" ] && [ "$HN_CUR" -ef "$HN_BROKEN" ]; then
		hn_log "$HN_BROKEN already links $HN_CUR (resuming an interrupted revert)"
	else
		ln "$HN_CUR" "$HN_BROKEN.tmp" || { cd /; hn_log "cannot link $HN_CUR"; return 1; }
		hn_step 12 "linked $HN_CUR to $HN_BROKEN.tmp"
		hn_sync
		mv -f "$HN_BROKEN.tmp" "$HN_BROKEN"
		hn_step 13 "renamed $HN_BROKEN.tmp to $HN_BROKEN"
		hn_sync
	fi
	rm -f "$HN_BROKEN.tmp"
	mv -f "$HN_OLD" "$HN_CUR"
	hn_step 14 "renamed $HN_OLD to $HN_CUR"
	hn_sync
	rm -f "$HN_FLAG"
	hn_step 15 "removed $HN_FLAG"
	hn_sync
	cd / || return 1
	hn_report "reverted: $HN_OLD is now $HN_CUR, the image it replaced is $HN_BROKEN"
	hn_log "HN-TIME rotate=$(hn_since "${HN_ROTATE_T0:-0}")s (revert)"
	hn_reboot
	return 0
}

# The whole decision. Returns 0 when the current image should boot now
# (nothing to do, or nothing could be done); after any rotation it reboots.
# Booted through GRUB's fallback entry (real_root other than /hn-root.img)
# it leaves every file alone.
hn_rotate() {
	HN_ROTATE_T0=$(hn_now)
	if [ "$HN_REAL_ROOT" != "/$HN_CUR" ]; then
		hn_log "booting $HN_REAL_ROOT (not $HN_CUR): no rotation"
		[ "$HN_REAL_ROOT" = "/$HN_OLD" ] && [ ! -e "$HN_HP/$HN_CUR" ] && hn_cleanup_leftovers && HN_REAL_ROOT=/$HN_CUR
		return 0
	fi
	hn_cleanup_leftovers || return 1
	if [ -e "$HN_HP/$HN_FLAG" ]; then
		hn_revert
		return $?
	fi
	if [ -e "$HN_HP/$HN_NEW" ]; then
		if hn_verify "$HN_HP/$HN_NEW" "$HN_HP/$HN_SIDECAR"; then
			hn_log "$HN_NEW verified"
			hn_upgrade
			return $?
		fi
		hn_set_aside "$HN_NEW" rejected "$HN_REASON"
		hn_step 21 "set a bad $HN_NEW aside"
		hn_sync
	fi
	hn_log "HN-TIME rotate=$(hn_since "$HN_ROTATE_T0")s: boot $HN_CUR"
	return 0
}

# The current image cannot be used (loop mount failed, no /sbin/init, no
# /hostpart): go back to hn-root-old.img if there is one, else fail.
hn_image_unusable() {
	hn_report "$HN_REAL_ROOT is unusable: $1"
	if [ "$HN_REAL_ROOT" = "/$HN_CUR" ] && [ -e "$HN_HP/$HN_OLD" ] && ! [ "$HN_HP/$HN_CUR" -ef "$HN_HP/$HN_OLD" ]; then
		hn_report "automatic revert to $HN_OLD"
		: >"$HN_HP/$HN_FLAG"
		hn_sync
		hn_revert
		return 1
	fi
	hn_fail "no usable image on $HN_HOSTPART ($1)"
}

# hn_mount_image TARGET: loop-mounts $HN_HP$HN_REAL_ROOT at TARGET and checks it.
hn_mount_image() {
	hn_img=$HN_HP$HN_REAL_ROOT
	if [ ! -f "$hn_img" ]; then
		hn_image_unusable "file $hn_img not found"
		return 1
	fi
	mkdir -p "$1"
	if ! mount -o "loop,$HN_ROOT_MODE" "$hn_img" "$1"; then
		hn_image_unusable "loop mount of $hn_img failed"
		return 1
	fi
	for hn_need in /sbin/init /hostpart; do
		if [ ! -e "$1$hn_need" ] && [ ! -L "$1$hn_need" ]; then
			umount "$1"
			hn_image_unusable "the image has no $hn_need"
			return 1
		fi
	done
	hn_log "mounted $hn_img at $1 ($HN_ROOT_MODE)"
	hn_check_identity "$1" || return 1
	return 0
}

# Hook for the caller: load what a host partition of type $1 (btrfs, ext,
# unknown) needs before it can be mounted. Default: nothing.
command -v hn_load_fs_modules >/dev/null 2>&1 || hn_load_fs_modules() { return 0; }

# The whole initramfs side of the boot chain; returns with TARGET ready for
# switch_root, or does not return (reboot / power off after hn_fail).
hn_prepare_root() {
	hn_parse_cmdline
	hn_wait_hostpart || hn_fail "host partition $HN_HOSTPART not found"
	hn_load_fs_modules "$(hn_fstype "$HN_HOSTPART_DEV")"
	hn_mount_hostpart || hn_fail "cannot mount the host partition"
	hn_rotate || hn_fail "rotation failed on $HN_HOSTPART"
	hn_mount_image "$1" || hn_fail "no usable root image"
	# The host partition goes into the new root where the running system
	# expects it (/hostpart): visible there, never a hidden rw mount.
	if ! mount --move "$HN_HP" "$1/hostpart"; then
		umount "$1"
		hn_image_unusable "cannot move $HN_HP into the image's /hostpart"
		hn_fail "cannot hand over the host partition"
	fi
	return 0
}

# The exitrd: systemd runs /run/initramfs/shutdown at the end of every
# shutdown, after pivoting into /run/initramfs with the old root at /oldroot.
# It gets busybox, this file and the shutdown script ($1), so the root image
# and the host partition can be unmounted from outside them. /run must be a
# tmpfs that the caller moves into the new root.
hn_setup_exitrd() {
	hn_x=/run/initramfs
	mkdir -p $hn_x/bin $hn_x/lib $hn_x/oldroot $hn_x/usr $hn_x/proc $hn_x/sys $hn_x/dev $hn_x/run $hn_x/hostpart || return 1
	cp /bin/busybox $hn_x/bin/busybox || return 1
	cp "$HN_BOOT_SH" $hn_x/lib/hn-boot.sh
	cp "$1" $hn_x/shutdown
	chmod 755 $hn_x/shutdown
	ln -sf ../bin $hn_x/usr/bin
	ln -sf bin $hn_x/sbin
	# One process for all applet links. Run as /bin/busybox, it links them to
	# /bin/busybox: the right target once systemd has pivoted into /run/initramfs.
	/bin/busybox --install -s $hn_x/bin
}

# GRUB and the initramfs must agree on the image: the kernel and initramfs
# running now must be the ones inside the image about to become root. The
# build writes the same id (a hash of kernel + initramfs) to the initramfs
# ($HN_ID_FILE) and to the image (/boot/hn-boot-id), as "<label> <hash>". A mismatch means GRUB read
# a stale directory (a rename still only in the journal after a power cut):
# release the host partition (which checkpoints the journal) and reboot once.
# A second mismatch in a row boots anyway, reported.
hn_check_identity() {
	[ -r "$HN_ID_FILE" ] || return 0
	hn_mine=$(cat "$HN_ID_FILE")
	hn_theirs=$(cat "$1/boot/hn-boot-id" 2>/dev/null)
	if [ -z "$hn_theirs" ]; then
		hn_log "image has no /boot/hn-boot-id: kernel/image agreement not checked"
		return 0
	fi
	# Compare the hash (the last word); the words before it are a label.
	if [ "${hn_mine##* }" = "${hn_theirs##* }" ]; then
		[ -e "$HN_HP/hn-boot.mismatch" ] && rm -f "$HN_HP/hn-boot.mismatch"
		return 0
	fi
	if [ -e "$HN_HP/hn-boot.mismatch" ]; then
		rm -f "$HN_HP/hn-boot.mismatch"
		hn_report "kernel/initramfs $hn_mine does not belong to $HN_REAL_ROOT ($hn_theirs), second boot in a row: booting anyway"
		return 0
	fi
	hn_report "GRUB loaded kernel/initramfs $hn_mine but $HN_REAL_ROOT holds $hn_theirs (stale directory after a power cut?): flushing the host partition and rebooting"
	: >"$HN_HP/hn-boot.mismatch"
	umount "$1" 2>/dev/null
	hn_reboot
	return 1
}
