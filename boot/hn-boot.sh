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
#   hn_rotate                   revert / trial / verify / promote images; reboots after any rotation
#                               (except a revert GRUB already booted the old image's kernel for)
#   hn_mount_image TARGET       loop-mount the image GRUB booted from at TARGET
#   hn_trial_arm                a trial boot: arm the watchdog hn-health must stop
#   mount --move $HN_HP TARGET/hostpart
# and on any failure calls hn_fail, which never waits at a prompt and never
# returns. The caller then switches root to TARGET.
#
# "This boot failed" (host partition not found, no loop support, the image's
# filesystem type unknown to this kernel) reboots and leaves every image where
# it is: only GRUB's trial count turns repeated failures of a new image into a
# revert. "This image is bad" (its filesystem does not mount, no /sbin/init, no
# /hostpart, the trial budget spent) reverts to hn-root-old.img at once.
#
# Files on the host partition (names relative to $HN_HP):
#   hn-root.img              the current image; GRUB boots its kernel. Exists at every instant.
#   hn-root-new.img          an update waiting; promoted only if it matches its sidecar
#   hn-root-new.img.sha256   sidecar written by the publish step (format below)
#   hn-root-old.img          the previous image (a hard link made before promotion)
#   hn-root-broken.img       the image a revert set aside
#   system-revert            flag: go back to hn-root-old.img at the next boot
#   hn-trial.cfg             a trial is running (GRUB sources it and counts boots in grubenv)
#   hn-trial.log             the events of the last trial
#   hn-boot.log              one line per decision this module took (for the running system)
#
# Sidecar format (text, key=value per line, unknown keys ignored):
#   format=hnforge-sidecar-1
#   size=<bytes>
#   sha256=<64 lowercase hex>
#   version=<free text, informational>

# shellcheck disable=SC2034 # the generated block holds names only the other node tools use
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
HN_TRIAL=hn-trial.cfg
HN_TRIAL_LOG=hn-trial.log
HN_MISMATCH=hn-boot.mismatch
HN_KP_TRIAL=hn.trial
HN_KP_TRIAL_BUDGET=hn.trial_budget
HN_KP_TRIAL_TIMEOUT=hn.trial_timeout
HN_TRIAL_OFF=off
HN_TRIAL_NOGRUBENV=nogrubenv
HN_TRIAL_SPENT=spent
HN_TRIAL_DEFAULT_BUDGET=2
HN_TRIAL_DEFAULT_TIMEOUT=600
HN_TRIAL_MAX_BUDGET=9
HN_GRUB_TRIAL_ID=hn_trial_id
HN_GRUB_TRIAL_BUDGET=hn_trial_budget
HN_HEALTH_CONF=/etc/hn-health.conf
HN_RUN_DIR=/run/hn-boot
HN_HEALTH_EXIT_OK=0
HN_HEALTH_EXIT_FAILED=1
HN_HEALTH_EXIT_USAGE=2
HN_HEALTH_EXIT_REBOOT_NEEDED=3
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
HN_SYSRQ=${HN_SYSRQ:-/proc/sysrq-trigger}
# hn.trial as GRUB set it: off, nogrubenv, spent, or one 'x' per trial boot; empty: a grub.cfg without trials.
HN_TRIAL_STATE=${HN_TRIAL_STATE:-}
HN_TRIAL_BUDGET=${HN_TRIAL_BUDGET:-$HN_TRIAL_DEFAULT_BUDGET}
HN_TRIAL_TIMEOUT=${HN_TRIAL_TIMEOUT:-$HN_TRIAL_DEFAULT_TIMEOUT}
# Set to the trial boot's number when this boot is one.
HN_TRIAL_ACTIVE=

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
	echo o >"$HN_SYSRQ"
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

# Never returns: if reboot -f did not happen, the kernel is asked directly
# (sysrq b), and as a last resort the shell exits: as PID 1 that panics the
# kernel, and panic=10 (every GRUB entry) reboots.
hn_hard_stop() {
	sleep 5
	echo b >"$HN_SYSRQ" 2>/dev/null
	sleep 5
	hn_log "reboot did not happen: exiting (init exiting panics the kernel; panic=10 reboots)"
	exit 1
}

# A hard reboot: busybox `reboot` without -f only signals init, which is us.
hn_reboot() {
	hn_log "rebooting now"
	hn_release_hostpart
	reboot -f
	hn_hard_stop
}

