//! Chain selection: each criterion in Envoy's order, most specific value first, no
//! backtracking.

use super::*;
use envoy_types::pb::google::protobuf::UInt32Value;

fn m(protocols: &[&str]) -> ChainMatch {
    ChainMatch {
        application_protocols: protocols.iter().map(|p| p.to_string()).collect(),
        ..ChainMatch::default()
    }
}

#[test]
fn application_protocols_select_after_transport_with_empty_as_fallback() {
    let chains = [
        (m(&["http/1.0", "http/1.1"]), "h1"),
        (m(&["h2c"]), "h2"),
        (m(&[]), "tcp"),
    ];
    let key = |p| ChainKey {
        application_protocol: p,
        ..ChainKey::default()
    };
    let picked: Vec<_> = [Some("http/1.0"), Some("http/1.1"), Some("h2c"), None]
        .into_iter()
        .map(|p| select(&chains, &key(p)).copied())
        .collect();
    assert_eq!(picked, [Some("h1"), Some("h1"), Some("h2"), Some("tcp")]);
    assert_eq!(select(&chains[..2], &key(None)), None, "no catch-all chain");
}

#[test]
fn istio_alpn_values_are_accepted_and_match_a_client_hello() {
    let istio = [
        "istio-peer-exchange",
        "istio",
        "istio-http/1.0",
        "istio-http/1.1",
        "istio-h2",
    ];
    let fcm = l::FilterChainMatch {
        application_protocols: istio.iter().map(|p| p.to_string()).collect(),
        transport_protocol: "tls".into(),
        ..l::FilterChainMatch::default()
    };
    let parsed = parse(Some(&fcm)).expect("istio ALPN values are accepted");
    let tls_only = ChainMatch {
        transport: Some("tls".into()),
        ..m(&[])
    };
    let chains = [(parsed, "mtls"), (tls_only, "plain")];
    let key = |alpn: &[&str]| ChainKey {
        tls: true,
        alpn: alpn.iter().map(|p| p.to_string()).collect(),
        ..ChainKey::default()
    };
    assert_eq!(select(&chains, &key(&["istio-http/1.1"])), Some(&"mtls"));
    assert_eq!(select(&chains, &key(&["h2", "http/1.1"])), Some(&"plain"));
}

fn cidr(s: &str) -> Cidr {
    let (addr, len) = s.split_once('/').expect("cidr");
    Cidr::parse(&CidrRange {
        address_prefix: addr.into(),
        prefix_len: Some(UInt32Value {
            value: len.parse().expect("len"),
        }),
    })
    .expect("valid cidr")
}

fn from(src: &str, dst: &str) -> ChainKey {
    let source: SocketAddr = src.parse().expect("source");
    ChainKey {
        port: 80,
        destination: Some(dst.parse().expect("destination")),
        source: Some(source),
        ..ChainKey::default()
    }
}

#[test]
fn cidrs_are_normalized_and_match_their_family_only() {
    let r = cidr("10.1.2.3/8");
    assert_eq!(r.addr, "10.0.0.0".parse::<IpAddr>().expect("ip"));
    assert!(r.contains("10.200.0.1".parse().expect("ip")));
    assert!(!r.contains("11.0.0.1".parse().expect("ip")));
    assert!(!r.contains("::ffff:10.0.0.1".parse().expect("ip")));
    let any4 = cidr("1.2.3.4/0");
    assert!(any4.contains("200.1.1.1".parse().expect("ip")));
    assert!(!any4.contains("::1".parse().expect("ip")));
    let v6 = cidr("2001:db8::1/32");
    assert!(v6.contains("2001:db8:ffff::9".parse().expect("ip")));
    assert!(cidr("::1/128").contains("::1".parse().expect("ip")));
    let unset = Cidr::parse(&CidrRange {
        address_prefix: "192.168.0.1".into(),
        prefix_len: None,
    })
    .expect("unset length");
    assert_eq!(unset.len, 0, "an unset prefix_len is 0, as in Envoy");
}

#[test]
fn bad_ranges_and_ports_are_rejected_by_field() {
    let bad_len = l::FilterChainMatch {
        prefix_ranges: vec![CidrRange {
            address_prefix: "10.0.0.0".into(),
            prefix_len: Some(UInt32Value { value: 33 }),
        }],
        ..Default::default()
    };
    let e = parse(Some(&bad_len)).expect_err("/33");
    assert_eq!(e.field, "prefix_ranges[0].prefix_len");
    let bad_ip = l::FilterChainMatch {
        source_prefix_ranges: vec![CidrRange {
            address_prefix: "example.com".into(),
            prefix_len: None,
        }],
        ..Default::default()
    };
    let e = parse(Some(&bad_ip)).expect_err("not an IP");
    assert_eq!(e.field, "source_prefix_ranges[0].address_prefix");
    let bad_port = l::FilterChainMatch {
        source_ports: vec![8080, 70000],
        ..Default::default()
    };
    let e = parse(Some(&bad_port)).expect_err("port");
    assert_eq!(e.field, "source_ports[1]");
    let bad_type = l::FilterChainMatch {
        source_type: 7,
        ..Default::default()
    };
    assert!(parse(Some(&bad_type)).is_err());
    let suffix = l::FilterChainMatch {
        address_suffix: "1".into(),
        ..Default::default()
    };
    assert!(
        parse(Some(&suffix)).is_err(),
        "address_suffix stays rejected"
    );
}

