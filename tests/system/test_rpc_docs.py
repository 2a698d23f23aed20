#!/usr/bin/env python3
"""docs/rpc.md is generated from the code (docs/gen-rpc.py): it fails here
when a registered method is missing from it or the committed file is stale."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SRC = os.environ.get("NVEMU_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
DOC = os.path.join(SRC, "docs", "rpc.md")


class RpcDocs(unittest.TestCase):
    def test_every_registered_method_is_documented(self):
        methods = json.loads(subprocess.run([harness.TGT, "--dump-rpc-methods"], check=True,
                                            capture_output=True, text=True).stdout)
        self.assertIn("nvmf_doca_create_function", methods)
        self.assertTrue(methods["framework_start_init"]["startup"])
        self.assertFalse(methods["framework_start_init"]["runtime"])
        with open(DOC) as f:
            doc = f.read()
        missing = [m for m in methods if f"\n## {m}\n" not in doc]
        self.assertEqual(missing, [], "run docs/gen-rpc.py build/apps and commit docs/rpc.md")
        # The running daemon's rpc_get_methods agrees with the dump (all
        # methods, and with current=true those of its state).
        with harness.Target(args=("-m", "0x1")) as t:
            self.assertEqual(sorted(t.result("rpc_get_methods")), sorted(methods))
            current = t.result("rpc_get_methods", {"current": True})
        self.assertEqual(sorted(current), sorted(m for m, v in methods.items() if v["runtime"]))

    def test_committed_doc_is_fresh(self):
        fresh = subprocess.run([sys.executable, os.path.join(SRC, "docs", "gen-rpc.py"),
                                harness.BIN_DIR, "-"], check=True, capture_output=True,
                               text=True).stdout
        with open(DOC) as f:
            self.assertEqual(f.read(), fresh,
                             "docs/rpc.md is stale: run docs/gen-rpc.py build/apps and commit it")


if __name__ == "__main__":
    harness.run_unittest_main()
