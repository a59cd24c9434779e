"""Sends NetFlow v5 datagrams, paced, to the intake: what a router would.

    python3 send_v5.py DST_IP DST_PORT DATAGRAMS FLOWS_PER_DATAGRAM PAUSE_MS

Datagram i, flow j: 10.1.<i/256>.<i%256>:<1000+j> -> 10.2.0.<j>:80, TCP,
j+1 packets, 100*(j+1) bytes, sampling 1 in 10. Prints the count sent.
"""

import socket
import struct
import sys
import time

dst, port, count, per, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(count):
    now = time.time()
    hdr = struct.pack(">HHIIIIBBH", 5, per, 60000, int(now), 0, i * per, 0, 3, 0x4000 | 10)
    body = b""
    for j in range(per):
        src = bytes([10, 1, i >> 8 & 255, i & 255])
        dstip = bytes([10, 2, 0, j])
        body += src + dstip + bytes(4) + struct.pack(">HHIIIIHHBBBBHHBBH",
            1, 2, j + 1, 100 * (j + 1), 59000, 59900, 1000 + j, 80, 0, 0x1b, 6, 0, 0, 0, 24, 24, 0)
    s.sendto(hdr + body, (dst, port))
    if pause > 0:
        time.sleep(pause / 1000.0)
print(count)
