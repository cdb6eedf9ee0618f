#!/usr/bin/python3
"""A tiny DNS server for tests: answers A queries over UDP on 127.0.0.1
from a file of "name address" lines, read again for every query, with a
TTL of 0, so a test moves a name by rewriting the file.  Other types of a
known name get an empty answer; unknown names NXDOMAIN.  Each query is
logged as a line in ZONE_FILE.queries, and answered after the seconds
ZONE_FILE.delay holds, if any (to hold a resolution in progress).

    dns_stub.py ZONE_FILE PORT_FILE     (the port it bound is written there)
"""

import socket
import struct
import sys
import time


def zone(path):
    names = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    names.setdefault(parts[0].lower().rstrip('.'), []).append(
                        socket.inet_aton(parts[1]))
    except OSError:
        pass
    return names


def delay(path):
    try:
        with open(path) as f:
            return float(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def answer(query, names):
    qid, flags, qdcount = struct.unpack('!HHH', query[:6])
    if qdcount != 1:
        return None
    pos, labels = 12, []
    while query[pos] != 0:
        n = query[pos]
        labels.append(query[pos + 1:pos + 1 + n].decode('ascii', 'replace'))
        pos += 1 + n
    pos += 1
    qtype, qclass = struct.unpack('!HH', query[pos:pos + 4])
    question = query[12:pos + 4]
    name = '.'.join(labels).lower()

    addrs = names.get(name)
    rcode = 0 if addrs is not None else 3
    records = b''
    count = 0
    if addrs and qtype == 1 and qclass == 1:
        for a in addrs:
            records += struct.pack('!HHHIH', 0xC00C, 1, 1, 0, 4) + a
            count += 1
    header = struct.pack('!HHHHHH', qid, 0x8180 | (flags & 0x0100) | rcode,
                         1, count, 0, 0)
    return header + question + records


def main():
    zone_file, port_file = sys.argv[1], sys.argv[2]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('127.0.0.1', 0))
    with open(port_file + '.tmp', 'w') as f:
        f.write(str(s.getsockname()[1]))
    import os
    os.rename(port_file + '.tmp', port_file)
    while True:
        query, peer = s.recvfrom(4096)
        with open(zone_file + '.queries', 'a') as f:
            f.write('query\n')
        time.sleep(delay(zone_file + '.delay'))
        try:
            reply = answer(query, zone(zone_file))
        except (IndexError, struct.error):
            reply = None
        if reply is not None:
            s.sendto(reply, peer)


if __name__ == '__main__':
    main()
