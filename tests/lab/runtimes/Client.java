// The lab's Java client (java.base only): what a Java service does with one
// name. InetAddress.getAllByName is glibc's getaddrinfo underneath, but the
// JDK re-orders the result: with java.net.preferIPv6Addresses=false (the
// default) every IPv4 address comes before every IPv6 one; "true" puts IPv6
// first, "system" keeps glibc's order. java.net.preferIPv4Stack=true makes
// the JDK ask for, and connect to, IPv4 only. new Socket(NAME, PORT) connects
// to the first address of that list only (InetAddress.getByName).
//
// run.sh compiles this once with the JDK's in-process compiler and caches
// the class (`java Client.java` would compile it again on every run).
//
// Output, one line, key=value, parsed by run.sh:
//   rt=java count=1 first=64:ff9b::cb00:7150 order=... connect=ok via=64:ff9b::cb00:7150 seen=203.0.113.1
// Usage: java Client NAME PORT TIMEOUT_MS (0: resolve only) LABEL
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.ConnectException;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

public class Client {
    /** RFC 5952 text (the JDK prints IPv6 without "::" compression). */
    static String text(InetAddress a) {
        if (!(a instanceof Inet6Address)) return a.getHostAddress();
        byte[] b = a.getAddress();
        int[] w = new int[8];
        for (int i = 0; i < 8; i++) w[i] = ((b[2 * i] & 0xff) << 8) | (b[2 * i + 1] & 0xff);
        int bestAt = -1, bestLen = 1;
        for (int i = 0; i < 8; ) {
            int j = i;
            while (j < 8 && w[j] == 0) j++;
            if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
            i = j == i ? i + 1 : j;
        }
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < 8; i++) {
            if (i == bestAt) { s.append(i == 0 ? "::" : ":"); i += bestLen - 1; continue; }
            s.append(Integer.toHexString(w[i]));
            if (i < 7) s.append(':');
        }
        return s.toString();
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 4) {
            System.err.println("usage: java Client NAME PORT TIMEOUT_MS LABEL");
            System.exit(2);
        }
        String name = args[0], label = args[3];
        int port = Integer.parseInt(args[1]), ms = Integer.parseInt(args[2]);
        InetAddress[] addrs;
        try {
            addrs = InetAddress.getAllByName(name);
        } catch (UnknownHostException e) {
            System.out.println("rt=" + label + " count=0 first=- order=- gai=FAIL err=UnknownHostException connect=skip via=- seen=-");
            return;
        }
        List<String> order = new ArrayList<>();
        for (InetAddress a : addrs) order.add(text(a));
        String line = "rt=" + label + " count=" + addrs.length + " first=" + order.get(0) + " order=" + String.join(",", order);
        if (ms == 0) {
            System.out.println(line + " connect=skip via=- seen=-");
            return;
        }
        // new Socket(name, port) would connect to getByName(name), the first
        // of the list above; an unconnected Socket lets the lab bound the wait.
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(addrs[0], port), ms);
            s.setSoTimeout(ms);
            OutputStream out = s.getOutputStream();
            out.write(("GET / HTTP/1.0\r\nHost: " + name + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.flush();
            String seen = "-";
            BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII));
            for (String l; (l = in.readLine()) != null; ) {
                if (l.startsWith("seen-from ")) seen = l.substring(10);
            }
            System.out.println(line + " connect=ok via=" + text(s.getInetAddress()) + " seen=" + seen);
        } catch (SocketTimeoutException e) {
            System.out.println(line + " connect=timeout via=- seen=-");
        } catch (ConnectException e) {
            System.out.println(line + " connect=" + (e.getMessage() != null && e.getMessage().contains("refused") ? "refused" : "error") + " via=- seen=-");
        }
    }
}
