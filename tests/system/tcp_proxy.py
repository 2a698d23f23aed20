"""A loopback TCP forwarder the tests can cut: one network path to a target
that a test breaks on cue (connections reset, port closed) and mends again
on the same port. Stdlib only; one thread per direction per connection."""
import socket
import struct
import threading


class TcpProxy:
    def __init__(self, upstream_port, upstream_host="127.0.0.1", port=0):
        self.upstream = (upstream_host, upstream_port)
        self.port = port
        self._lock = threading.Lock()
        self._conns = []
        self._listener = None
        self.accepted = 0
        self.listen()

    def listen(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.port = s.getsockname()[1]
        self._listener = s
        threading.Thread(target=self._accept_loop, args=(s,), daemon=True).start()

    def _accept_loop(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns += [client, server]
                self.accepted += 1
            threading.Thread(target=_pump, args=(client, server), daemon=True).start()
            threading.Thread(target=_pump, args=(server, client), daemon=True).start()

    def cut(self):
        """The path fails: the port stops listening and every connection
        through it is reset, as when a link or a switch port goes down."""
        if self._listener:
            # shutdown() wakes the thread blocked in accept(); close() alone
            # would leave the port listening until that accept returned.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            _reset(s)

    def mend(self):
        """The path is back, on the same port."""
        if not self._listener:
            self.listen()

    def close(self):
        self.cut()


def _reset(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


def _pump(src, dst):
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
