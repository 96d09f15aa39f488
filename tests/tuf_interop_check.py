#!/usr/bin/python3
"""Checks a shoal release repository with securesystemslib, the library
python-tuf builds on: every metadata file's signed part encodes to the same
canonical JSON, every key id is the one securesystemslib computes, and every
role's signatures meet its threshold under securesystemslib's verification.

Usage: tuf_interop_check.py REPOSITORY_DIR
"""
import glob
import json
import os
import sys
from urllib import parse

import securesystemslib.formats as formats
import securesystemslib.keys as keys


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def load(path):
    with open(path, "rb") as f:
        return json.load(f)


def check_signatures(name, document, root, role_keys=None):
    if role_keys is None:
        role_keys = root["roles"][document["signed"]["_type"]]
    data = formats.encode_canonical(document["signed"]).encode("utf-8")
    valid = set()
    for signature in document["signatures"]:
        keyid = signature["keyid"]
        if keyid not in role_keys["keyids"]:
            continue
        key = dict(root["keys"][keyid], keyid=keyid)
        if keys.verify_signature(key, signature, data):
            valid.add(keyid)
    if len(valid) < role_keys["threshold"]:
        fail("%s: %d valid signature(s), threshold %d" % (name, len(valid), role_keys["threshold"]))


def main():
    metadata = os.path.join(sys.argv[1], "metadata")
    roots = sorted(glob.glob(os.path.join(metadata, "[0-9]*.root.json")),
                   key=lambda p: int(os.path.basename(p).split(".")[0]))
    if not roots:
        fail("no N.root.json in " + metadata)
    trusted = None
    for path in roots:
        root = load(path)
        for keyid, key in root["signed"]["keys"].items():
            computed = keys._get_keyid(key["keytype"], key["scheme"], key["keyval"])
            if computed != keyid:
                fail("%s: key id %s, securesystemslib computes %s" % (path, keyid, computed))
        if trusted is not None:
            check_signatures(path + " (by the previous root)", root, trusted)
        check_signatures(path, root, root["signed"])
        trusted = root["signed"]
    for role in ("timestamp", "snapshot", "targets"):
        check_signatures(role + ".json", load(os.path.join(metadata, role + ".json")), trusted)
    # Delegated roles, each against its delegator's delegation (names percent-encoded in file names).
    delegated = 0
    to_check = [load(os.path.join(metadata, "targets.json"))]
    seen = set()
    while to_check:
        delegations = to_check.pop()["signed"].get("delegations")
        for role in (delegations or {}).get("roles", []):
            if role["name"] in seen:
                continue
            seen.add(role["name"])
            path = os.path.join(metadata, parse.quote(role["name"], "") + ".json")
            document = load(path)
            check_signatures(path, document, delegations, role)
            to_check.append(document)
            delegated += 1
    print("securesystemslib verifies %d root version(s), timestamp, snapshot, targets and %d delegated role(s)"
          % (len(roots), delegated))


if __name__ == "__main__":
    main()
