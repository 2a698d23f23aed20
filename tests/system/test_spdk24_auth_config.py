#!/usr/bin/env python3
"""Configurations written by SPDK 24.x for DH-HMAC-CHAP replay in nvemu-tgt.

The entries below are in the shape SPDK v24.09's save_config writes them, read
from (tag v24.09):
- module/keyring/file/keyring.c keyring_file_write_key_config:
  keyring_file_add_key {name, path}, in the "keyring" subsystem, which
  SPDK's save_config lists before the subsystems that use its keys;
- module/event/subsystems/nvmf/nvmf_tgt.c nvmf_subsystem_write_config_json:
  nvmf_set_config {discovery_filter, admin_cmd_passthru, dhchap_digests,
  dhchap_dhgroups};
- lib/nvmf/nvmf.c nvmf_write_subsystem_config_json: nvmf_create_subsystem,
  nvmf_subsystem_add_listener (with secure_channel), nvmf_subsystem_add_host
  {nqn, host, dhchap_key, dhchap_ctrlr_key}, nvmf_subsystem_add_ns;
- lib/nvmf/transport.c / tcp.c: nvmf_create_transport's TCP options;
- module/bdev/nvme/bdev_nvme.c bdev_nvme_opts_config_json (bdev_nvme_set_options
  with dhchap_digests / dhchap_dhgroups) and nvme_ctrlr_config_json
  (bdev_nvme_attach_controller with dhchap_key / dhchap_ctrlr_key);
- lib/keyring/keyring.c keyring_dump_key_info: keyring_get_keys' fields.

Target A starts with `-c` on such a file (a malloc namespace locked to one
host with a bidirectional key pair); target B takes its file through
`load_config` and attaches to A with the keys, then re-exports the namespace:
bytes written through B are read back, A's log shows the digest and group
both files allowed. Then nvemu's own save_config of each target must carry
the same methods, field names and values for these entries, in SPDK's
subsystem order.
"""
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Target, free_port, stop_clean  # noqa: E402
from test_auth import HOST1, SECRETS, write_key  # noqa: E402
from test_bdev_nvme import write_verify  # noqa: E402

NQN = "nqn.2016-06.io.spdk:cnode24"
NQN_B = "nqn.2016-06.io.spdk:reexport24"


def keyring(dirpath, names):
    return {"subsystem": "keyring", "config": [
        {"method": "keyring_file_add_key",
         "params": {"name": n, "path": os.path.join(dirpath, n)}} for n in names]}


def tcp_transport():
    # lib/nvmf/transport.c nvmf_transport_dump_opts + tcp.c nvmf_tcp_dump_opts (v24.09)
    return {"method": "nvmf_create_transport", "params": {
        "trtype": "TCP", "max_queue_depth": 128, "max_io_qpairs_per_ctrlr": 127,
        "in_capsule_data_size": 4096, "max_io_size": 131072, "io_unit_size": 131072,
        "max_aq_depth": 128, "num_shared_buffers": 511, "buf_cache_size": 4294967295,
        "dif_insert_or_strip": False, "zcopy": False, "c2h_success": False,
        "sock_priority": 0, "abort_timeout_sec": 1, "ack_timeout": 0,
        "data_wr_pool_size": 0}}


def subsystem_entries(nqn, port, bdev, allow_any_host, hosts):
    out = [
        {"method": "nvmf_create_subsystem", "params": {
            "nqn": nqn, "allow_any_host": allow_any_host, "serial_number": "SPDK00000000000024",
            "model_number": "SPDK bdev Controller", "max_namespaces": 32, "min_cntlid": 1,
            "max_cntlid": 65519, "ana_reporting": False}},
        {"method": "nvmf_subsystem_add_listener", "params": {
            "nqn": nqn, "listen_address": {"trtype": "TCP", "adrfam": "IPv4",
                                           "traddr": "127.0.0.1", "trsvcid": str(port)},
            "secure_channel": False}},
    ]
    out += [{"method": "nvmf_subsystem_add_host", "params": h} for h in hosts]
    out.append({"method": "nvmf_subsystem_add_ns", "params": {
        "nqn": nqn, "namespace": {"nsid": 1, "bdev_name": bdev}}})
    return out


