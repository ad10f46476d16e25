use super::*;

#[test]
fn counters_render_with_closed_labels() {
    let m = Metrics::default();
    m.request(Proto::Udp, "::1".parse().unwrap(), rtype::AAAA);
    m.request(Proto::Tcp, "127.0.0.1".parse().unwrap(), 999);
    m.response(3, Duration::from_millis(2));
    m.dropped(DropReason::Response);
    let text = m.render();
    assert!(
        text.contains("dns64d_requests_total{proto=\"udp\",family=\"ipv6\",qtype=\"AAAA\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("dns64d_requests_total{proto=\"tcp\",family=\"ipv4\",qtype=\"other\"} 1")
    );
    assert!(text.contains("dns64d_responses_total{rcode=\"NXDOMAIN\"} 1"));
    assert!(text.contains("dns64d_request_duration_seconds_bucket{le=\"0.0025\"} 1"));
    assert!(text.contains("dns64d_request_duration_seconds_bucket{le=\"0.001\"} 0"));
    assert!(text.contains("dns64d_dropped_total{reason=\"response\"} 1"));
    assert_eq!(m.value("dns64d_responses_total{rcode=\"NXDOMAIN\"}"), 1);
}

#[test]
fn upstream_servers_keep_their_slot_across_lookups() {
    let m = Metrics::default();
    let a = m.server(".", "127.0.0.1:53".parse().unwrap());
    a.exchange(UpstreamResult::Timeout, Duration::from_secs(2));
    let again = m.server(".", "127.0.0.1:53".parse().unwrap());
    again.exchange(UpstreamResult::Ok, Duration::from_millis(1));
    let text = m.render();
    assert!(text.contains(
        "dns64d_upstream_requests_total{zone=\".\",server=\"127.0.0.1:53\",result=\"timeout\"} 1"
    ));
    assert!(text.contains(
        "dns64d_upstream_requests_total{zone=\".\",server=\"127.0.0.1:53\",result=\"ok\"} 1"
    ));
    assert!(
        text.contains(
            "dns64d_upstream_duration_seconds_count{zone=\".\",server=\"127.0.0.1:53\"} 2"
        )
    );
}

#[test]
fn one_server_in_two_zones_has_two_slots_labelled_by_zone() {
    let m = Metrics::default();
    let addr = "127.0.0.1:53".parse().unwrap();
    m.server(".", addr)
        .exchange(UpstreamResult::Ok, Duration::from_millis(1));
    m.server("cluster.local.", addr)
        .exchange(UpstreamResult::Timeout, Duration::from_secs(1));
    let text = m.render();
    assert!(text.contains(
        "dns64d_upstream_requests_total{zone=\"cluster.local.\",server=\"127.0.0.1:53\",result=\"timeout\"} 1"
    ), "{text}");
    assert!(text.contains(
        "dns64d_upstream_requests_total{zone=\".\",server=\"127.0.0.1:53\",result=\"timeout\"} 0"
    ), "{text}");
}
