"""Who may connect: keyring, host access control, DH-HMAC-CHAP, the RPC socket.

Target A exports a malloc namespace over NVMe/TCP to listed hosts; target B
is the initiator (bdev_nvme_attach_controller with keyring keys) and
re-exports what it attached, so bytes written through B are read back from
A. Every refusal is checked by its RPC code and message and by A's log line
naming the host and the failed step; the RPC socket's mode, size limit and
slow-client drop are checked on a live daemon.
"""
import base64
import grp
import hashlib
import hmac
import json
import os
import socket
import stat
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Target, free_port, stop_clean  # noqa: E402
from nvme_tcp_client import Queue  # noqa: E402
from test_bdev_nvme import (attach_params, export, pattern, read_blocks,  # noqa: E402
                            write_verify)

NQN = "nqn.2016-06.io.spdk:locked"
NQN_B = "nqn.2016-06.io.spdk:reexport"
HOST1 = "nqn.2014-08.org.nvmexpress:uuid:11111111-1111-4111-8111-111111111111"
HOST2 = "nqn.2014-08.org.nvmexpress:uuid:22222222-2222-4222-8222-222222222222"
STRANGER = "nqn.2014-08.org.nvmexpress:uuid:33333333-3333-4333-8333-333333333333"
# Printed by nvme-cli 2.3's gen-dhchap-key (Debian 12).
SECRETS = {
    "host1": "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:",
    "ctrl1": "DHHC-1:01:vb3shNpwt6PnRJ3wYKwspZpHfeAH17cXc1fDwlzRPrxJu191:",
    "host2": "DHHC-1:00:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACtVQoZ:",
}


