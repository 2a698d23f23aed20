"""Starts nvemu-tgt for system tests and talks JSON-RPC to it (stdlib only)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

BIN_DIR = os.environ.get("NVEMU_BIN_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "apps")
TGT = os.path.join(BIN_DIR, "nvemu-tgt")
RPC = os.path.join(BIN_DIR, "nvemu-rpc")


def no_hugepages_env():
    """Environment for a target started with the record's `-s 1024` whose test
    is not about hugepages: preflight reads a /proc/meminfo with none
    configured (as on CI), so a host that has a few configured but not 512
    free does not fail the test (test_rpc_errors covers that refusal)."""
    path = os.path.join(tempfile.gettempdir(), "nvemu-meminfo-no-hugepages")
    with open(path, "w") as f:
        f.write("MemTotal: 24000000 kB\nHugePages_Total: 0\nHugePages_Free: 0\n"
                "Hugepagesize: 2048 kB\n")
    return {"NVEMU_MEMINFO": path}


def stop_clean(*targets):
    """Stops each target with SIGINT. Any non-zero exit (a crash, a sanitizer
    report printed on the way out, a hang that needed SIGKILL) fails, with
    the tail of that target's log."""
    bad = []
    for t in targets:
        t.interrupt()
        log = t.output()  # before stop(), which deletes it
        rc = t.stop()
        if rc != 0:
            bad.append(f"nvemu-tgt exited {rc} on SIGINT (a sanitizer report?):\n{log[-4000:]}")
    assert not bad, "\n".join(bad)


def wait_for(pred, what=None, timeout=10.0):
    """Polls pred until it returns something true and returns that. At the
    timeout: with `what`, fails naming it; without, returns pred()'s last
    value for the caller's own assertion (which then shows it)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    if what is not None:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")
    return pred()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Target:
    """One nvemu-tgt process on a private socket; stopped on exit."""

    def __init__(self, args=("-m", "0x1", "--wait-for-rpc"), sock=None, env=None,
                 wait=True):
        self.dir = tempfile.mkdtemp(prefix="nvemu-sys-")
        self.sock = sock or os.path.join(self.dir, "spdk.sock")
        self.log_path = os.path.join(self.dir, "tgt.log")
        self.log = open(self.log_path, "wb")
        full = [TGT, *args]
        if sock is None:
            full += ["-r", self.sock]
        self.proc = subprocess.Popen(full, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nvemu-tgt exited with {self.proc.returncode}:\n{self.output()}")
            try:
                self.call("spdk_get_version")
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"nvemu-tgt did not answer on {self.sock}:\n{self.output()}")

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def call(self, method, params=None, req_id=1, timeout=10):
        """Sends one request; returns the whole reply object."""
        req = {"jsonrpc": "2.0", "id": req_id, "method": method}
        if params is not None:
            req["params"] = params
        return self.raw(json.dumps(req).encode(), timeout)

    def raw(self, data, timeout=10, expect_reply=True):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.sock)
            s.sendall(data)
            if not expect_reply:
                return None
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            return json.loads(buf.decode())

    def result(self, method, params=None):
        reply = self.call(method, params)
        if "error" in reply:
            raise AssertionError(f"{method} failed: {reply['error']}")
        return reply["result"]

    def alive(self):
        return self.proc.poll() is None

    def interrupt(self, timeout=15):
        """SIGINT and wait for the exit. The log stays readable (stop()
        deletes it), e.g. for a sanitizer report printed on the way out."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass

    def stop(self):
        self.interrupt(10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def run_unittest_main():
    """unittest.main with a closing 'N passed, N failed' line."""
    import unittest
    prog = unittest.main(exit=False, verbosity=2)
    r = prog.result
    failed = len(r.failures) + len(r.errors)
    print(f"{max(0, r.testsRun - failed - len(r.skipped))} passed, {failed} failed, "
          f"{len(r.skipped)} skipped")
    raise SystemExit(1 if failed or r.skipped else 0)
