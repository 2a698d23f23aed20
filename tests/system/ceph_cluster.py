"""A real single-node Ceph cluster for tests and benchmarks (stdlib only).

One monitor, one manager and one memstore OSD on 127.0.0.1, with every file
(config, keyring, daemon data, logs, sockets) in one temporary directory;
nothing is written to /etc/ceph. Needs the Debian packages ceph-mon, ceph-mgr,
ceph-osd and ceph-common, and root (CI is root). It starts in about 10 s and
stops in about 2 s.

    from ceph_cluster import CephCluster

    with CephCluster() as ceph:          # HEALTH_OK, pool "rbd" initialised
        ceph.create_image("img0", 64)     # MiB
        # nvemu: bdev_rbd_register_cluster config_file=ceph.conf key_file=ceph.keyring
        data = ceph.read_image("img0")    # the image's bytes (rbd export)

API (kept small on purpose; the e2e test and the benchmark use it too):
  CephCluster(pool="rbd", osd_mib=1024)   not started yet
  .start() / .stop(), or use it as a context manager (returns itself)
  .conf, .keyring     paths for clients (rbd/ceph CLIs, librados)
  .mon_addr           "127.0.0.1:PORT" (msgr v1), .pool
  .run(tool, *args)   runs `ceph`/`rbd`/`rados` against the cluster, returns stdout
  .create_image(name, size_mib), .remove_image(name)
  .read_image(name) -> bytes, .write_image(name, data, offset=0)
  .image_size(name) -> bytes
Clients get timeouts (rados_osd_op_timeout, rados_mon_op_timeout,
client_mount_timeout = 30 s) in the config, so a broken cluster fails a call
instead of hanging it.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

CLIENT_TIMEOUT_S = 30


def _free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _die_with_parent():
    """A daemon gets SIGTERM when the process that started it dies (killed
    test runs leave no cluster behind): prctl(PR_SET_PDEATHSIG)."""
    import ctypes
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def available():
    """None when the cluster can run here, else why not (for skipTest)."""
    for tool in ("ceph-mon", "ceph-mgr", "ceph-osd", "ceph", "rbd", "monmaptool",
                 "ceph-authtool"):
        if not shutil.which(tool):
            return (f"{tool} is not installed (apt-get install ceph-mon ceph-mgr ceph-osd "
                    "ceph-common)")
    if os.geteuid() != 0:
        return "the Ceph test cluster runs as root"
    return None


class CephCluster:
    def __init__(self, pool="rbd", osd_mib=1024, start_timeout=90):
        self.pool = pool
        self.osd_mib = osd_mib
        self.start_timeout = start_timeout
        self.dir = None
        self.procs = {}

    # ---- life cycle ----

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        why = available()
        if why:
            raise RuntimeError(why)
        self.dir = tempfile.mkdtemp(prefix="nvemu-ceph-")
        try:
            self._bootstrap()
        except BaseException:
            logs = self._log_tails()
            self.stop()
            raise RuntimeError(f"the Ceph test cluster did not start:\n{logs}") from None

    def stop(self):
        """SIGTERM to every daemon (OSD first), then the temp dir goes."""
        for name in ("osd.0", "mgr.x", "mon.a"):
            p = self.procs.get(name)
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in self.procs.items():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = {}
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # ---- client helpers ----

    def run(self, tool, *args, timeout=60, input=None):
        cmd = [tool, "--conf", self.conf, "--keyring", self.keyring, *map(str, args)]
        r = subprocess.run(cmd, capture_output=True, timeout=timeout, input=input)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): "
                               f"{r.stderr.decode(errors='replace').strip()}")
        return r.stdout.decode(errors="replace")

    def create_image(self, name, size_mib):
        self.run("rbd", "create", "--pool", self.pool, "--size", f"{size_mib}M", name)

    def remove_image(self, name):
        self.run("rbd", "rm", "--pool", self.pool, "--no-progress", name)

    def image_size(self, name):
        info = json.loads(self.run("rbd", "info", "--pool", self.pool, "--format", "json", name))
        return int(info["size"])

    def read_image(self, name):
        path = os.path.join(self.dir, f"export-{uuid.uuid4().hex}")
        try:
            self.run("rbd", "export", "--no-progress", f"{self.pool}/{name}", path)
            with open(path, "rb") as f:
                return f.read()
        finally:
            if os.path.exists(path):
                os.unlink(path)

    def write_image(self, name, data, offset=0):
        """Writes bytes into an image at offset straight through librbd
        (ctypes on librados.so.2/librbd.so.1: the rbd CLI cannot write
        chosen bytes), then flushes."""
        import ctypes
        rados = ctypes.CDLL("librados.so.2")
        rbd = ctypes.CDLL("librbd.so.1")
        cluster, ioctx, image = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()

        def ok(rc, what):
            if rc < 0:
                raise RuntimeError(f"{what} failed: {os.strerror(-rc)}")
        ok(rados.rados_create(ctypes.byref(cluster), b"admin"), "rados_create")
        try:
            ok(rados.rados_conf_read_file(cluster, self.conf.encode()), "rados_conf_read_file")
            ok(rados.rados_conf_set(cluster, b"keyring", self.keyring.encode()), "keyring")
            ok(rados.rados_connect(cluster), "rados_connect")
            ok(rados.rados_ioctx_create(cluster, self.pool.encode(), ctypes.byref(ioctx)),
               "rados_ioctx_create")
            try:
                ok(rbd.rbd_open(ioctx, name.encode(), ctypes.byref(image), None), "rbd_open")
                try:
                    rbd.rbd_write.restype = ctypes.c_ssize_t
                    n = rbd.rbd_write(image, ctypes.c_uint64(offset), ctypes.c_size_t(len(data)),
                                      ctypes.c_char_p(bytes(data)))
                    if n != len(data):
                        raise RuntimeError(f"rbd_write wrote {n} of {len(data)} bytes")
                    ok(rbd.rbd_flush(image), "rbd_flush")
                finally:
                    rbd.rbd_close(image)
            finally:
                rados.rados_ioctx_destroy(ioctx)
        finally:
            rados.rados_shutdown(cluster)

    # ---- bootstrap ----

    def _path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _bootstrap(self):
        fsid = str(uuid.uuid4())
        v2, v1 = _free_ports(2)
        self.mon_addr = f"127.0.0.1:{v1}"
        self.conf = self._path("ceph.conf")
        self.keyring = self._path("ceph.keyring")
        d = self.dir
        with open(self.conf, "w") as f:
            f.write(f"""[global]
