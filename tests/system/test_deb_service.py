#!/usr/bin/env python3
"""The Debian package and its systemd unit.

Part 1 (any user): nvemu-tgt's sd_notify handshake with a NOTIFY_SOCKET this
test listens on (a path and an @abstract name), as systemd's Type=notify
expects: READY=1 only once -c's replay is done and RPC answers, STOPPING=1 on
SIGTERM; with JOURNAL_STREAM naming its stderr, lines carry <N> priorities.

Part 2 (root; CI is root): installs the .deb (NVEMU_DEB, else the newest
build-deb/nvemu_*_amd64.deb, else builds it with scripts/make-deb.sh),
`systemd-analyze verify`s the installed unit, runs the daemon as the unit
would (its ExecStart and Environment, /run/nvemu as RuntimeDirectory) with
the handshake above, checks RPC at /run/nvemu/spdk.sock, then purges the
package and checks nothing is left."""
import glob
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SRC = os.environ.get("NVEMU_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
CONFIG = os.path.join(SRC, "debian", "nvemu.json")
NQN = "nqn.2016-06.io.spdk:cnode1"


def rpc(sock, method, params=None):
    t = harness.Target.__new__(harness.Target)
    t.sock = sock
    return t.call(method, params, timeout=5)


class Notify:
    """A datagram socket as systemd's NOTIFY_SOCKET."""

    def __init__(self, abstract):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"nvemu-test-notify-{os.getpid()}-{time.monotonic_ns()}"
            self.s.bind("\0" + name)
            self.env = "@" + name
        else:
            self.dir = tempfile.mkdtemp(prefix="nvemu-notify-")
            path = os.path.join(self.dir, "notify")
            self.s.bind(path)
            self.env = path

    def recv(self, timeout):
        self.s.settimeout(timeout)
        msg = self.s.recv(4096).decode()
        return dict(line.split("=", 1) for line in msg.split("\n") if "=" in line)

    def close(self):
        self.s.close()


def run_as_unit(argv, env, rpc_sock, test, notify_abstract=True):
    """Starts argv under a NOTIFY_SOCKET; checks READY (RPC answers at that
    moment, with the config replayed), then SIGTERM and STOPPING=1."""
    n = Notify(notify_abstract)
    log = tempfile.TemporaryFile()
    p = subprocess.Popen(argv, env={**os.environ, **env, "NOTIFY_SOCKET": n.env},
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        first = n.recv(20)
        test.assertEqual(first.get("READY"), "1", first)
        test.assertEqual(first.get("MAINPID"), str(p.pid))
        test.assertIn(rpc_sock, first.get("STATUS", ""))
        # Readiness means the socket answers now, with the config in place.
        subs = rpc(rpc_sock, "nvmf_get_subsystems")["result"]
        test.assertIn(NQN, [s["nqn"] for s in subs])
        p.send_signal(signal.SIGTERM)
        stopping = n.recv(20)
        test.assertEqual(stopping.get("STOPPING"), "1", stopping)
        test.assertEqual(p.wait(20), 0)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        n.close()
        log.seek(0)
        out = log.read().decode(errors="replace")
        log.close()
    return out


class Notify_(unittest.TestCase):
    """The handshake with the build tree's nvemu-tgt."""

    def test_ready_after_replay_and_stopping(self):
        d = tempfile.mkdtemp(prefix="nvemu-notify-")
        sock = os.path.join(d, "spdk.sock")
        for abstract in (True, False):
            cfg = os.path.join(d, "cfg.json")
            port = harness.free_port()
            with open(CONFIG) as f, open(cfg, "w") as g:
                g.write(f.read().replace('"4420"', f'"{port}"'))
            run_as_unit([harness.TGT, "-c", cfg, "-r", sock], harness.no_hugepages_env(), sock,
                        self, notify_abstract=abstract)

    def test_failed_start_sends_no_ready(self):
        n = Notify(True)
        d = tempfile.mkdtemp(prefix="nvemu-notify-")
        bad = os.path.join(d, "bad.json")
        with open(bad, "w") as f:
            f.write('{"subsystems": [{"subsystem": "bdev", "config": [{"method": '
                    '"bdev_malloc_create", "params": {"name": "M", "num_blocks": 0, '
                    '"block_size": 512}}]}]}')
        p = subprocess.run([harness.TGT, "-c", bad, "-r", os.path.join(d, "s.sock")],
                           env={**os.environ, "NOTIFY_SOCKET": n.env}, capture_output=True,
                           timeout=30)
        self.assertNotEqual(p.returncode, 0)
        n.s.settimeout(0.2)
        msgs = []
        try:
            while True:
                msgs.append(n.s.recv(4096).decode())
        except socket.timeout:
            pass
        self.assertFalse([m for m in msgs if "READY=1" in m], msgs)
        n.close()

    def test_journal_priorities(self):
        # JOURNAL_STREAM names stderr's device:inode, as systemd sets it.
        with tempfile.TemporaryFile() as err:
            st = os.fstat(err.fileno())
            d = tempfile.mkdtemp(prefix="nvemu-journal-")
            p = subprocess.run([harness.TGT, "-r", os.path.join(d, "s.sock"), "-m", "0x1",
                                "--main-core", "5"],
                               env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"},
                               stderr=err, timeout=30)
            self.assertEqual(p.returncode, 1)
            err.seek(0)
            lines = err.read().decode().splitlines()
        self.assertTrue(any(line.startswith("<5>[") and "*NOTICE*" in line for line in lines),
                        lines)
        self.assertTrue(any(line.startswith("<3>[") and "*ERROR*" in line for line in lines),
                        lines)
        # Not the journal (another stderr): no prefix.
        p = subprocess.run([harness.TGT, "-r", os.path.join(d, "s.sock"), "--main-core", "5"],
                           env={**os.environ, "JOURNAL_STREAM": "1:1"}, capture_output=True,
                           text=True, timeout=30)
        self.assertTrue(p.stderr.startswith("["), p.stderr[:80])


def find_deb():
    if os.environ.get("NVEMU_DEB"):
        return os.environ["NVEMU_DEB"]
    debs = sorted(glob.glob(os.path.join(SRC, "build-deb", "nvemu_*_amd64.deb")),
                  key=os.path.getmtime)
    if debs:
        return debs[-1]
    out = os.path.join(SRC, "build-deb")
    print(f"test_deb_service: no .deb in {out}; building one (scripts/make-deb.sh)",
          file=sys.stderr)
    subprocess.run(["bash", os.path.join(SRC, "scripts", "make-deb.sh"), out], check=True,
                   timeout=3600)
    return sorted(glob.glob(os.path.join(out, "nvemu_*_amd64.deb")))[-1]


def unit_value(text, key):
    vals = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")]
    return vals


@unittest.skipUnless(os.geteuid() == 0,
                     "NOT ROOT: the package test installs a .deb with dpkg -i and needs root "
                     "(CI runs as root)")
class Package(unittest.TestCase):
    def test_install_run_as_unit_and_purge(self):
        deb = find_deb()
        subprocess.run(["dpkg", "--purge", "nvemu"], capture_output=True)
        p = subprocess.run(["dpkg", "-i", deb], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        try:
            for tool in ("nvemu-tgt", "nvemu-rpc", "nvemu-perf", "nvemu-host", "nvemu-doctor"):
                self.assertTrue(os.access(f"/usr/bin/{tool}", os.X_OK), tool)
                self.assertTrue(os.path.exists(f"/usr/share/man/man1/{tool}.1.gz"), tool)
            unit_path = "/lib/systemd/system/nvemu.service"
            conffiles = subprocess.run(["dpkg-query", "-W", "-f=${Conffiles}", "nvemu"],
                                       capture_output=True, text=True).stdout
            self.assertIn("/etc/nvemu/nvemu.json", conffiles)
            v = subprocess.run(["systemd-analyze", "verify", unit_path], capture_output=True,
                               text=True)
            self.assertEqual(v.returncode, 0, v.stderr)
            self.assertEqual(v.stderr.strip(), "", v.stderr)
            with open(unit_path) as f:
                unit = f.read()
            self.assertEqual(unit_value(unit, "Type"), ["notify"])
            argv = shlex.split(unit_value(unit, "ExecStart")[0])
            self.assertEqual(argv[0], "/usr/bin/nvemu-tgt")
            env = dict(e.split("=", 1) for line in unit_value(unit, "Environment")
                       for e in shlex.split(line))
            rundir = "/run/" + unit_value(unit, "RuntimeDirectory")[0]
            os.makedirs(rundir, mode=0o750, exist_ok=True)  # what RuntimeDirectory= does
            try:
                out = run_as_unit(argv, {**env, **harness.no_hugepages_env()},
                                  f"{rundir}/spdk.sock", self)
                self.assertIn("RPC server listening on /run/nvemu/spdk.sock", out)
            finally:
                subprocess.run(["rm", "-rf", rundir])
        finally:
            p = subprocess.run(["dpkg", "--purge", "nvemu"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        left = subprocess.run(["dpkg", "-s", "nvemu"], capture_output=True)
        self.assertNotEqual(left.returncode, 0, "nvemu still known to dpkg after purge")
        for path in ("/usr/bin/nvemu-tgt", "/usr/bin/nvemu-doctor", "/etc/nvemu",
                     "/lib/systemd/system/nvemu.service", "/usr/share/doc/nvemu",
                     "/usr/share/man/man1/nvemu-tgt.1.gz"):
            self.assertFalse(os.path.exists(path), f"{path} left after dpkg --purge")


if __name__ == "__main__":
    harness.run_unittest_main()
