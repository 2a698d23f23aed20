#!/usr/bin/python3
"""Smoke test of the e2e harness: boot the guest once and check that
everything later tests rely on works (kernel, modules, host userland in the
chroot, guest tmpfs, host files, and loopback-only networking).

Prints one line per check, then "N passed, N failed"; exits 1 on failure.
"""

import hashlib
import os
import socketserver
import sys
import threading
import time

sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest  # noqa: E402

FWD_IP, FWD_PORT = "10.0.2.100", 4420


class EchoServer(socketserver.ThreadingTCPServer):
    """Echoes bytes back and counts connections (to prove guestfwd opens one
    host connection per guest connection)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        self.connections = 0
        super().__init__(("127.0.0.1", 0), EchoHandler)


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.server.connections += 1
        while data := self.request.recv(4096):
            self.request.sendall(data)


# ---------------------------------------------------------------- checks

def check_kernel(g, echo):
    want = guest.find_kernel()[0]
    got = g.check("uname -r", chroot=False).strip()
    assert got == want, f"guest runs {got!r}, expected installed {want!r}"


def check_modules(g, echo):
    loaded = g.check("ls /sys/module", chroot=False).split()
    for mod in ("nvme_core", "nvme", "nvme_fabrics", "nvme_tcp"):
        assert mod in loaded, f"{mod} not loaded: {loaded}"
    lsmod = g.check("lsmod", chroot=False)
    assert "nvme_tcp" in lsmod and "nvme_fabrics" in lsmod, lsmod


def check_nvme_cli(g, echo):
    out = g.check("nvme version")
    assert out.startswith("nvme version"), out
    # The fabrics control device exists, so `nvme connect` can work.
    g.check("test -c /dev/nvme-fabrics")


def check_fio(g, echo):
    out = g.check("fio --version")
    assert out.startswith("fio-"), out


def check_fio_runs(g, echo):
    # A tiny verified job against a tmpfs file: exercises fio end to end.
    out = g.check("fio --name=smoke --filename=/tmp/fio.dat --size=1M --bs=4k "
                  "--rw=write --verify=crc32c --verify_state_save=0 "
                  "--output-format=terse --minimal", timeout=60)
    assert out.startswith("3;"), out


def check_tmpfs_md5(g, echo):
    data = os.urandom(40_000)   # two write_file chunks
    g.write_file("/tmp/blob", data)
    out = g.check("md5sum /tmp/blob")
    assert out.split()[0] == hashlib.md5(data).hexdigest(), out
    # /tmp is the same tmpfs inside and outside the chroot.
    out = g.check("md5sum /tmp/blob", chroot=False)
    assert out.split()[0] == hashlib.md5(data).hexdigest(), out


def check_host_files(g, echo):
    # Files in the host's /tmp (the harness's workdir) are readable.
    path = os.path.join(g.workdir, "from-host.txt")
    with open(path, "w") as f:
        f.write("hello from the host\n")
    for chroot in (True, False):
        out = g.check(f"cat {g.guest_path(path, chroot)}", chroot=chroot)
        assert out == "hello from the host\n", out


def check_bash_and_status(g, echo):
    # bash needs /dev/fd for process substitution; rc and stderr come back.
    out = g.check("bash -c 'cat <(echo via-dev-fd)'")
    assert out == "via-dev-fd\n", out
    rc, out = g.run("echo to-stderr >&2; exit 7")
    assert (rc, out) == (7, "to-stderr\n"), (rc, out)


def check_binary_output(g, echo):
    rc, out = g.run("printf '\\000\\001\\377@@NVEMU-END x 0 0@@\\n'", binary=True)
    assert (rc, out) == (0, b"\x00\x01\xff@@NVEMU-END x 0 0@@\n"), (rc, out)


def check_timeout(g, echo):
    t0 = time.monotonic()
    try:
        g.run("echo started; sleep 30", timeout=2)
    except guest.GuestTimeout as e:
        assert "started" in str(e), e
    else:
        raise AssertionError("no GuestTimeout")
    took = time.monotonic() - t0
    assert took < 10, f"timeout took {took:.1f}s"
    # The channel is still usable afterwards.
    out = g.check("echo alive")
    assert out == "alive\n", repr(out)


def check_guestfwd(g, echo):
    # Two simultaneous connections must reach the host as two connections
    # (NVMe/TCP opens one per queue) and each get its own echo back.
    before = echo.connections
    script = (f"exec 3<>/dev/tcp/{FWD_IP}/{FWD_PORT} 4<>/dev/tcp/{FWD_IP}/{FWD_PORT}\n"
              "printf 'first-conn\\n' >&3; printf 'second-conn\\n' >&4\n"
              "read -r a <&3; read -r b <&4; echo \"$a|$b\"\n")
    out = g.check("bash -s", input=script, timeout=30)   # /dev/tcp is bash's
    assert out == "first-conn|second-conn\n", repr(out)
    assert echo.connections - before == 2, echo.connections - before


def check_busybox_nc(g, echo):
    out = g.check(f"echo ping-busybox | timeout 10 nc {FWD_IP} {FWD_PORT}",
                  chroot=False)
    assert out == "ping-busybox\n", repr(out)


def check_restricted(g, echo):
    # slirp's gateway 10.0.2.2 would map to the host's 127.0.0.1 if the
    # network were not restricted; it must be unreachable.
    port = echo.server_address[1]
    rc, out = g.run(f"timeout 5 bash -c 'echo x > /dev/tcp/10.0.2.2/{port}'")
    assert rc != 0, f"host port {port} reachable via 10.0.2.2: {out}"


def check_dmesg(g, echo):
    log = g.dmesg()
    assert "Linux version" in log, log[-2000:]


CHECKS = [check_kernel, check_modules, check_nvme_cli, check_fio,
          check_fio_runs, check_tmpfs_md5, check_host_files,
          check_bash_and_status, check_binary_output, check_timeout,
          check_guestfwd, check_busybox_nc, check_restricted, check_dmesg]


def main():
    t_start = time.monotonic()
    echo = EchoServer()
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    passed = failed = 0
    try:
        with guest.Guest(forwards=[(FWD_IP, FWD_PORT, echo.server_address[1])]) as g:
            print(f"boot: {g.boot_seconds:.2f}s")
            for check in CHECKS:
                t0 = time.monotonic()
                try:
                    check(g, echo)
                except Exception as e:  # report and go on with the others
                    failed += 1
                    print(f"FAIL {check.__name__}: {type(e).__name__}: {e}")
                else:
                    passed += 1
                    print(f"ok   {check.__name__} ({time.monotonic() - t0:.2f}s)")
            if failed:
                print("--- guest console tail ---")
                print("\n".join(g.console().splitlines()[-30:]))
    except guest.GuestError as e:
        failed += 1
        print(f"FAIL boot: {e}")
    finally:
        echo.shutdown()
    print(f"total: {time.monotonic() - t_start:.2f}s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
