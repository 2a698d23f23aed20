#!/usr/bin/env python3
"""Generates docs/guide.md by running the record's flow against a real
nvemu-tgt and capturing the real output of each step, then going where the
record could not: a host on the PCIe function (nvemu-host over vfio-user), a
host over NVMe/TCP, an RBD namespace and fault injection. Usage:

  docs/gen-guide.py BIN_DIR [OUT]     # OUT defaults to docs/guide.md; '-' = stdout

Output is normalised (temporary paths, ports, pids, timings) so that a fresh
run can be compared with the committed guide (tests/system/test_guide.py).
Sections are functions in SECTIONS. Ceph's varying output (fsid, daemon ages,
object ids) is kept out by what the RBD section shows: `ceph health`, `rbd du`.

The RBD namespace runs against a real single-node Ceph cluster started by
tests/system/ceph_cluster.py (about 15 s on a 2-vCPU machine): it needs root
and Debian's ceph-mon, ceph-mgr, ceph-osd and ceph-common
(scripts/install-deps.sh installs them); without them the generator fails and
says which package is missing."""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "system"))
import ceph_cluster  # noqa: E402

NQN = "nqn.2016-06.io.spdk:cnode1"


class Run:
    def __init__(self, bin_dir):
        self.bin = bin_dir
        self.dir = tempfile.mkdtemp(prefix="nvemu-guide-")
        self.sock = os.path.join(self.dir, "spdk.sock")
        self.doca = os.path.join(self.dir, "doca")
        meminfo = os.path.join(self.dir, "meminfo")
        with open(meminfo, "w") as f:  # a machine without hugepages, as CI
            f.write("HugePages_Total: 0\nHugePages_Free: 0\nHugepagesize: 2048 kB\n")
        self.env = {**os.environ, "NVEMU_DOCA_DIR": self.doca, "NVEMU_MEMINFO": meminfo}
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.tgt = None
        self.ceph = None
        self.out = []

    def norm(self, text):
        text = text.replace(self.dir, "/tmp/nvemu-guide")
        text = text.replace(str(self.port), "4420")
        text = re.sub(r'"(write|read)_seconds": [0-9.e-]+', r'"\1_seconds": 0.0001', text)
        text = re.sub(r'"host_pid": \d+', '"host_pid": 4242', text)
        text = re.sub(r'"(\w+_latency_ticks|ticks)": \d+', r'"\1": 0', text)
        text = re.sub(r'"uuid": "[0-9a-f-]+"', '"uuid": "…"', text)
        if self.ceph and self.ceph.dir:
            text = text.replace(self.ceph.dir, "/tmp/nvemu-ceph")
        # rbd's tables pad their last column
        return "\n".join(line.rstrip() for line in text.rstrip().split("\n"))

    def text(self, s):
        self.out += [s, ""]

    def cmd(self, argv, shown=None, fails=False):
        """Runs argv and shows its output; with fails=True the command must
        fail, and its error output and exit status are shown."""
        p = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=60)
        if (p.returncode != 0) != fails:
            raise SystemExit(f"gen-guide: {' '.join(argv)} exited {p.returncode}: {p.stderr}")
        shown_out = p.stdout + (p.stderr + f"(exit status {p.returncode})" if fails else "")
        self.out += ["```", "$ " + self.norm(shown or " ".join(argv)),
                     self.norm(shown_out) if shown_out.strip() else "(no output)", "```", ""]
        return p.stdout

    def rpc(self, *args):
        return self.cmd([os.path.join(self.bin, "nvemu-rpc"), "-s", self.sock, *args],
                        "nvemu-rpc " + " ".join(args))

    def start(self, args):
        argv = [os.path.join(self.bin, "nvemu-tgt"), *args, "-r", self.sock]
        self.log = open(os.path.join(self.dir, "tgt.log"), "w")
        self.tgt = subprocess.Popen(argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while not os.path.exists(self.sock):
            if time.time() > deadline or self.tgt.poll() is not None:
                raise SystemExit("gen-guide: nvemu-tgt did not start")
            time.sleep(0.05)
        self.out += ["```", "$ nvemu-tgt " + " ".join(args) + " &", "```", ""]

    def stop(self, check=False):
        """With check=True (every section ran), the target must have exited
        cleanly: under ASan/UBSan (CI) a report on the way out fails the run."""
        problem = None
        if self.tgt:
            self.tgt.terminate()
            self.tgt.wait(15)
            self.log.close()
            with open(self.log.name, errors="replace") as f:
                log = f.read()
            if self.tgt.returncode != 0 or "Sanitizer" in log or "runtime error" in log:
                problem = f"gen-guide: nvemu-tgt exited {self.tgt.returncode}:\n{log[-4000:]}"
        if self.ceph:  # after the target: it may still hold the cluster's images
            self.ceph.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        if check and problem:
            raise SystemExit(problem)


def record_flow(r):
    r.text("## 1. The record's flow\n\n"
           "The record started SPDK's DOCA NVMe Emulation app with this command line and then\n"
           "configured it step by step over JSON-RPC. nvemu-tgt takes the same line (it needs no\n"
           "hugepages: without any configured it serves `-s` from ordinary memory).")
    r.start(["-m", "0x3", "--main-core", "0", "-s", "1024", "--no-pci", "--wait-for-rpc"])
    r.text("The version the record's client checked, then the framework's start:")
    r.rpc("spdk_get_version")
    r.rpc("framework_start_init")
    r.text("A 512 MiB malloc bdev, a subsystem, and the bdev as its namespace:")
    r.rpc("bdev_malloc_create", "-b", "Malloc0", "512", "512")
    r.rpc("nvmf_create_subsystem", NQN, "-a", "-s", "SPDK00000000000001")
    r.rpc("nvmf_subsystem_add_ns", NQN, "Malloc0")
    r.text("The emulation managers, then the step where the record failed in firmware\n"
           "(`Transport type 'DOCA' create failed`): here it succeeds.")
    r.rpc("nvmf_doca_get_managers")
    r.rpc("nvmf_create_transport", "-t", "DOCA")
    r.text("An emulated function, plugged to the subsystem (on a BlueField, the hot-plug):")
    vuid = r.rpc("nvmf_doca_create_function", "-d", "nvemu0").strip().strip('"')
    r.rpc("nvmf_subsystem_add_listener", NQN, "-t", "DOCA", "-a", vuid)
    r.rpc("nvmf_doca_list_functions", "-d", "nvemu0")
    r.vuid = vuid


def host_on_pcie_function(r):
    r.text("## 2. A host on the PCIe function\n\n"
           "Where the record could not go: a host driver on the function. nvemu-host is a\n"
           "userspace NVMe PCIe driver over vfio-user (QEMU's `vfio-user-pci` with a guest's\n"
           "`nvme` driver works the same way: tests/e2e). It writes a pattern, reads it back\n"
           "and compares.")
    trid = f"trtype:VFIOUSER traddr:{r.doca}/{r.vuid}"
    host = os.path.join(r.bin, "nvemu-host")
    r.cmd([host, "-r", trid, "write-verify", "--nsid", "1", "--lba", "0", "--blocks", "2048"],
          f"nvemu-host -r '{trid}' write-verify --nsid 1 --lba 0 --blocks 2048")
    r.rpc("bdev_get_iostat", "-b", "Malloc0")


def host_over_tcp(r):
    r.text("## 3. A host over NVMe/TCP\n\n"
           "The same subsystem on a TCP listener; the host reads back what the PCIe host wrote.")
    r.rpc("nvmf_create_transport", "-t", "TCP")
    r.rpc("nvmf_subsystem_add_listener", NQN, "-t", "tcp", "-a", "127.0.0.1", "-s", str(r.port))
    trid = f"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{r.port} subnqn:{NQN}"
    host = os.path.join(r.bin, "nvemu-host")
    r.cmd([host, "-r", trid, "write-verify", "--nsid", "1", "--lba", "4096", "--blocks", "256"],
          f"nvemu-host -r '{trid}' write-verify --nsid 1 --lba 4096 --blocks 256")
    r.tcp_trid = trid


def rbd_namespace(r):
    r.text("## 4. An RBD namespace\n\n"
           "A namespace whose blocks live in a Ceph RBD image, as SPDK's bdev_rbd does it. The\n"
           "cluster here is tests/system/ceph_cluster.py's single node (one mon, one mgr, one\n"
           "in-memory OSD on 127.0.0.1, a pool `rbd` initialised for RBD); with your own cluster\n"
           "use its ceph.conf and a keyring. The Ceph tools find the cluster through `CEPH_CONF`.")
    r.ceph = ceph_cluster.CephCluster()
    r.ceph.start()
    r.env["CEPH_CONF"] = r.ceph.conf
    r.out += ["```", f"$ export CEPH_CONF={r.norm(r.ceph.conf)}", "```", ""]
    r.cmd(["ceph", "health"])
    r.text("bdev_rbd_create opens an existing image (it does not create one): a 64 MiB image,\n"
           "nothing stored yet.")
    r.cmd(["rbd", "create", "--size", "64M", "rbd/img0"])
    r.cmd(["rbd", "du", "rbd/img0"])
    r.text("nvemu connects to the cluster once (librados, with the cluster's config and key\n"
           "files), opens the image as a bdev with 4 KiB blocks, and adds it to the subsystem\n"
           "as namespace 2:")
    r.rpc("bdev_rbd_register_cluster", "ceph0", "--config-file", r.ceph.conf, "--key-file",
          r.ceph.keyring)
    r.rpc("bdev_rbd_create", "rbd", "img0", "4096", "-b", "Rbd0", "-c", "ceph0")
    r.rpc("nvmf_subsystem_add_ns", NQN, "Rbd0")
    r.text("The TCP host writes 4 MiB (one RBD object) to namespace 2 and reads it back:")
    host = os.path.join(r.bin, "nvemu-host")
    r.cmd([host, "-r", r.tcp_trid, "write-verify", "--nsid", "2", "--lba", "0", "--blocks",
           "1024"], f"nvemu-host -r '{r.tcp_trid}' write-verify --nsid 2 --lba 0 --blocks 1024")
    r.text("The blocks are in Ceph: the image now uses one 4 MiB object.")
    r.cmd(["rbd", "du", "rbd/img0"])
    r.text("Taking the namespace away: out of the subsystem, the bdev closed (the image stays\n"
           "in Ceph), the cluster connection dropped.")
    r.rpc("nvmf_subsystem_remove_ns", NQN, "2")
    r.rpc("bdev_rbd_delete", "Rbd0")
    r.rpc("bdev_rbd_unregister_cluster", "ceph0")


def fault_injection(r):
    r.text("## 5. Fault injection\n\n"
           "What real devices rarely do, on cue (docs/faults.md has every fault and what a Linux\n"
           "host shows). The next Read (opcode 2) on the I/O queues fails with Unrecovered Read\n"
           "Error (SCT 2h, SC 81h) and Do Not Retry, once:")
    r.rpc("nvmf_fault_inject", NQN, "status", "-q", "io", "-o", "2", "--sct", "2", "--sc", "129",
          "--dnr", "--count", "1")
    host = os.path.join(r.bin, "nvemu-host")
    read = [host, "-r", r.tcp_trid, "read", "--nsid", "1", "--lba", "4096", "--blocks", "8",
            "--out", "/dev/null"]
    shown = f"nvemu-host -r '{r.tcp_trid}' read --nsid 1 --lba 4096 --blocks 8 --out /dev/null"
    r.cmd(read, shown, fails=True)
    r.text("The fault has had its one hit; the same read now succeeds, and the fault is cleared:")
    r.rpc("nvmf_fault_list")
    r.cmd(read, shown)
    r.rpc("nvmf_fault_clear")


def unplug(r):
    r.text("Unplugging the function (the host has let go) and destroying it:")
    r.rpc("nvmf_subsystem_remove_listener", NQN, "-t", "DOCA", "-a", r.vuid)
    r.rpc("nvmf_doca_destroy_function", "-d", "nvemu0", "-v", r.vuid)


SECTIONS = [record_flow, host_on_pcie_function, host_over_tcp, rbd_namespace, fault_injection,
            unplug]


def need_ceph():
    """Before anything starts: section 4 needs a local Ceph cluster."""
    why = ceph_cluster.available()
    if why:
        hint = "; scripts/install-deps.sh installs them" if "not installed" in why else ""
        raise SystemExit(f"gen-guide: section 4 (an RBD namespace) runs a Ceph cluster: {why}"
                         f"{hint}")


def generate(bin_dir):
    need_ceph()
    r = Run(bin_dir)
    r.out = ["# Guide: the record replayed on nvemu", "",
             "Generated by `docs/gen-guide.py`, which runs each step against a real nvemu-tgt",
             "and shows its real output (temporary paths, ports and timings normalised); do not",
             "edit by hand.", ""]
    try:
        for section in SECTIONS:
            section(r)
    except BaseException:
        r.stop()
        raise
    r.stop(check=True)
    return "\n".join(r.out).rstrip() + "\n"


def main():
    text = generate(sys.argv[1])
    dest = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__),
                                                               "guide.md")
    if dest == "-":
        sys.stdout.write(text)
    else:
        with open(dest, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
