#!/usr/bin/python3
"""Linux 6.12 as the host against nvemu with DH-HMAC-CHAP and host access
control: bookworm-backports' kernel (CONFIG_NVME_HOST_AUTH=y; Debian 12's
6.1 has no NVMe auth) in QEMU, Debian's nvme-cli 2.3 with --dhchap-secret /
--dhchap-ctrl-secret. One guest boot serves every case; the target is
restarted on the same port where nvmf_set_config (start-up only) picks the
digest and DH group.

Prints one line per check, then "N passed, N failed"; exits 1 on failure.
Not covered here yet: nvemu's initiator against the guest's nvmet (the
harness forwards guest->host only; it needs a hostfwd)."""
import hashlib
import os
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "system"))
import guest  # noqa: E402
import harness  # noqa: E402
import linux_host  # noqa: E402

KERNEL = os.environ.get("NVEMU_AUTH_KERNEL", "linux-image-6.12-amd64")
NQN = "nqn.2016-06.io.spdk:locked"
DISC = "nqn.2014-08.org.nvmexpress.discovery"
FWD_IP, FWD_PORT = "10.0.2.100", 4420
STRANGER = "nqn.2014-08.org.nvmexpress:uuid:33333333-3333-4333-8333-333333333333"
# nvme gen-dhchap-key output (nvme-cli 2.3).
HOST_KEY = "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:"
CTRL_KEY = "DHHC-1:01:vb3shNpwt6PnRJ3wYKwspZpHfeAH17cXc1fDwlzRPrxJu191:"
OTHER_KEY = "DHHC-1:00:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACtVQoZ:"
# What the kernel needs for nvme-auth besides the default set; request_module()
# finds the staged ones lazily.
AUTH_MODULES = guest.DEFAULT_MODULES + ("nvme-auth", "dh_generic", "hmac", "sha256_generic",
                                        "sha512_generic")
PATTERN_MB = 2


def start_target(port, keydir, digests=None, dhgroups=None, host=None, ctrl_key=True):
    t = harness.Target(("-m", "0x1", "--wait-for-rpc"))
    if digests or dhgroups:
        t.result("nvmf_set_config", {**({"dhchap_digests": digests} if digests else {}),
                                     **({"dhchap_dhgroups": dhgroups} if dhgroups else {})})
    t.result("framework_start_init")
    for name, text in (("host", HOST_KEY), ("ctrl", CTRL_KEY)):
        path = os.path.join(keydir, f"{name}-{t.proc.pid}")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        t.result("keyring_file_add_key", {"name": name, "path": path})
    t.result("bdev_malloc_create", {"name": "Malloc0", "num_blocks": 16384, "block_size": 512})
    t.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": False})
    t.result("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "Malloc0"}})
    t.result("nvmf_create_transport", {"trtype": "TCP"})
    addr = {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port)}
    for nqn in (NQN, DISC):
        t.result("nvmf_subsystem_add_listener", {"nqn": nqn, "listen_address": addr})
    keys = {"dhchap_key": "host", **({"dhchap_ctrlr_key": "ctrl"} if ctrl_key else {})}
    t.result("nvmf_subsystem_add_host", {"nqn": NQN, "host": host, **keys})
    return t