hn_poweroff() {
	hn_log "powering off now"
	hn_release_hostpart
	poweroff -f
	hn_hard_stop
}

# Called after each numbered step, before its sync: hn.test.stop_after=N cuts
# the power here, so a test can prove every intermediate state boots.
hn_step() {
	if [ -n "$HN_STOP_AFTER" ] && [ "$HN_STOP_AFTER" = "$1" ]; then
		hn_log "TEST power cut after step $1 ($2)"
		hn_powercut
	fi
}

# Unrecoverable in this boot: say why, then do what hn.onfail says (never a
# prompt). Never returns, even if the reboot does not happen (hn_hard_stop).
hn_fail() {
	hn_log "FAIL: $*"
	case "$HN_ONFAIL" in
	poweroff) hn_log "FAIL outcome: power off ($HN_KP_ONFAIL=poweroff)"; hn_poweroff ;;
	*) hn_log "FAIL outcome: reboot in 5 s ($HN_KP_ONFAIL=reboot)"; sleep 5; hn_reboot ;;
	esac
	hn_hard_stop
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
		"$HN_KP_TRIAL"=*) HN_TRIAL_STATE=${hn_w#*=} ;;
		"$HN_KP_TRIAL_BUDGET"=*) HN_TRIAL_BUDGET=${hn_w#*=} ;;
		"$HN_KP_TRIAL_TIMEOUT"=*) HN_TRIAL_TIMEOUT=${hn_w#*=} ;;
		ro) HN_ROOT_MODE=ro ;;
		rw) HN_ROOT_MODE=rw ;;
		esac
	done
	case "$HN_REAL_ROOT" in /*) ;; *) HN_REAL_ROOT=/$HN_REAL_ROOT ;; esac
	case "$HN_TIMEOUT" in '' | *[!0-9]*) HN_TIMEOUT=30 ;; esac
	case "$HN_TRIAL_BUDGET" in '' | *[!0-9]* | 0) HN_TRIAL_BUDGET=$HN_TRIAL_DEFAULT_BUDGET ;; esac
	[ "$HN_TRIAL_BUDGET" -gt "$HN_TRIAL_MAX_BUDGET" ] && HN_TRIAL_BUDGET=$HN_TRIAL_MAX_BUDGET
	case "$HN_TRIAL_TIMEOUT" in '' | *[!0-9]* | 0) HN_TRIAL_TIMEOUT=$HN_TRIAL_DEFAULT_TIMEOUT ;; esac
	return 0
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
	for hn_f in "$HN_OLD.tmp" "$HN_BROKEN.tmp" "$HN_TRIAL.tmp"; do
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
#   6 write hn-trial.cfg (via .tmp + rename): the new image's boots are trials from now on
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
	if hn_trials_possible; then
		hn_trial_start
		hn_step 6 "wrote $HN_TRIAL"
		hn_sync
	else
		rm -f "$HN_TRIAL"
		hn_report "GRUB on this disk cannot count trial boots ($HN_KP_TRIAL=${HN_TRIAL_STATE:-absent}: $(hn_trial_state_text)): $HN_NEW is promoted without a trial (no automatic rollback)"
	fi
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

# Revert steps, shared by system-revert, a spent trial and an unusable image
# (hn-root-old.img exists and is not hn-root.img; the caller is in $HN_HP):
#  12 link hn-root.img to hn-root-broken.img.tmp
#  13 rename hn-root-broken.img.tmp over hn-root-broken.img
#  14 rename hn-root-old.img over hn-root.img
#  15 remove system-revert and hn-trial.cfg
# A rerun after a power cut converges: broken already linking current skips 12-13;
# after 14 there is no old image left, which every caller reads as "nothing to revert".
hn_revert_files() {
	rm -f "$HN_BROKEN.tmp"
	if [ -e "$HN_BROKEN" ] && [ "$HN_CUR" -ef "$HN_BROKEN" ]; then
		hn_log "$HN_BROKEN already links $HN_CUR (resuming an interrupted revert)"
	else
		ln "$HN_CUR" "$HN_BROKEN.tmp" || { hn_log "cannot link $HN_CUR"; return 1; }
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
	rm -f "$HN_FLAG" "$HN_TRIAL"
	hn_step 15 "removed $HN_FLAG and $HN_TRIAL"
	hn_sync
	hn_trial_note "reverted: $1"
	hn_report "reverted: $HN_OLD is now $HN_CUR, the image it replaced is $HN_BROKEN; reason: $1"
	hn_log "HN-TIME rotate=$(hn_since "${HN_ROTATE_T0:-0}")s (revert)"
	return 0
}

# True when there is an image to go back to.
hn_can_revert() {
	[ -e "$HN_HP/$HN_OLD" ] && ! [ "$HN_HP/$HN_CUR" -ef "$HN_HP/$HN_OLD" ]
}

# Revert (system-revert present). "Nothing to revert" is decided first: with
# no hn-root-old.img (never was, or a revert completed step 14 before a power
# cut) the flag is removed, reported, and everything else (an update waiting)
# proceeds as if the flag had not been there. Otherwise revert always wins over
# an update waiting (11: set aside as hn-root-new.img.skipped), then steps
# 12-15 and reboot -f (GRUB must load the old image's kernel).
hn_revert() {
	if ! hn_can_revert; then
		[ -e "$HN_HP/$HN_OLD" ] && rm -f "$HN_HP/$HN_OLD"
		rm -f "$HN_HP/$HN_FLAG"
		hn_sync
		hn_report "$HN_FLAG present but no $HN_OLD to go back to (nothing to revert, or already reverted): flag removed, booting $HN_CUR"
		return 0
	fi
	cd "$HN_HP" || return 1
	if [ -e "$HN_NEW" ]; then
		hn_set_aside "$HN_NEW" skipped "$HN_FLAG is present; a revert and an update never happen in the same boot"
		hn_step 11 "set $HN_NEW aside"
		hn_sync
	fi
	hn_revert_files "$HN_FLAG was set (an operator asked for the previous image)" || { cd /; return 1; }
	cd / || return 1
	hn_reboot
}

# ------------------------------------------------------------------ trials

# One line in the trial log (kept until the next promotion) and nowhere else.
hn_trial_note() {
	if [ -d "$HN_HP" ] && [ -w "$HN_HP" ]; then
		echo "$(date -u '+%Y-%m-%dT%H:%M:%SZ' 2>/dev/null) $*" >>"$HN_HP/$HN_TRIAL_LOG" 2>/dev/null
	fi
}

# A trial event: console, hn-boot.log and the trial log.
hn_trial_report() {
	hn_report "$*"
	hn_trial_note "$*"
}

hn_trial_state_text() {
	case "$HN_TRIAL_STATE" in
	'') echo "this grub.cfg predates trial boots" ;;
	"$HN_TRIAL_NOGRUBENV") echo "no writable GRUB environment block on EFI-BOOT" ;;
	"$HN_TRIAL_OFF") echo "no trial running" ;;
	"$HN_TRIAL_SPENT") echo "the trial budget is spent" ;;
	*) echo "trial boot ${#HN_TRIAL_STATE}" ;;
	esac
}

# GRUB can count trial boots on this disk: it found its environment block
# (hn.trial=off), or it is counting one now.
hn_trials_possible() {
	case "$HN_TRIAL_STATE" in
	"$HN_TRIAL_OFF" | "$HN_TRIAL_SPENT" | x*) return 0 ;;
	esac
	return 1
}

# A field of hn-trial.cfg's comment line (budget, version, started, id).
hn_trial_field() {
	sed -n "s/^# hn-trial .*\\<$1=\\([^ ]*\\).*/\\1/p" "$HN_HP/$HN_TRIAL" 2>/dev/null | head -n 1
}

