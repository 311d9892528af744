"""Evasion clients for the adversarial tests, run as an unprivileged user.

Each sends a TLS ClientHello, QUIC Initial or proxy request the way public
DPI-evasion tools do from user space (no raw sockets: only what any user's
socket can do), and prints REACHED when the server answered the handshake,
BLOCKED otherwise. Every loop that sends is bounded in count and in time.

usage: evade.py MODE ARGS...
  records  ADDR PORT NAME SIZE   the hello re-cut into TLS records of SIZE bytes
  segments ADDR PORT NAME COUNT [PAUSE_MS]  the hello as COUNT TCP segments,
                                 PAUSE_MS apart (default 5)
  urgent   ADDR PORT NAME        one extra byte sent as TCP urgent data mid-hello
  plain    ADDR PORT NAME        the hello as Python's TLS sends it
  quic     ADDR PORT FILE JUNK   JUNK junk datagrams, then the Initials in FILE
                                 (2-byte big-endian length before each)
  synflood ADDR FIRST LAST COUNT SECONDS  non-blocking connects to closed ports
  forge    ADDR NAME IP          a DNS answer "NAME is IP", sent to ADDR port 53
  partials ADDR PORT N           N connections that send half a hello and reset
  requests SOCKET N              N status requests on one connection, sent at once
  clipboard SOCKET N             N clipboard reports (headed to ChatGPT) at once
  hog      SOCKET CONNS N SECONDS   CONNS connections, each asking N catalogs
                                 and reading none of the replies for SECONDS
  dnshold  ADDR N SECONDS         N idle TCP connections to a resolver, held;
                                 prints how many it kept open after 1 s
  udpserver PORT SECONDS LOG     (server side) logs "length first-byte" per datagram
  dohserver PORT SECONDS CERT KEY IP  (server side) DNS over HTTPS, every name is IP
  proxy    PORT SECONDS          (server side) an HTTP CONNECT proxy to 127.0.0.1
"""
import json
import os
import select
import socket
import ssl
import struct
import sys
import threading
import time


def hello_records(name):
    """The ClientHello Python's TLS (OpenSSL) sends for NAME, as records."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def handshake_message(records):
    message, at = b"", 0
    while at + 5 <= len(records):
        length = int.from_bytes(records[at + 3:at + 5], "big")
        message += records[at + 5:at + 5 + length]
        at += 5 + length
    return message


def recut(message, size):
    return b"".join(
        b"\x16\x03\x01" + len(part).to_bytes(2, "big") + part
        for part in (message[i:i + size] for i in range(0, len(message), size))
    )


def connect(address, port):
    sock = socket.create_connection((address, int(port)), timeout=3)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def verdict(sock):
    """REACHED when the server's first bytes are a TLS handshake record."""
    sock.settimeout(3)
    try:
        data = sock.recv(5)
    except OSError as error:
        return "BLOCKED " + type(error).__name__
    return "REACHED" if data[:1] == b"\x16" else "BLOCKED " + repr(data[:5])


def send_or_blocked(sock, pieces, pause=0.0, flags=None):
    try:
        for i, piece in enumerate(pieces):
            sock.send(piece, (flags or {}).get(i, 0))
            if pause:
                time.sleep(pause)
    except OSError as error:
        return "BLOCKED " + type(error).__name__
    return None