def config_a(keydir, port):
    return {"subsystems": [
        keyring(keydir, ["host1", "ctrl1"]),
        {"subsystem": "bdev", "config": [
            {"method": "bdev_malloc_create", "params": {
                "name": "Malloc0", "num_blocks": 8192, "block_size": 512}},
        ]},
        {"subsystem": "nvmf", "config": [
            {"method": "nvmf_set_config", "params": {
                "discovery_filter": "match_any",
                "admin_cmd_passthru": {"identify_ctrlr": False},
                "dhchap_digests": ["sha256", "sha384"],
                "dhchap_dhgroups": ["null", "ffdhe2048"]}},
            {"method": "nvmf_set_max_subsystems", "params": {"max_subsystems": 1024}},
            {"method": "nvmf_set_crdt", "params": {"crdt1": 0, "crdt2": 0, "crdt3": 0}},
            tcp_transport(),
        ] + subsystem_entries(NQN, port, "Malloc0", False, [
            {"nqn": NQN, "host": HOST1, "dhchap_key": "host1", "dhchap_ctrlr_key": "ctrl1"}])},
    ]}


def config_b(keydir, port_a, port_b):
    # module/bdev/nvme/bdev_nvme.c bdev_nvme_opts_config_json (v24.09), every field.
    set_options = {"method": "bdev_nvme_set_options", "params": {
        "action_on_timeout": "none", "timeout_us": 0, "timeout_admin_us": 0,
        "keep_alive_timeout_ms": 10000, "arbitration_burst": 0, "low_priority_weight": 0,
        "medium_priority_weight": 0, "high_priority_weight": 0,
        "nvme_adminq_poll_period_us": 10000, "nvme_ioq_poll_period_us": 0,
        "io_queue_requests": 0, "delay_cmd_submit": True, "transport_retry_count": 4,
        "bdev_retry_count": 3, "transport_ack_timeout": 0, "ctrlr_loss_timeout_sec": 0,
        "reconnect_delay_sec": 0, "fast_io_fail_timeout_sec": 0,
        "disable_auto_failback": False, "generate_uuids": False, "transport_tos": 0,
        "nvme_error_stat": False, "rdma_srq_size": 0, "io_path_stat": False,
        "allow_accel_sequence": False, "rdma_max_cq_size": 0, "rdma_cm_event_timeout_ms": 0,
        "dhchap_digests": ["sha384", "sha512"],
        "dhchap_dhgroups": ["ffdhe2048", "ffdhe3072"]}}
    # nvme_ctrlr_config_json (v24.09): trid, prchk, reconnect knobs, keys, host.
    attach = {"method": "bdev_nvme_attach_controller", "params": {
        "name": "Auth24", "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1",
        "trsvcid": str(port_a), "subnqn": NQN, "prchk_reftag": False, "prchk_guard": False,
        "ctrlr_loss_timeout_sec": 0, "reconnect_delay_sec": 0, "fast_io_fail_timeout_sec": 0,
        "dhchap_key": "host1", "dhchap_ctrlr_key": "ctrl1", "hostnqn": HOST1,
        "hdgst": False, "ddgst": False}}
    return {"subsystems": [
        keyring(keydir, ["host1", "ctrl1"]),
        {"subsystem": "bdev", "config": [
            set_options, attach,
            {"method": "bdev_nvme_set_hotplug", "params": {"period_us": 100000,
                                                           "enable": False}},
            {"method": "bdev_wait_for_examine"},
        ]},
        {"subsystem": "nvmf", "config": [tcp_transport()] + subsystem_entries(
            NQN_B, port_b, "Auth24n1", True, [])},
    ]}


def entries(cfg, method):
    return [e["params"] for s in cfg["subsystems"] for e in (s["config"] or [])
            if e["method"] == method]


AUTH_METHODS = ("keyring_file_add_key", "nvmf_set_config", "nvmf_subsystem_add_host",
                "bdev_nvme_set_options", "bdev_nvme_attach_controller")
ALWAYS_WRITTEN = ("nvmf_set_config", "bdev_nvme_set_options")
ALL_GROUPS = ["null", "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192"]