# Step 6 of an update: hn-trial.cfg through a temporary name. GRUB sources it;
# the budget is written as that many 'x' (GRUB compares strings, it has no
# arithmetic). The trial log starts afresh.
hn_trial_start() {
	hn_id=$(tr -d '-' </proc/sys/kernel/random/uuid 2>/dev/null)
	[ -n "$hn_id" ] || hn_id="t$(date +%s 2>/dev/null)p$$"
	hn_x=
	hn_i=0
	while [ "$hn_i" -lt "$HN_TRIAL_BUDGET" ]; do hn_x="${hn_x}x"; hn_i=$((hn_i + 1)); done
	hn_ver=$(sed -n 's/^version=//p' "$HN_HP/$HN_SIDECAR" 2>/dev/null | head -n 1 | tr -cd 'A-Za-z0-9._+~-')
	hn_when=$(date -u '+%Y-%m-%dT%H:%M:%SZ' 2>/dev/null)
	{
		echo "# A trial of $HN_CUR is running (boot/README.md). GRUB counts its boots in grubenv on EFI-BOOT;"
		echo "# hn-health's confirmation or a revert removes this file. Written by the initramfs only."
		echo "# hn-trial id=$hn_id budget=$HN_TRIAL_BUDGET version=${hn_ver:-unknown} started=$hn_when"
		echo "set $HN_GRUB_TRIAL_ID=$hn_id"
		echo "set $HN_GRUB_TRIAL_BUDGET=$hn_x"
	} >"$HN_HP/$HN_TRIAL.tmp"
	hn_sync
	mv -f "$HN_HP/$HN_TRIAL.tmp" "$HN_HP/$HN_TRIAL"
	echo "$hn_when promoted version ${hn_ver:-unknown}: trial $hn_id, budget $HN_TRIAL_BUDGET boots" >"$HN_HP/$HN_TRIAL_LOG"
}

