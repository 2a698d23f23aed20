"""A minimal NVMe/TCP host (stdlib only) for tests that need to hold commands
in flight, pick CIDs and send Abort: ICReq/ICResp, Connect, Property Get/Set,
capsules with in-capsule data (writes up to 4 KiB) and C2HData for reads. No
digests, no R2T. NVMe/TCP 1.0 (TP 8000) and NVMe over Fabrics 1.1."""
import socket
import struct
import time

PDU_ICREQ, PDU_ICRESP, PDU_CMD, PDU_RSP, PDU_C2H = 0x00, 0x01, 0x04, 0x05, 0x07
C2H_LAST, C2H_SUCCESS = 0x04, 0x08


class NvmeError(Exception):
    pass


class Completion:
    def __init__(self, cqe, data=b""):
        self.cdw0, self.cdw1, self.sqhd, self.sqid, self.cid, st = struct.unpack("<IIHHHH", cqe)
        self.status = st >> 1  # 15-bit status field
        self.sc = self.status & 0xff
        self.sct = (self.status >> 8) & 0x7
        self.more = bool(self.status & (1 << 13))
        self.dnr = bool(self.status & (1 << 14))
        self.data = data

    @property
    def ok(self):
        return self.status == 0

    def __repr__(self):
        return f"Completion(cid={self.cid} sct={self.sct} sc={self.sc:#x} dnr={self.dnr} cdw0={self.cdw0:#x})"


def sqe(opc, cid, nsid=0, cdw10=0, cdw11=0, cdw12=0, cdw13=0, cdw14=0, cdw15=0, sgl=b"\0" * 16):
    # PSDT 01b: SGL for data transfer (NVMe/TCP requires SGLs).
    return (struct.pack("<BBHI", opc, 0x40, cid, nsid) + b"\0" * 16 + sgl +
            struct.pack("<IIIIII", cdw10, cdw11, cdw12, cdw13, cdw14, cdw15))


def sgl_incapsule(length):
    return struct.pack("<QI", 0, length) + b"\0\0\0" + bytes([0x01])  # data block, offset


def sgl_transport(length):
    return struct.pack("<QI", 0, length) + b"\0\0\0" + bytes([0x5A])  # transport data block


