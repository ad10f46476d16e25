//! Config file watch (`server.watch_config`, issue #19 item 5): an edit in
//! place and a Kubernetes ConfigMap's `..data` symlink swap reload by
//! themselves, with SIGHUP's validate-then-swap rule; a broken edit keeps the
//! old config and counts a failed reload; an edit that changes no answer
//! keeps the cache.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use hickory_proto::rr::RecordType;

use crate::support::{Dns64d, Upstream, config_toml, merge_toml, q, under96, wkp, zone};

const RELOADED: &str = "dns64d_config_reloads_total{result=\"ok\"}";
const REFUSED: &str = "dns64d_config_reloads_total{result=\"failed\"}";
const WATCHED: &str = "[server]\nwatch_config = true";
/// The prefix the edits switch to.
const NSP: &str = "[dns64]\nprefixes = [\"2001:db8:64::/96\"]";

/// A directory of the test's own (the watch sees every file in it), removed
/// when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let path = std::env::temp_dir().join(format!("dns64d-watch-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create test directory");
        Dir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The lowest synthesized AAAA of [`zone::A_ONLY`] (the one of 192.0.2.1;
/// cache hits rotate the order).
async fn lowest_aaaa(d: &Dns64d) -> Ipv6Addr {
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    reply.aaaa().into_iter().min().expect("synthesized AAAA")
}

fn under_wkp() -> Ipv6Addr {
    wkp(zone::A_ONLY_ADDRS[0].0)
}

fn under_nsp() -> Ipv6Addr {
    under96([0x2001, 0xdb8, 0x64, 0, 0, 0], zone::A_ONLY_ADDRS[0].0)
}

/// dns64d reloading from `path`, holding `toml` already; answered one query
/// (so the watch is registered: it is before any listener serves).
async fn started(upstream: Upstream, toml: &str, path: &Path) -> Dns64d {
    let d = Dns64d::launch_at(upstream, toml, Some(path.to_path_buf())).await;
    assert_eq!(lowest_aaaa(&d).await, under_wkp());
    d
}

#[tokio::test]
async fn an_edit_in_place_reloads_the_config() {
    let dir = Dir::new("in-place");
    let upstream = Upstream::start().await;
    let toml = config_toml(upstream.addr(), WATCHED);
    let path = dir.join("dns64d.toml");
    std::fs::write(&path, &toml).unwrap();
    let d = started(upstream, &toml, &path).await;
    std::fs::write(&path, merge_toml(&toml, NSP)).unwrap();
    d.settles(RELOADED, 1).await;
    assert_eq!(lowest_aaaa(&d).await, under_nsp());
    assert_eq!(d.counter(REFUSED), 0);
}

#[tokio::test]
async fn a_kubernetes_symlink_swap_of_data_reloads_the_config() {
    // The layout kubelet mounts: config.toml → ..data/config.toml,
    // ..data → a timestamped directory; an update writes a new directory
    // and renames a new ..data symlink over the old one.
    let dir = Dir::new("configmap");
    let upstream = Upstream::start().await;
    let toml = config_toml(upstream.addr(), WATCHED);
    std::fs::create_dir(dir.join("..2026_12_06_10_00_00.1")).unwrap();
    std::fs::write(dir.join("..2026_12_06_10_00_00.1/config.toml"), &toml).unwrap();
    std::os::unix::fs::symlink("..2026_12_06_10_00_00.1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/config.toml", dir.join("config.toml")).unwrap();
    let d = started(upstream, &toml, &dir.join("config.toml")).await;

    std::fs::create_dir(dir.join("..2026_12_06_10_05_00.2")).unwrap();
    let edited = merge_toml(&toml, NSP);
    std::fs::write(dir.join("..2026_12_06_10_05_00.2/config.toml"), edited).unwrap();
    std::os::unix::fs::symlink("..2026_12_06_10_05_00.2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join("..2026_12_06_10_00_00.1")).unwrap();

    d.settles(RELOADED, 1).await;
    assert_eq!(lowest_aaaa(&d).await, under_nsp());
    assert_eq!(d.counter(REFUSED), 0);
}

#[tokio::test]
async fn a_broken_edit_keeps_the_old_config_and_counts_a_failed_reload() {
    let dir = Dir::new("broken");
    let upstream = Upstream::start().await;
    let toml = config_toml(upstream.addr(), WATCHED);
    let path = dir.join("dns64d.toml");
    std::fs::write(&path, &toml).unwrap();
    let d = started(upstream, &toml, &path).await;
    std::fs::write(&path, format!("{toml}\n[filter]\na = \"drop\"\n")).unwrap();
    d.settles(REFUSED, 1).await;
    assert_eq!(lowest_aaaa(&d).await, under_wkp(), "the old config serves");
    assert_eq!(d.counter(RELOADED), 0);
}

#[tokio::test]
async fn an_edit_that_changes_no_answer_keeps_the_cache() {
    let dir = Dir::new("neutral");
    let upstream = Upstream::start().await;
    let toml = config_toml(upstream.addr(), WATCHED);
    let path = dir.join("dns64d.toml");
    std::fs::write(&path, &toml).unwrap();
    let d = started(upstream, &toml, &path).await;
    let neutral = "[server]\nmax_inflight = 100\nrate_limit = 10000\n\
                   [upstream]\ntimeout = \"400ms\"\n[log]\nqueries = true";
    std::fs::write(&path, merge_toml(&toml, neutral)).unwrap();
    d.settles(RELOADED, 1).await;
    lowest_aaaa(&d).await;
    assert_eq!(
        d.upstream.asked(zone::A_ONLY, RecordType::AAAA).len(),
        1,
        "answered from the cache kept across the reload"
    );
    assert_eq!(d.counter("dns64d_cache_hits_total"), 1);
}
