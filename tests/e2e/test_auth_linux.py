#!/usr/bin/python3
"""Linux 6.12 as the host against nvemu with DH-HMAC-CHAP and host access
control: bookworm-backports' kernel (CONFIG_NVME_HOST_AUTH=y; Debian 12's
6.1 has no NVMe auth) in QEMU, Debian's nvme-cli 2.3 with --dhchap-secret /
--dhchap-ctrl-secret. One guest boot serves every case; the target is
restarted on the same port where nvmf_set_config (start-up only) picks the
digest and DH group.

The same guest is also the target: Linux nvmet (configfs dhchap_key,
dhchap_ctrl_key, dhchap_hash, dhchap_dhgroup on the host entry, a file on the
guest's tmpfs as the namespace) reached through a hostfwd, with nvemu's
bdev_nvme initiator attaching with keyring keys; bytes written through nvemu
are read back from the guest's backing file.

Prints one line per check, then "N passed, N failed"; exits 1 on failure."""
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
from test_bdev_nvme import attach_params, export, write_verify  # noqa: E402
from test_bdev_nvme import pattern as host_pattern  # noqa: E402

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
                                        "sha512_generic", "nvmet", "nvmet-tcp")
PATTERN_MB = 2
# Linux nvmet in the guest, reached from the host through a hostfwd.
NVMET_NQN = "nqn.2014-08.org.nvmexpress:nvmet-locked"
NVMET_PORT = 4421
NVMET_FILE = "/tmp/nvmet-backing"
NVEMU_HOST = "nqn.2014-08.org.nvmexpress:uuid:44444444-4444-4444-8444-444444444444"
REEXPORT = "nqn.2016-06.io.spdk:reexport"