class Queue:
    """One NVMe/TCP connection = one queue pair."""

    def __init__(self, port, subnqn, qid=0, cntlid=0xffff, hostnqn="nqn.2014-08.org.nvmexpress:uuid:"
                 "11111111-2222-3333-4444-555555555555", kato_ms=0, sqsize=31, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.qid = qid
        self.next_cid = 1
        self.done = {}
        self.partial = {}
        icreq = struct.pack("<BBBBI", PDU_ICREQ, 0, 128, 0, 128) + struct.pack("<HBBI", 0, 0, 0, 0)
        self.sock.sendall(icreq + b"\0" * (128 - len(icreq)))
        typ, _, _ = self._recv_pdu()
        if typ != PDU_ICRESP:
            raise NvmeError(f"expected ICResp, got PDU type {typ}")
        data = bytearray(1024)
        data[0:16] = bytes(range(16))
        struct.pack_into("<H", data, 16, cntlid)
        data[256:256 + len(subnqn)] = subnqn.encode()
        data[512:512 + len(hostnqn)] = hostnqn.encode()
        cmd = bytearray(sqe(0x7f, 0, sgl=sgl_incapsule(1024)))
        cmd[4] = 0x01  # fctype Connect
        struct.pack_into("<HHHBxI", cmd, 40, 0, qid, sqsize, 0, kato_ms)
        c = self.wait(self.submit_raw(bytes(cmd), data))
        if not c.ok:
            raise NvmeError(f"Connect qid {qid} failed: {c}")
        self.cntlid = c.cdw0 & 0xffff

    # ---- wire
    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by the target")
            buf += chunk
        return buf

    def _recv_pdu(self):
        ch = self._recv_exact(8)
        typ, flags, hlen, pdo, plen = struct.unpack("<BBBBI", ch)
        rest = self._recv_exact(plen - 8)
        return typ, flags, ch + rest

    def submit_raw(self, cmd, data=b""):
        """cmd: 64-byte SQE whose CID is used as is."""
        cid = struct.unpack_from("<H", cmd, 2)[0]
        hlen = 72
        pdo = hlen if data else 0
        plen = hlen + len(data)
        self.sock.sendall(struct.pack("<BBBBI", PDU_CMD, 0, hlen, pdo, plen) + cmd + data)
        return cid

    def alloc_cid(self):
        cid = self.next_cid
        self.next_cid = (self.next_cid % 0xfff0) + 1
        return cid

    def submit(self, opc, nsid=0, cdw10=0, cdw11=0, cdw12=0, cdw13=0, cdw14=0, cdw15=0,
               data=b"", read_len=0, cid=None):
        cid = self.alloc_cid() if cid is None else cid
        if data:
            sgl = sgl_incapsule(len(data))
        else:
            sgl = sgl_transport(read_len)
        self.partial[cid] = bytearray(read_len)
        return self.submit_raw(sqe(opc, cid, nsid, cdw10, cdw11, cdw12, cdw13, cdw14, cdw15, sgl),
                               data)

    def poll(self, timeout):
        """Reads PDUs until one completion arrives or timeout; False on timeout."""
        self.sock.settimeout(timeout)
        try:
            typ, flags, pdu = self._recv_pdu()
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(5)
        if typ == PDU_RSP:
            c = Completion(pdu[8:24])
            c.data = bytes(self.partial.pop(c.cid, b""))
            self.done[c.cid] = c
        elif typ == PDU_C2H:
            cid, _, datao, datal = struct.unpack_from("<HHII", pdu, 8)
            pdo = pdu[3]
            buf = self.partial.setdefault(cid, bytearray())
            if len(buf) < datao + datal:
                buf.extend(b"\0" * (datao + datal - len(buf)))
            buf[datao:datao + datal] = pdu[pdo:pdo + datal]
            if flags & C2H_SUCCESS:
                c = Completion(struct.pack("<IIHHHH", 0, 0, 0, self.qid, cid, 0),
                               bytes(self.partial.pop(cid)))
                self.done[cid] = c
        else:
            raise NvmeError(f"unexpected PDU type {typ:#x}")
        return True

    def wait(self, cid, timeout=5.0):
        deadline = time.time() + timeout
        while cid not in self.done:
            left = deadline - time.time()
            if left <= 0 or not self.poll(left):
                raise TimeoutError(f"cid {cid} did not complete in {timeout} s")
        return self.done.pop(cid)

    def completed(self, cid, timeout=0.0):
        """The completion of cid if it arrives within timeout, else None."""
        try:
            return self.wait(cid, timeout) if timeout > 0 else self.done.pop(cid, None)
        except TimeoutError:
            return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- fabrics
    def prop_get(self, ofst, size=4):
        cmd = bytearray(sqe(0x7f, self.alloc_cid()))
        cmd[4] = 0x04
        cmd[40] = 0 if size == 4 else 1
        struct.pack_into("<I", cmd, 44, ofst)
        c = self.wait(self.submit_raw(bytes(cmd)))
        if not c.ok:
            raise NvmeError(f"Property Get {ofst:#x}: {c}")
        return c.cdw0 | (c.cdw1 << 32 if size == 8 else 0)

    def prop_set(self, ofst, value):
        cmd = bytearray(sqe(0x7f, self.alloc_cid()))
        cmd[4] = 0x00
        struct.pack_into("<I", cmd, 44, ofst)
        struct.pack_into("<Q", cmd, 48, value)
        c = self.wait(self.submit_raw(bytes(cmd)))
        if not c.ok:
            raise NvmeError(f"Property Set {ofst:#x}: {c}")

    def enable(self):
        self.prop_set(0x14, 0x00460001)  # CC: IOCQES 4, IOSQES 6, EN
        for _ in range(100):
            if self.prop_get(0x1c) & 1:
                return
            time.sleep(0.01)
        raise NvmeError("CSTS.RDY did not come up")

    # ---- commands
    def cmd(self, opc, timeout=5.0, **kw):
        return self.wait(self.submit(opc, **kw), timeout)

    def get_log(self, lid, length, nsid=0xffffffff, offset=0):
        numd = length // 4 - 1
        return self.cmd(0x02, nsid=nsid, cdw10=lid | ((numd & 0xffff) << 16), cdw11=numd >> 16,
                        cdw12=offset & 0xffffffff, cdw13=offset >> 32, read_len=length)

    def identify_ctrlr(self):
        return self.cmd(0x06, cdw10=1, read_len=4096)

    def abort(self, sqid, cid):
        return self.cmd(0x08, cdw10=sqid | (cid << 16))

    def read(self, nsid, lba, nblocks, bs=512, cid=None):
        return self.submit(0x02, nsid=nsid, cdw10=lba & 0xffffffff, cdw11=lba >> 32,
                           cdw12=nblocks - 1, read_len=nblocks * bs, cid=cid)

    def write(self, nsid, lba, data, bs=512, cid=None):
        return self.submit(0x01, nsid=nsid, cdw10=lba & 0xffffffff, cdw11=lba >> 32,
                           cdw12=len(data) // bs - 1, data=data, cid=cid)


def connect(port, subnqn, io_queues=1, kato_ms=0, **kw):
    """Admin queue (enabled) + I/O queues; returns (admin, [io...])."""
    admin = Queue(port, subnqn, qid=0, kato_ms=kato_ms, **kw)
    admin.enable()
    ios = [Queue(port, subnqn, qid=i + 1, cntlid=admin.cntlid, **kw) for i in range(io_queues)]
    return admin, ios


def parse_error_log(page):
    """Error Information log entries (Base 2.0, Figure 205), 64 bytes each."""
    out = []
    for off in range(0, len(page), 64):
        e = page[off:off + 64]
        count, sqid, cid, status, loc, lba, nsid = struct.unpack_from("<QHHHHQI", e, 0)
        if count == 0:
            continue
        out.append({"error_count": count, "sqid": sqid, "cid": cid, "status": status >> 1,
                    "param_error_location": loc, "lba": lba, "nsid": nsid})
    return out
