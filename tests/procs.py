"""Process helpers for the sweep fault tests, from /proc alone (Linux): who belongs to a
session, what listens where."""
from __future__ import annotations

import os
import signal
import socket
import struct
from pathlib import Path


def session_pids(sid: int) -> list[int]:
    """Every live process whose session id is ``sid`` (a driver started with
    start_new_session=True, and everything Ray started under it)."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(p.name))
    return out


def kill_session(sid: int) -> None:
    for pid in session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _address(hex_addr: str, v6: bool) -> str:
    raw = bytes.fromhex(hex_addr)
    if not v6:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = struct.unpack("<4I", raw)  # four host-order 32-bit words
    return socket.inet_ntop(socket.AF_INET6, struct.pack(">4I", *words))


def listening_sockets() -> dict[int, tuple[str, int]]:
    """inode -> (address, port) of every TCP socket in LISTEN state."""
    out = {}
    for name, v6 in (("tcp", False), ("tcp6", True)):
        path = Path("/proc/net") / name
        if not path.is_file():
            continue
        for line in path.read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A":  # LISTEN
                host, port = parts[1].split(":")
                out[int(parts[9])] = (_address(host, v6), int(port, 16))
    return out


def listeners_of(pids: list[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every listening TCP socket the given processes hold."""
    sockets, out = listening_sockets(), []
    for pid in pids:
        try:
            links = [os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        for link in links:
            if link.startswith("socket:["):
                inode = int(link[8:-1])
                if inode in sockets:
                    out.append((pid, *sockets[inode]))
    return out


def is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1") or address.startswith("::ffff:127.")