# What the trial log says about the boots so far, for a revert's reason.
hn_trial_last() {
	if ! grep -q 'initramfs reached' "$HN_HP/$HN_TRIAL_LOG" 2>/dev/null; then
		echo "no trial boot reached the initramfs (kernel panic, or GRUB could not load it)"
		return 0
	fi
	hn_l=$(grep -v 'initramfs reached' "$HN_HP/$HN_TRIAL_LOG" | grep -v ' promoted version ' | tail -n 1 | cut -d' ' -f2-)
	if [ -n "$hn_l" ]; then
		echo "last report: $hn_l"
	else
		hn_l=$(tail -n 1 "$HN_HP/$HN_TRIAL_LOG" | cut -d' ' -f2-)
		echo "last report: $hn_l; nothing after it (the initramfs failed later, or userspace never ran hn-health: hung, or the watchdog fired)"
	fi
}

# The trial image is bad: revert now. $1: why. Booted through GRUB's previous
# entry (real_root=/hn-root-old.img, that image's own kernel running) the boot
# goes on with the reverted hn-root.img (the same file): no extra reboot.
# Booted with the trial image's kernel, reboot so GRUB loads the old one.
hn_trial_revert() {
	if ! hn_can_revert; then
		rm -f "$HN_HP/$HN_TRIAL"
		hn_sync
		hn_trial_report "trial ended without a revert: no $HN_OLD to go back to ($1); booting $HN_CUR"
		HN_REAL_ROOT=/$HN_CUR
		return 0
	fi
	cd "$HN_HP" || return 1
	hn_revert_files "$1" || { cd /; return 1; }
	cd / || return 1
	if [ "$HN_REAL_ROOT" = "/$HN_OLD" ]; then
		HN_REAL_ROOT=/$HN_CUR
		hn_flush_hostpart || return 1
		return 0
	fi
	hn_reboot
}

# Unmount and mount the host partition again: the ext4 journal is checkpointed,
# so GRUB (which does not replay it) sees what this boot renamed.
hn_flush_hostpart() {
	hn_sync
	cd / || return 1
	umount "$HN_HP" 2>/dev/null || { hn_log "cannot unmount $HN_HP to flush it"; return 0; }
	mount -o rw,noatime "$HN_HOSTPART_DEV" "$HN_HP" || { hn_log "cannot mount $HN_HOSTPART_DEV at $HN_HP again"; return 1; }
	return 0
}

# hn-root.img is on trial (hn-trial.cfg present, booted through the default entry).
hn_trial_boot() {
	hn_budget=$(hn_trial_field budget)
	case "$HN_TRIAL_STATE" in
	x*)
		HN_TRIAL_ACTIVE=${#HN_TRIAL_STATE}
		hn_trial_report "trial boot $HN_TRIAL_ACTIVE of ${hn_budget:-?} of $HN_CUR (version $(hn_trial_field version)): initramfs reached"
		return 0
		;;
	"$HN_TRIAL_SPENT")
		# GRUB found no hn-root-old.img to boot (or a stale directory hid it).
		if hn_can_revert; then
			hn_trial_revert "the trial budget of ${hn_budget:-?} boots is spent without a confirmation; $(hn_trial_last)"
			return $?
		fi
		hn_trial_revert "the trial budget is spent"
		return $?
		;;
	"$HN_TRIAL_OFF")
		# GRUB did not see the file (a directory it read before the journal
		# reached it): not counted, but watched; the flush below shows it to GRUB.
		HN_TRIAL_ACTIVE=uncounted
		hn_trial_report "trial boot (not counted: GRUB did not see $HN_TRIAL) of $HN_CUR: initramfs reached"
		hn_flush_hostpart
		return $?
		;;
	esac
	# GRUB cannot count (nogrubenv, or a grub.cfg without trials): a panic would
	# loop forever, so the trial ends here, with the image it came from.
	hn_trial_revert "GRUB cannot count this trial's boots ($(hn_trial_state_text))"
}

