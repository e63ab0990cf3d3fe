#!/usr/bin/env python3
"""Write yocto-layer/meta-dashcam/recipes-multimedia/dashcam/dashcam-crates.inc from
Cargo.lock: one crate:// SRC_URI entry and sha256sum per registry package, the format of
Yocto's cargo-update-recipe-crates class. tests/pi_packaging.rs checks it is current.

usage: scripts/pi/yocto-crates.py [--check]
"""
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LOCK = os.path.join(ROOT, "Cargo.lock")
INC = os.path.join(ROOT, "yocto-layer", "meta-dashcam", "recipes-multimedia", "dashcam",
                   "dashcam-crates.inc")


def packages(text):
    for block in text.split("[[package]]")[1:]:
        fields = dict(re.findall(r'^(\w+) = "([^"]*)"', block, re.M))
        if fields.get("source", "").startswith("registry+"):
            yield fields["name"], fields["version"], fields["checksum"]


def render(text):
    pkgs = sorted(set(packages(text)))
    out = ["# Generated from Cargo.lock by scripts/pi/yocto-crates.py: do not edit by hand.",
           "# The crates the dashcam recipe fetches (cargo-update-recipe-crates format).",
           "", "SRC_URI += \" \\"]
    out += [f"    crate://crates.io/{n}/{v} \\" for n, v, _ in pkgs]
    out += ["\"", ""]
    out += [f'SRC_URI[{n}-{v}.sha256sum] = "{c}"' for n, v, c in pkgs]
    return "\n".join(out) + "\n"


def main():
    with open(LOCK, encoding="utf-8") as f:
        want = render(f.read())
    if "--check" in sys.argv[1:]:
        try:
            with open(INC, encoding="utf-8") as f:
                have = f.read()
        except OSError:
            have = ""
        if have != want:
            sys.exit(f"{INC} is out of date: run scripts/pi/yocto-crates.py")
        return
    with open(INC, "w", encoding="utf-8") as f:
        f.write(want)


if __name__ == "__main__":
    main()