def write_key(directory, name, text, mode=0o600):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, mode)
    return path


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="nvemu-auth-")
        cls.a = Target(("-m", "0x1"))
        cls.b = Target(("-m", "0x1"))
        cls.port = free_port()
        for t in (cls.a, cls.b):
            for name, text in SECRETS.items():
                path = write_key(cls.dir, f"{name}-{t.proc.pid}", text)
                t.result("keyring_file_add_key", {"name": name, "path": path})
        cls.a.result("bdev_malloc_create", {"name": "Malloc0", "num_blocks": 8192,
                                            "block_size": 512})
        export(cls.a, NQN, cls.port, ["Malloc0"], allow_any_host=False)
        cls.a.result("nvmf_subsystem_add_host", {"nqn": NQN, "host": HOST1,
                                                 "dhchap_key": "host1",
                                                 "dhchap_ctrlr_key": "ctrl1"})
        cls.a.result("nvmf_subsystem_add_host", {"nqn": NQN, "host": HOST2,
                                                 "dhchap_key": "host2"})
        cls.b.result("nvmf_create_transport", {"trtype": "TCP"})

    @classmethod
    def tearDownClass(cls):
        stop_clean(cls.b, cls.a)

    def tearDown(self):
        for c in self.b.result("bdev_nvme_get_controllers"):
            self.b.call("bdev_nvme_detach_controller", {"name": c["name"]})
        for s in self.b.result("nvmf_get_subsystems"):
            if s["subtype"] == "NVMe":
                self.b.call("nvmf_delete_subsystem", {"nqn": s["nqn"]})
        self.b.call("bdev_nvme_set_options", {"dhchap_digests": ["sha256", "sha384", "sha512"],
                                              "dhchap_dhgroups": ["null", "ffdhe2048",
                                                                  "ffdhe3072", "ffdhe4096",
                                                                  "ffdhe6144", "ffdhe8192"]})

    def attach(self, host, **keys):
        return self.b.call("bdev_nvme_attach_controller",
                           attach_params("Auth0", self.port, NQN, hostnqn=host, **keys))

    def a_log_since(self, mark):
        return self.a.output()[mark:]

    # ---- keyring ------------------------------------------------------------

    def test_01_keyring_checks_the_file(self):
        t = self.a
        loose = write_key(self.dir, "loose", SECRETS["host1"], 0o644)
        e = t.call("keyring_file_add_key", {"name": "k", "path": loose})["error"]
        self.assertEqual(e["code"], -1)  # -EPERM, as SPDK
        self.assertIn(loose, e["message"])
        self.assertIn("chmod 0600", e["message"])
        other = write_key(self.dir, "other-owner", SECRETS["host1"])
        os.chown(other, 65534, -1)
        e = t.call("keyring_file_add_key", {"name": "k", "path": other})["error"]
        self.assertEqual(e["code"], -1)
        self.assertIn("owned by uid 65534", e["message"])
        e = t.call("keyring_file_add_key", {"name": "k", "path": "relative/key"})["error"]
        self.assertEqual(e["code"], -1)
        self.assertIn("not absolute", e["message"])
        missing = os.path.join(self.dir, "missing")
        e = t.call("keyring_file_add_key", {"name": "k", "path": missing})["error"]
        self.assertEqual(e["code"], -2)
        self.assertIn(missing, e["message"])
        junk = write_key(self.dir, "junk", "not a secret")
        e = t.call("keyring_file_add_key", {"name": "k", "path": junk})["error"]
        self.assertEqual(e["code"], -22)
        self.assertIn("DHHC-1", e["message"])
        e = t.call("keyring_file_add_key", {"name": "host1", "path": junk})["error"]
        self.assertEqual(e["code"], -17)
        # Nothing half-added: k is absent.
        names = [k["name"] for k in t.result("keyring_get_keys")]
        self.assertEqual(sorted(names), sorted(SECRETS))

    def test_02_no_secret_leaves_the_daemon(self):
        keys = self.a.result("keyring_get_keys")
        host1 = [k for k in keys if k["name"] == "host1"][0]
        self.assertEqual(host1["module"], "keyring_file")
        self.assertEqual(host1["refcnt"], 2)  # the keyring's + the host entry's, as SPDK
        saved = json.dumps(self.a.result("save_config"))
        subs = json.dumps(self.a.result("nvmf_get_subsystems"))
        for text in SECRETS.values():
            body = text.split(":")[2]
            for dump in (json.dumps(keys), saved, subs, self.a.output()):
                self.assertNotIn(body, dump)
        cfg = self.a.result("save_config")
        kr = [s for s in cfg["subsystems"] if s["subsystem"] == "keyring"][0]["config"]
        self.assertIn("keyring_file_add_key", [c["method"] for c in kr])
        hosts = [c["params"] for s in cfg["subsystems"] for c in (s["config"] or [])
                 if c["method"] == "nvmf_subsystem_add_host"]
        self.assertIn({"nqn": NQN, "host": HOST1, "dhchap_key": "host1",
                       "dhchap_ctrlr_key": "ctrl1"}, hosts)

    def test_03_add_host_names_missing_keys(self):
        e = self.a.call("nvmf_subsystem_add_host", {"nqn": NQN, "host": STRANGER,
                                                    "dhchap_key": "nope"})["error"]
        self.assertEqual(e["code"], -32602)
        self.assertIn("'nope'", e["message"])
        e = self.a.call("nvmf_subsystem_add_host", {"nqn": NQN, "host": STRANGER,
                                                    "dhchap_ctrlr_key": "ctrl1"})["error"]
        self.assertIn("requires dhchap_key", e["message"])
        hosts = [h["nqn"] for h in self.a.result("nvmf_get_subsystems")
                 if False] or [h["nqn"] for s in self.a.result("nvmf_get_subsystems")
                               if s["nqn"] == NQN for h in s["hosts"]]
        self.assertNotIn(STRANGER, hosts)
        e = self.b.call("bdev_nvme_attach_controller",
                        attach_params("X", self.port, NQN, dhchap_key="nope"))["error"]
        self.assertEqual(e["code"], -126)  # -ENOKEY

    # ---- DH-HMAC-CHAP through bdev_nvme ------------------------------------

    def test_04_bidirectional_with_io(self):
        mark = len(self.a.output())
        names = self.b.result("bdev_nvme_attach_controller",
                              attach_params("Auth0", self.port, NQN, hostnqn=HOST1,
                                            dhchap_key="host1", dhchap_ctrlr_key="ctrl1"))
        self.assertEqual(names, ["Auth0n1"])
        port_b = free_port()
        export(self.b, NQN_B, port_b, ["Auth0n1"], transport=False)
        r = write_verify(port_b, NQN_B, 40, 128, 11)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # The bytes reached A's namespace through the authenticated queues.
        self.a.result("nvmf_subsystem_allow_any_host", {"nqn": NQN, "allow_any_host": True})
        try:
            self.assertEqual(read_blocks(self.port, NQN, 40, 128),
                             pattern(11, 40 * 512, 128 * 512))
        finally:
            self.a.result("nvmf_subsystem_allow_any_host", {"nqn": NQN,
                                                            "allow_any_host": False})
        log = self.a_log_since(mark)
        self.assertIn(f"host {HOST1} authenticated on {NQN} qid 0 (sha512, ffdhe8192, "
                      "bidirectional)", log)
        self.assertRegex(log, rf"host {HOST1} authenticated on {NQN} qid [1-9]")
        saved = self.b.result("save_config")
        att = [c["params"] for s in saved["subsystems"] for c in (s["config"] or [])
               if c["method"] == "bdev_nvme_attach_controller"][0]
        self.assertEqual((att["dhchap_key"], att["dhchap_ctrlr_key"]), ("host1", "ctrl1"))

    def test_05_each_digest_null_and_ffdhe2048(self):
        for digest in ("sha256", "sha384", "sha512"):
            for group in ("null", "ffdhe2048"):
                with self.subTest(digest=digest, group=group):
                    self.b.result("bdev_nvme_set_options", {"dhchap_digests": [digest],
                                                            "dhchap_dhgroups": [group]})
                    mark = len(self.a.output())
                    r = self.attach(HOST2, dhchap_key="host2")
                    try:
                        self.assertNotIn("error", r, r)
                        self.assertIn(f"host {HOST2} authenticated on {NQN} qid 0 ({digest}, "
                                      f"{group})", self.a_log_since(mark))
                    finally:
                        self.b.call("bdev_nvme_detach_controller", {"name": "Auth0"})

    def test_06_refusals(self):
        cases = [
            # (host, keys, RPC error text, A's log text)
            (HOST2, {"dhchap_key": "host1"}, "did not authenticate",
             f"DH-HMAC-CHAP of host {HOST2} on {NQN} (qid 0) failed at reply: the host's "
             "response does not match its key 'host2'"),
            (HOST1, {}, "requires DH-HMAC-CHAP authentication", None),
            (HOST1, {"dhchap_key": "host1", "dhchap_ctrlr_key": "host2"},
             "does not match dhchap_ctrlr_key",
             f"host {HOST1} on {NQN} (qid 0) rejected the controller"),
            (HOST2, {"dhchap_key": "host2", "dhchap_ctrlr_key": "ctrl1"}, "did not authenticate",
             "has no dhchap_ctrlr_key"),
        ]
        for host, keys, rpc_text, log_text in cases:
            with self.subTest(host=host, keys=keys):
                mark = len(self.a.output())
                e = self.attach(host, **keys)["error"]
                self.assertEqual(e["code"], -13, e)  # -EACCES
                self.assertIn(rpc_text, e["message"])
                if log_text:
                    self.assertIn(log_text, self.a_log_since(mark))
                self.assertEqual(self.b.result("bdev_nvme_get_controllers"), [])
                self.assertEqual(self.b.result("bdev_get_bdevs"), [])
        # The target's allowed digests: one the host does not offer.
        self.b.result("bdev_nvme_set_options", {"dhchap_digests": ["sha256"]})
        mark = len(self.a.output())
        c = AuthTest.a  # nvmf_set_config is start-up only: a target of its own
        del c
        t = Target(("-m", "0x1", "--wait-for-rpc"))
        try:
            t.result("nvmf_set_config", {"dhchap_digests": ["sha384"],
                                         "dhchap_dhgroups": ["null"]})
            e = t.call("nvmf_set_config", {"dhchap_dhgroups": ["ffdhe1024"]})["error"]
            self.assertEqual(e["code"], -32602)
            self.assertIn("ffdhe1024", e["message"])
            t.result("framework_start_init")
            path = write_key(self.dir, f"h2-{t.proc.pid}", SECRETS["host2"])
            t.result("keyring_file_add_key", {"name": "host2", "path": path})
            t.result("bdev_malloc_create", {"name": "M", "num_blocks": 1024, "block_size": 512})
            port = free_port()
            export(t, NQN, port, ["M"], allow_any_host=False)
            t.result("nvmf_subsystem_add_host", {"nqn": NQN, "host": HOST2,
                                                 "dhchap_key": "host2"})
            e = self.b.call("bdev_nvme_attach_controller",
                            attach_params("Auth0", port, NQN, hostnqn=HOST2,
                                          dhchap_key="host2"))["error"]
            self.assertIn("hash function not usable", e["message"])
            self.assertIn("failed at negotiate", t.output())
            saved = t.result("save_config")
            cfg = [c["params"] for s in saved["subsystems"] for c in (s["config"] or [])
                   if c["method"] == "nvmf_set_config"][0]
            self.assertEqual(cfg["dhchap_digests"], ["sha384"])
        finally:
            t.stop()
        del mark

    def test_07_unauthenticated_queue_runs_nothing(self):
        """A raw host that connects with a keyed NQN and skips authentication:
        the Connect response asks for it (ATR), Property Get answers
        Authentication Required (SCT 1h SC 91h)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            icreq = bytes([0, 0, 128, 0]) + (128).to_bytes(4, "little")
            s.sendall(icreq.ljust(128, b"\0"))
            recv_pdu(s)
            data = bytearray(1024)
            data[16:18] = (0xFFFF).to_bytes(2, "little")
            data[256:256 + len(NQN)] = NQN.encode()
            data[512:512 + len(HOST1)] = HOST1.encode()
            cdw0, status = raw_cmd(s, 1, 0x7F, 0x01, 0, 31, bytes(data))
            self.assertEqual(status, 0)
            self.assertTrue(cdw0 & (1 << 17), f"Connect DW0 {cdw0:#x} lacks AUTHREQ.ATR")
            _, status = raw_cmd(s, 2, 0x7F, 0x04, 0, 0x1C)
            self.assertEqual((status >> 8 & 0x7, status & 0xFF), (1, 0x91))
        finally:
            s.close()

    # ---- host access control ------------------------------------------------

    def test_08_stranger_refused_then_removed_host_disconnected(self):
        mark = len(self.a.output())
        e = self.attach(STRANGER)["error"]
        self.assertEqual(e["code"], -1)  # -EPERM: Connect Invalid Host
        self.assertIn("SC 0x84", e["message"])
        self.assertIn(f"Host '{STRANGER}' is not allowed on subsystem '{NQN}'",
                      self.a_log_since(mark))
        self.assertNotIn("error", self.attach(HOST2, dhchap_key="host2"))
        ctrl = lambda: [c for c in self.a.result("nvmf_subsystem_get_controllers",  # noqa
                                                 {"nqn": NQN}) if c["hostnqn"] == HOST2]
        self.assertEqual(len(ctrl()), 1)
        self.a.result("nvmf_subsystem_remove_host", {"nqn": NQN, "host": HOST2})
        try:
            deadline = time.time() + 5
            while ctrl() and time.time() < deadline:
                time.sleep(0.05)
            self.assertEqual(ctrl(), [])
            self.assertIn(f"host {HOST2} removed from {NQN}: 1 controller(s) disconnected",
                          self.a.output())
        finally:
            self.a.result("nvmf_subsystem_add_host", {"nqn": NQN, "host": HOST2,
                                                     "dhchap_key": "host2"})

    # ---- the transaction's timeout (SPDK 24.x nvmf_auth_rearm_poller) -------

    def test_09_first_authentication_stall_drops_the_queue(self):
        """A keyed host connects its admin queue with KATO 1 s and then stalls,
        before Negotiate or after it: A closes the connection about one KATO
        after the last step (not never, not after a fixed minute), logs the
        step, and serves other hosts meanwhile."""
        for variant, step in (("silent", "negotiate"), ("negotiate", "challenge")):
            with self.subTest(variant=variant):
                mark = len(self.a.output())
                q = Queue(self.port, NQN, hostnqn=HOST1, kato_ms=1000)
                try:
                    t0 = time.time()
                    if variant == "negotiate":
                        self.assertTrue(auth_send(q, negotiate_msg(7)).ok)
                    # Another host authenticates and runs commands meanwhile.
                    other = Queue(self.port, NQN, hostnqn=HOST2)
                    try:
                        authenticate(other, NQN, HOST2, SECRETS["host2"], tid=1)
                        self.assertEqual(other.prop_get(0x08), 0x00010300)  # VS 1.3
                    finally:
                        other.close()
                    self.assertTrue(wait_closed(q, 6.0), "the stalled queue was never dropped")
                    elapsed = time.time() - t0
                    self.assertGreater(elapsed, 0.8)
                    self.assertLess(elapsed, 3.5)
                finally:
                    q.close()
                self.assertIn(f"DH-HMAC-CHAP of host {HOST1} on {NQN} (qid 0) timed out at "
                              f"{step}: no message from the host for 1000 ms",
                              self.a_log_since(mark))
                self.assertIn("disconnecting the queue", self.a_log_since(mark))
        deadline = time.time() + 5
        while time.time() < deadline and [
                c for c in self.a.result("nvmf_subsystem_get_controllers", {"nqn": NQN})
                if c["hostnqn"] == HOST1]:
            time.sleep(0.05)
        self.assertEqual([c for c in self.a.result("nvmf_subsystem_get_controllers",
                                                   {"nqn": NQN}) if c["hostnqn"] == HOST1], [])

    def test_10_reauthentication_stall_is_not_fatal(self):
        """An authenticated queue starts a re-authentication and stalls after
        Negotiate: past the timeout the transaction is abandoned, the queue
        keeps running commands, and a new re-authentication succeeds (it
        would be refused as a Negotiate in the middle of a transaction if the
        stalled one were still pending)."""
        mark = len(self.a.output())
        q = Queue(self.port, NQN, hostnqn=HOST2, kato_ms=1000)
        try:
            authenticate(q, NQN, HOST2, SECRETS["host2"], tid=3)
            self.assertEqual(q.prop_get(0x08), 0x00010300)
            self.assertTrue(auth_send(q, negotiate_msg(4)).ok)
            deadline = time.time() + 2.0
            while time.time() < deadline:  # Property Get keeps the controller alive
                self.assertEqual(q.prop_get(0x08), 0x00010300)
                time.sleep(0.2)
            log = self.a_log_since(mark)
            self.assertIn(f"DH-HMAC-CHAP of host {HOST2} on {NQN} (qid 0) timed out at challenge",
                          log)
            self.assertIn("re-authentication abandoned, the queue stays authenticated", log)
            authenticate(q, NQN, HOST2, SECRETS["host2"], tid=5)
            self.assertEqual(q.prop_get(0x08), 0x00010300)
            self.assertNotIn(f"DH-HMAC-CHAP of host {HOST2} on {NQN} (qid 0) failed",
                             self.a_log_since(mark))
        finally:
            q.close()


# ---- DH-HMAC-CHAP host side for the null DH group and SHA-256 (Base 2.0,
# 8.13.5), enough to drive a queue from Python -------------------------------

AUTH_SECP_SPSP = (0x01 << 8) | (0x01 << 16) | (0xE9 << 24)  # SPSP0/1 = 1, SECP E9h


def auth_cmd(q, fctype, length, data=b""):
    cid = q.alloc_cid()
    sgl = (b"\0" * 8 + length.to_bytes(4, "little") + b"\0\0\0" +
           bytes([0x01 if data else 0x5A]))
    cmd = bytearray(64)
    cmd[0], cmd[1] = 0x7F, 0x40
    cmd[2:4] = cid.to_bytes(2, "little")
    cmd[4] = fctype
    cmd[24:40] = sgl
    cmd[40:44] = AUTH_SECP_SPSP.to_bytes(4, "little")
    cmd[44:48] = length.to_bytes(4, "little")
    q.partial[cid] = bytearray(0 if data else length)
    return q.wait(q.submit_raw(bytes(cmd), data))


def auth_send(q, msg):
    return auth_cmd(q, 0x05, len(msg), msg)


def auth_recv(q, length=512):
    c = auth_cmd(q, 0x06, length)
    if not c.ok:
        raise AssertionError(f"AUTH_Receive failed: {c}")
    return c.data


def negotiate_msg(tid):
    desc = bytearray(64)
    desc[0], desc[2], desc[3] = 0x01, 1, 1  # DH-HMAC-CHAP, one hash, one group
    desc[4] = 0x01                          # SHA-256
    desc[4 + 30] = 0x00                     # null DH group
    return bytes([0x00, 0x00, 0, 0]) + tid.to_bytes(2, "little") + bytes([0, 1]) + bytes(desc)


def secret_key(text, nqn):
    """The transformed key of a DHHC-1 secret (transform 00: none, 01: SHA-256)."""
    _, transform, b64, _ = text.split(":")
    raw = base64.b64decode(b64)[:-4]  # the key without its CRC-32
    if transform == "00":
        return raw
    assert transform == "01"
    return hmac.new(raw, nqn.encode() + b"NVMe-over-Fabrics", hashlib.sha256).digest()


def authenticate(q, subnqn, hostnqn, secret, tid):
    """Negotiate (SHA-256, null DH) -> Challenge -> Reply -> Success1."""
    c = auth_send(q, negotiate_msg(tid))
    if not c.ok:
        raise AssertionError(f"AUTH_Send(Negotiate) failed: {c}")
    ch = auth_recv(q)
    if ch[1] != 0x01:
        raise AssertionError(f"expected a Challenge, got message id {ch[1]:#x}: {ch[:16].hex()}")
    hl, hashid, dhgid = ch[6], ch[8], ch[9]
    assert (hl, hashid, dhgid) == (32, 1, 0), (hl, hashid, dhgid)
    seqnum = int.from_bytes(ch[12:16], "little")
    c1 = ch[16:16 + hl]
    m = (c1 + seqnum.to_bytes(4, "little") + tid.to_bytes(2, "little") + b"\0" + b"HostHost" +
         hostnqn.encode() + b"\0" + subnqn.encode())
    r1 = hmac.new(secret_key(secret, hostnqn), m, hashlib.sha256).digest()
    reply = (bytes([0x01, 0x02, 0, 0]) + tid.to_bytes(2, "little") + bytes([hl, 0, 0, 0]) +
             (0).to_bytes(2, "little") + (0).to_bytes(4, "little") + r1 + bytes(hl))
    c = auth_send(q, reply)
    if not c.ok:
        raise AssertionError(f"AUTH_Send(Reply) failed: {c}")
    s1 = auth_recv(q)
    if s1[1] != 0x03:
        raise AssertionError(f"expected Success1, got message id {s1[1]:#x}: {s1[:8].hex()}")


def wait_closed(q, timeout):
    """True when the target closes q's connection within timeout."""
    q.sock.settimeout(timeout)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if not q.sock.recv(4096):
                return True
    except socket.timeout:
        return False
    except OSError:
        return True
    return False


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def recv_pdu(s):
    ch = recv_exact(s, 8)
    return ch + recv_exact(s, int.from_bytes(ch[4:8], "little") - 8)


