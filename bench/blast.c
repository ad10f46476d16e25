/*
 * blast: a batching DNS load generator for bench/run.sh.
 *
 * One dnsperf process tops out near 150k queries/s on the benchmark box, so
 * it cannot saturate a server that answers from cache faster than that. blast
 * reads the same data files and prints the same summary lines as dnsperf
 * (run.sh parses either), but moves its queries and replies with
 * sendmmsg/recvmmsg, 64 per system call, over several sockets, keeping a
 * fixed number of queries outstanding (like dnsperf -q).
 *
 *   blast -s 127.0.0.1 -p 5353 -d queries.txt [-l SECONDS] [-n RUNS]
 *         [-q OUTSTANDING] [-t TIMEOUT] [-c SOCKETS]
 *
 * Queries are plain (no EDNS), RD=1, like dnsperf's defaults. A reply counts
 * when its source, ID and socket match an outstanding query; anything else is
 * ignored. A query without a reply after TIMEOUT seconds is lost.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAXSOCK 16
#define MAXQ 300 /* a query: 12 header + 255 name + 4 */
#define RBUF 4096

struct query {
    uint16_t len;
    uint8_t wire[MAXQ];
};

struct sock {
    int fd;
    uint32_t outstanding;
    uint16_t next_id;
    /* per ID: 0 = free, else send time in ns */
    uint64_t sent_at[65536];
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *msg)
{
    perror(msg);
    exit(1);
}

static int qtype_of(const char *t)
{
    static const struct { const char *name; int code; } types[] = {
        {"A", 1}, {"NS", 2}, {"CNAME", 5}, {"SOA", 6}, {"PTR", 12}, {"MX", 15},
        {"TXT", 16}, {"AAAA", 28}, {"SRV", 33}, {"HTTPS", 65}, {"ANY", 255},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcasecmp(t, types[i].name))
            return types[i].code;
    return -1;
}

/* Encodes "name type" into q; 0 on success. */
static int encode(const char *name, const char *type, struct query *q)
{
    int qtype = qtype_of(type);
    if (qtype < 0)
        return -1;
    uint8_t *p = q->wire;
    memset(p, 0, 12);
    p[2] = 0x01; /* RD */
    p[5] = 1;    /* QDCOUNT */
    size_t off = 12;
    const char *label = name;
    while (*label && strcmp(label, ".")) {
        const char *dot = strchr(label, '.');
        size_t n = dot ? (size_t)(dot - label) : strlen(label);
        if (n == 0 || n > 63 || off + 1 + n + 5 > MAXQ)
            return -1;
        p[off++] = (uint8_t)n;
        memcpy(p + off, label, n);
        off += n;
        if (!dot)
            break;
        label = dot + 1;
    }
    p[off++] = 0;
    p[off++] = (uint8_t)(qtype >> 8);
    p[off++] = (uint8_t)qtype;
    p[off++] = 0;
    p[off++] = 1; /* IN */
    q->len = (uint16_t)off;
    return 0;
}

static struct query *load(const char *path, size_t *count)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die(path);
    size_t cap = 1 << 16, n = 0;
    struct query *qs = malloc(cap * sizeof *qs);
    char line[1024], name[512], type[32];
    while (qs && fgets(line, sizeof line, f)) {
        if (line[0] == ';' || line[0] == '#' || sscanf(line, "%511s %31s", name, type) != 2)
            continue;
        if (n == cap) {
            cap *= 2;
            qs = realloc(qs, cap * sizeof *qs);
            if (!qs)
                break;
        }
        if (encode(name, type, &qs[n]) == 0)
            n++;
    }
    fclose(f);
    if (!qs)
        die("malloc");
    *count = n;
    return qs;
}

static const char *rcode_names[16] = {
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN",
    "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11", "RCODE12", "RCODE13",
    "RCODE14", "RCODE15",
};

