#!/usr/bin/env python3
"""The web role under load while recording (run by benches/web_load.sh; not a test).

dashcam (the dist binary) records a live H.264 stream in real time from standard input
(bench1080.h264, 1920x1080 30 fps ~12 Mbit/s, paced at its native rate) with its web role
on. Then, in order:

  idle   recording only: the CPU the recorder itself takes;
  web    8 parallel downloads of footage segments from dashcam (curl, loopback, as fast as
         it goes) plus a phone page polling /api/status every 2 s and /api/segments every
         10 s;
  nginx  the same 8 downloads of the same files from nginx (Debian's, sendfile on, one
         worker), in the same run, while dashcam keeps recording.

Printed: frames dropped, the worst gap between two fdatasyncs seen in /api/status
(sampled every 50 ms: it bounds the sync delay), dashcam's peak RSS, download MB/s and
CPU seconds per GB served for dashcam (its CPU above the idle phase's rate) and nginx.
Targets: 0 dropped, worst sync gap within sync_interval (+ 0.1 s for the sampling),
RSS <= 16 MiB with 8 clients, CPU per GB <= 2x nginx's.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BIN, INPUT, SECONDS = sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 20.0
TICK = os.sysconf("SC_CLK_TCK")
SYNC_INTERVAL = 1.0


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / TICK


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def downloads(base, names, seconds, counter):
    """8 curl loops fetching the files until `seconds` pass; counts the bytes."""
    stop = time.time() + seconds
    lock = threading.Lock()

    def one(i):
        k = i
        while time.time() < stop:
            name = names[k % len(names)]
            k += 1
            out = subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", f"{base}/{name}"],
                capture_output=True, text=True)
            try:
                n = int(out.stdout.strip() or 0)
            except ValueError:
                n = 0
            with lock:
                counter[0] += n

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    return threads


def main():
    work = tempfile.mkdtemp(prefix="dashcam-webload-")
    footage = os.path.join(work, "footage")
    # Footage to serve: the input recorded once, fast, in 15-s segments (~22 MB each).
    subprocess.run([BIN, "run", "--source", f"file:{INPUT}", "--fast", "--dir", footage,
                    "--segment-seconds", "15"], check=True, stderr=subprocess.DEVNULL)
    names = sorted(n for n in os.listdir(footage) if n.endswith(".mp4"))
    sizes = [os.path.getsize(os.path.join(footage, n)) for n in names]
    print(f"serving {len(names)} segments of {min(sizes) >> 20}-{max(sizes) >> 20} MiB")

    config = os.path.join(work, "dashcam.toml")
    with open(config, "w") as f:
        f.write('[web]\nlisten = "127.0.0.1:0"\n')
    # The input four times over: long enough for every phase.
    feeder = subprocess.Popen(["cat", INPUT, INPUT, INPUT, INPUT], stdout=subprocess.PIPE)
    dashcam = subprocess.Popen(
        [BIN, "run", "--config", config, "--source", "-", "--dir", footage,
         "--segment-seconds", "10", "--sync-interval", str(SYNC_INTERVAL)],
        stdin=feeder.stdout, stderr=subprocess.PIPE, text=True)
    feeder.stdout.close()
    addr = None
    log = []
    deadline = time.time() + 30
    while addr is None and time.time() < deadline:
        line = dashcam.stderr.readline()
        log.append(line)
        if "serving the phone page on http://" in line:
            addr = line.split("http://", 1)[1].split("/", 1)[0]
    if addr is None:
        dashcam.kill()
        sys.exit("dashcam did not serve:\n" + "".join(log))
    threading.Thread(target=lambda: [log.append(l) for l in dashcam.stderr], daemon=True).start()
    base = f"http://{addr}"

    # Wait for recording to run.
    while get_json(base + "/api/status")["frames_on_disk"] < 60:
        time.sleep(0.2)

    worst = {"idle": 0.0, "web": 0.0, "nginx": 0.0}
    peak = {"idle": 0, "web": 0, "nginx": 0}
    phase = ["idle"]
    sampling = [True]

    def sampler():
        while sampling[0]:
            try:
                s = get_json(base + "/api/status")
                age = s.get("last_sync_age_s") or 0.0
                worst[phase[0]] = max(worst[phase[0]], age)
            except OSError:
                pass
            peak[phase[0]] = max(peak[phase[0]], rss_kib(dashcam.pid))
            time.sleep(0.05)

    threading.Thread(target=sampler, daemon=True).start()
    dropped0 = get_json(base + "/api/status")["frames_dropped"]

    # idle
    c0, t0 = cpu_seconds([dashcam.pid]), time.time()
    time.sleep(SECONDS / 2)
    idle_rate = (cpu_seconds([dashcam.pid]) - c0) / (time.time() - t0)

    # web: 8 downloads + the page polling
    phase[0] = "web"
    served = [0]
    c0, t0 = cpu_seconds([dashcam.pid]), time.time()
    threads = downloads(base + "/footage", names, SECONDS, served)
    polls = 0
    while any(t.is_alive() for t in threads):
        get_json(base + "/api/status")
        if polls % 5 == 0:
            get_json(base + "/api/segments")
        polls += 1
        time.sleep(2)
    for t in threads:
        t.join()
    dt = time.time() - t0
    web_cpu = cpu_seconds([dashcam.pid]) - c0 - idle_rate * dt
    web_bytes = served[0]
    web_dt = dt

    # nginx on the same files, dashcam still recording
    phase[0] = "nginx"
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""user root;
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path {work}/nginx-body;
  proxy_temp_path {work}/nginx-proxy;
  fastcgi_temp_path {work}/nginx-fastcgi;
  uwsgi_temp_path {work}/nginx-uwsgi;
  scgi_temp_path {work}/nginx-scgi;
  types {{ video/mp4 mp4; }}
  server {{ listen 127.0.0.1:18089; root {footage}; }}
}}
""")
    nginx = subprocess.Popen(["nginx", "-c", conf, "-p", work], stderr=subprocess.DEVNULL)
    time.sleep(1)
    pids = [nginx.pid] + [int(p) for p in subprocess.run(
        ["pgrep", "-P", str(nginx.pid)], capture_output=True, text=True).stdout.split()]
    served = [0]
    c0, t0 = cpu_seconds(pids), time.time()
    threads = downloads("http://127.0.0.1:18089", names, SECONDS, served)
    for t in threads:
        t.join()
    ng_dt = time.time() - t0
    ng_cpu = cpu_seconds(pids) - c0
    ng_bytes = served[0]
    nginx.send_signal(signal.SIGQUIT)
    nginx.wait(timeout=10)

    sampling[0] = False
    status = get_json(base + "/api/status")
    dropped = status["frames_dropped"] - dropped0
    if ng_bytes == 0:
        print(open(f"{work}/nginx-error.log").read()[-2000:])
    dashcam.send_signal(signal.SIGTERM)
    dashcam.wait(timeout=30)
    metas = [json.load(open(os.path.join(footage, n)))
             for n in os.listdir(footage) if n.endswith(".json")]
    dropped_meta = sum(m.get("dropped_frames", 0) for m in metas)

    gb = 1e9
    web_cpu_gb = web_cpu / (web_bytes / gb) if web_bytes else float("nan")
    ng_cpu_gb = ng_cpu / (ng_bytes / gb) if ng_bytes else float("nan")
    print(f"recording {os.path.basename(INPUT)} live (stdin, real time), sync_interval {SYNC_INTERVAL} s")
    print(f"{'':24}{'dashcam':>12}{'nginx':>12}")
    print(f"{'downloads MB/s':24}{web_bytes / web_dt / 1e6:12.1f}{ng_bytes / ng_dt / 1e6:12.1f}")
    print(f"{'served GB':24}{web_bytes / gb:12.2f}{ng_bytes / gb:12.2f}")
    print(f"{'CPU s per GB served':24}{web_cpu_gb:12.3f}{ng_cpu_gb:12.3f}")
    print(f"recorder idle CPU: {idle_rate * 100:.1f} % of a core")
    print(f"frames dropped: {dropped} (status), {dropped_meta} (segment metadata)")
    print(f"worst sync gap: idle {worst['idle']:.2f} s, with dashcam downloads {worst['web']:.2f} s, "
          f"with nginx downloads {worst['nginx']:.2f} s")
    print(f"dashcam peak RSS: idle {peak['idle'] / 1024:.1f} MiB, with 8 downloads {peak['web'] / 1024:.1f} MiB")
    alive = dashcam.returncode == 0 and status["state"] == "recording"
    print(f"dashcam recorded through every phase: {alive}")
    ok = (alive and ng_bytes > 0 and dropped == 0 and dropped_meta == 0 and peak["web"] <= 16 * 1024
          and web_cpu_gb <= 2 * ng_cpu_gb and worst["web"] <= SYNC_INTERVAL + 0.1)
    print("targets: " + ("met" if ok else "MISSED") +
          " (0 dropped, sync gap <= sync_interval + 0.1 s sampling, RSS <= 16 MiB, CPU/GB <= 2x nginx)")
    subprocess.run(["rm", "-rf", work])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