# A trial boot of the image about to become root: the watchdog is armed with
# the trial timeout; only hn-health (which finds the device in $HN_RUN_DIR)
# stops it. Opening and closing the device without writing 'V' leaves it
# running (the kernel's watchdog API), so no process has to stay alive for it.
command -v hn_load_watchdog >/dev/null 2>&1 || hn_load_watchdog() { modprobe softdog soft_margin="$1" 2>/dev/null; }
hn_trial_arm() {
	[ -n "$HN_TRIAL_ACTIVE" ] || return 0
	mkdir -p "$HN_RUN_DIR"
	echo "boot=$HN_TRIAL_ACTIVE timeout=$HN_TRIAL_TIMEOUT" >"$HN_RUN_DIR/trial"
	hn_load_watchdog "$HN_TRIAL_TIMEOUT"
	hn_wd=
	for hn_d in /sys/class/watchdog/watchdog*; do
		[ "$(cat "$hn_d/identity" 2>/dev/null)" = "Software Watchdog" ] && hn_wd=/dev/${hn_d##*/}
	done
	[ -n "$hn_wd" ] || hn_wd=/dev/watchdog
	if [ -c "$hn_wd" ] && echo 1 >"$hn_wd" 2>/dev/null; then
		echo "$hn_wd" >"$HN_RUN_DIR/watchdog"
		hn_log "trial boot: watchdog $hn_wd armed: no confirmation within $HN_TRIAL_TIMEOUT s reboots"
	else
		hn_trial_report "trial boot: no watchdog could be armed: a userspace that hangs before hn-health is not caught"
	fi
	return 0
}

# The whole decision. Returns 0 when the image in $HN_REAL_ROOT should boot
# now (nothing to do, nothing could be done, or a revert completed in this
# boot); after any other rotation it reboots.
hn_rotate() {
	HN_ROTATE_T0=$(hn_now)
	if [ "$HN_REAL_ROOT" != "/$HN_CUR" ]; then
		hn_rotate_fallback
		return $?
	fi
	hn_cleanup_leftovers || return 1
	if [ -e "$HN_HP/$HN_FLAG" ]; then
		hn_revert || return 1
	fi
	if [ -e "$HN_HP/$HN_TRIAL" ]; then
		if [ -e "$HN_HP/$HN_NEW" ] && [ -e "$HN_HP/$HN_OLD" ] && [ "$HN_HP/$HN_CUR" -ef "$HN_HP/$HN_OLD" ]; then
			hn_log "$HN_TRIAL and $HN_NEW present, $HN_OLD already links $HN_CUR: resuming an interrupted update"
		else
			hn_trial_boot || return 1
			[ "$HN_REAL_ROOT" = "/$HN_CUR" ] || return 0
			if [ -e "$HN_HP/$HN_TRIAL" ]; then
				[ -e "$HN_HP/$HN_NEW" ] && hn_log "$HN_NEW waits: $HN_CUR is on trial"
				hn_log "HN-TIME rotate=$(hn_since "$HN_ROTATE_T0")s: boot $HN_CUR (trial)"
				return 0
			fi
		fi
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

# Booted through GRUB's previous entry (real_root other than /hn-root.img).
# During a trial that is the trial's end: GRUB spent the budget, or could not
# load the trial image's kernel. Otherwise files are left alone, except that a
# missing hn-root.img is restored, and a stale GRUB view (it booted an old
# image that is gone, or a trial that has ended) is flushed and rebooted once.
hn_rotate_fallback() {
	if [ "$HN_REAL_ROOT" = "/$HN_OLD" ]; then
		[ ! -e "$HN_HP/$HN_CUR" ] && hn_cleanup_leftovers && HN_REAL_ROOT=/$HN_CUR && return 0
		if [ -e "$HN_HP/$HN_TRIAL" ]; then
			if [ "$HN_TRIAL_STATE" = "$HN_TRIAL_SPENT" ]; then
				hn_trial_revert "the trial budget of $(hn_trial_field budget) boots is spent without a confirmation; $(hn_trial_last)"
			else
				hn_trial_revert "GRUB booted $HN_OLD during the trial (it could not load $HN_CUR, or its previous entry was chosen); $(hn_trial_last)"
			fi
			return $?
		fi
		if [ "$HN_TRIAL_STATE" = "$HN_TRIAL_SPENT" ] || [ ! -e "$HN_HP/$HN_OLD" ]; then
			hn_report "GRUB booted $HN_OLD from a stale view of the host partition (the trial has ended, or the image is gone): flushing it and rebooting into $HN_CUR"
			hn_reboot
		fi
	fi
	hn_log "booting $HN_REAL_ROOT (not $HN_CUR): no rotation"
	return 0
}

# The current image is bad (its filesystem does not mount, no /sbin/init, no
# /hostpart): go back to hn-root-old.img if there is one, else fail. Not for
# failures of this boot (hn_fail directly): those must not demote a good image.
hn_image_unusable() {
	hn_report "$HN_REAL_ROOT is unusable: $1"
	if [ "$HN_REAL_ROOT" = "/$HN_CUR" ] && hn_can_revert; then
		hn_report "automatic revert to $HN_OLD"
		cd "$HN_HP" || hn_fail "cannot enter $HN_HP"
		hn_revert_files "$HN_CUR is unusable: $1" || hn_fail "revert failed"
		cd / || true
		hn_reboot
	fi
	hn_fail "no usable image on $HN_HOSTPART ($1)"
}

# Loop devices can be made in this boot (the loop driver is loaded or built in).
hn_loop_ready() {
	[ -e /dev/loop-control ] || [ -d /sys/module/loop ] || [ -b /dev/loop0 ]
}

# The filesystem of image $1 is one this kernel can mount (else this boot failed, not the image).
hn_image_fs_known() {
	case "$(hn_fstype "$1")" in
	ext) grep -qw ext4 /proc/filesystems 2>/dev/null ;;
	btrfs) grep -qw btrfs /proc/filesystems 2>/dev/null ;;
	*) return 0 ;;
	esac
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
		hn_loop_ready || hn_fail "this boot failed, not the image: no loop device support (loop module not loaded?); $hn_img left as it is"
		hn_image_fs_known "$hn_img" || hn_fail "this boot failed, not the image: this kernel cannot mount the image's $(hn_fstype "$hn_img") filesystem (module not loaded?); $hn_img left as it is"
		hn_image_unusable "loop mount of $hn_img failed (its filesystem does not mount)"
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
	hn_trial_arm
	# The host partition goes into the new root where the running system
	# expects it (/hostpart): visible there, never a hidden rw mount.
	if ! mount --move "$HN_HP" "$1/hostpart"; then
		umount "$1"
		hn_fail "this boot failed: cannot move $HN_HP into the image's /hostpart"
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
# The same mismatch on the next boot is persistent (an image built that way):
# it is settled, logged once, and never costs a reboot again; a different
# mismatch starts over.
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
		[ -e "$HN_HP/$HN_MISMATCH" ] && rm -f "$HN_HP/$HN_MISMATCH"
		return 0
	fi
	hn_pair="${hn_mine##* } ${hn_theirs##* }"
	case "$(cat "$HN_HP/$HN_MISMATCH" 2>/dev/null)" in
	"settled $hn_pair")
		hn_log "kernel/initramfs $hn_mine does not belong to $HN_REAL_ROOT ($hn_theirs): settled earlier (see $HN_LOG), booting"
		return 0
		;;
	"pending $hn_pair")
		echo "settled $hn_pair" >"$HN_HP/$HN_MISMATCH"
		hn_report "kernel/initramfs $hn_mine does not belong to $HN_REAL_ROOT ($hn_theirs), second boot in a row: persistent, settled: booting anyway, no more reboots for this pair"
		return 0
		;;
	esac
	hn_report "GRUB loaded kernel/initramfs $hn_mine but $HN_REAL_ROOT holds $hn_theirs (stale directory after a power cut?): flushing the host partition and rebooting"
	echo "pending $hn_pair" >"$HN_HP/$HN_MISMATCH"
	umount "$1" 2>/dev/null
	hn_reboot
}
