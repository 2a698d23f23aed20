#!/usr/bin/env python3
"""docs/guide.md is the record's flow as nvemu really answers it: a fresh run
of docs/gen-guide.py against the built binaries must reproduce the committed
guide (paths, ports, pids and timings normalised by the generator).

Section 4 (an RBD namespace) starts a real single-node Ceph cluster
(tests/system/ceph_cluster.py): the test takes about 20 s instead of 2 s, and
needs root and ceph-mon ceph-mgr ceph-osd ceph-common (scripts/install-deps.sh).
Without them it fails with the generator's message naming what is missing
rather than skipping: a skipped check would let the guide go stale unseen."""
import difflib
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SRC = os.environ.get("NVEMU_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")


class Guide(unittest.TestCase):
    def test_committed_guide_matches_a_fresh_run(self):
        fresh = subprocess.run([sys.executable, os.path.join(SRC, "docs", "gen-guide.py"),
                                harness.BIN_DIR, "-"], capture_output=True, text=True,
                               timeout=300)
        self.assertEqual(fresh.returncode, 0, fresh.stderr)
        with open(os.path.join(SRC, "docs", "guide.md")) as f:
            committed = f.read()
        diff = "".join(difflib.unified_diff(committed.splitlines(True),
                                            fresh.stdout.splitlines(True), "docs/guide.md",
                                            "fresh run"))
        self.assertEqual(diff, "", "docs/guide.md is stale: run docs/gen-guide.py build/apps "
                         "and commit it\n" + diff[:4000])
        for step in ("nvmf_create_transport -t DOCA", "write-verify", "\"ok\": true",
                     "trtype:TCP", "bdev_rbd_create", "img0       64 MiB  4 MiB"):
            self.assertIn(step, committed)


if __name__ == "__main__":
    harness.run_unittest_main()
