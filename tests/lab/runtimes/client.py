"""The lab's Python client (standard library only): what a Python service
does with one name, in one of two modes.

  socket:  socket.getaddrinfo (glibc's, order kept), then
           socket.create_connection((NAME, PORT)), which tries each address
           in that order until one connects.
  asyncio: loop.getaddrinfo (glibc's getaddrinfo in a worker thread), then
           asyncio.open_connection(NAME, PORT) with its defaults: no happy
           eyeballs (happy_eyeballs_delay=None), addresses tried in order.

Output, one line, key=value, parsed by run.sh:
  rt=python count=1 first=64:ff9b::cb00:7150 order=... connect=ok via=64:ff9b::cb00:7150 seen=203.0.113.1
Usage: python3 client.py NAME PORT TIMEOUT_MS (0: resolve only) socket|asyncio LABEL
"""

import asyncio
import socket
import sys


def line(label, order, rest):
    first = order[0] if order else "-"
    return f"rt={label} count={len(order)} first={first} order={','.join(order) or '-'} {rest}"


def seen_in(data):
    for raw in data.decode("ascii", "replace").splitlines():
        if raw.startswith("seen-from "):
            return raw[len("seen-from "):]
    return "-"


def gai_name(e):
    for n in ("EAI_NONAME", "EAI_NODATA", "EAI_AGAIN", "EAI_FAIL"):
        if getattr(socket, n, None) == e.errno:
            return n
    return str(e.errno)


def unique(infos):
    out = []
    for info in infos:
        if info[4][0] not in out:
            out.append(info[4][0])
    return out


def state_of(err):
    if isinstance(err, (TimeoutError, socket.timeout, asyncio.TimeoutError)):
        return "timeout"
    if isinstance(err, ConnectionRefusedError):
        return "refused"
    return "error"


def run_socket(name, port, ms, label):
    try:
        order = unique(socket.getaddrinfo(name, port, type=socket.SOCK_STREAM))
    except socket.gaierror as e:
        return line(label, [], f"gai=FAIL err={gai_name(e)} connect=skip via=- seen=-")
    if ms == 0:
        return line(label, order, "connect=skip via=- seen=-")
    try:
        with socket.create_connection((name, port), timeout=ms / 1000) as s:
            via = s.getpeername()[0]
            s.sendall(f"GET / HTTP/1.0\r\nHost: {name}\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            return line(label, order, f"connect=ok via={via} seen={seen_in(data)}")
    except OSError as e:
        return line(label, order, f"connect={state_of(e)} via=- seen=-")


async def run_asyncio(name, port, ms, label):
    loop = asyncio.get_running_loop()
    try:
        order = unique(await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM))
    except socket.gaierror as e:
        return line(label, [], f"gai=FAIL err={gai_name(e)} connect=skip via=- seen=-")
    if ms == 0:
        return line(label, order, "connect=skip via=- seen=-")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(name, port), ms / 1000)
    except (OSError, asyncio.TimeoutError) as e:
        return line(label, order, f"connect={state_of(e)} via=- seen=-")
    via = writer.get_extra_info("peername")[0]
    writer.write(f"GET / HTTP/1.0\r\nHost: {name}\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), ms / 1000)
    writer.close()
    return line(label, order, f"connect=ok via={via} seen={seen_in(data)}")


def main():
    if len(sys.argv) != 6 or sys.argv[4] not in ("socket", "asyncio"):
        sys.exit("usage: python3 client.py NAME PORT TIMEOUT_MS socket|asyncio LABEL")
    name, port, ms, mode, label = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    if mode == "socket":
        print(run_socket(name, port, ms, label))
    else:
        print(asyncio.run(run_asyncio(name, port, ms, label)))


main()
