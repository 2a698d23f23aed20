#!/usr/bin/env python3
"""docs/rpc.md is generated from the code (docs/gen-rpc.py): it fails here
when a registered method is missing from it or has no description, result or
errors, when the committed file is stale, and when a method's documented
errors are not what it returns (a table of bad requests against a live
target)."""
import importlib.util
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SRC = os.environ.get("NVEMU_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
DOC = os.path.join(SRC, "docs", "rpc.md")


def load_gen():
    spec = importlib.util.spec_from_file_location("gen_rpc", os.path.join(SRC, "docs",
                                                                         "gen-rpc.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def dump():
    return json.loads(subprocess.run([harness.TGT, "--dump-rpc-methods"], check=True,
                                     capture_output=True, text=True).stdout)


NQN = "nqn.2016-06.io.spdk:docs"
MISSING = "nqn.2016-06.io.spdk:nosuch"
# What the live target holds before the bad requests below.
SETUP = [
    ("bdev_malloc_create", {"name": "M0", "num_blocks": 256, "block_size": 512}),
    ("nvmf_create_transport", {"trtype": "TCP"}),
    ("nvmf_create_subsystem", {"nqn": NQN}),
    ("nvmf_doca_create_manager", {"name": "docs_mgr"}),
]
# (method, params, the code it returns). The code must be the one returned
# and listed in that method's documented errors: a doc that lies, or a
# handler whose code changed, fails here.
BAD_REQUESTS = [
    ("bdev_malloc_create", {"name": "M0", "num_blocks": 8, "block_size": 512}, -17),
    ("bdev_malloc_create", {"num_blocks": 8, "block_size": 512, "md_size": 8}, -95),
    ("bdev_malloc_delete", {"name": "nosuch"}, -19),
    ("bdev_null_create", {"name": "M0", "num_blocks": 8, "block_size": 512}, -17),
    ("bdev_null_delete", {"name": "M0"}, -19),
    ("bdev_uring_create", {"name": "U0", "filename": "/nonexistent/nvemu-docs"}, -22),
    ("bdev_uring_delete", {"name": "nosuch"}, -19),
    ("bdev_get_bdevs", {"name": "nosuch"}, -19),
    ("bdev_get_iostat", {"name": "nosuch"}, -19),
    ("bdev_error_create", {"base_name": "nosuch"}, -19),
    ("bdev_error_delete", {"name": "M0"}, -19),
    ("bdev_error_inject_error", {"name": "M0", "io_type": "read", "error_type": "failure"}, -19),
    ("bdev_delay_create", {"base_bdev_name": "M0", "name": "M0", "avg_read_latency": 1,
                           "p99_read_latency": 1, "avg_write_latency": 1,
                           "p99_write_latency": 1}, -17),
    ("bdev_delay_delete", {"name": "nosuch"}, -19),
    ("bdev_delay_update_latency", {"delay_bdev_name": "M0", "latency_type": "avg_read",
                                   "latency_us": 5}, -32600),
    ("bdev_nvme_detach_controller", {"name": "nosuch"}, -19),
    ("bdev_nvme_get_controllers", {"name": "nosuch"}, 22),
    ("bdev_nvme_reset_controller", {"name": "nosuch"}, -19),
    ("bdev_nvme_set_hotplug", {"enable": True}, -32602),
    ("bdev_nvme_attach_controller", {"name": "N0", "trtype": "tcp", "traddr": "127.0.0.1",
                                     "trsvcid": str(harness.free_port()), "subnqn": NQN}, -111),
    ("bdev_nvme_attach_controller", {"name": "N0", "trtype": "tcp", "traddr": "127.0.0.1",
                                     "trsvcid": "4420", "subnqn": NQN, "psk": "x"}, -22),
    ("bdev_rbd_get_clusters_info", {}, -2),
    ("bdev_rbd_unregister_cluster", {"name": "nosuch"}, -1),
    ("bdev_rbd_delete", {"name": "nosuch"}, -19),
    ("bdev_rbd_resize", {"name": "M0", "new_size": 1}, -22),
    ("bdev_rbd_create", {"pool_name": "p", "rbd_name": "i", "block_size": 512,
                         "cluster_name": "nosuch"}, -1),
    ("nvmf_create_subsystem", {"nqn": NQN}, -32603),
    ("nvmf_delete_subsystem", {"nqn": MISSING}, -32602),
    ("nvmf_get_subsystems", {"nqn": MISSING}, -19),  # SPDK v23.01's -ENODEV
    ("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "nosuch"}}, -32602),
    ("nvmf_subsystem_remove_ns", {"nqn": NQN, "nsid": 9}, -32602),
    ("nvmf_subsystem_remove_host", {"nqn": NQN, "host": "nqn.2014-08.org.x:h"}, -32602),
    ("nvmf_subsystem_get_qpairs", {"nqn": NQN, "tgt_name": "other"}, -32603),
    ("nvmf_create_transport", {"trtype": "TCP"}, -32603),
    ("nvmf_get_transports", {"trtype": "VFIOUSER"}, -19),
    ("nvmf_get_transports", {"tgt_name": "other"}, -32603),  # SPDK's "Unable to find a target."
    ("nvmf_get_stats", {"tgt_name": "other"}, -32603),
    ("nvmf_subsystem_get_listeners", {"nqn": NQN, "tgt_name": "other"}, -32603),
    ("nvmf_subsystem_add_listener", {"nqn": NQN, "tgt_name": "other", "listen_address": {
        "trtype": "TCP", "traddr": "127.0.0.1", "trsvcid": "4420"}}, -32603),
    ("nvmf_subsystem_remove_listener", {"nqn": NQN, "tgt_name": "other", "listen_address": {
        "trtype": "TCP", "traddr": "127.0.0.1", "trsvcid": "4420"}}, -32603),
    ("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": {
        "trtype": "VFIOUSER", "traddr": "/tmp/nvemu-docs"}}, -32602),
    ("nvmf_doca_create_function", {"dev_name": "nosuch"}, -19),
    ("nvmf_doca_destroy_function", {"dev_name": "docs_mgr", "vuid": "nosuch"}, -19),
    ("nvmf_doca_create_manager", {"name": "docs_mgr"}, -17),
    ("nvmf_fault_inject", {"nqn": NQN, "action": "cfs"}, -19),
    ("nvmf_fault_clear", {"id": 999}, -2),
    ("keyring_file_add_key", {"name": "k0", "path": "relative/key"}, -1),
    ("keyring_file_add_key", {"name": "k0", "path": "/nonexistent/nvemu-key"}, -2),
    ("keyring_file_remove_key", {"name": "nosuch"}, -126),
    ("framework_get_config", {"name": "nosuch"}, -32602),
    ("framework_set_scheduler", {"name": "dynamic"}, -32602),
    ("log_set_flag", {"flag": "nosuch"}, -32602),
    ("log_set_level", {"level": "LOUD"}, -32602),
    ("sock_impl_get_options", {"impl_name": "nosuch"}, -32602),
    ("spdk_kill_instance", {"sig_name": "SIGNOPE"}, -32602),
    ("load_config", {"subsystems": [{"subsystem": "x", "config": [{"method": "nosuch"}]}]},
     -32602),
]
# Wrong framework state: the preamble's common -1, on targets before and
# after framework_start_init.
RUNTIME_ONLY = ["bdev_malloc_create", "nvmf_create_subsystem", "nvmf_doca_create_function"]
STARTUP_ONLY = ["framework_start_init", "sock_set_default_impl", "nvmf_set_max_subsystems",
                "bdev_set_options"]


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

    def test_every_method_has_description_result_and_errors(self):
        lacking = []
        for name, m in sorted(dump().items()):
            errors = m.get("errors") or []
            if not m.get("description") or not m.get("result") or not errors or any(
                    not isinstance(e.get("code"), int) or not e.get("when") for e in errors):
                lacking.append(name)
        self.assertEqual(lacking, [], "document each with the MethodDoc of its registration")

    def test_documented_errors_are_returned(self):
        methods = dump()
        self.assertGreaterEqual(len({m for m, _, _ in BAD_REQUESTS}), 15)
        wrong = []
        with harness.Target(args=("-m", "0x1")) as t:
            for method, params in SETUP:
                t.result(method, params)
            for method, params, want in BAD_REQUESTS:
                reply = t.call(method, params)
                got = reply.get("error", {}).get("code")
                documented = [e["code"] for e in methods[method]["errors"]]
                if got != want or want not in documented:
                    wrong.append(f"{method} {json.dumps(params)}: returned {got} "
                                 f"({reply.get('error', reply.get('result'))}), expected {want}, "
                                 f"documented {documented}")
            for method in STARTUP_ONLY:
                wrong += self.state_error(t, method)
            self.assertTrue(t.alive())
        with harness.Target() as t:  # --wait-for-rpc: start-up state
            for method in RUNTIME_ONLY:
                wrong += self.state_error(t, method)
        self.assertEqual(wrong, [], "fix the method's MethodDoc (or its handler)")

    def state_error(self, t, method):
        common = [c for c, _ in load_gen().COMMON_ERRORS]
        got = t.call(method, {}).get("error", {}).get("code")
        return [] if got == -1 and -1 in common else [f"{method} in the wrong state: {got}"]

    def test_committed_doc_is_fresh(self):
        fresh = subprocess.run([sys.executable, os.path.join(SRC, "docs", "gen-rpc.py"),
                                harness.BIN_DIR, "-"], check=True, capture_output=True,
                               text=True).stdout
        with open(DOC) as f:
            self.assertEqual(f.read(), fresh,
                             "docs/rpc.md is stale: run docs/gen-rpc.py build/apps and commit it")


if __name__ == "__main__":
    harness.run_unittest_main()
