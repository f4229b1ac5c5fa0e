//! Unit tests: every distinct CEL rule in Istio's CRDs compiles and decides a passing and a
//! failing value as the API server would; each structural keyword gives the API server's words.

use super::cel::{CelRules, Verdict, to_cel};
use super::check::Checker;
use super::model::Schema;
use super::path::FieldPath;
use super::registry;
use crate::yaml::{Node, parse_stream};

fn yaml(text: &str) -> Node {
    let (docs, err) = parse_stream(text);
    assert!(err.is_none(), "{text}: {err:?}");
    docs.into_iter()
        .find_map(|d| d.root)
        .unwrap_or_else(|| Node::new(crate::yaml::Value::Null, Default::default()))
}

#[derive(Debug)]
enum Want {
    Pass,
    Fail,
    /// Evaluation error whose message contains this.
    Error(&'static str),
}
use Want::{Error, Fail, Pass};

/// Every distinct rule in the CRD file (whitespace collapsed) with values for `self` and what
/// the API server decides for each.
const RULES: &[(&str, &[(&str, Want)])] = &[
    (
        "(has(self.selector) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1",
        &[
            ("{selector: {}}", Pass),
            ("{selector: {}, targetRefs: []}", Fail),
        ],
    ),
    (
        "has(self.wasm) != has(self.lua)",
        &[
            ("{wasm: {}}", Pass),
            ("{}", Fail),
            ("{wasm: {}, lua: {}}", Fail),
        ],
    ),
    (
        "self.all(key, !key.contains(\"*\"))",
        &[("{a: b}", Pass), ("{\"a*\": b}", Fail)],
    ),
    (
        "self.all(key, key.size() != 0)",
        &[("{a: b}", Pass), ("{\"\": b}", Fail)],
    ),
    ("!self.contains(\"*\")", &[("a", Pass), ("\"*\"", Fail)]),
    ("self.size() == 0", &[("\"\"", Pass), ("other", Fail)]),
    (
        "isURL(self) ? (url(self).getScheme() in [\"\", \"http\", \"https\", \"file\", \"oci\"]) : (isURL(\"http://\" + self) && url(\"http://\" + self).getScheme() in [\"\", \"http\", \"https\", \"file\", \"oci\"])",
        &[
            ("oci://r:5000/x:1", Pass),
            ("docker.io/istio/x", Pass),
            ("/abs", Pass),
            ("fake://x", Fail),
            ("\"#%blah$#@\"", Fail),
        ],
    ),
    (
        "isURL(self) ? (url(self).getScheme() in [\"\", \"http\", \"https\", \"oci\", \"file\"]) : (isURL(\"http://\" + self) && url(\"http://\" + self).getScheme() in [\"\", \"http\", \"https\", \"oci\", \"file\"])",
        &[("file:///a.wasm", Pass), ("test", Pass), ("fake://x", Fail)],
    ),
    (
        "(has(self.valueFrom) ? self.valueFrom : \"\") != \"HOST\" || !has(self.value)",
        &[
            ("{valueFrom: HOST}", Pass),
            ("{value: x}", Pass),
            ("{valueFrom: HOST, value: x}", Fail),
        ],
    ),
    (
        "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1",
        &[
            ("{targetRef: {}}", Pass),
            ("{targetRef: {}, selector: {}}", Fail),
        ],
    ),
    (
        "duration(self) >= duration('1ms')",
        &[
            ("1s", Pass),
            ("1ms", Pass),
            ("1h30m", Pass),
            ("0.5ms", Fail),
            (
                "apple",
                Error(
                    "type conversion error from 'string' to 'google.protobuf.Duration' evaluating rule: r",
                ),
            ),
        ],
    ),
    (
        "(has(self.workloadSelector) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1",
        &[
            ("{targetRefs: []}", Pass),
            ("{targetRefs: [], workloadSelector: {}}", Fail),
        ],
    ),
    (
        "has(self.context) ? ((self.context == \"WAYPOINT\") ? has(self.waypoint) : !has(self.waypoint)) : !has(self.waypoint)",
        &[
            ("{context: WAYPOINT, waypoint: {}}", Pass),
            ("{}", Pass),
            ("{context: SIDECAR_INBOUND, waypoint: {}}", Fail),
            ("{context: WAYPOINT}", Fail),
            ("{waypoint: {}}", Fail),
        ],
    ),
    (
        "0 < self && self <= 65535",
        &[("80", Pass), ("0", Fail), ("65536", Fail)],
    ),
    (
        "(has(self.tlsCertificates) ? 1 : 0) + (has(self.credentialNames) ? 1 : 0) <= 1",
        &[
            ("{tlsCertificates: []}", Pass),
            ("{tlsCertificates: [], credentialNames: []}", Fail),
        ],
    ),
    (
        "(has(self.credentialName) ? 1 : 0) + (has(self.credentialNames) ? 1 : 0) <= 1",
        &[
            ("{credentialName: a}", Pass),
            ("{credentialName: a, credentialNames: [b]}", Fail),
        ],
    ),
    (
        "(has(self.credentialNames) ? 1 : 0) + (has(self.tlsCertificates) ? 1 : 0) <= 1",
        &[
            ("{credentialNames: [a]}", Pass),
            ("{credentialNames: [a], tlsCertificates: []}", Fail),
        ],
    ),
    (
        "(has(self.workloadSelector) ? 1 : 0) + (has(self.endpoints) ? 1 : 0) <= 1",
        &[
            ("{endpoints: []}", Pass),
            ("{endpoints: [], workloadSelector: {}}", Fail),
        ],
    ),
    (
        "!((has(self.addresses) ? self.addresses : []).exists(k, k.contains(\"/\")) && !((has(self.resolution) ? self.resolution : \"NONE\") in [\"STATIC\", \"NONE\"]))",
        &[
            ("{addresses: [1.2.3.0/24], resolution: STATIC}", Pass),
            ("{addresses: [1.2.3.0/24]}", Pass),
            ("{addresses: [1.2.3.0/24], resolution: DNS}", Fail),
        ],
    ),
    (
        "((has(self.resolution) ? self.resolution : \"NONE\") == \"NONE\") ? !has(self.endpoints) : true",
        &[
            ("{resolution: STATIC, endpoints: [{}]}", Pass),
            ("{}", Pass),
            ("{endpoints: [{}]}", Fail),
        ],
    ),
    (
        "((has(self.resolution) ? self.resolution : \"\") == \"DNS_ROUND_ROBIN\") ? ((has(self.endpoints) ? self.endpoints : []).size() <= 1) : true",
        &[
            ("{resolution: DNS_ROUND_ROBIN, endpoints: [{}]}", Pass),
            ("{resolution: DNS_ROUND_ROBIN, endpoints: [{}, {}]}", Fail),
        ],
    ),
    (
        "has(self.address) || has(self.network)",
        &[("{network: n}", Pass), ("{}", Fail)],
    ),
    (
        "(has(self.address) ? self.address : \"\").startsWith(\"unix://\") ? !has(self.ports) : true",
        &[
            ("{address: \"unix:///s\"}", Pass),
            ("{address: 1.2.3.4, ports: {}}", Pass),
            ("{address: \"unix:///s\", ports: {}}", Fail),
        ],
    ),
    (
        "self.startsWith(\"unix://\") ? (self.substring(7, 8) == \"/\" || self.substring(7, 8) == \"@\") : true",
        &[
            ("\"unix:///a\"", Pass),
            ("\"unix://@a\"", Pass),
            ("1.2.3.4", Pass),
            ("\"unix://a\"", Fail),
            ("\"unix://\"", Error("index out of range")),
        ],
    ),
    (
        "self.startsWith(\"unix://\") ? !self.endsWith(\"/\") : true",
        &[("\"unix:///a\"", Pass), ("\"unix:///a/\"", Fail)],
    ),
    (
        "self.all(key, size(key) < 63 && key.matches(\"^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$\"))",
        &[
            ("{http: 80, grpc-web: 81}", Pass),
            ("{\"@\": 80}", Fail),
            ("{\"-a\": 80}", Fail),
        ],
    ),
    ("self != \"*\"", &[("a.com", Pass), ("\"*\"", Fail)]),
    (
        "self.all(l1, self.exists_one(l2, l1.number == l2.number))",
        &[
            ("[{number: 1}, {number: 2}]", Pass),
            ("[{number: 1}, {number: 1}]", Fail),
        ],
    ),
    (
        "self in [\"\", \"HTTP\", \"HTTPS\"]",
        &[("HTTP", Pass), ("\"\"", Pass), ("TCP", Fail)],
    ),
    (
        "(has(self.serviceAccounts) || has(self.notServiceAccounts)) ? (!has(self.principals) && !has(self.notPrincipals) && !has(self.namespaces) && !has(self.notNamespaces)) : true",
        &[
            ("{serviceAccounts: [a]}", Pass),
            ("{namespaces: [a], principals: [b]}", Pass),
            ("{serviceAccounts: [a], namespaces: [b]}", Fail),
        ],
    ),
    (
        "has(self.portLevelMtls) ? (((has(self.selector) && has(self.selector.matchLabels)) ? self.selector.matchLabels : {}).size() > 0) : true",
        &[
            ("{selector: {matchLabels: {a: b}}, portLevelMtls: {}}", Pass),
            ("{}", Pass),
            ("{portLevelMtls: {}}", Fail),
            ("{selector: {}, portLevelMtls: {}}", Fail),
        ],
    ),
    (
        "self.all(key, 0 < int(key) && int(key) <= 65535)",
        &[
            ("{\"80\": {}}", Pass),
            ("{\"0\": {}}", Fail),
            (
                "{acd: {}}",
                Error("type conversion error from 'string' to 'int' evaluating rule: r"),
            ),
        ],
    ),
    (
        "(has(self.jwksUri) ? 1 : 0) + (has(self.jwks_uri) ? 1 : 0) + (has(self.jwks) ? 1 : 0) <= 1",
        &[("{jwks: x}", Pass), ("{jwks: x, jwksUri: y}", Fail)],
    ),
    (
        "url(self).getScheme() in [\"http\", \"https\"]",
        &[
            ("https://a/b", Pass),
            ("HTTP://a", Pass),
            ("ftp://a", Fail),
            (
                "x",
                Error(
                    "URL parse error during conversion from string: parse \"x\": invalid URI for request",
                ),
            ),
        ],
    ),
    (
        "((has(self.operation) ? self.operation : \"\") == \"UPSERT\") ? (self.value != \"\") : true",
        &[
            ("{operation: UPSERT, value: v}", Pass),
            ("{operation: REMOVE}", Pass),
            ("{operation: UPSERT, value: \"\"}", Fail),
            (
                "{operation: UPSERT}",
                Error("no such key: value evaluating rule"),
            ),
        ],
    ),
    (
        "((has(self.operation) ? self.operation : \"\") == \"REMOVE\") ? !has(self.value) : true",
        &[
            ("{operation: REMOVE}", Pass),
            ("{operation: REMOVE, value: v}", Fail),
        ],
    ),
];

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn every_crd_rule_compiles() {
    let reg = registry().expect("embedded CRD file parses");
    let broken: Vec<_> = reg.rules().iter().filter(|(_, r)| r.is_err()).collect();
    assert!(broken.is_empty(), "rules that do not compile: {broken:?}");
    assert!(reg.rules().len() >= 30, "{}", reg.rules().len());
}

#[test]
fn every_crd_rule_decides_like_the_api_server() {
    let reg = registry().expect("embedded CRD file parses");
    let table: Vec<String> = RULES.iter().map(|(r, _)| collapse(r)).collect();
    let missing: Vec<&String> = reg
        .rules()
        .keys()
        .filter(|r| !table.contains(&collapse(r)))
        .collect();
    assert!(
        missing.is_empty(),
        "rules without a test case: {missing:#?}"
    );
    let mut cel = CelRules::default();
    let env = cel.env();
    for (source, cases) in RULES {
        let spec = yaml(&format!(
            "rule: {}\nmessage: r\n",
            crate::schema::fmt::quote(source)
        ));
        let rule = cel.rule(&spec, "t").expect("rule reads");
        for (value, want) in *cases {
            let got = rule.evaluate(&env, &to_cel(&yaml(value), None));
            let ok = match (want, &got) {
                (Pass, Verdict::Pass) => true,
                (Fail, Verdict::Fail(m)) => m == "r",
                (Error(s), Verdict::Error(m)) => m.contains(s),
                _ => false,
            };
            assert!(ok, "{source}\n  self = {value}: want {want:?}, got {got:?}");
        }
    }
}

#[test]
fn a_rule_that_does_not_compile_is_an_error_not_a_pass() {
    let mut cel = CelRules::default();
    let rule = cel
        .rule(&yaml("rule: 'self.('\n"), "t")
        .expect("rule reads");
    let got = rule.evaluate(&cel.env(), &to_cel(&yaml("{}"), None));
    assert!(
        matches!(got, Verdict::Error(ref m) if m.contains("rule compile error")),
        "{got:?}"
    );
}

/// Messages for `value` checked against the schema written in YAML.
fn check(schema: &str, value: &str) -> Vec<String> {
    let mut cel = CelRules::default();
    let s = Schema::from_node(&yaml(schema), "t", &mut cel).expect("schema reads");
    let mut c = Checker::default();
    c.check(&yaml(value), &s, &FieldPath::root().field("spec"));
    c.issues.into_iter().map(|i| i.message).collect()
}

#[test]
fn types_and_nullable() {
    assert_eq!(
        check("type: object", "~"),
        ["spec: Invalid value: \"null\": spec in body must be of type object: \"null\""]
    );
    assert!(check("{type: object, nullable: true}", "~").is_empty());
    assert!(check("type: integer", "5.0").is_empty());
    assert_eq!(
        check("type: integer", "5.5"),
        ["spec: Invalid value: \"number\": spec in body must be of type integer: \"number\""]
    );
    assert!(check("type: number", "5").is_empty());
    assert_eq!(
        check("type: string", "5")[0],
        "spec: Invalid value: \"integer\": spec in body must be of type string: \"integer\""
    );
    assert!(check("{x-kubernetes-int-or-string: true}", "80").is_empty());
    assert!(check("{x-kubernetes-int-or-string: true}", "http").is_empty());
    assert_eq!(
        check("{x-kubernetes-int-or-string: true}", "true")[0],
        "spec: Invalid value: \"boolean\": spec in body must be of type integer,string: \"boolean\""
    );
    assert_eq!(
        check("{type: string, format: byte}", "not base64!")[0],
        "spec: Invalid value: \"not base64!\": spec in body must be of type byte: \"not base64!\""
    );
    assert!(check("{type: string, format: byte}", "aGVsbG8=").is_empty());
    assert!(check("{type: string, format: date-time}", "2024-01-02T03:04:05Z").is_empty());
}

#[test]
fn strings_numbers_and_enums() {
    assert_eq!(
        check("{type: string, minLength: 1}", "\"\""),
        ["spec: Invalid value: \"\": spec in body should be at least 1 chars long"]
    );
    assert_eq!(
        check("{type: string, maxLength: 2}", "abc"),
        ["spec: Too long: may not be longer than 2"]
    );
    assert_eq!(
        check("{type: string, pattern: '^[a-z]+$'}", "A"),
        ["spec: Invalid value: \"A\": spec in body should match '^[a-z]+$'"]
    );
    assert_eq!(
        check("{type: integer, minimum: 0}", "-1"),
        ["spec: Invalid value: -1: spec in body should be greater than or equal to 0"]
    );
    assert_eq!(
        check("{type: integer, maximum: 4294967295}", "4294967296"),
        [
            "spec: Invalid value: 4294967296: spec in body should be less than or equal to 4294967295"
        ]
    );
    assert_eq!(
        check("{type: number, maximum: 100}", "150.5"),
        ["spec: Invalid value: 150.5: spec in body should be less than or equal to 100"]
    );
    assert_eq!(
        check("{type: integer, format: int32}", "4294967296"),
        ["Invalid value: \"\": Checked value must be of type integer with format int32 in spec"]
    );
    assert_eq!(
        check("{type: string, enum: [A, B]}", "C"),
        ["spec: Unsupported value: \"C\": supported values: \"A\", \"B\""]
    );
}

#[test]
fn objects_and_arrays() {
    let obj = "{type: object, required: [a], properties: {a: {type: string}}}";
    assert_eq!(check(obj, "{}"), ["spec.a: Required value"]);
    assert_eq!(
        check(obj, "{a: x, weigth: 1}"),
        ["unknown field \"spec.weigth\""]
    );
    assert!(
        check(
            "{type: object, x-kubernetes-preserve-unknown-fields: true}",
            "{x: {y: 1}}"
        )
        .is_empty()
    );
    let map = "{type: object, additionalProperties: {type: string}}";
    assert_eq!(
        check(map, "{a: 1}")[0],
        "spec.a: Invalid value: \"integer\": spec.a in body must be of type string: \"integer\""
    );
    assert_eq!(
        check("{type: object, minProperties: 1}", "{}"),
        ["spec: Invalid value: 1: spec in body should have at least 1 properties"]
    );
    let arr = "{type: array, minItems: 1, maxItems: 2, items: {type: string}}";
    assert_eq!(
        check(arr, "[]"),
        ["spec: Invalid value: 0: spec in body should have at least 1 items"]
    );
    assert_eq!(
        check(arr, "[a, b, c]"),
        ["spec: Too many: 3: must have at most 2 items"]
    );
    let set = "{type: array, x-kubernetes-list-type: set, items: {type: string}}";
    assert_eq!(check(set, "[a, b, a]"), ["spec[2]: Duplicate value: \"a\""]);
    let lmap = "{type: array, x-kubernetes-list-type: map, x-kubernetes-list-map-keys: [name], items: {type: object, properties: {name: {type: string}, v: {type: integer}}}}";
    assert_eq!(
        check(lmap, "[{name: a, v: 1}, {name: a, v: 2}]"),
        ["spec[1]: Duplicate value: map[string]interface {}{\"name\":\"a\"}"]
    );
}

#[test]
fn combinators() {
    let one_of = "{type: object, properties: {exact: {type: string}, prefix: {type: string}}, oneOf: [{not: {anyOf: [{required: [exact]}, {required: [prefix]}]}}, {required: [exact]}, {required: [prefix]}]}";
    assert!(check(one_of, "{}").is_empty());
    assert!(check(one_of, "{exact: a}").is_empty());
    assert_eq!(
        check(one_of, "{exact: a, prefix: b}"),
        [
            "Invalid value: \"\": \"spec\" must validate one and only one schema (oneOf). Found 2 valid alternatives"
        ]
    );
    let any_of = "{type: object, anyOf: [{required: [a]}, {required: [b]}], x-kubernetes-preserve-unknown-fields: true}";
    assert_eq!(
        check(any_of, "{c: 1}"),
        ["Invalid value: \"\": \"spec\" must validate at least one schema (anyOf)"]
    );
}

#[test]
fn every_istio_kind_and_version_has_a_schema() {
    let reg = registry().expect("embedded CRD file parses");
    for info in crate::registry::KINDS.iter().filter(|k| k.crd_schema) {
        for v in info.versions {
            assert!(
                reg.schema(info.group, info.kind, v).is_some(),
                "{}/{v} {}",
                info.group,
                info.kind
            );
        }
    }
    assert_eq!(reg.kinds().count(), 33);
}

#[test]
fn cel_sees_values_as_the_api_server_does() {
    let mut cel = CelRules::default();
    let schema = Schema::from_node(
        &yaml("{type: object, properties: {port: {type: integer}, weight: {type: number}}}"),
        "t",
        &mut cel,
    )
    .expect("schema reads");
    let value = to_cel(&yaml("{port: 80.0, weight: 5, pruned: x}"), Some(&schema));
    let rule = cel
        .rule(
            &yaml("rule: 'self.port == 80 && self.weight == 5.0 && !has(self.pruned)'"),
            "t",
        )
        .expect("rule reads");
    assert_eq!(rule.evaluate(&cel.env(), &value), Verdict::Pass);
    assert_eq!(
        check("type: string", "5.0")[0],
        "spec: Invalid value: \"integer\": spec in body must be of type string: \"integer\""
    );
}

#[test]
fn enum_and_combinators_apply_whatever_the_type() {
    // As kube-openapi: the enum is checked for a null or wrongly typed value too.
    let e = check("{type: string, enum: [A]}", "5");
    assert_eq!(
        e,
        [
            "spec: Invalid value: \"integer\": spec in body must be of type string: \"integer\"",
            "spec: Unsupported value: 5: supported values: \"A\"",
        ]
    );
    assert_eq!(
        check("{type: string, enum: [A]}", "~")[1],
        "spec: Unsupported value: \"null\": supported values: \"A\""
    );
    // A wrongly formatted string still gets its string keywords checked.
    assert_eq!(
        check("{type: string, format: byte, minLength: 8}", "abc").len(),
        2
    );
}

#[test]
fn rule_reason_field_path_and_message_expression() {
    let mut cel = CelRules::default();
    let env = cel.env();
    let value = to_cel(&yaml("{a: 1}"), None);
    let path = FieldPath::root().field("spec");
    let mut issue = |rule: &str| {
        let r = cel.rule(&yaml(rule), "t").expect("rule reads");
        super::rule_issue(&r, &env, &value, "object", &path).map(|i| (i.locator, i.message))
    };
    assert_eq!(issue("rule: self.a == 1"), None);
    assert_eq!(
        issue("rule: self.a == 2"),
        Some((
            "spec".into(),
            "spec: Invalid value: \"object\": failed rule: self.a == 2".into()
        ))
    );
    assert_eq!(
        issue("{rule: self.a == 2, message: m, reason: FieldValueForbidden, fieldPath: .a}"),
        Some(("spec.a".into(), "spec.a: Forbidden: m".into()))
    );
    assert_eq!(
        issue("{rule: self.a == 2, message: m, messageExpression: \"'a is ' + string(self.a)\"}"),
        Some((
            "spec".into(),
            "spec: Invalid value: \"object\": a is 1".into()
        ))
    );
    assert_eq!(
        issue("{rule: self.b == 2, message: m}"),
        Some((
            "spec".into(),
            "spec: Invalid value: \"object\": no such key: b evaluating rule: m".into()
        ))
    );
}
