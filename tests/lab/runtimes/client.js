// The lab's Node.js client (built-in modules only): what a Node service does
// with one name, in one of two modes.
//
//   lookup: dns.lookup(NAME, {all: true}) is glibc's getaddrinfo, in the
//           order glibc sorted (Node 17+ keeps it: "verbatim"); then
//           net.connect({host: NAME}) as Node code normally connects, which
//           in Node 20 races the families (autoSelectFamily, happy eyeballs,
//           250 ms per attempt) over those same addresses.
//   cares:  dns.promises.Resolver (c-ares: its own reading of resolv.conf,
//           its own UDP/TCP code), resolve6 and resolve4 in parallel; the
//           application orders the records (here AAAA, then A: c-ares does
//           no RFC 6724 sort) and connects to the first.
//
// Output, one line, key=value, parsed by run.sh:
//   rt=node count=1 first=64:ff9b::cb00:7150 order=... connect=ok via=64:ff9b::cb00:7150 seen=203.0.113.1
// Usage: node client.js NAME PORT TIMEOUT_MS (0: resolve only) lookup|cares LABEL
'use strict';
const dns = require('dns');
const net = require('net');

const [name, port, msText, mode, label] = process.argv.slice(2);
const ms = Number(msText);
if (!label || !['lookup', 'cares'].includes(mode) || Number.isNaN(ms)) {
  console.error('usage: node client.js NAME PORT TIMEOUT_MS lookup|cares LABEL');
  process.exit(2);
}

function print(order, rest) {
  const head = `rt=${label} count=${order.length} first=${order[0] || '-'} order=${order.join(',') || '-'}`;
  console.log(`${head} ${rest}`);
}

function connect(order, target) {
  if (ms === 0) return print(order, 'connect=skip via=- seen=-');
  let done = false;
  let body = '';
  const sock = net.connect({ host: target, port: Number(port) });
  const timer = setTimeout(() => finish('timeout'), ms);
  function finish(state) {
    if (done) return;
    done = true;
    clearTimeout(timer);
    const via = sock.remoteAddress || '-';
    const m = /seen-from (\S+)/.exec(body);
    print(order, `connect=${state} via=${state === 'ok' ? via : '-'} seen=${m ? m[1] : '-'}`);
    sock.destroy();
  }
  sock.on('connect', () => sock.write(`GET / HTTP/1.0\r\nHost: ${name}\r\n\r\n`));
  sock.on('data', (d) => { body += d; });
  sock.on('end', () => finish('ok'));
  sock.on('error', (e) => finish(e.code === 'ECONNREFUSED' ? 'refused' : e.code === 'ETIMEDOUT' ? 'timeout' : 'error'));
}

function fail(err) {
  const code = (err && err.code) || 'no-addresses';
  console.log(`rt=${label} count=0 first=- order=- gai=FAIL err=${code} connect=skip via=- seen=-`);
}

if (mode === 'lookup') {
  dns.lookup(name, { all: true }, (err, addrs) => {
    if (err || addrs.length === 0) return fail(err);
    connect(addrs.map((a) => a.address), name);
  });
} else {
  const r = new dns.promises.Resolver();
  Promise.allSettled([r.resolve6(name), r.resolve4(name)]).then(([six, four]) => {
    const order = [...(six.value || []), ...(four.value || [])];
    if (order.length === 0) return fail(six.reason || four.reason);
    connect(order, order[0]);
  });
}