def tcp_mode(mode, address, port, name, extra):
    records = hello_records(name)
    sock = connect(address, port)
    if mode == "records":
        pieces = [recut(handshake_message(records), int(extra[0]))]
        failed = send_or_blocked(sock, pieces)
    elif mode == "segments":
        count = int(extra[0])
        size = -(-len(records) // count)
        pieces = [records[i:i + size] for i in range(0, len(records), size)]
        pause = float(extra[1]) / 1000 if len(extra) > 1 else 0.005
        failed = send_or_blocked(sock, pieces, pause=pause)
    elif mode == "urgent":
        # The receiver takes the urgent byte out of the stream: the server
        # reads an intact hello, a reader that keeps it does not.
        pieces = [records[:20], b"X", records[20:]]
        failed = send_or_blocked(sock, pieces, pause=0.005, flags={1: socket.MSG_OOB})
    else:
        failed = send_or_blocked(sock, [records])
    print(failed or verdict(sock), flush=True)


def quic_mode(address, port, path, junk):
    with open(path, "rb") as f:
        data = f.read()
    initials, at = [], 0
    while at + 2 <= len(data):
        length = int.from_bytes(data[at:at + 2], "big")
        initials.append(data[at + 2:at + 2 + length])
        at += 2 + length
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((address, int(port)))
    for i in range(int(junk)):
        # Short headers and long headers that decrypt to nothing.
        first = b"\x40" if i % 2 == 0 else b"\xc3\x00\x00\x00\x01"
        try:
            sock.send(first + os.urandom(1200))
        except OSError:
            pass
    for initial in initials:
        try:
            sock.send(initial)
        except OSError as error:
            print("BLOCKED " + type(error).__name__, flush=True)
            return
    sock.settimeout(1)
    try:
        sock.recv(2048)
    except ConnectionRefusedError:
        print("BLOCKED ConnectionRefusedError", flush=True)
        return
    except OSError:
        pass
    print("SENT", flush=True)


def synflood(address, first, last, count, seconds):
    deadline = time.monotonic() + float(seconds)
    ports = list(range(int(first), int(last) + 1))
    sent, open_sockets = 0, []
    while sent < int(count) and time.monotonic() < deadline:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect((address, ports[sent % len(ports)]))
        except (BlockingIOError, OSError):
            pass
        open_sockets.append(sock)
        sent += 1
        if len(open_sockets) >= 200:
            for s in open_sockets:
                s.close()
            open_sockets = []
    for s in open_sockets:
        s.close()
    print("SENT", sent, flush=True)


def dns_name(name):
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"


def dns_answer(query_id, question, address):
    """A response with one A record for the question (name, type, class)."""
    header = query_id.to_bytes(2, "big") + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
    record = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + socket.inet_aton(address)
    return header + question + record


def forge(address, name, ip):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    answer = dns_answer(0x4242, dns_name(name) + b"\x00\x01\x00\x01", ip)
    for _ in range(3):
        sock.sendto(answer, (address, 53))
    print("SENT", flush=True)


def dohserver(port, seconds, cert, key, ip):
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = min(int(self.headers.get("content-length", "0")), 512)
            query = self.rfile.read(length)
            if len(query) < 17:
                self.send_response(400)
                self.end_headers()
                return
            question = query[12:]
            end = question.index(b"\0") + 5
            body = dns_answer(int.from_bytes(query[:2], "big"), question[:end], ip)
            if question[end - 4:end - 2] != b"\x00\x01":
                # Not type A: an empty answer.
                body = body[:6] + b"\x00\x00" + body[8:12] + question[:end]
            self.send_response(200)
            self.send_header("content-type", "application/dns-message")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", int(port)), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.timeout = 0.5
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        server.handle_request()


def partials(address, port, count):
    half = hello_records("chatgpt.com")[:20]
    done = 0
    started = time.monotonic()
    # Under the caller's 20 s timeout, so that the count is always printed.
    deadline = started + 15
    while done < int(count) and time.monotonic() < deadline:
        try:
            sock = connect(address, port)
            sock.send(half)
            # An RST on close: the hello can never complete.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            done += 1
        except OSError:
            pass
    print("SENT", done, "in %.1f s" % (time.monotonic() - started), flush=True)


def console(path):
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    return sock


def tally(sock, count, seconds=20):
    """Reads COUNT reply lines: how many succeeded, were rate-limited, failed."""
    counts = {"ok": 0, "rate-limited": 0, "other": 0}
    reader = sock.makefile("r")
    sock.settimeout(seconds)
    for _ in range(count):
        line = reader.readline()
        if not line:
            break
        reply = json.loads(line)
        if "result" in reply:
            counts["ok"] += 1
        elif reply.get("error", {}).get("code") == "rate-limited":
            counts["rate-limited"] += 1
        else:
            counts["other"] += 1
    return "ok=%(ok)d limited=%(rate-limited)d other=%(other)d" % counts


def requests(path, count):
    sock = console(path)
    lines = "".join(json.dumps({"id": i, "method": "status"}) + "\n" for i in range(int(count)))
    sock.sendall(lines.encode())
    print(tally(sock, int(count)), flush=True)


def clipboard(path, count):
    sock = console(path)
    lines = ""
    for i in range(int(count)):
        report = {
            "detectors": {"email": 1},
            "window": {"title": "ChatGPT — Mozilla Firefox", "pid": None, "program": None},
            "content_hash": "%032x" % i,
            "display": "x11",
        }
        lines += json.dumps({"id": i, "method": "clipboard", "params": report}) + "\n"
    sock.sendall(lines.encode())
    print(tally(sock, int(count)), flush=True)


def hog(path, connections, count, seconds):
    held = []
    request = "".join(json.dumps({"id": i, "method": "catalog"}) + "\n" for i in range(int(count)))
    for _ in range(int(connections)):
        try:
            sock = console(path)
            sock.setblocking(False)
            try:
                sock.send(request.encode())
            except BlockingIOError:
                pass
            held.append(sock)
        except OSError:
            pass
    print("HOLDING", len(held), flush=True)
    time.sleep(float(seconds))


def dnshold(address, count, seconds):
    held = []
    for _ in range(int(count)):
        try:
            held.append(socket.create_connection((address, 53), timeout=2))
        except OSError:
            pass
    time.sleep(1)
    still_open = 0
    for sock in held:
        sock.setblocking(False)
        try:
            closed = sock.recv(1) == b""
        except BlockingIOError:
            closed = False
        except OSError:
            closed = True
        still_open += 0 if closed else 1
    print("open=%d closed=%d" % (still_open, len(held) - still_open), flush=True)
    time.sleep(float(seconds))


def udpserver(port, seconds, log):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", int(port)))
    deadline = time.monotonic() + float(seconds)
    with open(log, "a") as out:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([sock], [], [], 0.5)
            if ready:
                data = sock.recv(65535)
                out.write("%d %d\n" % (len(data), data[0] if data else -1))
                out.flush()


def relay(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def proxy_client(client):
    client.settimeout(5)
    try:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            data = client.recv(4096)
            if not data:
                return
            head += data
        target = head.split(b" ")[1].decode()
        _, port = target.rsplit(":", 1)
        # Every name of this internet is its one server, at 127.0.0.1 here.
        upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        client.settimeout(None)
        threading.Thread(target=relay, args=(upstream, client), daemon=True).start()
        relay(client, upstream)
    except (OSError, ValueError, IndexError):
        client.close()


def proxy(port, seconds):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", int(port)))
    server.listen(64)
    server.settimeout(0.5)
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            client, _ = server.accept()
        except socket.timeout:
            continue
        threading.Thread(target=proxy_client, args=(client,), daemon=True).start()


def main(argv):
    mode, args = argv[1], argv[2:]
    if mode in ("records", "segments", "urgent", "plain"):
        tcp_mode(mode, args[0], args[1], args[2], args[3:])
    elif mode == "quic":
        quic_mode(*args)
    elif mode == "synflood":
        synflood(*args)
    elif mode == "partials":
        partials(*args)
    elif mode == "requests":
        requests(*args)
    elif mode == "clipboard":
        clipboard(*args)
    elif mode == "hog":
        hog(*args)
    elif mode == "dnshold":
        dnshold(*args)
    elif mode == "forge":
        forge(*args)
    elif mode == "udpserver":
        udpserver(*args)
    elif mode == "dohserver":
        dohserver(*args)
    elif mode == "proxy":
        proxy(*args)
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main(sys.argv)
