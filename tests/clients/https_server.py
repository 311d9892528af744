"""The lab internet's HTTPS server: answers every GET with 'internet ok';
with a RECEIVED file, also takes POSTs (a webhook) and appends each body to
it as one line; with `raw` after it, appends each body as it came (an
HTTPS log sink taking JSON lines or bulk bodies).

    python3 https_server.py ADDRESS CERT KEY PORT [RECEIVED [raw]]

The TLS handshake runs in each connection's thread, not in accept(), where a
client whose ClientHello the agent held or rejected would stall every other
one.
"""
import http.server
import os
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    timeout = 20

    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"internet ok")

    def do_POST(self):
        # A sink that wants credentials: EXPECT_AUTHORIZATION in the environment.
        expected = os.environ.get("EXPECT_AUTHORIZATION")
        if expected is not None and self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(min(length, 1 << 20))
        if RECEIVED:
            with open(RECEIVED, "ab") as out:
                out.write(body if RAW else body.replace(b"\n", b" ") + b"\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: clients faster than the
    # threads start (2,000 half hellos in a second) would have their SYNs
    # dropped and wait a second each. Real servers listen with thousands.
    request_queue_size = 4096


RECEIVED = None
RAW = False


def main(address, cert, key, port, received=None, mode=None):
    global RECEIVED, RAW
    RECEIVED = received
    RAW = mode == "raw"
    server = Server((address, int(port)), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:7])
