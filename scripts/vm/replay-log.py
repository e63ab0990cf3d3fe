#!/usr/bin/env python3
"""Replay a QEMU blklogwrites log onto a disk image, up to the last flush.

usage: replay-log.py LOG IMAGE

IMAGE must hold the disk as it was when logging started. The log is in the dm-log-writes
format QEMU writes: a super block in sector 0 (magic, version, nr_entries, sector size),
then for each request an entry sector (sector, nr_sectors, flags, data_len; little endian)
followed by its data sectors (none for flushes and discards). The super block's entry count is only updated now and then,
so after a SIGKILL the entries are read until the first empty one. Writes up to and
including the last FLUSH entry are applied: what a disk with a volatile write cache keeps
when the power goes. Prints how many entries were applied and dropped.
"""
import struct
import sys

MAGIC = 0x6A736677736872
FLUSH, FUA, DISCARD, MARK = 1, 2, 4, 8


def main() -> int:
    log_path, image_path = sys.argv[1], sys.argv[2]
    with open(log_path, "rb") as log:
        sup = log.read(512)
        magic, version, _nr, sectorsize = struct.unpack_from("<QQQI", sup)
        if magic != MAGIC:
            print("no blklogwrites super block (no write at all?)")
            return 0
        if sectorsize == 0 or sectorsize & (sectorsize - 1):
            print(f"bad sector size {sectorsize}", file=sys.stderr)
            return 1
        entries = []
        pos = sectorsize
        while True:
            log.seek(pos)
            head = log.read(32)
            if len(head) < 32:
                break
            sector, nr_sectors, flags, data_len = struct.unpack("<QQQQ", head)
            if sector == 0 and nr_sectors == 0 and flags == 0 and data_len == 0:
                break
            # QEMU: the entry sector, then the data (writes; zeroes for write-zeroes);
            # discards and flushes carry none. data_len is always 0.
            data_pos = pos + sectorsize
            nbytes = nr_sectors * sectorsize
            entries.append((sector, nbytes, flags, data_pos))
            pos = data_pos + (0 if flags & DISCARD else nbytes)
            del data_len
        last_flush = max((i for i, e in enumerate(entries) if e[2] & FLUSH), default=-1)
        applied = 0
        with open(image_path, "r+b") as img:
            for sector, nbytes, flags, data_pos in entries[: last_flush + 1]:
                if flags & (DISCARD | MARK) or nbytes == 0:
                    continue
                log.seek(data_pos)
                data = log.read(nbytes)
                if len(data) < nbytes:
                    break
                img.seek(sector * sectorsize)
                img.write(data)
                applied += 1
    print(f"{len(entries)} entries, last flush at {last_flush}, {applied} writes applied, "
          f"{len(entries) - last_flush - 1} dropped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
