#!/bin/busybox sh
# /init of the V4L2 VM (see scripts/vm/v4l2.sh): vivid, a real kernel V4L2 driver, as the
# camera. dashcam records YUYV 320x180 (encoded to JPEG at raw_fps 5, the frame interval
# set to match) onto a vfat disk; while it runs, vivid drops 40 % of its buffers for a
# while (sequence gaps) and is disconnected twice (ENODEV; vivid reconnects when the last
# handle closes). "GUEST: ..." lines on the serial console for the host.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "GUEST: $*"; }
for m in virtio_pci virtio_blk vfat nls_cp437 nls_ascii nls_iso8859_1 nls_utf8; do
    modprobe "$m" 2>/dev/null
done
modprobe vivid n_devs=1 node_types=0x1 input_types=0x0 num_inputs=1 || say "no vivid"
i=0
while [ ! -c /dev/video0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /mnt
mount -t vfat /dev/vda /mnt || say "cannot mount the disk"
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu RUST_LOG=info TZ=UTC
ctl() { /bin/v4l2-ctl -d /dev/video0 "$@"; }
/dashcam cameras >/mnt/cameras.txt 2>&1
say "cameras listed"
/dashcam run --config /v4l2.toml >/mnt/dashcam.log 2>&1 &
pid=$!
sleep 6
ctl -c percentage_of_dropped_buffers=40 && say "dropping 40 %"
sleep 4
ctl -c percentage_of_dropped_buffers=0 && say "dropping 0 %"
sleep 2
ctl -c disconnect=1 && say "disconnect 1"
sleep 5
ctl -c disconnect=1 && say "disconnect 2"
sleep 4
kill -TERM $pid
wait $pid
say "dashcam exited $?"
sync
umount /mnt
say "done"
poweroff -f
