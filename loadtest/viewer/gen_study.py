#!/usr/bin/env python3
"""Adds a large series to an existing study in Orthanc (benchmark only).

Python standard library only. Generates COUNT Secondary Capture instances,
ROWSxCOLS 16-bit MONOCHROME2, Explicit VR Little Endian, with pseudo-random
pixels (incompressible: the ZIP archive is about as large as the study), in
a new series of the study STUDY_UID of patient PATIENT_ID, and uploads each
with POST /instances. Prints the total bytes uploaded.

  gen_study.py --orthanc URL --study-uid UID --patient-id ID --count 512 --rows 1024 --cols 1024
"""
import argparse
import json
import os
import struct
import sys
import urllib.request
import uuid

EXPLICIT_LE = "1.2.840.10008.1.2.1"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
LONG_VRS = {b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV"}


def pad(value: bytes, vr: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0" if vr in (b"UI", b"OB") else b" "
    return value


def element(group: int, elem: int, vr: bytes, value) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    value = pad(value, vr)
    if vr in LONG_VRS:
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def us(v: int) -> bytes:
    return struct.pack("<H", v)


def new_uid() -> str:
    return "2.25." + str(uuid.uuid4().int)


def instance(args, tags, series_uid, number, pixels) -> bytes:
    sop_uid = new_uid()
    meta_body = (
        element(0x0002, 0x0001, b"OB", b"\0\1")
        + element(0x0002, 0x0002, b"UI", SC_CLASS)
        + element(0x0002, 0x0003, b"UI", sop_uid)
        + element(0x0002, 0x0010, b"UI", EXPLICIT_LE)
        + element(0x0002, 0x0012, b"UI", "2.25.1961")
    )
    meta = element(0x0002, 0x0000, b"UL", struct.pack("<I", len(meta_body))) + meta_body
    ds = (
        element(0x0008, 0x0005, b"CS", "ISO_IR 192")
        + element(0x0008, 0x0016, b"UI", SC_CLASS)
        + element(0x0008, 0x0018, b"UI", sop_uid)
        + element(0x0008, 0x0020, b"DA", tags.get("StudyDate", "20240101"))
        + element(0x0008, 0x0060, b"CS", "OT")
        + element(0x0008, 0x103E, b"LO", "BENCHMARK LARGE SERIES")
        + element(0x0010, 0x0010, b"PN", tags.get("PatientName", "BENCH^Mark"))
        + element(0x0010, 0x0020, b"LO", args.patient_id)
        + element(0x0010, 0x0030, b"DA", tags.get("PatientBirthDate", ""))
        + element(0x0010, 0x0040, b"CS", tags.get("PatientSex", "O"))
        + element(0x0020, 0x000D, b"UI", args.study_uid)
        + element(0x0020, 0x000E, b"UI", series_uid)
        + element(0x0020, 0x0011, b"IS", "901")
        + element(0x0020, 0x0013, b"IS", str(number))
        + element(0x0028, 0x0002, b"US", us(1))
        + element(0x0028, 0x0004, b"CS", "MONOCHROME2")
        + element(0x0028, 0x0010, b"US", us(args.rows))
        + element(0x0028, 0x0011, b"US", us(args.cols))
        + element(0x0028, 0x0100, b"US", us(16))
        + element(0x0028, 0x0101, b"US", us(16))
        + element(0x0028, 0x0102, b"US", us(15))
        + element(0x0028, 0x0103, b"US", us(0))
        + element(0x7FE0, 0x0010, b"OW", pixels)
    )
    return b"\0" * 128 + b"DICM" + meta + ds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orthanc", required=True)
    p.add_argument("--study-uid", required=True)
    p.add_argument("--patient-id", required=True)
    p.add_argument("--count", type=int, default=512)
    p.add_argument("--rows", type=int, default=1024)
    p.add_argument("--cols", type=int, default=1024)
    args = p.parse_args()
    base = args.orthanc.rstrip("/")

    # Patient and study tags as Orthanc already has them (consistent records).
    req = urllib.request.Request(base + "/tools/lookup", data=args.study_uid.encode(), method="POST")
    found = [e for e in json.load(urllib.request.urlopen(req)) if e["Type"] == "Study"]
    tags = {}
    if found:
        study = json.load(urllib.request.urlopen(f"{base}/studies/{found[0]['ID']}"))
        tags.update(study.get("PatientMainDicomTags", {}))
        tags.update(study.get("MainDicomTags", {}))

    series_uid = new_uid()
    size = args.rows * args.cols * 2
    total = 0
    for n in range(1, args.count + 1):
        body = instance(args, tags, series_uid, n, os.urandom(size))
        req = urllib.request.Request(
            base + "/instances", data=body, method="POST", headers={"Content-Type": "application/dicom"}
        )
        with urllib.request.urlopen(req) as r:
            status = json.load(r).get("Status")
            if status not in ("Success", "AlreadyStored"):
                print(f"upload {n}: {status}", file=sys.stderr)
                return 1
        total += len(body)
    print(total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
