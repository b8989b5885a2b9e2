#!/usr/bin/env python3
"""Renders an HTML file with headless Chromium to a PNG and checks the picture is not blank.

usage: render_check.py PAGE.html OUT.png [--width 1400] [--height 1000]
Exit 0 when the PNG has real content (many colours, enough non-background pixels), 1 otherwise.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("page")
    parser.add_argument("out")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        print("render_check: chromium is not installed (scripts/td installs it)", file=sys.stderr)
        return 1
    try:
        from PIL import Image  # python3-pil
    except ImportError:
        print("render_check: python3-pil is not installed (scripts/td installs it)", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory() as profile:
        # The flags keep Chromium off the network (this machine has none) and headless as root.
        command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                   f"--user-data-dir={profile}", f"--window-size={args.width},{args.height}",
                   f"--screenshot={os.path.abspath(args.out)}",
                   "file://" + os.path.abspath(args.page)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not os.path.exists(args.out):
        print(f"render_check: chromium failed ({result.returncode}): {result.stderr[-2000:]}",
              file=sys.stderr)
        return 1

    image = Image.open(args.out).convert("RGB")
    small = image.resize((image.width // 4, image.height // 4))
    pixels = list(small.getdata())
    background = max(set(pixels), key=pixels.count)
    non_background = sum(1 for p in pixels if p != background) / len(pixels)
    colours = len(set(pixels))
    summary = {"png": args.out, "width": image.width, "height": image.height,
               "colours": colours, "non_background_fraction": round(non_background, 4)}
    print(json.dumps(summary))
    if colours < 8 or non_background < 0.02:
        print("render_check: the picture looks blank", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