fsid = {fsid}
mon_host = [v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]
public_network = 127.0.0.1/32
ms_bind_ipv4 = true
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
keyring = {self.keyring}
run_dir = {d}
admin_socket = {d}/$name.asok
pid_file = {d}/$name.pid
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
rados_osd_op_timeout = {CLIENT_TIMEOUT_S}
rados_mon_op_timeout = {CLIENT_TIMEOUT_S}
client_mount_timeout = {CLIENT_TIMEOUT_S}

[mon]
mon_data = {d}/mon.$id
# Test machines often have little free disk; memstore keeps data in RAM.
mon_data_avail_warn = 1
mon_data_avail_crit = 0
log_file = {d}/$name.log

[mgr]
mgr_data = {d}/mgr.$id
log_file = {d}/$name.log

[osd]
osd_data = {d}/osd.$id
osd_objectstore = memstore
memstore_device_bytes = {self.osd_mib * 1024 * 1024}
osd_fast_shutdown_notify_mon = false
log_file = {d}/$name.log

[client]
admin_socket =
log_file =
""")
        kr = self.keyring
        self._tool("ceph-authtool", "--create-keyring", kr, "--gen-key", "-n", "mon.",
                   "--cap", "mon", "allow *")
        self._tool("ceph-authtool", kr, "--gen-key", "-n", "client.admin",
                   "--cap", "mon", "allow *", "--cap", "osd", "allow *",
                   "--cap", "mgr", "allow *", "--cap", "mds", "allow *")
        self._tool("ceph-authtool", kr, "--gen-key", "-n", "mgr.x",
                   "--cap", "mon", "allow profile mgr", "--cap", "osd", "allow *",
                   "--cap", "mds", "allow *")
        self._tool("ceph-authtool", kr, "--gen-key", "-n", "osd.0",
                   "--cap", "mon", "allow profile osd", "--cap", "mgr", "allow profile osd",
                   "--cap", "osd", "allow *")
        monmap = self._path("monmap")
        self._tool("monmaptool", "--create", "--fsid", fsid, "--addv", "a",
                   f"[v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]", monmap)
        os.makedirs(self._path("mon.a"))
        self._tool("ceph-mon", "--conf", self.conf, "--mkfs", "-i", "a", "--monmap", monmap,
                   "--keyring", kr)
        self._daemon("mon.a", "ceph-mon", "-i", "a")
        os.makedirs(self._path("mgr.x"))
        self._daemon("mgr.x", "ceph-mgr", "-i", "x")

        osd_uuid = str(uuid.uuid4())
        osd_id = self.run("ceph", "osd", "new", osd_uuid).strip()
        if osd_id != "0":
            raise RuntimeError(f"ceph osd new returned id {osd_id!r}, expected 0")
        os.makedirs(self._path("osd.0"))
        self._tool("ceph-osd", "--conf", self.conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
        self._daemon("osd.0", "ceph-osd", "-i", "0")

        self.run("ceph", "osd", "pool", "create", self.pool, "8", "8")
        self.run("ceph", "osd", "pool", "set", self.pool, "size", "1",
                 "--yes-i-really-mean-it")
        self.run("rbd", "pool", "init", self.pool)
        self._wait_healthy()

    def _tool(self, *cmd):
        r = subprocess.run(cmd, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): "
                               f"{r.stderr.decode(errors='replace').strip()}")

    def _daemon(self, name, exe, *args):
        out = open(self._path(f"{name}.out"), "wb")
        self.procs[name] = subprocess.Popen(
            [exe, "--conf", self.conf, "-f", *args], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent)
        out.close()

    def _wait_healthy(self):
        """Until every PG is active+clean and health is HEALTH_OK."""
        deadline = time.time() + self.start_timeout
        last = ""
        while time.time() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode}")
            try:
                st = json.loads(self.run("ceph", "status", "--format", "json", timeout=20))
                health = st["health"]["status"]
                pgs = st["pgmap"].get("pgs_by_state", [])
                clean = sum(s["count"] for s in pgs if s["state_name"] == "active+clean")
                total = st["pgmap"].get("num_pgs", 0)
                last = f"{health}, {clean}/{total} PGs active+clean"
                if health == "HEALTH_OK" and total > 0 and clean == total:
                    return
            except (RuntimeError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
                last = str(e)
            time.sleep(0.5)
        raise RuntimeError(f"not healthy after {self.start_timeout} s: {last}")

    def _log_tails(self):
        out = []
        if not self.dir:
            return ""
        for name in ("mon.a", "mgr.x", "osd.0"):
            for suffix in (".out", ".log"):
                p = self._path(name + suffix)
                if os.path.exists(p):
                    with open(p, "rb") as f:
                        tail = f.read()[-1500:].decode(errors="replace")
                    out.append(f"--- {name}{suffix}\n{tail}")
        return "\n".join(out)


if __name__ == "__main__":
    # Smoke run: python3 tests/system/ceph_cluster.py
    t0 = time.time()
    with CephCluster() as c:
        print(f"healthy in {time.time() - t0:.1f} s; conf {c.conf}")
        c.create_image("smoke", 4)
        c.write_image("smoke", b"hello", 4096)
        data = c.read_image("smoke")
        assert data[4096:4101] == b"hello" and len(data) == 4 << 20, "image bytes"
        t1 = time.time()
    print(f"stopped in {time.time() - t1:.1f} s")
