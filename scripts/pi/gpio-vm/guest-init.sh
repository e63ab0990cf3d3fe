#!/bin/busybox sh
# /init of the GPIO VM (scripts/pi/gpio-vm/run.sh): a gpio-sim chip on a real GPIO
# character device, the real dashcam binary with its GPIO role on it, and the lines driven
# from sysfs as a button, an ignition wire and an LED would be. Prints "GUEST: ..." lines on
# the serial console; the last is "GUEST: PASS" or "GUEST: FAIL: why".
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
say() { echo "GUEST: $*"; }
finish() {
    sync
    poweroff -f
}
fail() {
    say "FAIL: $*"
    [ -f /tmp/log ] && tail -40 /tmp/log | sed 's/^/GUEST-LOG: /'
    finish
}
# wait_log PATTERN SECONDS [COUNT]: until the dashcam log has PATTERN (COUNT times).
wait_log() {
    i=0
    while [ "$(grep -c "$1" /tmp/log 2>/dev/null)" -lt "${3:-1}" ]; do
        sleep 0.2
        i=$((i + 1))
        [ $i -lt $(($2 * 5)) ] || return 1
    done
}
# count EXT: files of that extension under the footage directory (locked ones included).
count() { find /tmp/footage -name "*.$1" 2>/dev/null | wc -l; }

insmod /configfs.ko || fail "insmod configfs"
mount -t configfs none /sys/kernel/config || fail "mount configfs"
insmod /gpio-sim-oot.ko || fail "insmod gpio-sim (built out of tree)"
c=/sys/kernel/config/gpio-sim/chip0
mkdir $c $c/bank0
echo 8 >$c/bank0/num_lines
echo 1 >$c/live || fail "gpio-sim chip not live"
chip=$(cat $c/bank0/chip_name)
dev=$(cat $c/dev_name)
sim=/sys/devices/platform/$dev/$chip
[ -c /dev/$chip ] || fail "no /dev/$chip"
say "gpio-sim: /dev/$chip ($dev), $(cat $c/bank0/num_lines) lines"

BUTTON=1
LED=2
IGN=3
pull() { echo "$2" >$sim/sim_gpio$1/pull; }
led() { cat $sim/sim_gpio$LED/value; }
# led_samples N: N samples of the LED, 0.2 s apart, as a string of 0/1.
led_samples() {
    s=""
    n=0
    while [ $n -lt "$1" ]; do
        s="$s$(led)"
        sleep 0.2
        n=$((n + 1))
    done
    echo "$s"
}

cat >/tmp/dashcam.toml <<EOF
source = "test"
dir = "/tmp/footage"
sync_interval = 0.5
segment_seconds = 3600
idle_timeout = 60
min_free = "0"

[test_pattern]
width = 160
height = 96
fps = 10
quality = 50

[gpio]
enabled = true
chip = "/dev/$chip"
button_line = $BUTTON
led_line = $LED
ignition_line = $IGN
debounce_ms = 20
long_press_seconds = 1.5
stop_delay = 3.0
shutdown_delay = 2.0
shutdown_command = ["/bin/sh", "-c", "date +%s >> /tmp/shutdown-ran"]
EOF
/dashcam check-config /tmp/dashcam.toml >/dev/null || fail "check-config"

RUST_LOG=info TZ=UTC /dashcam run --config /tmp/dashcam.toml >/tmp/log 2>&1 &
pid=$!
wait_log "GPIO role on" 60 || fail "the GPIO role did not start"
# The role asked for a pull-down on the ignition input (its rest state: off). The car's
# ignition is on: drive it high before stop_delay runs out.
pull $IGN pull-up
i=0
until [ "$(cat $sim/sim_gpio$IGN/value)" = 1 ]; do
    sleep 0.1
    i=$((i + 1))
    [ $i -lt 20 ] || fail "the ignition line does not read high after its pull-up"
done
say "role started, lines requested: $(grep -m1 -o 'GPIO role on.*' /tmp/log); ignition line high"

i=0
while [ "$(count avi)" -lt 1 ]; do
    sleep 0.2
    i=$((i + 1))
    [ $i -lt 150 ] || fail "nothing recorded"
done
sleep 2
s=$(led_samples 10)
[ "$s" = 1111111111 ] || fail "LED not steady on while recording: $s (ignition line reads $(cat $sim/sim_gpio$IGN/value))"
say "recording; LED steady on: $s"

# Short press: the event lock request reaches the writer.
pull $BUTTON pull-down
sleep 0.3
pull $BUTTON pull-up
wait_log "short press: locking the current event" 10 || fail "short press not seen"
grep -q "long press" /tmp/log && fail "a short press was taken for a long one"
say "short press: $(grep -o 'button: short press.*' /tmp/log | head -1)"

# Ignition off: stop after stop_delay, LED off, segment closed, shutdown command after
# shutdown_delay; the ignition back on: recording again.
pull $IGN pull-down
t0=$(date +%s)
wait_log "ignition off: stopping cleanly" 15 || fail "ignition off not acted on"
t1=$(date +%s)
[ $((t1 - t0)) -ge 2 ] || fail "stopped $((t1 - t0)) s after the ignition went off (stop_delay 3 s)"
wait_log "stopped: ignition off; waiting" 20 || fail "did not park"
[ "$(count json)" -ge 1 ] || fail "no metadata: the segment was not closed"
s=$(led_samples 5)
[ "$s" = 00000 ] || fail "LED not off while stopped: $s"
i=0
while [ ! -f /tmp/shutdown-ran ]; do
    sleep 0.2
    i=$((i + 1))
    [ $i -lt 100 ] || fail "the shutdown command did not run"
done
say "ignition off: stopped after ~$((t1 - t0)) s, segment closed, LED off, shutdown command ran"
pull $IGN pull-up
wait_log "ignition on: recording again" 10 || fail "ignition on did not resume"
# The new run requests the lines again, and gpio-sim takes the requested bias (pull-down)
# as the line's new level; a real ignition wire keeps driving the line high. Drive it
# again, as the wire would, before stop_delay runs out.
wait_log "GPIO role on" 30 2 || fail "the GPIO role did not start again"
pull $IGN pull-up
i=0
while [ "$(count avi)" -lt 2 ]; do
    sleep 0.2
    i=$((i + 1))
    [ $i -lt 150 ] || fail "no new segment after resuming"
done
sleep 2
s=$(led_samples 5)
[ "$s" = 11111 ] || fail "LED not back on: $s"
say "ignition on: recording again in a new segment, LED on"

# Long press: clean stop while still held, then the shutdown command at once.
pull $BUTTON pull-down
wait_log "long press: stopping cleanly" 10 || fail "long press not seen"
pull $BUTTON pull-up
wait_log "stopped by a long press" 20 || fail "did not park after the long press"
i=0
while [ "$(wc -l </tmp/shutdown-ran)" -lt 2 ]; do
    sleep 0.2
    i=$((i + 1))
    [ $i -lt 50 ] || fail "no shutdown command after the long press"
done
say "long press: stopped cleanly, shutdown command ran"

kill -TERM $pid
wait $pid
rc=$?
[ $rc = 0 ] || fail "dashcam exited $rc after SIGTERM"
[ "$(count json)" -ge 2 ] || fail "segments not all closed"
grep -q panicked /tmp/log && fail "dashcam panicked"
say "footage: $(find /tmp/footage -type f | tr '\n' ' ')"
say "PASS"
finish
