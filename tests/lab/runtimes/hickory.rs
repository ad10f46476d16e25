//! The lab's Rust client: what a Rust service that resolves with
//! hickory-resolver (the same crate and version dns64d uses) does with one
//! name. `TokioResolver::builder_tokio()` reads `/etc/resolv.conf` itself
//! (nameservers, search, ndots, timeout, attempts, edns0) and looks up AAAA
//! and A in parallel (`LookupIpStrategy::Ipv6AndIpv4`, the 0.26 default),
//! AAAA records first; there is no RFC 6724 sort. The client connects to the
//! first address, as `TcpStream::connect((first, port))` code does.
//!
//! Built once by tests/lab/run.sh as `cargo build --example lab_hickory`.
//! Output, one line, key=value, parsed by run.sh:
//!   rt=hickory count=1 first=64:ff9b::cb00:7150 order=... connect=ok via=64:ff9b::cb00:7150 seen=203.0.113.1
//! Usage: lab_hickory NAME PORT TIMEOUT_MS (0: resolve only) LABEL

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn word(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join("_")
}

async fn fetch(addr: SocketAddr, name: &str, wait: Duration) -> Result<String, &'static str> {
    let mut s = match tokio::time::timeout(wait, TcpStream::connect(addr)).await {
        Err(_) => return Err("timeout"),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Err("refused"),
        Ok(Err(_)) => return Err("error"),
        Ok(Ok(s)) => s,
    };
    let req = format!("GET / HTTP/1.0\r\nHost: {name}\r\n\r\n");
    s.write_all(req.as_bytes()).await.map_err(|_| "error")?;
    let mut body = String::new();
    match tokio::time::timeout(wait, s.read_to_string(&mut body)).await {
        Ok(Ok(_)) => {}
        _ => return Err("error"),
    }
    Ok(body
        .lines()
        .find_map(|l| l.strip_prefix("seen-from "))
        .unwrap_or("-")
        .to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(name), Some(port), Some(ms), Some(label)) = (
        args.get(1),
        args.get(2).and_then(|p| p.parse::<u16>().ok()),
        args.get(3).and_then(|m| m.parse::<u64>().ok()),
        args.get(4),
    ) else {
        eprintln!("usage: lab_hickory NAME PORT TIMEOUT_MS LABEL");
        return ExitCode::from(2);
    };
    let resolver = match TokioResolver::builder_tokio().and_then(|b| b.build()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lab_hickory: cannot read the system resolver config: {e}");
            return ExitCode::from(2);
        }
    };
    let order: Vec<IpAddr> = match resolver.lookup_ip(name.as_str()).await {
        Ok(l) => l.iter().collect(),
        Err(e) => {
            println!(
                "rt={label} count=0 first=- order=- gai=FAIL err={} connect=skip via=- seen=-",
                word(&e.to_string())
            );
            return ExitCode::SUCCESS;
        }
    };
    let Some(&first) = order.first() else {
        println!("rt={label} count=0 first=- order=- gai=FAIL err=empty connect=skip via=- seen=-");
        return ExitCode::SUCCESS;
    };
    let list: Vec<String> = order.iter().map(|a| a.to_string()).collect();
    let line = format!(
        "rt={label} count={} first={first} order={}",
        order.len(),
        list.join(",")
    );
    if ms == 0 {
        println!("{line} connect=skip via=- seen=-");
        return ExitCode::SUCCESS;
    }
    let wait = Duration::from_millis(ms);
    match fetch(SocketAddr::new(first, port), name, wait).await {
        Ok(seen) => println!("{line} connect=ok via={first} seen={seen}"),
        Err(state) => println!("{line} connect={state} via=- seen=-"),
    }
    ExitCode::SUCCESS
}