class Spdk24AuthConfigTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="nvemu-spdk24-")
        for name in ("host1", "ctrl1"):
            write_key(cls.dir, name, SECRETS[name])
        cls.port_a, cls.port_b = free_port(), free_port()
        cls.cfg_a = config_a(cls.dir, cls.port_a)
        cls.cfg_b = config_b(cls.dir, cls.port_a, cls.port_b)
        path = os.path.join(cls.dir, "a.json")
        with open(path, "w") as f:
            json.dump(cls.cfg_a, f, indent=2)
        cls.a = Target(("-m", "0x1", "-c", path))
        cls.b = Target(("-m", "0x1"))

    @classmethod
    def tearDownClass(cls):
        stop_clean(cls.b, cls.a)

    def test_1_replays_authenticates_and_reads_back(self):
        mark = len(self.a.output())
        r = self.b.call("load_config", self.cfg_b, timeout=30)
        self.assertNotIn("error", r, r)
        ctrls = self.b.result("bdev_nvme_get_controllers")
        self.assertEqual([c["name"] for c in ctrls], ["Auth24"])
        # B offers sha384/sha512 and ffdhe2048/3072, A allows sha256/sha384 and
        # null/ffdhe2048: both files' lists took effect.
        self.assertIn(f"host {HOST1} authenticated on {NQN} qid 0 (sha384, ffdhe2048, "
                      "bidirectional)", self.a.output()[mark:])
        r = write_verify(self.port_b, NQN_B, 16, 64, 24)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_2_keyring_get_keys_fields_as_spdk24(self):
        keys = {k["name"]: k for k in self.a.result("keyring_get_keys")}
        self.assertEqual(sorted(keys), ["ctrl1", "host1"])
        k = keys["host1"]
        # lib/keyring/keyring.c keyring_dump_key_info + the file module's dump_info.
        self.assertEqual(set(k), {"name", "module", "removed", "probed", "refcnt", "path"})
        self.assertEqual((k["module"], k["removed"], k["probed"]), ("keyring_file", False, False))
        self.assertEqual(k["path"], os.path.join(self.dir, "host1"))
        self.assertEqual(k["refcnt"], 2)  # the keyring's + the host entry's

    def test_3_save_config_has_the_same_shape(self):
        self.b.call("bdev_wait_for_examine")
        for name, target, given in (("A", self.a, self.cfg_a), ("B", self.b, self.cfg_b)):
            saved = target.result("save_config")
            order = [s["subsystem"] for s in saved["subsystems"]]
            for user in ("bdev", "nvmf"):
                self.assertLess(order.index("keyring"), order.index(user), (name, order))
            for method in AUTH_METHODS:
                want, got = entries(given, method), entries(saved, method)
                with self.subTest(target=name, method=method):
                    if not want and method in ALWAYS_WRITTEN:
                        # SPDK writes these with the defaults when nothing set them.
                        self.assertEqual(len(got), 1, got)
                        self.assertEqual(got[0]["dhchap_digests"], ["sha256", "sha384", "sha512"])
                        self.assertEqual(got[0]["dhchap_dhgroups"], ALL_GROUPS)
                        continue
                    self.assertEqual(len(got), len(want), got)
                    for w, g in zip(want, got):
                        if method in ("keyring_file_add_key", "nvmf_subsystem_add_host"):
                            self.assertEqual(g, w)  # every field, same values
                            continue
                        # Fields SPDK 24.x writes that nvemu writes too carry the
                        # same values; the DH-HMAC-CHAP ones must be there.
                        dh = {f for f in w if f.startswith("dhchap")}
                        self.assertTrue(dh and dh <= set(g), (dh, sorted(g)))
                        for f in set(w) & set(g):
                            self.assertEqual(g[f], w[f], f)
                        # Same field names: nothing SPDK 24.x wrote is lost,
                        # nothing of nvemu's own is added.
                        self.assertEqual(sorted(g), sorted(w))

    def test_4_removed_key_in_use(self):
        """keyring_file_remove_key of a key a host entry holds: listed as
        removed, with the host's reference only and no module fields (SPDK
        24.x lib/keyring/keyring.c)."""
        self.a.result("keyring_file_remove_key", {"name": "ctrl1"})
        keys = {k["name"]: k for k in self.a.result("keyring_get_keys")}
        self.assertEqual(keys["ctrl1"], {"name": "ctrl1", "module": "keyring_file",
                                         "removed": True, "probed": False, "refcnt": 1})
        self.assertEqual(keys["host1"]["refcnt"], 2)


if __name__ == "__main__":
    harness.run_unittest_main()
