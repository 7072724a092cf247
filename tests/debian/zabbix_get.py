#!/usr/bin/env python3
"""Asks a Zabbix agent for one item, as the Zabbix server's passive check
does (the ZBXD protocol), and prints the value: zabbix_get.py HOST PORT KEY.
Exit 1 when the agent answers ZBX_NOTSUPPORTED."""
import socket
import struct
import sys

host, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = key.encode()
with socket.create_connection((host, port), timeout=60) as s:
    s.sendall(b"ZBXD\x01" + struct.pack("<Q", len(data)) + data)
    answer = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        answer += chunk
if not answer.startswith(b"ZBXD\x01") or len(answer) < 13:
    sys.exit("zabbix_get.py: not a Zabbix answer: %r" % answer[:40])
(length,) = struct.unpack("<Q", answer[5:13])
value = answer[13:13 + length].decode("utf-8", "replace")
if value.startswith("ZBX_NOTSUPPORTED"):
    sys.stderr.write(value.replace("\0", ": ") + "\n")
    sys.exit(1)
sys.stdout.write(value)