#[test]
fn destination_ip_longest_prefix_wins_and_does_not_backtrack() {
    let dst = |ranges: &[&str]| ChainMatch {
        destination: ranges.iter().map(|r| cidr(r)).collect(),
        ..ChainMatch::default()
    };
    let chains = [
        (dst(&["127.0.0.0/8"]), "8"),
        (dst(&["10.0.0.0/8", "127.0.0.1/32"]), "32"),
        (dst(&[]), "any"),
        (dst(&["::1/128"]), "v6"),
    ];
    let pick = |d: &str| select(&chains, &from("127.0.0.9:1000", d)).copied();
    assert_eq!(pick("127.0.0.1"), Some("32"));
    assert_eq!(pick("127.0.0.2"), Some("8"));
    assert_eq!(pick("10.1.1.1"), Some("32"));
    assert_eq!(pick("192.168.1.1"), Some("any"));
    assert_eq!(pick("::1"), Some("v6"));
    assert_eq!(pick("::2"), Some("any"));
    // The /32 chain wins the destination step; its transport requirement then fails and
    // Envoy does not fall back to the /8 chain.
    let strict = [
        (
            ChainMatch {
                transport: Some("tls".into()),
                ..dst(&["127.0.0.1/32"])
            },
            "tls",
        ),
        (dst(&["127.0.0.0/8"]), "8"),
    ];
    assert_eq!(select(&strict, &from("127.0.0.9:1", "127.0.0.1")), None);
    let unknown = ChainKey::default();
    assert_eq!(select(&chains, &unknown), Some(&"any"));
}

#[test]
fn destination_ip_is_matched_before_server_names() {
    let chains = [
        (
            ChainMatch {
                server_names: vec!["api.example.com".into()],
                ..ChainMatch::default()
            },
            "sni",
        ),
        (
            ChainMatch {
                destination: vec![cidr("127.0.0.1/32")],
                ..ChainMatch::default()
            },
            "ip",
        ),
    ];
    let key = ChainKey {
        tls: true,
        server_name: Some("api.example.com".into()),
        ..from("127.0.0.2:1", "127.0.0.1")
    };
    assert_eq!(select(&chains, &key), Some(&"ip"));
    let elsewhere = ChainKey {
        destination: Some("127.0.0.5".parse().expect("ip")),
        ..key
    };
    assert_eq!(select(&chains, &elsewhere), Some(&"sni"));
}

fn source_chain(direct: &[&str], ty: SourceType, src: &[&str], ports: &[u16]) -> ChainMatch {
    ChainMatch {
        direct_source: direct.iter().map(|r| cidr(r)).collect(),
        source_type: ty,
        source: src.iter().map(|r| cidr(r)).collect(),
        source_ports: ports.to_vec(),
        ..ChainMatch::default()
    }
}

#[test]
fn source_ip_longest_prefix_then_source_port() {
    use SourceType::Any;
    let chains = [
        (source_chain(&[], Any, &["127.0.0.2/32"], &[]), "src32"),
        (source_chain(&[], Any, &["127.0.0.0/24"], &[]), "src24"),
        (
            source_chain(&[], Any, &["127.0.0.0/24"], &[4000]),
            "src24-port",
        ),
        (source_chain(&[], Any, &[], &[]), "any"),
    ];
    let pick = |src: &str| select(&chains, &from(src, "127.0.0.1")).copied();
    assert_eq!(pick("127.0.0.2:1"), Some("src32"));
    assert_eq!(pick("127.0.0.2:4000"), Some("src32"));
    assert_eq!(pick("127.0.0.9:1"), Some("src24"));
    assert_eq!(pick("127.0.0.9:4000"), Some("src24-port"));
    assert_eq!(pick("127.0.1.9:4000"), Some("any"));
    assert_eq!(pick("[::1]:4000"), Some("any"));
}

