#!/usr/bin/env python3
"""v2_peer.py — a native ver.2 client for the WinAPI client's GUI test.

It connects to a ver.2 server on 127.0.0.1, logs in, and then does two
things at once: it writes one line per packet it receives to an events file
(UTF-8, flushed at once, so the test can wait for a line to appear), and it
sends a CHAT_REQUEST for every "say TEXT" line on its standard input.

Frames are built and read field by field, big-endian, straight from ver.2
in docs/protocol.md — deliberately not with the project's own codec, so the
test checks the C++ code against the contract and not against itself.

Events, one per line:
  LOGIN_RESPONSE <STATUS> <id>       CHAT_BROADCAST <id> <message>
  USER_JOINED <id>                   USER_LEFT <id>
  ERROR <CODE>                       CLOSED (the server closed the connection)

Usage: v2_peer.py --port P --id ID --events FILE
Commands on stdin: "say TEXT" (TEXT: 1-32 bytes of UTF-8), "quit".
"""
import argparse
import socket
import struct
import sys
import threading

HEADER = 4
ID_SIZE = 16
MESSAGE_SIZE = 32
# type: (name, frame size), from the packet table of docs/protocol.md.
TYPES = {
    0x0001: ("LOGIN_REQUEST", 20),
    0x0002: ("LOGIN_RESPONSE", 22),
    0x0003: ("CHAT_REQUEST", 36),
    0x0004: ("CHAT_BROADCAST", 52),
    0x0005: ("USER_JOINED", 20),
    0x0006: ("USER_LEFT", 20),
    0x0007: ("ERROR", 6),
}
LOGIN_STATUS = {0: "OK", 1: "ID_TAKEN", 2: "INVALID_ID", 3: "ALREADY_LOGGED_IN", 4: "TRY_LATER"}
ERROR_CODE = {1: "MALFORMED_FRAME", 2: "UNKNOWN_TYPE", 3: "NOT_LOGGED_IN", 4: "INVALID_TEXT",
              5: "SLOW_CONSUMER", 6: "SERVER_FULL"}


def text_field(text, size):
    """UTF-8 text padded with NUL bytes to the field's size."""
    data = text.encode("utf-8")
    if not 1 <= len(data) <= size:
        raise ValueError(f"{text!r} is {len(data)} bytes; the field holds 1-{size}")
    return data + b"\0" * (size - len(data))


def frame(packet_type, body):
    """length u16, type u16, body — big-endian."""
    return struct.pack(">HH", HEADER + len(body), packet_type) + body


def field_text(data):
    """A text field as text: up to its trailing NULs; bad UTF-8 shown as U+FFFD."""
    return data.rstrip(b"\0").decode("utf-8", errors="replace")


def read_exactly(sock, size):
    """Exactly `size` bytes, or None at the end of the stream."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_packet(sock):
    """The next frame as an event line, or None at the end of the stream."""
    header = read_exactly(sock, HEADER)
    if header is None:
        return None
    length, packet_type = struct.unpack(">HH", header)
    name, size = TYPES.get(packet_type, (f"TYPE_{packet_type}", length))
    if length != size or length < HEADER:
        return f"BAD_FRAME length={length} type={packet_type}"
    body = read_exactly(sock, length - HEADER)
    if body is None:
        return None
    if name == "LOGIN_RESPONSE":
        (status,) = struct.unpack(">H", body[:2])
        return f"{name} {LOGIN_STATUS.get(status, status)} {field_text(body[2:])}"
    if name == "CHAT_BROADCAST":
        return f"{name} {field_text(body[:ID_SIZE])} {field_text(body[ID_SIZE:])}"
    if name in ("USER_JOINED", "USER_LEFT"):
        return f"{name} {field_text(body)}"
    if name == "ERROR":
        (code,) = struct.unpack(">H", body)
        return f"{name} {ERROR_CODE.get(code, code)}"
    return f"{name} {body.hex()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--events", required=True)
    args = parser.parse_args()

    sock = socket.create_connection(("127.0.0.1", args.port), timeout=30)
    sock.settimeout(None)
    events = open(args.events, "a", encoding="utf-8", buffering=1)  # line-buffered

    def record(line):
        events.write(line + "\n")
        events.flush()

    sock.sendall(frame(0x0001, text_field(args.id, ID_SIZE)))

    def receive():
        while True:
            try:
                event = read_packet(sock)
            except OSError:
                event = None
            if event is None:
                record("CLOSED")
                return
            record(event)

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()

    for command in sys.stdin:
        command = command.rstrip("\n")
        if command.startswith("say "):
            sock.sendall(frame(0x0003, text_field(command[4:], MESSAGE_SIZE)))
        elif command == "quit":
            break
    sock.shutdown(socket.SHUT_WR)
    receiver.join(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
