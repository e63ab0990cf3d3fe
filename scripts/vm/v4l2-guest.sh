#!/bin/busybox sh
# /init of the V4L2 VM (see scripts/vm/v4l2.sh). Kernel command-line word BENCH=1 runs the
# benchmark instead (benches/v4l2_capture.sh). "GUEST: ..." lines on the serial console.
#
# 1. vivid, a real kernel V4L2 driver, as the camera: dashcam records YUYV 640x360
#    (encoded to JPEG at raw_fps 4, the frame interval set to match) onto a vfat disk;
#    while it runs, vivid drops 40 % of its buffers for a while (sequence gaps) and is
#    disconnected twice (ENODEV; vivid reconnects when the last handle closes).
# 2. v4l2loopback (built out of tree) fed with real MJPEG frames (/dev/video10) and real
#    libx264 access units (/dev/video11) by /feed; dashcam records each until the feed
#    ends (a stall: the segment is closed whole).
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "GUEST: $*"; }
for m in virtio_pci virtio_blk vfat nls_cp437 nls_ascii nls_iso8859_1 nls_utf8 9pnet_virtio 9p; do
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
modprobe v4l2loopback devices=2 video_nr=10,11 || say "no v4l2loopback"

# cpu_per_min PID: user+system CPU seconds the process uses per minute, over 30 s.
cpu_of() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
cpu_per_min() {
    sleep 5
    a=$(cpu_of "$1")
    sleep 30
    b=$(cpu_of "$1")
    awk -v a="$a" -v b="$b" -v hz="$(getconf CLK_TCK 2>/dev/null || echo 100)" 'BEGIN { printf "%.2f", (b - a) / hz * 2 }'
}
# ffmpeg from the host (read-only 9p share), with its own loader and libraries; exec, so
# that the background job's pid is ffmpeg's.
ffmpeg_host() {
    exec "$(cat /ffmpeg-loader)" --library-path "$(cat /ffmpeg-libpath)" \
        /host/usr/bin/ffmpeg -nostdin -hide_banner -loglevel error "$@"
}
if [ "${BENCH:-0}" = 1 ]; then
    mkdir -p /host
    mount -t 9p -o trans=virtio,version=9p2000.L,ro host /host || say "no 9p share"
    ctl -v width=640,height=360,pixelformat=YUYV
    /dashcam run --config /bench-yuyv.toml >/mnt/bench-yuyv.log 2>&1 &
    pid=$!
    say "BENCH dashcam v4l2 YUYV 640x360 -> JPEG 2 fps: $(cpu_per_min $pid) CPU s/min"
    kill -TERM $pid; wait $pid
    ffmpeg_host -f v4l2 -input_format yuyv422 -video_size 640x360 -framerate 2 -i /dev/video0 -c copy -y /mnt/ffmpeg-yuyv.avi &
    pid=$!
    say "BENCH ffmpeg -f v4l2 YUYV 640x360 2 fps -c copy (into AVI): $(cpu_per_min $pid) CPU s/min"
    kill -TERM $pid; wait $pid
    /feed /dev/video10 mjpeg 1280 720 30 /bench720.mjpeg 100 >/dev/null &
    fpid=$!
    sleep 1
    touch /dev/video10.go
    sleep 1
    /dashcam run --config /bench-mjpeg.toml >/mnt/bench-mjpeg.log 2>&1 &
    pid=$!
    say "BENCH dashcam v4l2 MJPEG 1280x720 30 fps: $(cpu_per_min $pid) CPU s/min"
    kill -TERM $pid; wait $pid
    ffmpeg_host -f v4l2 -input_format mjpeg -i /dev/video10 -c copy -y /mnt/ffmpeg-mjpeg.avi &
    pid=$!
    say "BENCH ffmpeg -f v4l2 MJPEG 1280x720 30 fps -c copy (into AVI): $(cpu_per_min $pid) CPU s/min"
    kill -TERM $pid; wait $pid
    kill $fpid
    sync
    umount /mnt
    say "done"
    poweroff -f
fi
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

# loopback NAME DEVICE KIND WIDTH HEIGHT FILE: feed, record until the feed stalls.
loopback() {
    /feed "$2" "$3" "$4" "$5" 30 "$6" >"/mnt/$1-feed.txt" 2>&1 &
    fpid=$!
    sleep 1
    /dashcam run --config "/$1.toml" >"/mnt/$1.log" 2>&1 &
    pid=$!
    i=0
    while ! grep -q "at .* fps (asked" "/mnt/$1.log" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    sleep 1
    touch "$2.go"
    wait $fpid
    say "$1: $(cat "/mnt/$1-feed.txt")"
    sleep 4
    kill -TERM $pid
    wait $pid
    say "$1: dashcam exited $?"
}
loopback loop-mjpeg /dev/video10 mjpeg 640 360 /in.mjpeg
loopback loop-h264 /dev/video11 h264 640 360 /in.h264
sync
umount /mnt
say "done"
poweroff -f