#[test]
fn direct_source_then_source_type_then_source() {
    use SourceType::*;
    let chains = [
        (source_chain(&["127.0.0.3/32"], Any, &[], &[]), "direct"),
        (
            source_chain(&["127.0.0.3/32"], External, &[], &[]),
            "direct-ext",
        ),
        (source_chain(&[], SameIpOrLoopback, &[], &[]), "local"),
        (source_chain(&[], Any, &[], &[5000]), "any-port"),
        (source_chain(&[], External, &["127.0.0.0/16"], &[]), "ext16"),
        (source_chain(&["10.0.0.0/8"], External, &[], &[]), "ten-ext"),
        (
            source_chain(&["10.0.0.0/8"], Any, &["10.1.0.0/16"], &[]),
            "ten-any",
        ),
    ];
    let pick = |src: &str, dst: &str| select(&chains, &from(src, dst)).copied();
    // Only 127.0.0.1 and ::1 are loopback to Envoy: 127.0.0.3 is an external peer.
    assert_eq!(pick("127.0.0.3:1", "127.0.0.1"), Some("direct-ext"));
    // Source type comes before source port: the SAME_IP_OR_LOOPBACK chain wins over the ANY
    // chain that lists the connection's port.
    assert_eq!(pick("127.0.0.1:5000", "127.0.0.1"), Some("local"));
    assert_eq!(pick("[::1]:5000", "::1"), Some("local"));
    assert_eq!(pick("127.0.0.4:5000", "127.0.0.1"), Some("ext16"));
    // No backtracking to the ANY chain when the EXTERNAL one fails the source range.
    assert_eq!(pick("127.1.0.4:5000", "127.0.0.1"), None);
    assert_eq!(pick("10.2.0.1:1", "10.9.9.9"), Some("ten-ext"));
    // A peer equal to the destination is local.
    assert_eq!(pick("10.1.0.1:1", "10.1.0.1"), Some("ten-any"));
    assert_eq!(pick("10.2.0.1:1", "10.2.0.1"), None);
    assert_eq!(pick("192.168.0.1:1", "192.168.0.1"), Some("local"));
}

#[test]
fn source_ranges_parse_from_the_proto() {
    let fcm = l::FilterChainMatch {
        prefix_ranges: vec![CidrRange {
            address_prefix: "2001:db8::".into(),
            prefix_len: Some(UInt32Value { value: 64 }),
        }],
        direct_source_prefix_ranges: vec![CidrRange {
            address_prefix: "10.0.0.1".into(),
            prefix_len: Some(UInt32Value { value: 32 }),
        }],
        source_type: l::filter_chain_match::ConnectionSourceType::External as i32,
        source_prefix_ranges: vec![CidrRange {
            address_prefix: "10.0.0.0".into(),
            prefix_len: Some(UInt32Value { value: 16 }),
        }],
        source_ports: vec![443],
        ..Default::default()
    };
    let m = parse(Some(&fcm)).expect("parses");
    assert_eq!(m.destination, [cidr("2001:db8::/64")]);
    assert_eq!(m.direct_source, [cidr("10.0.0.1/32")]);
    assert_eq!(m.source_type, SourceType::External);
    assert_eq!(m.source, [cidr("10.0.0.0/16")]);
    assert_eq!(m.source_ports, [443]);
}

#[test]
fn chains_with_the_same_rules_overlap() {
    let dst = |ranges: &[&str], ports: &[u16]| ChainMatch {
        destination: ranges.iter().map(|r| cidr(r)).collect(),
        source_ports: ports.to_vec(),
        ..ChainMatch::default()
    };
    assert!(dst(&[], &[]).overlaps(&dst(&[], &[])));
    assert!(dst(&["10.0.0.0/8", "10.1.0.0/16"], &[]).overlaps(&dst(&["10.9.9.9/8"], &[])));
    assert!(!dst(&["10.0.0.0/8"], &[]).overlaps(&dst(&["10.0.0.0/16"], &[])));
    assert!(!dst(&["10.0.0.0/8"], &[]).overlaps(&dst(&[], &[])));
    assert!(dst(&[], &[1, 2]).overlaps(&dst(&[], &[2, 3])));
    assert!(!dst(&[], &[1]).overlaps(&dst(&[], &[])));
    let typed = ChainMatch {
        source_type: SourceType::External,
        ..ChainMatch::default()
    };
    assert!(!typed.overlaps(&ChainMatch::default()));
}

#[test]
fn a_listener_with_overlapping_chains_is_rejected() {
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
    let chain = |m: l::FilterChainMatch| l::FilterChain {
        filter_chain_match: Some(m),
        filters: vec![l::Filter {
            name: "tcp".into(),
            config_type: Some(l::filter::ConfigType::TypedConfig(
                envoy_types::util::pack_any(tcp::TcpProxy {
                    stat_prefix: "t".into(),
                    cluster_specifier: Some(tcp::tcp_proxy::ClusterSpecifier::Cluster("c".into())),
                    ..Default::default()
                }),
            )),
        }],
        ..Default::default()
    };
    let range = |a: &str, len: u32| CidrRange {
        address_prefix: a.into(),
        prefix_len: Some(UInt32Value { value: len }),
    };
    let parse_chains = |chains: &[l::FilterChain]| {
        crate::config::capture::parse(None, None, false, None, &[], chains, None)
    };
    let a = chain(l::FilterChainMatch {
        prefix_ranges: vec![range("10.0.0.0", 8), range("192.168.0.0", 16)],
        ..Default::default()
    });
    let masked_same = chain(l::FilterChainMatch {
        prefix_ranges: vec![range("10.9.9.9", 8)],
        ..Default::default()
    });
    let longer = chain(l::FilterChainMatch {
        prefix_ranges: vec![range("10.0.0.0", 16)],
        ..Default::default()
    });
    let e = parse_chains(&[a.clone(), longer.clone(), masked_same]).expect_err("overlap");
    assert_eq!(e.field, "filter_chains[2].filter_chain_match");
    assert!(e.reason.contains("filter_chains[0]"), "{e:?}");
    assert!(parse_chains(&[a, longer]).is_ok());
}