def raw_cmd(s, cid, opc, nsid, cdw10, cdw11, data=b""):
    import struct
    sgl = struct.pack("<QI3xB", 0, len(data), 0x01 if data else 0x5A)
    sqe = struct.pack("<BBHI", opc, 0x40, cid, nsid) + bytes(16) + sgl + struct.pack(
        "<IIIIII", cdw10, cdw11, 0, 0, 0, 0)
    s.sendall(struct.pack("<BBBBI", 0x04, 0, 72, 72 if data else 0, 72 + len(data)) + sqe + data)
    while True:
        pdu = recv_pdu(s)
        if pdu[0] == 0x05:
            cdw0, _, _, _, rcid, status = struct.unpack_from("<IIHHHH", pdu, 8)
            if rcid == cid:
                return cdw0, status >> 1


class RpcSocketTest(unittest.TestCase):
    def test_mode_0600_and_group(self):
        with Target(("-m", "0x1")) as t:
            st = os.stat(t.sock)
            self.assertTrue(stat.S_ISSOCK(st.st_mode))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        group = grp.getgrgid(os.getgid() if os.getgid() != 0 else 1)
        with Target(("-m", "0x1", "--rpc-socket-group", group.gr_name)) as t:
            st = os.stat(t.sock)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
            self.assertEqual(st.st_gid, group.gr_gid)
        t = Target(("-m", "0x1", "--rpc-socket-group", "no-such-group-nvemu"), wait=False)
        try:
            t.proc.wait(10)
            self.assertNotEqual(t.proc.returncode, 0)
            self.assertIn("no group 'no-such-group-nvemu'", t.output())
        finally:
            t.stop()

    def test_oversize_request_refused(self):
        with Target(("-m", "0x1", "--rpc-max-request-bytes", "65536")) as t:
            big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "spdk_get_version",
                              "params": {"pad": "x" * 100000}}).encode()
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(t.sock)
                try:
                    s.sendall(big)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                reply = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break  # closed by the daemon
                    reply += chunk
            e = json.loads(reply.split(b"\n")[0])["error"]
            self.assertEqual(e["code"], -32700)
            self.assertIn("larger than 65536 bytes", e["message"])
            self.assertIn("version", t.result("spdk_get_version"))

    def test_slow_client_dropped_others_served(self):
        with Target(("-m", "0x1")) as t:
            slow = socket.socket(socket.AF_UNIX)
            slow.connect(t.sock)
            slow.settimeout(0.2)
            req = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "spdk_get_version"}).encode()
            dropped = threading.Event()
            reply = []

            def trickle():
                start = time.time()
                for i in range(len(req)):
                    try:
                        slow.sendall(req[i:i + 1])
                    except OSError:
                        break
                    try:
                        data = slow.recv(4096)
                        if data:
                            reply.append(data)
                        dropped.set()
                        return
                    except socket.timeout:
                        pass
                    if time.time() - start > 15:
                        return
            th = threading.Thread(target=trickle)
            th.start()
            worst = 0.0
            while th.is_alive():
                t0 = time.time()
                self.assertIn("version", t.result("spdk_get_version"))
                worst = max(worst, time.time() - t0)
                time.sleep(0.1)
            th.join()
            slow.close()
            self.assertTrue(dropped.is_set(), "the slow client was never dropped")
            self.assertIn(b"too slowly", b"".join(reply))
            self.assertLess(worst, 1.0, "another client waited on the slow one")
            self.assertIn("slower than", t.output())


if __name__ == "__main__":
    harness.run_unittest_main()
