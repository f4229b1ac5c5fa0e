//! Table-driven tests of the semantic rules: for each rule, a valid and an invalid object, run
//! through the same pipeline `plexus validate` uses. An invalid case names a substring of the
//! expected message and the line it must point at. Where Istio's CRD schema or CEL rules
//! already reject a case, that step runs first and its (kube-apiserver) wording is expected.

use plexus_api::{Level, Options, load_str, validate_object};

/// One case: name, kind header (`apiVersion Kind`), the spec as YAML (indented by two), and
/// either `None` (valid) or `Some((line, substring))`.
type Case<'a> = (&'a str, &'a str, &'a str, Option<(usize, &'a str)>);

fn errors(api_kind: &str, spec: &str) -> Vec<(usize, String)> {
    let (api, kind) = api_kind.split_once(' ').expect("`apiVersion Kind`");
    let doc = format!(
        "apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: t\n  namespace: ns\nspec:\n{spec}"
    );
    let loaded = load_str(&doc, "t.yaml");
    assert!(
        loaded.diagnostics.is_empty(),
        "{doc}\n{:?}",
        loaded.diagnostics
    );
    validate_object(&loaded.objects[0], Options::default())
        .into_iter()
        .filter(|d| d.level == Level::Error)
        .map(|d| (d.pos.line, d.message))
        .collect()
}

fn run(cases: &[Case<'_>]) {
    let mut failures = Vec::new();
    for (name, api_kind, spec, expect) in cases {
        let got = errors(api_kind, spec);
        match expect {
            None if !got.is_empty() => {
                failures.push(format!("{name}: expected valid, got {got:?}"))
            }
            None => {}
            Some((line, text)) if !got.iter().any(|(l, m)| l == line && m.contains(text)) => {
                failures.push(format!(
                    "{name}: expected line {line} {text:?}, got {got:?}"
                ));
            }
            Some(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const VS: &str = "networking.istio.io/v1 VirtualService";
const DR: &str = "networking.istio.io/v1 DestinationRule";
const GW: &str = "networking.istio.io/v1 Gateway";
const SE: &str = "networking.istio.io/v1 ServiceEntry";
const SC: &str = "networking.istio.io/v1 Sidecar";
const WE: &str = "networking.istio.io/v1 WorkloadEntry";
const WG: &str = "networking.istio.io/v1 WorkloadGroup";
const EF: &str = "networking.istio.io/v1alpha3 EnvoyFilter";
const PA: &str = "security.istio.io/v1 PeerAuthentication";
const RA: &str = "security.istio.io/v1 RequestAuthentication";
const AP: &str = "security.istio.io/v1 AuthorizationPolicy";
const TM: &str = "telemetry.istio.io/v1 Telemetry";
const WL: &str = "plexus.dev/v1alpha1 Workload";

// Spec text starts on line 7 of the document.

#[test]
fn virtual_service_rules() {
    let route = "  http:\n  - route:\n    - destination: {host: r}\n";
    run(&[
        (
            "plain route",
            VS,
            "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n",
            None,
        ),
        (
            "typo is an unknown field",
            VS,
            "  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n      weigth: 5\n",
            Some((11, "unknown field \"spec.http[0].route[0].weigth\"")),
        ),
        (
            "star with mesh",
            VS,
            "  hosts: ['*']\n  http:\n  - route:\n    - destination: {host: r}\n",
            Some((7, "wildcard host \"*\" is not allowed")),
        ),
        (
            "star with a gateway only",
            VS,
            "  hosts: ['*']\n  gateways: [ns/gw]\n  http:\n  - route:\n    - destination: {host: r}\n",
            None,
        ),
        (
            "bad wildcard",
            VS,
            "  hosts: ['foo.*.com']\n  http:\n  - route:\n    - destination: {host: r}\n",
            Some((7, "invalid (label \"*\"")),
        ),
        (
            "duplicate host",
            VS,
            "  hosts: [a, a]\n  http:\n  - route:\n    - destination: {host: r}\n",
            Some((7, "duplicate host \"a\"")),
        ),
        (
            "bad gateway ref",
            VS,
            "  hosts: [a]\n  gateways: [Bad_NS/gw]\n  http:\n  - route:\n    - destination: {host: r}\n",
            Some((8, "invalid gateway reference")),
        ),
        (
            "no routes",
            VS,
            "  hosts: [a]\n",
            Some((6, "http, tcp or tls must be provided")),
        ),
        (
            "negative weight",
            VS,
            "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: r}\n      weight: -1\n    - destination: {host: s}\n      weight: 50\n",
            Some((11, "weight -1 must not be negative")),
        ),
        (
            "all weights zero",
            VS,
            "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: r}\n      weight: 0\n    - destination: {host: s}\n      weight: 0\n",
            Some((9, "spec.http[0].route: total weight must be greater than 0")),
        ),
        (
            "single zero weight",
            VS,
            "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: r}\n      weight: 0\n",
            None,
        ),
        (
            "route and redirect",
            VS,
            "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: r}\n    redirect: {uri: /x}\n",
            Some((9, "found route and redirect")),
        ),
        (
            "rewrite with redirect",
            VS,
            "  hosts: [a]\n  http:\n  - redirect: {uri: /x}\n    rewrite: {uri: /y}\n",
            Some((10, "rewrite cannot be combined with redirect")),
        ),
        (
            "no action",
            VS,
            "  hosts: [a]\n  http:\n  - name: x\n",
            Some((
                9,
                "one of route, redirect, directResponse or delegate is required",
            )),
        ),
        (
            "timeout below 1ms",
            VS,
            &format!("  hosts: [a]\n{route}    timeout: 0.1ms\n"),
            Some((11, "must be a valid duration greater than 1ms")),
        ),
        (
            "bad duration",
            VS,
            &format!("  hosts: [a]\n{route}    timeout: 5 seconds\n"),
            Some((11, "must be a valid duration greater than 1ms")),
        ),
        (
            "bad regex",
            VS,
            "  hosts: [a]\n  http:\n  - match:\n    - uri: {regex: '(['}\n    route:\n    - destination: {host: r}\n",
            Some((10, "invalid regex")),
        ),
        (
            "empty prefix",
            VS,
            "  hosts: [a]\n  http:\n  - match:\n    - uri: {prefix: ''}\n    route:\n    - destination: {host: r}\n",
            Some((10, "prefix match must not be empty")),
        ),
        (
            "uppercase header match",
            VS,
            "  hosts: [a]\n  http:\n  - match:\n    - headers: {X-User: {exact: a}}\n    route:\n    - destination: {host: r}\n",
            Some((10, "must be lowercase")),
        ),
        (
            "jwt claim header",
            VS,
            "  hosts: [a]\n  gateways: [gw]\n  http:\n  - match:\n    - headers: {'@request.auth.claims.groups': {exact: a}}\n    route:\n    - destination: {host: r}\n",
            None,
        ),
        (
            "bad retryOn",
            VS,
            &format!("  hosts: [a]\n{route}    retries: {{attempts: 3, retryOn: '5xx,bogus'}}\n"),
            Some((11, "\"bogus\" is not a valid retryOn policy")),
        ),
        (
            "retry status code",
            VS,
            &format!(
                "  hosts: [a]\n{route}    retries: {{attempts: 3, retryOn: '5xx,503', perTryTimeout: 2s}}\n"
            ),
            None,
        ),
        (
            "retry attempts zero with settings",
            VS,
            &format!("  hosts: [a]\n{route}    retries: {{attempts: 0, perTryTimeout: 2s}}\n"),
            Some((11, "attempts 0 disables retries")),
        ),
        (
            "fault percentage",
            VS,
            &format!(
                "  hosts: [a]\n{route}    fault:\n      abort: {{httpStatus: 500, percentage: {{value: 101}}}}\n"
            ),
            Some((12, "percentage 101 must be in the range 0..100")),
        ),
        (
            "fault without abort or delay",
            VS,
            &format!("  hosts: [a]\n{route}    fault: {{}}\n"),
            Some((11, "fault must have an abort and/or a delay")),
        ),
        (
            "grpc status name",
            VS,
            &format!(
                "  hosts: [a]\n{route}    fault:\n      abort: {{grpcStatus: UNAVAILABLE, percentage: {{value: 10}}}}\n"
            ),
            None,
        ),
        (
            "mirror and mirrors",
            VS,
            &format!(
                "  hosts: [a]\n{route}    mirror: {{host: m}}\n    mirrors:\n    - destination: {{host: n}}\n"
            ),
            Some((12, "only one of mirror or mirrors")),
        ),
        (
            "redirect code",
            VS,
            "  hosts: [a]\n  http:\n  - redirect: {uri: /x, redirectCode: 200}\n",
            Some((9, "200 is not a valid redirect code")),
        ),
        (
            "cors method",
            VS,
            &format!(
                "  hosts: [a]\n{route}    corsPolicy:\n      allowMethods: [GET, FETCH]\n      allowOrigins: [{{exact: 'https://a'}}]\n"
            ),
            Some((12, "\"FETCH\" is not a valid HTTP method")),
        ),
        (
            "delegate root",
            VS,
            "  hosts: [a]\n  http:\n  - delegate: {name: child, namespace: ns2}\n",
            None,
        ),
        (
            "delegate VS with gateways",
            VS,
            "  gateways: [gw]\n  http:\n  - route:\n    - destination: {host: r}\n",
            Some((
                7,
                "delegate VirtualService (no hosts) must not set gateways",
            )),
        ),
        (
            "delegate VS with tcp",
            VS,
            "  tcp:\n  - route:\n    - destination: {host: r}\n",
            Some((6, "must not have tcp or tls routes")),
        ),
        (
            "match port",
            VS,
            "  hosts: [a]\n  http:\n  - match:\n    - port: 70000\n    route:\n    - destination: {host: r}\n",
            Some((10, "port number 70000")),
        ),
        (
            "tcp subnet",
            VS,
            "  hosts: [a]\n  tcp:\n  - match:\n    - destinationSubnets: [10.0.0.0/33]\n    route:\n    - destination: {host: r}\n",
            Some((10, "not a valid IP address or CIDR")),
        ),
        (
            "sni outside hosts",
            VS,
            "  hosts: [a.example.com]\n  gateways: [gw]\n  tls:\n  - match:\n    - sniHosts: [b.example.com]\n    route:\n    - destination: {host: r}\n",
            Some((11, "is not a match for any host")),
        ),
        (
            "sni within wildcard host",
            VS,
            "  hosts: ['*.example.com']\n  gateways: [gw]\n  tls:\n  - match:\n    - sniHosts: [b.example.com]\n    route:\n    - destination: {host: r}\n",
            None,
        ),
        (
            "authority twice",
            VS,
            &format!(
                "  hosts: [a]\n{route}    rewrite: {{authority: x}}\n    headers:\n      request:\n        set: {{':authority': y}}\n"
            ),
            Some((13, "authority is set twice")),
        ),
    ]);
}

#[test]
fn destination_rule_rules() {
    run(&[
        (
            "full",
            DR,
            "  host: reviews\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n    connectionPool: {tcp: {maxConnections: 10, connectTimeout: 30ms}}\n  subsets:\n  - name: v1\n    labels: {version: v1}\n",
            None,
        ),
        (
            "duplicate subset",
            DR,
            "  host: r\n  subsets:\n  - name: v1\n  - name: v1\n",
            Some((10, "duplicate subset name \"v1\"")),
        ),
        (
            "bad subset name",
            DR,
            "  host: r\n  subsets:\n  - name: V_1\n",
            Some((9, "not a valid DNS label")),
        ),
        (
            "bad subset label",
            DR,
            "  host: r\n  subsets:\n  - name: v1\n    labels: {'-x': y}\n",
            Some((10, "invalid label key")),
        ),
        (
            "consistent hash without key",
            DR,
            "  host: r\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {minimumRingSize: 10}\n",
            Some((10, "consistentHash must set one of")),
        ),
        (
            "maglev prime",
            DR,
            "  host: r\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {useSourceIp: true, maglev: {tableSize: 1000}}\n",
            Some((10, "must be a prime number")),
        ),
        (
            "locality weights",
            DR,
            "  host: r\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        distribute:\n        - from: us-west/zone1/*\n          to: {'us-west/zone1/*': 80, 'us-west/zone2/*': 10}\n",
            Some((13, "total weight 90 must be 100")),
        ),
        (
            "locality distribute and failover",
            DR,
            "  host: r\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        distribute:\n        - from: a/b\n          to: {a/b: 100}\n        failover:\n        - {from: a, to: b}\n",
            Some((10, "only one of distribute or failover")),
        ),
        (
            "failover same region",
            DR,
            "  host: r\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        failover:\n        - {from: a, to: a}\n",
            Some((12, "must be different regions")),
        ),
        (
            "outlier percent",
            DR,
            "  host: r\n  trafficPolicy:\n    outlierDetection: {maxEjectionPercent: 150, interval: 1s}\n",
            Some((9, "150 must be in the range 0..100")),
        ),
        (
            "istio mutual with certs",
            DR,
            "  host: r\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL, clientCertificate: /a}\n",
            Some((9, "ISTIO_MUTUAL uses the mesh certificates")),
        ),
        (
            "mutual without key",
            DR,
            "  host: r\n  trafficPolicy:\n    tls: {mode: MUTUAL, clientCertificate: /a}\n",
            Some((9, "MUTUAL TLS requires privateKey")),
        ),
        (
            "mutual with credential",
            DR,
            "  host: r\n  trafficPolicy:\n    tls: {mode: MUTUAL, credentialName: c}\n",
            None,
        ),
        (
            "empty port level",
            DR,
            "  host: r\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 80}\n",
            Some((10, "must set at least one of")),
        ),
        (
            "use client protocol with upgrade",
            DR,
            "  host: r\n  trafficPolicy:\n    connectionPool:\n      http: {useClientProtocol: true, h2UpgradePolicy: UPGRADE}\n",
            Some((10, "useClientProtocol cannot be combined")),
        ),
        (
            "tunnel port",
            DR,
            "  host: r\n  trafficPolicy:\n    tunnel: {targetHost: proxy.example.com, targetPort: 0}\n",
            Some((9, "port number 0")),
        ),
        (
            "selector export",
            DR,
            "  host: r\n  workloadSelector: {matchLabels: {app: a}}\n  exportTo: ['*']\n",
            Some((9, "may only be exported to its own namespace")),
        ),
    ]);
}

#[test]
fn gateway_rules() {
    let https = "  servers:\n  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [ns1/a.example.com]\n";
    run(&[
        (
            "https with credential",
            GW,
            &format!("{https}    tls: {{mode: SIMPLE, credentialName: c}}\n"),
            None,
        ),
        (
            "https without tls",
            GW,
            https,
            Some((8, "server TLS settings are required for protocol HTTPS")),
        ),
        (
            "simple without certificate",
            GW,
            &format!("{https}    tls: {{mode: SIMPLE}}\n"),
            Some((10, "requires serverCertificate")),
        ),
        (
            "http redirect",
            GW,
            "  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n    tls: {httpsRedirect: true}\n",
            None,
        ),
        (
            "duplicate port names",
            GW,
            "  servers:\n  - port: {number: 80, name: p, protocol: HTTP}\n    hosts: ['*']\n  - port: {number: 81, name: p, protocol: HTTP}\n    hosts: ['*']\n",
            Some((10, "port names must be unique")),
        ),
        (
            "unknown protocol",
            GW,
            "  servers:\n  - port: {number: 80, name: p, protocol: SPDY}\n    hosts: ['*']\n",
            Some((8, "unrecognized protocol \"SPDY\"")),
        ),
        (
            "bad host namespace",
            GW,
            "  servers:\n  - port: {number: 80, name: p, protocol: HTTP}\n    hosts: ['Bad_Ns/a.com']\n",
            Some((9, "invalid namespace")),
        ),
        (
            "no servers",
            GW,
            "  selector: {istio: ingressgateway}\n",
            Some((6, "at least one server")),
        ),
        (
            "istio mutual with key",
            GW,
            "  servers:\n  - port: {number: 443, name: p, protocol: TLS}\n    hosts: ['*']\n    tls: {mode: ISTIO_MUTUAL, privateKey: /k}\n",
            Some((10, "ISTIO_MUTUAL uses the mesh certificates")),
        ),
    ]);
}

#[test]
fn service_entry_and_workload_entry_rules() {
    let port = "  ports: [{number: 80, name: http, protocol: HTTP}]\n";
    run(&[
        (
            "dns",
            SE,
            &format!("  hosts: [api.example.com]\n{port}  resolution: DNS\n"),
            None,
        ),
        (
            "star host",
            SE,
            &format!("  hosts: ['*']\n{port}"),
            Some((7, "hostname cannot be wildcard")),
        ),
        (
            "wildcard with dns",
            SE,
            &format!("  hosts: ['*.example.com']\n{port}  resolution: DNS\n"),
            Some((7, "cannot be resolved with DNS")),
        ),
        (
            "cidr with dns",
            SE,
            &format!("  hosts: [a.com]\n  addresses: [10.0.0.0/8]\n{port}  resolution: DNS\n"),
            Some((
                6,
                "CIDR addresses are allowed only for NONE/STATIC resolution types",
            )),
        ),
        (
            "endpoints with none",
            SE,
            &format!(
                "  hosts: [a.com]\n{port}  resolution: NONE\n  endpoints: [{{address: 1.2.3.4}}]\n"
            ),
            Some((6, "NONE mode cannot set endpoints")),
        ),
        (
            "endpoint port name",
            SE,
            &format!(
                "  hosts: [a.com]\n{port}  resolution: STATIC\n  endpoints: [{{address: 1.2.3.4, ports: {{grpc: 90}}}}]\n"
            ),
            Some((10, "endpoint port \"grpc\" is not a port name")),
        ),
        (
            "port name not a DNS label",
            SE,
            "  hosts: [a.com]\n  ports: [{number: 80, name: HTTP}]\n",
            Some((8, "port name \"HTTP\" must be a DNS label")),
        ),
        (
            "duplicate port",
            SE,
            "  hosts: [a.com]\n  ports: [{number: 80, name: a}, {number: 80, name: b}]\n",
            Some((8, "port number cannot be duplicated")),
        ),
        (
            "round robin endpoints",
            SE,
            &format!(
                "  hosts: [a.com]\n{port}  resolution: DNS_ROUND_ROBIN\n  endpoints: [{{address: a.com}}, {{address: b.com}}]\n"
            ),
            Some((6, "DNS_ROUND_ROBIN mode cannot have multiple endpoints")),
        ),
        (
            "workload entry",
            WE,
            "  address: 10.0.0.1\n  ports: {http: 8080}\n  labels: {app: a}\n",
            None,
        ),
        (
            "workload entry no address",
            WE,
            "  labels: {app: a}\n",
            Some((6, "Address is required")),
        ),
        (
            "workload entry unix with ports",
            WE,
            "  address: unix:///var/run/a.sock\n  ports: {http: 80}\n",
            Some((6, "UDS may not include ports")),
        ),
        (
            "workload group probe",
            WG,
            "  template: {serviceAccount: sa}\n  probe:\n    httpGet: {port: 8080}\n    tcpSocket: {port: 8080}\n",
            Some((
                8,
                "\"spec.probe\" must validate one and only one schema (oneOf). Found 2 valid alternatives",
            )),
        ),
    ]);
}

#[test]
fn sidecar_rules() {
    run(&[
        (
            "egress",
            SC,
            "  egress:\n  - port: {number: 80, protocol: HTTP, name: http}\n    hosts: [./*]\n  - hosts: ['istio-system/*']\n",
            None,
        ),
        (
            "portless not last",
            SC,
            "  egress:\n  - hosts: [./*]\n  - port: {number: 80, protocol: HTTP, name: http}\n    hosts: [./*]\n",
            Some((8, "must be the last one")),
        ),
        (
            "two portless",
            SC,
            "  egress:\n  - hosts: [./*]\n  - hosts: ['*/*']\n",
            Some((9, "only one egress listener may omit the port")),
        ),
        (
            "host without namespace",
            SC,
            "  egress:\n  - hosts: [reviews]\n",
            Some((8, "must be of the form namespace/dnsName")),
        ),
        (
            "ingress default endpoint",
            SC,
            "  ingress:\n  - port: {number: 9080, protocol: HTTP, name: http}\n    defaultEndpoint: 127.0.0.1:8080\n",
            None,
        ),
        (
            "bad default endpoint",
            SC,
            "  ingress:\n  - port: {number: 9080, protocol: HTTP, name: http}\n    defaultEndpoint: 10.1.1.1:8080\n",
            Some((9, "defaultEndpoint \"10.1.1.1:8080\"")),
        ),
        (
            "ingress tls credential",
            SC,
            "  ingress:\n  - port: {number: 9080, protocol: HTTPS, name: https}\n    tls: {mode: SIMPLE, credentialName: c}\n",
            Some((9, "credentialName is not supported on Sidecar ingress")),
        ),
        (
            "empty",
            SC,
            "  workloadSelector: {labels: {app: a}}\n",
            Some((6, "empty Sidecar configuration")),
        ),
        (
            "egress proxy needs allow any",
            SC,
            "  outboundTrafficPolicy:\n    mode: REGISTRY_ONLY\n    egressProxy: {host: proxy, port: {number: 80}}\n",
            Some((9, "egressProxy requires mode ALLOW_ANY")),
        ),
    ]);
}

#[test]
fn security_rules() {
    run(&[
        (
            "peer port level",
            PA,
            "  selector: {matchLabels: {app: a}}\n  mtls: {mode: STRICT}\n  portLevelMtls: {8080: {mode: DISABLE}}\n",
            None,
        ),
        (
            "port level without selector",
            PA,
            "  portLevelMtls: {8080: {mode: DISABLE}}\n",
            Some((6, "portLevelMtls requires selector")),
        ),
        (
            "wildcard selector",
            PA,
            "  selector: {matchLabels: {app: '*'}}\n",
            Some((7, "wildcard not allowed in label value match")),
        ),
        (
            "jwt rule",
            RA,
            "  jwtRules:\n  - issuer: https://issuer\n    jwksUri: https://issuer/jwks\n",
            None,
        ),
        (
            "jwt no issuer",
            RA,
            "  jwtRules:\n  - jwksUri: https://issuer/jwks\n",
            Some((8, "issuer is required")),
        ),
        (
            "jwks uri scheme",
            RA,
            "  jwtRules:\n  - issuer: i\n    jwksUri: ftp://issuer/jwks\n",
            Some((9, "url must have scheme http:// or https://")),
        ),
        (
            "jwks json",
            RA,
            "  jwtRules:\n  - issuer: i\n    jwks: '{\"keys\": ['\n",
            Some((9, "jwks is not valid JSON")),
        ),
        (
            "jwks snake",
            RA,
            "  jwtRules:\n  - issuer: i\n    jwks_uri: https://i/k\n",
            None,
        ),
        (
            "allow rule",
            AP,
            "  action: ALLOW\n  rules:\n  - from:\n    - source: {principals: [cluster.local/ns/a/sa/b], ipBlocks: [10.0.0.0/8]}\n    to:\n    - operation: {methods: [GET], paths: ['/api/{*}'], ports: ['8080']}\n    when:\n    - key: request.auth.claims[iss]\n      values: [https://issuer]\n",
            None,
        ),
        (
            "custom without provider",
            AP,
            "  action: CUSTOM\n  rules: [{}]\n",
            Some((6, "action CUSTOM requires provider.name")),
        ),
        (
            "provider without custom",
            AP,
            "  action: DENY\n  provider: {name: p}\n  rules: [{}]\n",
            Some((8, "provider can only be used with action CUSTOM")),
        ),
        (
            "bad cidr",
            AP,
            "  rules:\n  - from:\n    - source: {ipBlocks: [10.0.0.0/40]}\n",
            Some((9, "not a valid IP address or CIDR")),
        ),
        (
            "unknown when key",
            AP,
            "  rules:\n  - when:\n    - key: request.colour\n      values: [red]\n",
            Some((9, "unknown attribute \"request.colour\"")),
        ),
        (
            "when without values",
            AP,
            "  rules:\n  - when:\n    - key: source.namespace\n",
            Some((9, "at least one of values or notValues")),
        ),
        (
            "empty source",
            AP,
            "  rules:\n  - from:\n    - source: {}\n",
            Some((9, "source must set at least one field")),
        ),
        (
            "bad port",
            AP,
            "  rules:\n  - to:\n    - operation: {ports: [http]}\n",
            Some((9, "invalid port \"http\"")),
        ),
        (
            "bad path template",
            AP,
            "  rules:\n  - to:\n    - operation: {paths: ['/a{*}b']}\n",
            Some((9, "invalid path template")),
        ),
        (
            "selector and targetRefs",
            AP,
            "  selector: {matchLabels: {app: a}}\n  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: g}]\n",
            Some((6, "only one of targetRefs or selector can be set")),
        ),
    ]);
}

#[test]
fn extension_and_telemetry_rules() {
    run(&[
        (
            "tracing",
            TM,
            "  tracing:\n  - providers: [{name: otel}]\n    randomSamplingPercentage: 10\n",
            None,
        ),
        // The next three are caught first by the CRD schema and CEL rules, whose wording the
        // pipeline reports.
        (
            "sampling range",
            TM,
            "  tracing:\n  - randomSamplingPercentage: 120\n",
            Some((8, "should be less than or equal to 100")),
        ),
        (
            "upsert without value",
            TM,
            "  metrics:\n  - overrides:\n    - tagOverrides: {foo: {operation: UPSERT}}\n",
            Some((9, "value must be set when operation is UPSERT")),
        ),
        (
            "remove with value",
            TM,
            "  metrics:\n  - overrides:\n    - tagOverrides: {foo: {operation: REMOVE, value: x}}\n",
            Some((9, "value must not be set when operation is REMOVE")),
        ),
        (
            "envoy filter",
            EF,
            "  configPatches:\n  - applyTo: HTTP_FILTER\n    match: {context: SIDECAR_INBOUND, listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}}}\n    patch: {operation: INSERT_BEFORE, value: {name: x}}\n",
            None,
        ),
        (
            "envoy filter value",
            EF,
            "  configPatches:\n  - applyTo: HTTP_FILTER\n    patch: {operation: ADD}\n",
            Some((9, "value is required for operation ADD")),
        ),
        (
            "envoy filter match class",
            EF,
            "  configPatches:\n  - applyTo: CLUSTER\n    match: {listener: {portNumber: 80}}\n    patch: {operation: MERGE, value: {}}\n",
            Some((9, "does not fit applyTo CLUSTER")),
        ),
        (
            "proxy version regex",
            EF,
            "  configPatches:\n  - applyTo: CLUSTER\n    match: {proxy: {proxyVersion: '^1\\.(['}}\n    patch: {operation: REMOVE}\n",
            Some((9, "invalid regex")),
        ),
    ]);
}

#[test]
fn workload_rules() {
    run(&[
        (
            "workload",
            WL,
            "  serviceAccount: reviews\n  replicas: 2\n  command: [plexus, echo, --port, '8080']\n  env: [{name: VERSION, value: v1}]\n  ports: [{name: http, containerPort: 8080, protocol: TCP}]\n",
            None,
        ),
        (
            "negative replicas",
            WL,
            "  replicas: -1\n  command: [a]\n",
            Some((7, "replicas -1 must not be negative")),
        ),
        (
            "empty command",
            WL,
            "  command: []\n",
            Some((7, "command must name the program")),
        ),
        (
            "bad env name",
            WL,
            "  command: [a]\n  env: [{name: '1X', value: v}]\n",
            Some((8, "invalid environment variable name")),
        ),
        (
            "bad port",
            WL,
            "  command: [a]\n  ports: [{containerPort: 0}]\n",
            Some((8, "port number 0")),
        ),
        (
            "unknown field",
            WL,
            "  command: [a]\n  image: x\n",
            Some((8, "unknown field \"spec.image\"")),
        ),
    ]);
}

const SR: &str = "rbac.istio.io/v1alpha1 ServiceRole";
const SRB: &str = "rbac.istio.io/v1alpha1 ServiceRoleBinding";
const RC: &str = "rbac.istio.io/v1alpha1 RbacConfig";
const POL: &str = "authentication.istio.io/v1alpha1 Policy";

#[test]
fn legacy_rules() {
    run(&[
        (
            "role",
            SR,
            "  rules:\n  - services: ['*']\n    methods: [GET]\n    constraints: [{key: 'destination.labels[version]', values: [v1]}]\n",
            None,
        ),
        (
            "rule without services",
            SR,
            "  rules:\n  - methods: [GET]\n",
            Some((8, "at least 1 service must be included")),
        ),
        (
            "constraint without values",
            SR,
            "  rules:\n  - services: [a]\n    constraints: [{key: k}]\n",
            Some((9, "at least 1 value must be included")),
        ),
        (
            "binding",
            SRB,
            "  subjects: [{user: '*'}]\n  roleRef: {kind: ServiceRole, name: r}\n",
            None,
        ),
        (
            "binding role kind",
            SRB,
            "  subjects: [{user: '*'}]\n  roleRef: {kind: ClusterRole, name: r}\n",
            Some((8, "currently the only supported value is \"ServiceRole\"")),
        ),
        (
            "empty subject",
            SRB,
            "  subjects: [{}]\n  roleRef: {kind: ServiceRole, name: r}\n",
            Some((7, "empty subjects are not allowed")),
        ),
        (
            "snake case field",
            RC,
            "  mode: ON_WITH_INCLUSION\n  inclusion: {namespaces: [a]}\n  enforcement_mode: PERMISSIVE\n",
            None,
        ),
        (
            "inclusion missing",
            RC,
            "  mode: ON_WITH_INCLUSION\n",
            Some((6, "inclusion cannot be null")),
        ),
        (
            "unknown legacy field",
            RC,
            "  mode: ON\n  modes: OFF\n",
            Some((8, "unknown field \"spec.modes\"")),
        ),
        (
            "policy target port",
            POL,
            "  targets:\n  - name: reviews\n    ports: [{number: 0}]\n",
            Some((9, "port number 0")),
        ),
        (
            "policy origin issuer",
            POL,
            "  targets: [{name: r}]\n  origins:\n  - jwt: {jwksUri: 'https://a/b'}\n",
            Some((9, "issuer must be set")),
        ),
        (
            "policy trigger regex",
            POL,
            "  targets: [{name: r}]\n  origins:\n  - jwt:\n      issuer: i\n      triggerRules:\n      - excludedPaths: [{regex: '(['}]\n",
            Some((12, "invalid regex")),
        ),
    ]);
}
