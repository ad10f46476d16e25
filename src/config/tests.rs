use super::*;
use std::net::IpAddr;

const MIN: &str = "[upstream]\nservers = [\"127.0.0.1:5300\"]\n";

#[test]
fn omitted_keys_take_the_spec_defaults() {
    let c = Config::from_toml(MIN).unwrap();
    assert_eq!(c.server.udp_payload, 1232);
    assert_eq!(c.upstream.timeout, Duration::from_secs(2));
    assert_eq!(c.dns64.prefixes[0].to_string(), "64:ff9b::/96");
    assert_eq!(c.dns64.clients, vec!["::/0".parse::<IpNet>().unwrap()]);
    assert_eq!(
        c.dns64.exclude,
        vec!["::ffff:0:0/96".parse::<Ipv6Net>().unwrap()]
    );
    assert_eq!(c.dns64.never_map.len(), 4);
    assert_eq!(c.filter.a, FilterA::Strip);
    assert_eq!(c.filter.negative_ttl, 30);
    assert!(c.dns64.synthesize_on_error);
    assert!(!c.dns64.strict_rfc6052);
    assert!(c.dns64.rotate);
    assert!(c.server.watch_config);
}

#[test]
fn same_answers_ignores_how_dns64d_serves_but_not_what_it_answers() {
    let base = Config::from_toml(MIN).unwrap();
    let with = |extra: &str| Config::from_toml(&format!("{MIN}{extra}")).unwrap();
    for neutral in [
        "[server]\nlisten = [\"127.0.0.1:5353\"]\nmax_inflight = 9\nrate_limit = 5\nwatch_config = false",
        "[log]\nlevel = \"debug\"\nqueries = true",
        "timeout = \"1s\"\nattempts = 3\nsocket_pool = 2",
    ] {
        assert!(base.same_answers(&with(neutral)), "{neutral}");
    }
    for changed in [
        "[dns64]\nprefixes = [\"2001:db8:64::/96\"]",
        "[dns64]\nrotate = false",
        "[filter]\na = \"pass\"",
        "[cache]\nmax_ttl = 60",
        "[server]\nudp_payload = 1400",
    ] {
        assert!(!base.same_answers(&with(changed)), "{changed}");
    }
    let other_server = Config::from_toml("[upstream]\nservers = [\"127.0.0.1:5301\"]\n").unwrap();
    assert!(!base.same_answers(&other_server), "another upstream");
}

#[test]
fn shutdown_grace_and_drain_timeout_are_separate_keys_and_grace_may_be_zero() {
    let c = Config::from_toml(MIN).unwrap();
    assert_eq!(c.server.shutdown_grace, DEFAULT_SHUTDOWN_GRACE);
    assert_eq!(c.server.drain_timeout, DEFAULT_DRAIN_TIMEOUT);
    let c = Config::from_toml(&format!(
        "{MIN}[server]\nshutdown_grace = \"0s\"\ndrain_timeout = \"7s\"\n"
    ))
    .unwrap();
    assert_eq!(c.server.shutdown_grace, Duration::ZERO);
    assert_eq!(c.server.drain_timeout, Duration::from_secs(7));
    assert!(
        c.to_toml().contains("shutdown_grace = \"0s\""),
        "{}",
        c.to_toml()
    );
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let err = Config::from_toml("[dns64]\nprefix = [\"64:ff9b::/96\"]\n").unwrap_err();
    assert!(err.to_string().contains("prefix"), "{err}");
}

#[test]
fn prefix_length_outside_rfc6052_is_an_error_naming_key_and_value() {
    let err =
        Config::from_toml(&format!("{MIN}[dns64]\nprefixes = [\"2001:db8::/44\"]\n")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("dns64.prefixes") && msg.contains("2001:db8::/44"),
        "{msg}"
    );
}

#[test]
fn durations_accept_units_and_plain_seconds() {
    let c = Config::from_toml(
        "[upstream]\nservers=[\"127.0.0.1\"]\ntimeout=\"250ms\"\n[filter]\nnegative_ttl=\"1m\"\n",
    )
    .unwrap();
    assert_eq!(c.upstream.timeout, Duration::from_millis(250));
    assert_eq!(c.filter.negative_ttl, 60);
    assert_eq!(c.upstream.servers[0], "127.0.0.1:53".parse().unwrap());
}

