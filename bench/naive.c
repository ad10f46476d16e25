/*
 * naive: the floor for bench/run.sh. The cheapest DNS server there is: one
 * blocking socket, one recvfrom and one sendto per query, no parsing beyond
 * finding the end of the question, no cache, no epoll.
 *
 * Every query gets the answer a dns64d cache hit gives for an A-only name
 * of the synth mix: the query's header and question, QR/RD/RA, one AAAA
 * record (compressed owner name, TTL 3600) holding 64:ff9b::c612:6301,
 * nothing else (an OPT record in the query is dropped, as dnsperf and blast
 * send none). The same octets on the wire as dns64d's cached answer, so the
 * kernel work per query is the same and only the server's own work differs.
 *
 *   naive -p PORT [-s ADDRESS]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* 64:ff9b::198.18.99.1, the synthesized address of check.v4.bench.example */
static const uint8_t AAAA[16] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 198, 18, 99, 1};

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 0, opt;
    while ((opt = getopt(argc, argv, "s:p:")) != -1) {
        switch (opt) {
        case 's': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: %s -p PORT [-s ADDRESS]\n", argv[0]);
            return 2;
        }
    }
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "naive: need -p PORT\n");
        return 2;
    }
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
        fprintf(stderr, "naive: bad address %s\n", addr);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        perror("naive: socket");
        return 1;
    }
    uint8_t buf[4096];
    for (;;) {
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof from;
        ssize_t n = recvfrom(fd, buf, 512, 0, (struct sockaddr *)&from, &fromlen);
        if (n < 12 || (buf[2] & 0x80) || buf[4] != 0 || buf[5] != 1)
            continue;
        /* the end of the question: labels, then QTYPE and QCLASS */
        size_t off = 12;
        while (off < (size_t)n && buf[off] != 0 && buf[off] < 64)
            off += 1 + buf[off];
        off += 5;
        if (off > (size_t)n)
            continue;
        buf[2] = (uint8_t)(0x80 | (buf[2] & 0x01)); /* QR, opcode 0, RD as asked */
        buf[3] = 0x80;                              /* RA, NOERROR */
        buf[6] = 0, buf[7] = 1;                     /* ANCOUNT */
        memset(buf + 8, 0, 4);                      /* NSCOUNT, ARCOUNT */
        static const uint8_t rr[12] = {0xc0, 0x0c, 0, 28, 0, 1, 0, 0, 0x0e, 0x10, 0, 16};
        memcpy(buf + off, rr, sizeof rr);
        memcpy(buf + off + sizeof rr, AAAA, sizeof AAAA);
        off += sizeof rr + sizeof AAAA;
        sendto(fd, buf, off, 0, (struct sockaddr *)&from, fromlen);
    }
}
