#!/usr/bin/env python3
# The record's own JSON-RPC client, exactly as written in
# seed/000_97a802c2a43e25bc.txt step 5 (it had no rpc.py). Kept unchanged:
# nvemu must answer it as the DOCA app did.
import socket
import json
import sys

def send_rpc(socket_path, method, params=None):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(socket_path)
        req = {"jsonrpc": "2.0", "id": 1, "method": method}
        if params:
            req["params"] = params
        sock.sendall((json.dumps(req) + '\n').encode())

        response = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            response += chunk
            if b'\n' in chunk:
                break

        if response:
            return json.loads(response.decode())
        return None
    finally:
        sock.close()

if __name__ == "__main__":
    socket_path = "/var/tmp/spdk.sock"
    method = sys.argv[1] if len(sys.argv) > 1 else "spdk_get_version"
    params = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None

    result = send_rpc(socket_path, method, params)
    print(json.dumps(result, indent=2))
