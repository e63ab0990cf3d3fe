#!/bin/busybox sh
# /init of the power-cut VM (see scripts/vm/power-cut.sh). Kernel command-line words
# SCENARIO=cycle|enospc|vanish, FS=vfat|ext4, DEV=/dev/vda reach it as variables.
# It prints "GUEST: ..." lines on the serial console for the host to follow.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "GUEST: $*"; }
for m in virtio_pci virtio_blk virtio_scsi sd_mod crc32c_generic ext4 vfat nls_cp437 nls_ascii nls_iso8859_1 nls_utf8; do
    modprobe "$m" 2>/dev/null
done
wait_dev() {
    i=0
    while [ ! -b "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    [ -b "$1" ]
}
mount_disk() {
    wait_dev "$1" || { say "no disk $1"; return 1; }
    if [ "$FS" = vfat ]; then /sbin/fsck.fat -a "$1" >/dev/null 2>&1; fi
    mount -t "$FS" "$1" /mnt
}
finish() {
    sync
    umount /mnt 2>/dev/null
    say "done"
    poweroff -f
}
mkdir -p /mnt
export RUST_LOG=info
export TZ=UTC

case "$SCENARIO" in
cycle)
    # Record until killed (or until the input ends): the host cuts the power.
    mount_disk "$DEV" || finish
    say "mounted"
    /dashcam run --config /cycle.toml
    say "dashcam exited $?"
    finish
    ;;
enospc)
    mount_disk "$DEV" || finish
    # A: 3 MiB free, then another writer grabs all of it: ENOSPC while old segments can
    # still go (the keeper deletes, the writer retries the same fragment).
    avail=$(df -k /mnt | awk 'NR==2 { print $4 }')
    dd if=/dev/zero of=/mnt/filler bs=1k count=$((avail - 3072)) 2>/dev/null
    sync
    say "phase A: $(df -k /mnt | awk 'NR==2 { print $4 }') KiB free"
    /dashcam run --config /enospc-a.toml &
    pid=$!
    sleep 8
    dd if=/dev/zero of=/mnt/filler2 bs=4k 2>/dev/null
    sync
    say "phase A: disk filled ($(df -k /mnt | awk 'NR==2 { print $4 }') KiB free)"
    wait $pid
    say "phase A exited $?"
    rm -f /mnt/filler /mnt/filler2
    # B: one long segment and nothing to delete: ENOSPC stalls the writer until space is
    # freed (here: by this script, 4 s after the writer reported the full disk).
    avail=$(df -k /mnt | awk 'NR==2 { print $4 }')
    dd if=/dev/zero of=/mnt/filler bs=1k count=$((avail - 512)) 2>/dev/null
    sync
    say "phase B: $(df -k /mnt | awk 'NR==2 { print $4 }') KiB free"
    : >/tmp/b.log
    /dashcam run --config /enospc-b.toml >/tmp/b.log 2>&1 &
    pid=$!
    tail -f /tmp/b.log &
    tailpid=$!
    i=0
    while ! grep -q "disk full" /tmp/b.log && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    sleep 4
    rm -f /mnt/filler
    sync
    say "phase B: space freed"
    wait $pid
    say "phase B exited $?"
    sleep 0.5
    kill $tailpid
    finish
    ;;
vanish)
    export RUST_LOG=info,dashcam::recorder::writer=debug
    mount_disk "$DEV" || finish
    say "mounted"
    /dashcam run --config /vanish.toml &
    pid=$!
    sleep 5
    say "removing the drive"
    echo 1 >/sys/block/sda/device/delete
    sleep 1
    umount -l /mnt
    sleep 2
    say "drive back"
    echo "- - -" >/sys/class/scsi_host/host0/scan
    i=0
    while ! ls /dev/sd? >/dev/null 2>&1 && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    dev=$(ls /dev/sd? | head -n 1)
    mount_disk "$dev" || say "remount of $dev failed"
    say "remounted $dev: $(ls /mnt | tr '\n' ' ')"
    wait $pid
    say "dashcam exited $?"
    finish
    ;;
*)
    say "unknown SCENARIO=$SCENARIO"
    finish
    ;;
esac