int main(int argc, char **argv)
{
    const char *server = "127.0.0.1", *data = NULL;
    int port = 53, nsock = 4, opt;
    double limit = 0, timeout = 2;
    long runs = 0, window = 100;
    while ((opt = getopt(argc, argv, "s:p:d:l:n:q:t:c:")) != -1) {
        switch (opt) {
        case 's': server = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'd': data = optarg; break;
        case 'l': limit = atof(optarg); break;
        case 'n': runs = atol(optarg); break;
        case 'q': window = atol(optarg); break;
        case 't': timeout = atof(optarg); break;
        case 'c': nsock = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: %s -s ADDR -p PORT -d FILE [-l SEC] [-n RUNS] [-q OUTSTANDING] [-t SEC] [-c SOCKETS]\n", argv[0]);
            return 2;
        }
    }
    if (!data || nsock < 1 || nsock > MAXSOCK || window < 1 || (limit <= 0 && runs <= 0)) {
        fprintf(stderr, "blast: need -d FILE, 1..%d sockets, -q >= 1, and -l or -n\n", MAXSOCK);
        return 2;
    }
    size_t nq;
    struct query *qs = load(data, &nq);
    if (nq == 0) {
        fprintf(stderr, "blast: no queries in %s\n", data);
        return 1;
    }

    struct sockaddr_storage to;
    socklen_t tolen;
    memset(&to, 0, sizeof to);
    struct sockaddr_in *sin = (struct sockaddr_in *)&to;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&to;
    if (inet_pton(AF_INET, server, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        tolen = sizeof *sin;
    } else if (inet_pton(AF_INET6, server, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        tolen = sizeof *sin6;
    } else {
        fprintf(stderr, "blast: bad server address %s\n", server);
        return 2;
    }

    struct sock *socks = calloc((size_t)nsock, sizeof *socks);
    struct pollfd pfds[MAXSOCK];
    if (!socks)
        die("calloc");
    for (int i = 0; i < nsock; i++) {
        socks[i].fd = socket(to.ss_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (socks[i].fd < 0)
            die("socket");
        int buf = 4 << 20;
        setsockopt(socks[i].fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
        setsockopt(socks[i].fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
        /* connected: the kernel drops datagrams from anyone else */
        if (connect(socks[i].fd, (struct sockaddr *)&to, tolen) < 0)
            die("connect");
        socks[i].next_id = (uint16_t)(i * 7919);
        pfds[i].fd = socks[i].fd;
        pfds[i].events = POLLIN;
    }
    long per_sock = (window + nsock - 1) / nsock;
    if (per_sock > 60000)
        per_sock = 60000;

    static struct mmsghdr msgs[BATCH];
    static struct iovec iovs[BATCH];
    static uint8_t rbuf[BATCH][RBUF];
    static uint8_t sbuf[BATCH][MAXQ];
    uint64_t sent = 0, completed = 0, lost = 0, rcodes[16] = {0};
    uint64_t timeout_ns = (uint64_t)(timeout * 1e9);
    uint64_t start = now_ns(), deadline = limit > 0 ? start + (uint64_t)(limit * 1e9) : UINT64_MAX;
    uint64_t last_sweep = start, end_sending = 0;
    size_t next = 0;
    long pass = 0;
    int sending = 1;

    for (;;) {
        uint64_t now = now_ns();
        if (sending && (now >= deadline || (runs > 0 && pass >= runs))) {
            sending = 0;
            end_sending = now;
        }
        int moved = 0;
        uint64_t total_out = 0;
        for (int s = 0; s < nsock; s++) {
            struct sock *k = &socks[s];
            /* send: fill this socket's share of the window */
            while (sending && (long)k->outstanding < per_sock) {
                int n = 0;
                while (n < BATCH && (long)k->outstanding + n < per_sock && !(runs > 0 && pass >= runs)) {
                    uint16_t id = k->next_id;
                    while (k->sent_at[id])
                        id++;
                    k->next_id = (uint16_t)(id + 1);
                    const struct query *q = &qs[next];
                    memcpy(sbuf[n], q->wire, q->len);
                    sbuf[n][0] = (uint8_t)(id >> 8);
                    sbuf[n][1] = (uint8_t)id;
                    k->sent_at[id] = now | 1;
                    iovs[n].iov_base = sbuf[n];
                    iovs[n].iov_len = q->len;
                    memset(&msgs[n], 0, sizeof msgs[n]);
                    msgs[n].msg_hdr.msg_iov = &iovs[n];
                    msgs[n].msg_hdr.msg_iovlen = 1;
                    n++;
                    if (++next == nq) {
                        next = 0;
                        pass++;
                    }
                }
                if (n == 0)
                    break;
                int done = sendmmsg(k->fd, msgs, (unsigned)n, 0);
                if (done < 0)
                    done = 0;
                /* unsent ones are freed again (they were never outstanding) */
                for (int i = done; i < n; i++)
                    k->sent_at[(uint16_t)(sbuf[i][0] << 8 | sbuf[i][1])] = 0;
                k->outstanding += (uint32_t)done;
                sent += (uint64_t)done;
                moved += done;
                if (done < n)
                    break;
            }
            /* receive whatever is there */
            for (;;) {
                for (int i = 0; i < BATCH; i++) {
                    iovs[i].iov_base = rbuf[i];
                    iovs[i].iov_len = RBUF;
                    memset(&msgs[i], 0, sizeof msgs[i]);
                    msgs[i].msg_hdr.msg_iov = &iovs[i];
                    msgs[i].msg_hdr.msg_iovlen = 1;
                }
                int got = recvmmsg(k->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
                if (got <= 0)
                    break;
                for (int i = 0; i < got; i++) {
                    if (msgs[i].msg_len < 12)
                        continue;
                    uint16_t id = (uint16_t)(rbuf[i][0] << 8 | rbuf[i][1]);
                    if (!k->sent_at[id] || !(rbuf[i][2] & 0x80))
                        continue;
                    k->sent_at[id] = 0;
                    k->outstanding--;
                    completed++;
                    rcodes[rbuf[i][3] & 0x0f]++;
                }
                moved += got;
                if (got < BATCH)
                    break;
            }
            total_out += k->outstanding;
        }
        /* lost queries: a sweep every 100 ms */
        if (now - last_sweep > 100000000u) {
            last_sweep = now;
            for (int s = 0; s < nsock; s++)
                for (uint32_t id = 0; id < 65536; id++) {
                    uint64_t t = socks[s].sent_at[id];
                    /* t may be a hair after now (sent this round, low bit set) */
                    if (t && now > t + timeout_ns) {
                        socks[s].sent_at[id] = 0;
                        socks[s].outstanding--;
                        lost++;
                    }
                }
        }
        if (!sending && (total_out == 0 || now - end_sending > timeout_ns + 200000000u))
            break;
        if (!moved)
            poll(pfds, (nfds_t)nsock, 1);
    }
    /* whatever is still outstanding now is lost */
    for (int s = 0; s < nsock; s++)
        lost += socks[s].outstanding;

    double run_s = (double)((end_sending ? end_sending : now_ns()) - start) / 1e9;
    printf("[Status] blast: %d sockets, %ld outstanding, %zu distinct queries\n", nsock, window, nq);
    printf("  Queries sent:         %llu\n", (unsigned long long)sent);
    printf("  Queries completed:    %llu (%.2f%%)\n", (unsigned long long)completed,
           sent ? 100.0 * (double)completed / (double)sent : 0.0);
    printf("  Queries lost:         %llu (%.2f%%)\n", (unsigned long long)lost,
           sent ? 100.0 * (double)lost / (double)sent : 0.0);
    printf("  Response codes:       ");
    int first = 1;
    for (int r = 0; r < 16; r++)
        if (rcodes[r]) {
            printf("%s%s %llu (%.2f%%)", first ? "" : ", ", rcode_names[r], (unsigned long long)rcodes[r],
                   100.0 * (double)rcodes[r] / (double)(completed ? completed : 1));
            first = 0;
        }
    printf("\n");
    printf("  Run time (s):         %.6f\n", run_s);
    printf("  Queries per second:   %.6f\n", run_s > 0 ? (double)completed / run_s : 0.0);
    return 0;
}
