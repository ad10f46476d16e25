/*
 * The lab's client: what an application does with one name.
 *
 * Built twice by run.sh, once against glibc (gcc) and once against musl
 * (musl-gcc -static), so the same code shows what each libc's getaddrinfo
 * returns and in which order. It asks getaddrinfo(NAME, PORT) with AF_UNSPEC
 * and SOCK_STREAM, as a plain application would, prints every address in the
 * order the libc sorted them, then connects to the FIRST one only (the address
 * an application that does not race families tries), with a timeout, sends an
 * HTTP/1.0 request and prints the line in which the target says which source
 * address it saw.
 *
 * Output, one line, key=value, for run.sh to parse:
 *   libc=glibc count=2 first=64:ff9b::cb00:7150 order=64:ff9b::cb00:7150,203.0.113.80 connect=ok seen=203.0.113.1
 * connect is ok, timeout, refused or error (skip with TIMEOUT_MS 0: resolve only);
 * with gai=FAIL err=EAI_... when getaddrinfo fails.
 *
 * Usage: client NAME PORT [TIMEOUT_MS]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef __GLIBC__
#define LIBC "glibc"
#else
#define LIBC "musl"
#endif

static void addr_text(const struct addrinfo *ai, char *out, size_t len)
{
	const void *src;
	if (ai->ai_family == AF_INET6)
		src = &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
	else
		src = &((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
	if (!inet_ntop(ai->ai_family, src, out, len))
		snprintf(out, len, "?");
}

/* Connects with a deadline; returns "ok", "timeout", "refused" or "error". */
static const char *connect_first(const struct addrinfo *ai, int timeout_ms, int *fd_out)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return "error";
	int flags = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		return e == ECONNREFUSED ? "refused" : "error";
	}
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int n = poll(&p, 1, timeout_ms);
	if (n == 0) {
		close(fd);
		return "timeout";
	}
	int err = 0;
	socklen_t elen = sizeof err;
	if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
		close(fd);
		return err == ECONNREFUSED ? "refused" : "error";
	}
	fcntl(fd, F_SETFL, flags);
	*fd_out = fd;
	return "ok";
}

/* Sends a request and finds "seen-from ADDR" in the reply. */
static void read_seen(int fd, int timeout_ms, char *seen, size_t len)
{
	static const char req[] = "GET / HTTP/1.0\r\nHost: lab\r\n\r\n";
	char buf[2048];
	size_t got = 0;
	snprintf(seen, len, "-");
	if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1))
		return;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, timeout_ms) <= 0)
			break;
		ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		if (got >= sizeof buf - 1)
			break;
	}
	buf[got] = 0;
	char *s = strstr(buf, "seen-from ");
	if (s) {
		s += strlen("seen-from ");
		size_t n = strcspn(s, " \r\n");
		if (n >= len)
			n = len - 1;
		memcpy(seen, s, n);
		seen[n] = 0;
	}
}

static const char *gai_name(int rc)
{
	switch (rc) {
	case EAI_NONAME:
		return "EAI_NONAME";
	case EAI_AGAIN:
		return "EAI_AGAIN";
	case EAI_FAIL:
		return "EAI_FAIL";
#ifdef EAI_NODATA
	case EAI_NODATA:
		return "EAI_NODATA";
#endif
	default:
		return "EAI_OTHER";
	}
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s NAME PORT [TIMEOUT_MS]\n", argv[0]);
		return 2;
	}
	int timeout_ms = argc > 3 ? atoi(argv[3]) : 3000;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(argv[1], argv[2], &hints, &res);
	if (rc != 0) {
		printf("libc=%s count=0 first=- order=- connect=skip seen=- gai=FAIL err=%s\n", LIBC,
		       gai_name(rc));
		return 1;
	}
	char order[8192] = "";
	char first[INET6_ADDRSTRLEN] = "-";
	int count = 0;
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		char a[INET6_ADDRSTRLEN];
		addr_text(ai, a, sizeof a);
		if (count == 0)
			snprintf(first, sizeof first, "%s", a);
		size_t used = strlen(order);
		if (used + strlen(a) + 2 < sizeof order)
			snprintf(order + used, sizeof order - used, "%s%s", count ? "," : "", a);
		count++;
	}
	int fd = -1;
	const char *result = timeout_ms > 0 ? connect_first(res, timeout_ms, &fd) : "skip";
	char seen[64] = "-";
	if (fd >= 0) {
		read_seen(fd, timeout_ms, seen, sizeof seen);
		close(fd);
	}
	printf("libc=%s count=%d first=%s order=%s connect=%s seen=%s gai=ok\n", LIBC, count, first,
	       order, result, seen);
	freeaddrinfo(res);
	return strcmp(result, "ok") == 0 || timeout_ms == 0 ? 0 : 1;
}