#[test]
fn zero_timeout_is_refused_not_fixed() {
    let err = Config::from_toml("[upstream]\nservers=[\"127.0.0.1\"]\ntimeout=0\n").unwrap_err();
    assert!(err.to_string().contains("upstream.timeout"), "{err}");
}

#[test]
fn workers_default_to_one_per_core_and_refuse_absurd_counts() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let c = Config::from_toml(MIN).unwrap();
    assert_eq!(c.server.workers, cores);
    let c = Config::from_toml(&format!("{MIN}[server]\nworkers = 1\n")).unwrap();
    assert_eq!(c.server.workers, 1);
    let err = Config::from_toml(&format!("{MIN}[server]\nworkers = 100000\n")).unwrap_err();
    assert!(err.to_string().contains("server.workers"), "{err}");
}

#[test]
fn udp_receive_buffer_defaults_to_4_mib_and_zero_means_the_system_default() {
    let c = Config::from_toml(MIN).unwrap();
    assert_eq!(c.server.udp_receive_buffer, 4 << 20);
    let c = Config::from_toml(&format!("{MIN}[server]\nudp_receive_buffer = 0\n")).unwrap();
    assert_eq!(c.server.udp_receive_buffer, 0);
    let err = Config::from_toml(&format!(
        "{MIN}[server]\nudp_receive_buffer = 99999999999\n"
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("server.udp_receive_buffer"),
        "{err}"
    );
}

#[test]
fn udp_payload_below_512_is_an_error() {
    let err = Config::from_toml(&format!("{MIN}[server]\nudp_payload = 100\n")).unwrap_err();
    assert!(err.to_string().contains("server.udp_payload"), "{err}");
}

#[test]
fn embedded_default_config_loads_and_serves_loopback_as_dns64_clients() {
    let raw: RawConfig = toml::from_str(EMBEDDED_DEFAULT).unwrap();
    let c: Config = match raw.try_into() {
        Ok(c) => c,
        // A machine without /etc/resolv.conf nameservers: the embedded file itself is still valid.
        Err(ConfigError::Invalid {
            key: "upstream.servers",
            ..
        }) => return,
        Err(e) => panic!("{e}"),
    };
    assert!(c.server.listen.contains(&"127.0.0.1:5353".parse().unwrap()));
    assert!(c.server.listen.contains(&"[::1]:5353".parse().unwrap()));
    assert!(
        c.dns64
            .clients
            .iter()
            .any(|n| n.contains(&"127.0.0.1".parse::<IpAddr>().unwrap()))
    );
}

#[test]
fn shipped_example_configs_load() {
    for f in ["config/node-local.toml", "config/default.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
        let text = std::fs::read_to_string(&path).unwrap();
        let raw: RawConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        match Config::try_from(raw) {
            Ok(_)
            | Err(ConfigError::Invalid {
                key: "upstream.servers",
                ..
            }) => {}
            Err(e) => panic!("{f}: {e}"),
        }
    }
}

#[test]
fn wkp_with_private_mapped_space_is_detected() {
    let c = Config::from_toml(MIN).unwrap();
    assert!(c.dns64.wkp_maps_private_space());
    let c = Config::from_toml(&format!("{MIN}[dns64]\nmapped=[\"198.51.100.0/24\"]\n")).unwrap();
    assert!(!c.dns64.wkp_maps_private_space());
}

#[test]
fn ipv4_listeners_are_reported_when_dns64_clients_lists_no_ipv4_range() {
    let c = Config::from_toml(&format!(
        "{MIN}[server]\nlisten = [\"[::1]:5353\", \"127.0.0.1:5353\"]\n[dns64]\nclients = [\"::/0\"]\n"
    ))
    .unwrap();
    assert_eq!(
        c.ipv4_listeners_without_dns64(),
        vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]
    );
}

#[test]
fn ipv4_listeners_are_not_reported_when_dns64_clients_lists_an_ipv4_range() {
    let c = Config::from_toml(&format!(
        "{MIN}[server]\nlisten = [\"127.0.0.1:5353\"]\n[dns64]\nclients = [\"::/0\", \"10.0.0.0/8\"]\n"
    ))
    .unwrap();
    assert!(c.ipv4_listeners_without_dns64().is_empty());
}
