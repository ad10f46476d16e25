// The lab's Go client (standard library only): what a Go service does with
// one name. run.sh runs it twice, with GODEBUG=netdns=go (Go's own resolver:
// reads /etc/resolv.conf itself, sends A and AAAA in parallel, sorts the
// answers by RFC 6724 in net/addrselect.go) and with GODEBUG=netdns=cgo
// (glibc's getaddrinfo, order kept).
//
// It prints the addresses LookupIPAddr returns, then dials NAME:PORT with a
// default net.Dialer, as Go code normally connects: the dialer tries the
// family of the first address first and falls back to the other family after
// 300 ms (RFC 6555 "fast fallback").
//
// Output, one line, key=value, parsed by run.sh:
//   rt=go count=1 first=64:ff9b::cb00:7150 order=64:ff9b::cb00:7150 connect=ok via=64:ff9b::cb00:7150 seen=203.0.113.1
// Usage: client NAME PORT TIMEOUT_MS (0: resolve only) RUNTIME-LABEL
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func word(s string) string { return strings.Join(strings.Fields(s), "_") }

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: client NAME PORT TIMEOUT_MS LABEL")
		os.Exit(2)
	}
	name, port, label := os.Args[1], os.Args[2], os.Args[4]
	ms, err := strconv.Atoi(os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, "TIMEOUT_MS must be a number")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, name)
	if err != nil || len(addrs) == 0 {
		msg := "no addresses"
		if err != nil {
			msg = err.Error()
			var de *net.DNSError
			if errors.As(err, &de) {
				msg = de.Err
			}
		}
		fmt.Printf("rt=%s count=0 first=- order=- gai=FAIL err=%s connect=skip via=- seen=-\n", label, word(msg))
		return
	}
	order := make([]string, len(addrs))
	for i, a := range addrs {
		order[i] = a.IP.String()
	}
	line := fmt.Sprintf("rt=%s count=%d first=%s order=%s", label, len(addrs), order[0], strings.Join(order, ","))
	if ms == 0 {
		fmt.Println(line + " connect=skip via=- seen=-")
		return
	}
	d := net.Dialer{Timeout: time.Duration(ms) * time.Millisecond}
	conn, err := d.Dial("tcp", net.JoinHostPort(name, port))
	if err != nil {
		state := "error"
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			state = "timeout"
		} else if errors.Is(err, syscall.ECONNREFUSED) {
			state = "refused"
		}
		fmt.Printf("%s connect=%s via=- seen=-\n", line, state)
		return
	}
	defer conn.Close()
	via := conn.RemoteAddr().(*net.TCPAddr).IP.String()
	_ = conn.SetDeadline(time.Now().Add(time.Duration(ms) * time.Millisecond))
	fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", name)
	seen := "-"
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		if t := sc.Text(); strings.HasPrefix(t, "seen-from ") {
			seen = strings.TrimPrefix(t, "seen-from ")
		}
	}
	fmt.Printf("%s connect=ok via=%s seen=%s\n", line, via, seen)
}
