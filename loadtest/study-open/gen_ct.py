#!/usr/bin/env python3
"""Uploads a CT-sized series into a study in Orthanc (benchmark only).

Python standard library only. COUNT CT Image Storage instances, ROWSxCOLS,
16-bit MONOCHROME2 (stored 0..4095, rescale -1024: Hounsfield units),
Explicit VR Little Endian, uncompressed, one axial slice every 1.25 mm (so a
viewer sorts and stacks them as a scanner's series), in a new series of the
study STUDY_UID of patient PATIENT_ID; each uploaded with POST /instances.
The pixels: a water-like disc with a bone ring on air (a phantom, the same
on every slice), and a band of 8 rows of random values that moves with the
slice (no two frames alike). Prints "SERIES_UID BYTES".

  gen_ct.py --orthanc URL --study-uid UID --patient-id ID --count 300
"""
import argparse
import json
import os
import struct
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "viewer"))
from gen_study import EXPLICIT_LE, element, new_uid, us  # noqa: E402

CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
SPACING = 1.25  # mm between slices


def phantom(rows: int, cols: int) -> bytearray:
    """Stored values (HU + 1024): air 0, water disc 1064, bone ring 2024."""
    out = bytearray(rows * cols * 2)
    cy, cx = rows / 2, cols / 2
    r_out, r_in = min(rows, cols) * 0.42, min(rows, cols) * 0.38
    for y in range(rows):
        dy2 = (y - cy) ** 2
        for x in range(cols):
            d2 = dy2 + (x - cx) ** 2
            v = 0 if d2 > r_out * r_out else (2024 if d2 > r_in * r_in else 1064)
            struct.pack_into("<H", out, (y * cols + x) * 2, v)
    return out


def instance(args, tags, series_uid, number, pixels) -> bytes:
    sop_uid = new_uid()
    meta_body = (
        element(0x0002, 0x0001, b"OB", b"\0\1")
        + element(0x0002, 0x0002, b"UI", CT_CLASS)
        + element(0x0002, 0x0003, b"UI", sop_uid)
        + element(0x0002, 0x0010, b"UI", EXPLICIT_LE)
        + element(0x0002, 0x0012, b"UI", "2.25.1961")
    )
    meta = element(0x0002, 0x0000, b"UL", struct.pack("<I", len(meta_body))) + meta_body
    z = -SPACING * number
    ds = (
        element(0x0008, 0x0005, b"CS", "ISO_IR 192")
        + element(0x0008, 0x0008, b"CS", "ORIGINAL\\PRIMARY\\AXIAL")
        + element(0x0008, 0x0016, b"UI", CT_CLASS)
        + element(0x0008, 0x0018, b"UI", sop_uid)
        + element(0x0008, 0x0020, b"DA", tags.get("StudyDate", "20240101"))
        + element(0x0008, 0x0060, b"CS", "CT")
        + element(0x0008, 0x103E, b"LO", "BENCHMARK CT 300")
        + element(0x0010, 0x0010, b"PN", tags.get("PatientName", "BENCH^Mark"))
        + element(0x0010, 0x0020, b"LO", args.patient_id)
        + element(0x0010, 0x0030, b"DA", tags.get("PatientBirthDate", ""))
        + element(0x0010, 0x0040, b"CS", tags.get("PatientSex", "O"))
        + element(0x0018, 0x0050, b"DS", str(SPACING))
        + element(0x0020, 0x000D, b"UI", args.study_uid)
        + element(0x0020, 0x000E, b"UI", series_uid)
        + element(0x0020, 0x0011, b"IS", "2")
        + element(0x0020, 0x0013, b"IS", str(number))
        + element(0x0020, 0x0032, b"DS", f"-250\\-250\\{z:g}")
        + element(0x0020, 0x0037, b"DS", "1\\0\\0\\0\\1\\0")
        + element(0x0020, 0x0052, b"UI", args.study_uid + ".1")
        + element(0x0028, 0x0002, b"US", us(1))
        + element(0x0028, 0x0004, b"CS", "MONOCHROME2")
        + element(0x0028, 0x0010, b"US", us(args.rows))
        + element(0x0028, 0x0011, b"US", us(args.cols))
        + element(0x0028, 0x0030, b"DS", "0.9765625\\0.9765625")
        + element(0x0028, 0x0100, b"US", us(16))
        + element(0x0028, 0x0101, b"US", us(12))
        + element(0x0028, 0x0102, b"US", us(11))
        + element(0x0028, 0x0103, b"US", us(0))
        + element(0x0028, 0x1050, b"DS", "40")
        + element(0x0028, 0x1051, b"DS", "400")
        + element(0x0028, 0x1052, b"DS", "-1024")
        + element(0x0028, 0x1053, b"DS", "1")
        + element(0x7FE0, 0x0010, b"OW", pixels)
    )
    return b"\0" * 128 + b"DICM" + meta + ds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orthanc", required=True)
    p.add_argument("--study-uid", required=True)
    p.add_argument("--patient-id", required=True)
    p.add_argument("--patient-name", default="BENCH^CT")
    p.add_argument("--study-date", default="20240101")
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--rows", type=int, default=512)
    p.add_argument("--cols", type=int, default=512)
    args = p.parse_args()
    base = args.orthanc.rstrip("/")
    tags = {"PatientName": args.patient_name, "StudyDate": args.study_date}

    series_uid = new_uid()
    base_pixels = phantom(args.rows, args.cols)
    band = 8 * args.cols * 2
    total = 0
    for n in range(1, args.count + 1):
        pixels = bytearray(base_pixels)
        at = ((n * 8) % (args.rows - 8)) * args.cols * 2
        pixels[at : at + band] = bytes(b & 0x0F for b in os.urandom(band))  # < 4096
        body = instance(args, tags, series_uid, n, bytes(pixels))
        req = urllib.request.Request(
            base + "/instances", data=body, method="POST", headers={"Content-Type": "application/dicom"}
        )
        with urllib.request.urlopen(req) as r:
            status = json.load(r).get("Status")
            if status not in ("Success", "AlreadyStored"):
                print(f"upload {n}: {status}", file=sys.stderr)
                return 1
        total += len(body)
    print(series_uid, total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
