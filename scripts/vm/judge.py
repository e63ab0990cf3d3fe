#!/usr/bin/env python3
"""Judge the disk images of scripts/vm/power-cut.sh from the host, with independent tools.

Files come out of the images with fsck + mtools (vfat) or e2fsck + debugfs (ext4); frames are
decoded with ffmpeg (-f framemd5) and compared with the input's; MP4 fragments are counted
with a box walker written here. Nothing of dashcam's own code reads the footage.

Prints one line per check ("ok ..." / "FAIL ...") and ends with "N passed, N failed".
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

NAME = re.compile(r"^\d{8}-\d{6}_(\d{6,})\.(mp4|avi|json)$")
FPS = 30
MAX_LOSS_S = 1.5


def sh(*args, check=False):
    return subprocess.run(args, capture_output=True, text=True, check=check)


_decoded = {}


def framemd5(path):
    """Frame hashes of a file; files with the same bytes (the same segment seen in several
    states) are decoded once."""
    key = hashlib.sha1(open(path, "rb").read()).hexdigest()
    if key not in _decoded:
        out = sh("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "framemd5", "-").stdout
        _decoded[key] = [ln.rsplit(",", 1)[1].strip() for ln in out.splitlines()
                         if ln and not ln.startswith("#")]
    return _decoded[key]


def complete_samples(path):
    """Samples in complete moof+mdat pairs of an fMP4 (what survives a cut)."""
    try:
        data = open(path, "rb").read()
    except OSError:
        return 0
    pos, total, pending = 0, 0, None
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > len(data):
                break
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
            header = 16
        if size < header or pos + size > len(data):
            break
        if kind == b"moof":
            body = data[pos + header:pos + size]
            i = body.find(b"trun")
            pending = struct.unpack(">I", body[i + 8:i + 12])[0] if i >= 4 else None
        elif kind == b"mdat":
            if pending is None:
                break
            total += pending
            pending = None
        elif kind in (b"free", b"skip", b"ftyp", b"moov", b"prft", b"uuid"):
            pass
        else:
            break
        pos += size
    return total


def extract(image, fs, folders, out):
    """Copy the image, repair it as the guest would, and copy `folders` out."""
    os.makedirs(out, exist_ok=True)
    work = os.path.join(out, "img")
    shutil.copyfile(image, work)
    notes = []
    if fs == "vfat":
        r = sh("fsck.fat", "-n", work)
        if r.returncode != 0:
            notes.append("fsck.fat found problems before repair (expected after a cut)")
        sh("fsck.fat", "-a", work)
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
        for f in folders:
            subprocess.run(["mcopy", "-s", "-n", "-i", work, "::/" + f, out + "/"], env=env,
                           capture_output=True)
    else:
        sh("e2fsck", "-fy", work)
        for f in folders:
            sh("debugfs", "-R", f"rdump /{f} {out}", work)
    os.remove(work)
    return notes


class Judge:
    def __init__(self, input_md5):
        self.input = input_md5
        self.index = {h: i for i, h in enumerate(input_md5)}
        self.lines = []
        self.passed = 0
        self.failed = 0

    def report(self, name, problems, info=""):
        if problems:
            self.failed += 1
            self.lines.append(f"FAIL {name}: " + "; ".join(problems[:6]))
        else:
            self.passed += 1
            self.lines.append(f"ok   {name}{(': ' + info) if info else ''}")

    def footage(self, folder, allow_cut=True):
        """Check one footage folder. Returns (problems, facts)."""
        p = []
        facts = {"segments": [], "cut": None, "last_run_frames": 0, "last_run_complete": 0,
                 "last_end": None}
        if not os.path.isdir(folder):
            return ["no footage folder"], facts
        names = sorted(os.listdir(folder))
        segs = {}
        temps = []
        for n in names:
            full = os.path.join(folder, n)
            if os.path.isdir(full):
                continue
            if n.endswith(".tmp"):
                temps.append(n)
                continue
            m = NAME.match(n)
            if not m:
                continue
            seq = int(m.group(1))
            segs.setdefault(seq, {})["json" if m.group(2) == "json" else "video"] = full
        order = sorted(segs)
        # Metadata is written as NAME.json.tmp, fsynced and renamed: a cut in between leaves
        # the temp file of the segment being closed (the newest, or the one before a segment
        # that had just been opened), which recovery removes at the next start. Any other
        # temp file is a defect.
        newest = max(order, default=None)
        for n in temps:
            m = NAME.match(n[: -len(".tmp")])
            closing = (allow_cut and m is not None and m.group(2) == "json"
                       and newest is not None and int(m.group(1)) >= newest - 1)
            if not closing:
                p.append(f"temp file {n} left")
        orphans = [q for q in order if "video" not in segs[q]]
        first_video = min((q for q in order if "video" in segs[q]), default=None)
        for seq in orphans:
            # A quota deletion removes the oldest segment's file, then its metadata, each
            # durably: a cut between the two leaves that one metadata file, which recovery
            # removes at the next start. Anything else is a defect.
            cut_delete = (allow_cut and len(orphans) == 1
                          and (first_video is None or seq < first_video))
            if not cut_delete:
                p.append(f"orphan metadata {os.path.basename(segs[seq]['json'])}")
        videos = [q for q in order if "video" in segs[q]]
        prev = None
        for seq in videos:
            s = segs[seq]
            v = s["video"]
            name = os.path.basename(v)
            hashes = framemd5(v) if os.path.getsize(v) > 0 else []
            meta = None
            if "json" in s:
                try:
                    meta = json.load(open(s["json"]))
                except (OSError, ValueError) as e:
                    p.append(f"{name}: unreadable metadata ({e})")
            entry = {"name": name, "seq": seq, "frames": len(hashes), "meta": meta}
            if meta is None:
                if not (allow_cut and seq == videos[-1]):
                    p.append(f"{name}: no metadata and not the segment being written")
                entry["complete"] = complete_samples(v) if v.endswith(".mp4") else len(hashes)
                facts["cut"] = entry
            else:
                if meta.get("bytes") != os.path.getsize(v):
                    p.append(f"{name}: metadata bytes {meta.get('bytes')} != file {os.path.getsize(v)}")
                if meta.get("frames") != len(hashes):
                    p.append(f"{name}: metadata frames {meta.get('frames')} != decoded {len(hashes)}")
            if hashes:
                j = self.index.get(hashes[0])
                if j is None or self.input[j:j + len(hashes)] != hashes:
                    p.append(f"{name}: frames are not a bit-exact run of the input")
                    j = None
                entry["j"] = j
                if prev is not None and prev.get("j") is not None and j is not None:
                    expect = prev["j"] + prev["frames"]
                    if j != 0 and j != expect:
                        gap = j - expect
                        dropped = (meta or {}).get("dropped_frames", 0)
                        if gap != dropped:
                            p.append(f"{name}: starts at input frame {j}, {gap} after the previous "
                                     f"segment's end but reports {dropped} dropped")
                        entry["gap"] = gap
            else:
                entry["j"] = None
            facts["segments"].append(entry)
            prev = entry
        # The last run: segments since the last one that starts at input frame 0.
        run = []
        for e in facts["segments"]:
            if e.get("j") == 0:
                run = []
            run.append(e)
        facts["last_run_frames"] = sum(e["frames"] for e in run)
        facts["last_run_complete"] = sum(
            e["frames"] if e["meta"] is not None else e.get("complete", 0) for e in run)
        facts["last_end"] = (run[-1]["j"] + run[-1]["frames"]) if run and run[-1].get("j") is not None else None
        return p, facts


def judge_cycles(j, run, fs, cuts, pool):
    d = os.path.join(run, fs)
    tsv = os.path.join(d, "cuts.tsv")
    rows = [ln.rstrip("\n").split("\t") for ln in open(tsv)] if os.path.exists(tsv) else []
    jobs = {}
    for row in rows:
        i = int(row[0])
        if row[1] == "NOSTART":
            j.report(f"{fs} cut {i}", ["dashcam did not start recording after the boot"])
            continue
        for kind in ("plain", "dropped"):
            img = os.path.join(d, f"{kind}-{i}.img")
            out = os.path.join(d, f"x-{kind}-{i}")
            shutil.rmtree(out, ignore_errors=True)
            jobs[(i, kind)] = pool.submit(lambda img=img, out=out: (extract(img, fs, ["footage"], out),
                                                                     j.footage(os.path.join(out, "footage"))))
    if len(rows) < cuts:
        j.report(f"{fs} series", [f"only {len(rows)} of {cuts} cycles ran"])
    losses = []
    prev_cut = None
    for row in rows:
        i, elapsed, used = int(row[0]), row[1], row[2]
        if elapsed == "NOSTART":
            prev_cut = None
            continue
        expected = float(elapsed) * FPS
        next_cut = None
        for kind in ("plain", "dropped"):
            notes, (problems, facts) = jobs[(i, kind)].result()
            problems = list(problems)
            got = facts["last_run_complete"]
            loss = expected - got
            losses.append(loss / FPS)
            if loss > MAX_LOSS_S * FPS:
                problems.append(f"lost {loss / FPS:.2f} s before the cut ({got} frames kept, "
                                f"{expected:.0f} expected after {float(elapsed):.2f} s)")
            if got > expected + FPS:
                problems.append(f"{got} frames after only {float(elapsed):.2f} s?")
            if prev_cut is not None:
                name, complete = prev_cut
                seg = next((e for e in facts["segments"] if e["name"] == name), None)
                if seg is not None:
                    if seg["meta"] is None:
                        problems.append(f"{name} (cut before) was not recovered")
                    elif seg["frames"] != complete:
                        problems.append(f"{name} (cut before) has {seg['frames']} frames after "
                                        f"recovery, {complete} were complete")
            cut = facts["cut"]
            if kind == used and cut is not None:
                next_cut = (cut["name"], cut["complete"])
            j.report(f"{fs} cut {i} ({'write cache dropped' if kind == 'dropped' else 'plain kill'})",
                     problems, f"{len(facts['segments'])} segments, {got} frames kept after "
                               f"{float(elapsed):.2f} s (loss {loss / FPS:.2f} s)")
        prev_cut = next_cut
        for kind in ("plain", "dropped"):
            shutil.rmtree(os.path.join(d, f"x-{kind}-{i}"), ignore_errors=True)
    if losses:
        print(f"judge: {fs}: loss before the cut: max {max(losses):.2f} s, "
              f"mean {sum(losses) / len(losses):.2f} s over {len(losses)} states", file=sys.stderr)


def serial(run, name):
    try:
        return open(os.path.join(run, f"{name}.serial"), errors="replace").read()
    except OSError:
        return ""


def judge_enospc(j, run):
    d = os.path.join(run, "enospc")
    img = os.path.join(d, "disk.img")
    if not os.path.exists(img):
        j.report("enospc", ["did not run"])
        return
    log = serial(run, "enospc")
    out = os.path.join(d, "x")
    shutil.rmtree(out, ignore_errors=True)
    extract(img, "ext4", ["a", "b"], out)
    # A: another writer takes all the space; the keeper deletes, recording goes on.
    problems, facts = j.footage(os.path.join(out, "a"), allow_cut=False)
    problems = list(problems)
    if "phase A exited" not in log:
        problems.append("phase A did not end")
    if facts["last_end"] != 600:
        problems.append(f"the recording does not reach the end of the input (ends at {facts['last_end']})")
    gaps = [e.get("gap", 0) for e in facts["segments"]]
    if any(gaps):
        problems.append(f"frames lost across the full disk: gaps {gaps}")
    full = "disk full" in log.split("phase A exited")[0]
    j.report("ENOSPC with old segments to delete", problems,
             f"{len(facts['segments'])} segments kept, no frame lost"
             + ("; ENOSPC hit and retried" if full else "; the keeper freed space before ENOSPC"))
    # B: nothing to delete; the writer stalls, keeps frames in RAM, resumes.
    problems, facts = j.footage(os.path.join(out, "b"), allow_cut=False)
    problems = list(problems)
    b = log.split("phase A exited")[-1]
    if "disk full" not in b:
        problems.append("no disk full reported in phase B")
    if "writing again" not in b:
        problems.append("the writer never resumed")
    if "phase B exited" not in b:
        problems.append("phase B did not end")
    if len(facts["segments"]) < 2:
        problems.append(f"{len(facts['segments'])} segment(s): expected one cut by the full disk and more after")
    if facts["last_end"] != 600:
        problems.append(f"the recording does not reach the end of the input (ends at {facts['last_end']})")
    lost = sum(e.get("gap", 0) for e in facts["segments"])
    if lost > 3 * FPS:
        problems.append(f"{lost} frames lost while the disk was full")
    j.report("ENOSPC with nothing to delete (stall, RAM buffer, resume)", problems,
             f"{len(facts['segments'])} segments, {lost} frames lost (all counted in dropped_frames)")
    shutil.rmtree(out, ignore_errors=True)


def judge_vanish(j, run):
    d = os.path.join(run, "vanish")
    img = os.path.join(d, "disk.img")
    if not os.path.exists(img):
        j.report("vanish", ["did not run"])
        return
    log = serial(run, "vanish")
    out = os.path.join(d, "x")
    shutil.rmtree(out, ignore_errors=True)
    extract(img, "vfat", ["footage"], out)
    problems, facts = j.footage(os.path.join(out, "footage"), allow_cut=False)
    problems = list(problems)
    for want in ("removing the drive", "drive back", "writing again", "dashcam exited"):
        if want not in log:
            problems.append(f"serial log lacks {want!r}")
    if facts["last_end"] != 600:
        problems.append(f"the recording does not reach the end of the input (ends at {facts['last_end']})")
    lost = sum(e.get("gap", 0) for e in facts["segments"])
    if lost > 3 * FPS:
        problems.append(f"{lost} frames lost while the drive was away")
    j.report("drive vanishes and returns (require_mount, RAM buffer, resume)", problems,
             f"{len(facts['segments'])} segments, {lost} frames lost (all counted in dropped_frames)")
    shutil.rmtree(out, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--cuts", type=int, default=20)
    ap.add_argument("--bin")
    a = ap.parse_args()
    input_md5 = [ln.strip() for ln in open(os.path.join(a.run, "input.md5")) if ln.strip()]
    j = Judge(input_md5)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for fs in ("vfat", "ext4"):
            judge_cycles(j, a.run, fs, a.cuts, pool)
    judge_enospc(j, a.run)
    judge_vanish(j, a.run)
    for line in j.lines:
        print(line)
    print(f"{j.passed} passed, {j.failed} failed")
    return 1 if j.failed else 0


if __name__ == "__main__":
    sys.exit(main())