def nvmet_setup(g, host_key, ctrl_key, digest, dhgroup):
    """An nvmet TCP port + subsystem that admits NVEMU_HOST only, with
    DH-HMAC-CHAP keys on its host entry and a 16 MiB tmpfs file as ns 1."""
    cfg = "/sys/kernel/config/nvmet"
    host = f"{cfg}/hosts/{NVEMU_HOST}"
    sub = f"{cfg}/subsystems/{NVMET_NQN}"
    g.check("grep -q configfs /proc/mounts || mount -t configfs none /sys/kernel/config")
    g.check(f"truncate -s 16M {NVMET_FILE} && mkdir -p {host} {sub}/namespaces/1 "
            f"{cfg}/ports/1")
    for path, value in ((f"{host}/dhchap_key", host_key),
                        (f"{host}/dhchap_ctrl_key", ctrl_key),
                        (f"{host}/dhchap_hash", f"hmac({digest})"),
                        (f"{host}/dhchap_dhgroup", dhgroup),
                        (f"{sub}/attr_allow_any_host", "0"),
                        (f"{sub}/namespaces/1/device_path", NVMET_FILE),
                        (f"{sub}/namespaces/1/buffered_io", "1"),
                        (f"{sub}/namespaces/1/enable", "1"),
                        (f"{cfg}/ports/1/addr_trtype", "tcp"),
                        (f"{cfg}/ports/1/addr_adrfam", "ipv4"),
                        (f"{cfg}/ports/1/addr_traddr", "0.0.0.0"),
                        (f"{cfg}/ports/1/addr_trsvcid", str(NVMET_PORT))):
        g.check(f"echo '{value}' > '{path}'")
    g.check(f"ln -s {host} {sub}/allowed_hosts/ && ln -s {sub} {cfg}/ports/1/subsystems/")


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

    def nvmet_initiator():
        """nvemu's bdev_nvme against Linux nvmet with bidirectional
        DH-HMAC-CHAP: a wrong key is refused, the right keys attach; a
        pattern written through nvemu is read back from nvmet's file."""
        restart(dhgroups=["null"])
        t = state["tgt"]
        nvmet_setup(g, HOST_KEY, CTRL_KEY, "sha256", "ffdhe2048")
        e = t.call("bdev_nvme_attach_controller",
                   attach_params("Lx0", nvmet_host_port, NVMET_NQN, hostnqn=NVEMU_HOST,
                                 dhchap_key="ctrl"))["error"]
        assert e["code"] == -13, e  # -EACCES
        assert t.result("bdev_nvme_get_controllers") == [], "a refused attach left a controller"
        e = t.call("bdev_nvme_attach_controller",
                   attach_params("Lx0", nvmet_host_port, NVMET_NQN, hostnqn=NVEMU_HOST,
                                 dhchap_key="host", dhchap_ctrlr_key="host"))["error"]
        assert e["code"] == -13 and "dhchap_ctrlr_key" in e["message"], e
        names = t.result("bdev_nvme_attach_controller",
                         attach_params("Lx0", nvmet_host_port, NVMET_NQN, hostnqn=NVEMU_HOST,
                                       dhchap_key="host", dhchap_ctrlr_key="ctrl"))
        assert names == ["Lx0n1"], names
        reexport_port = guest.free_port()
        export(t, REEXPORT, reexport_port, ["Lx0n1"], transport=False)
        r = write_verify(reexport_port, REEXPORT, 40, 128, 23)
        assert r.returncode == 0, r.stdout + r.stderr
        # nvmet's file namespace takes the file system's block size (4 KiB on tmpfs).
        bs = t.result("bdev_get_bdevs", {"name": "Lx0n1"})[0]["block_size"]
        want = hashlib.sha256(host_pattern(23, 40 * bs, 128 * bs)).hexdigest()
        got = g.check(f"dd if={NVMET_FILE} bs={bs} skip=40 count=128 status=none | sha256sum")
        assert got.split()[0] == want, f"nvmet's file holds {got.split()[0]}, wrote {want}"
        # nvmet says so when it creates a controller that authenticated.
        out = g.check("dmesg | grep nvmet: | tail -20")
        assert f"for NQN {NVEMU_HOST} with DH-HMAC-CHAP" in out, out

    def reauthentication():
        """Linux 6.12 re-authenticates every queue when its dhchap_secret is
        written: a new AUTH negotiate on authenticated queues. With the same
        key the queues keep serving I/O; with a wrong key the target's reply
        check fails and the host loses the controller."""
        restart(dhgroups=["null"], ctrl_key=False)
        t = state["tgt"]
        rc, out = connect(f"--dhchap-secret={HOST_KEY}")
        assert rc == 0, out
        try:
            disk = linux_host.find_disk(g, NQN)
            ctrl = g.check(f"basename $(dirname $(grep -l {NQN} /sys/class/nvme/*/subsysnqn))")
            ctrl = ctrl.strip()
            # nvemu logs a host's first authentication only; the host's
            # log shows the new transaction completing.
            done = f"nvme {ctrl}: qid 0: authenticated with hash"
            before = g.dmesg().count(done)
            g.check(f"printf %s '{HOST_KEY}' > /sys/class/nvme/{ctrl}/dhchap_secret")
            for _ in range(100):
                if g.dmesg().count(done) > before:
                    break
                g.run("sleep 0.1")
            assert g.dmesg().count(done) > before, f"no re-authentication: {g.dmesg()[-1500:]}"
            assert "re-authenticating controller" in g.dmesg()
            linux_host.dd_roundtrip(g, disk, pattern_path, digest, PATTERN_MB)
            mark = len(t.output())
            g.check(f"printf %s '{OTHER_KEY}' > /sys/class/nvme/{ctrl}/dhchap_secret")
            for _ in range(100):
                if "failed at reply" in t.output()[mark:]:
                    break
                g.run("sleep 0.1")
            assert "failed at reply" in t.output()[mark:], t.output()[mark:]
        finally:
            disconnect()

    def discovery_auth():
        """A host with a key on the discovery NQN authenticates before it
        reads the discovery log; without the key (or with a wrong one) it
        gets no discovery controller. Debian's libnvme 1.3 drops
        --dhchap-secret for discovery, so the controller is created through
        /dev/nvme-fabrics as libnvme would, and read with nvme discover -d."""
        restart(dhgroups=["null"])
        t = state["tgt"]
        t.result("nvmf_subsystem_add_host", {"nqn": DISC, "host": g.host_nqn,
                                             "dhchap_key": "host"})
        opts = (f"transport=tcp,traddr={FWD_IP},trsvcid={FWD_PORT},nqn={DISC},"
                f"hostnqn={g.host_nqn},hostid={g.host_id},discovery")

        def create(extra):
            return g.run(f"exec 3<>/dev/nvme-fabrics && printf %s '{opts}{extra}' >&3 && "
                         "cat <&3", timeout=60)

        rc, out = create("")
        assert rc != 0, f"a discovery controller without the key: {out}"
        rc, out = create(f",dhchap_secret={OTHER_KEY}")
        assert rc != 0, f"a discovery controller with a wrong key: {out}"
        assert "failed at reply" in t.output(), t.output()[-2000:]
        rc, out = create(f",dhchap_secret={HOST_KEY}")
        assert rc == 0, out
        inst = out.split("instance=")[1].split(",")[0].strip()
        try:
            out = g.check(f"nvme discover -d nvme{inst} --hostnqn={g.host_nqn} "
                          f"--hostid={g.host_id}", timeout=60)
            assert NQN in out, f"the discovery log lacks {NQN}: {out}"
        finally:
            g.run(f"echo 1 > /sys/class/nvme/nvme{inst}/delete_controller")
        want = f"host {g.host_nqn} authenticated on {DISC} qid 0"
        assert want in t.output(), f"no '{want}' in the target log: {t.output()[-2000:]}"

    nvmet_host_port = guest.free_port()
    with guest.Guest(forwards=[(FWD_IP, FWD_PORT, port)], kernel=KERNEL,
                     modules=AUTH_MODULES,
                     host_forwards=[(nvmet_host_port, NVMET_PORT)]) as g:
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
            checks.run("discovery controller requires the host's key", discovery_auth)
            checks.run("re-authentication: same key keeps I/O, wrong key fails",
                       reauthentication)
            checks.run("nvemu initiator -> Linux nvmet, bidirectional DH-HMAC-CHAP, "
                       "pattern in nvmet's file; wrong keys refused", nvmet_initiator)
        finally:
            if state["tgt"]:
                state["tgt"].stop()
            os.unlink(pattern_path)
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main())