def main():
    checks = linux_host.Checks()
    port = guest.free_port()
    keydir = tempfile.mkdtemp(prefix="nvemu-e2e-auth-")
    pattern = os.urandom(PATTERN_MB << 20)
    pattern_path = os.path.join("/tmp", f"nvemu-e2e-auth-pattern-{os.getpid()}")
    with open(pattern_path, "wb") as f:
        f.write(pattern)
    digest = hashlib.sha256(pattern).hexdigest()
    state = {"tgt": None}

    def restart(**kw):
        if state["tgt"]:
            state["tgt"].stop()
        state["tgt"] = start_target(port, keydir, host=g.host_nqn, **kw)

    def connect(extra, host=None):
        hn = host or g.host_nqn
        return g.run(f"nvme connect -t tcp -a {FWD_IP} -s {FWD_PORT} -n {NQN} "
                     f"--hostnqn={hn} --hostid={g.host_id} {extra}", timeout=90)

    def disconnect():
        g.run(f"nvme disconnect -n {NQN}", timeout=60)

    def authenticated_io(digests, dhgroups, bidirectional):
        def run():
            restart(digests=digests, dhgroups=dhgroups, ctrl_key=bidirectional)
            extra = f"--dhchap-secret={HOST_KEY}"
            if bidirectional:
                extra += f" --dhchap-ctrl-secret={CTRL_KEY}"
            rc, out = connect(extra)
            assert rc == 0, out
            try:
                disk = linux_host.find_disk(g, NQN)
                linux_host.dd_roundtrip(g, disk, pattern_path, digest, PATTERN_MB)
                log = state["tgt"].output()
                want = f"host {g.host_nqn} authenticated on {NQN} qid 0 ({digests[0]}, {dhgroups[0]}"
                assert want in log, f"no '{want}' in the target log"
                if bidirectional:
                    assert "bidirectional" in log, "controller was not authenticated"
            finally:
                disconnect()
        return run

    def refused(extra, host=None, log_text=None):
        def run():
            # ffdhe8192, the default pick, takes the emulated guest long.
            restart(dhgroups=["ffdhe2048"])
            rc, out = connect(extra, host)
            if rc == 0:
                disconnect()
            assert rc != 0, f"connect succeeded: {out}"
            if log_text:
                assert log_text in state["tgt"].output(), state["tgt"].output()[-2000:]
        return run

    def access_control():
        restart(dhgroups=["null"])
        t = state["tgt"]
        ids = f"--hostid={g.host_id}"
        out = g.check(f"nvme discover -t tcp -a {FWD_IP} -s {FWD_PORT} --hostnqn={STRANGER} {ids}",
                      timeout=60)
        assert NQN not in out, f"a stranger's discovery lists the subsystem: {out}"
        rc, out = connect("", host=STRANGER)
        assert rc != 0, out
        assert f"Host '{STRANGER}' is not allowed on subsystem '{NQN}'" in t.output()
        out = g.check(f"nvme discover -t tcp -a {FWD_IP} -s {FWD_PORT} --hostnqn={g.host_nqn} "
                      f"{ids}", timeout=60)
        assert NQN in out, f"the allowed host does not discover the subsystem: {out}"
        rc, out = connect(f"--dhchap-secret={HOST_KEY}")
        assert rc == 0, out
        disk = linux_host.find_disk(g, NQN)
        g.check(f"dd if={disk} of=/dev/null bs=4k count=16 iflag=direct status=none")
        t.result("nvmf_subsystem_remove_host", {"nqn": NQN, "host": g.host_nqn})
        rc = 0
        for _ in range(100):
            rc, _ = g.run(f"dd if={disk} of=/dev/null bs=4k count=1 iflag=direct status=none",
                          timeout=30)
            if rc != 0 or not t.result("nvmf_subsystem_get_controllers", {"nqn": NQN}):
                break
        assert t.result("nvmf_subsystem_get_controllers", {"nqn": NQN}) == [], \
            "the removed host's controller is still there"
        disconnect()

    with guest.Guest(forwards=[(FWD_IP, FWD_PORT, port)], kernel=KERNEL,
                     modules=AUTH_MODULES) as g:
        print(f"guest ({KERNEL}) booted in {g.boot_seconds:.1f}s", flush=True)
        try:
            checks.run("sha256 + null DH, unidirectional, dd",
                       authenticated_io(["sha256"], ["null"], False))
            checks.run("sha384 + ffdhe2048, bidirectional, dd",
                       authenticated_io(["sha384"], ["ffdhe2048"], True))
            checks.run("sha512 + ffdhe2048, bidirectional, dd",
                       authenticated_io(["sha512"], ["ffdhe2048"], True))
            checks.run("wrong key refused",
                       refused(f"--dhchap-secret={OTHER_KEY}",
                               log_text="failed at reply: the host's response does not match"))
            checks.run("no key refused", refused(""))
            checks.run("another host's key refused",
                       refused(f"--dhchap-secret={HOST_KEY}", host=STRANGER,
                               log_text=f"Host '{STRANGER}' is not allowed"))
            checks.run("wrong controller key: the host rejects the target",
                       refused(f"--dhchap-secret={HOST_KEY} --dhchap-ctrl-secret={OTHER_KEY}",
                               log_text="rejected the controller"))
            checks.run("access control: discovery filtered, stranger refused, removal "
                       "disconnects", access_control)
        finally:
            if state["tgt"]:
                state["tgt"].stop()
            os.unlink(pattern_path)
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main())
