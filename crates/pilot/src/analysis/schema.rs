//! `schemaValidation.CollectionValidationAnalyzer`: the cross-rule checks of VirtualService
//! validation that are warnings, not errors — rules that can never be reached because earlier
//! rules take all their traffic, and matches that an earlier match (same, or a shorter URI
//! prefix with no more conditions) already takes.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::Analyzer;
use super::catalogue::{VIRTUAL_SERVICE_INEFFECTIVE_MATCH, VIRTUAL_SERVICE_UNREACHABLE_RULE};
use super::context::{Context, Entry, group};
use super::istio::VirtualService;
use super::message::Message;

pub static ANALYZERS: &[&dyn Analyzer] = &[&CollectionValidationAnalyzer];

pub struct CollectionValidationAnalyzer;

/// One rule as the check sees it: its display name and its matches as JSON objects (without
/// their `name`, which does not affect matching).
struct Rule {
    name: String,
    matches: Vec<(String, Map<String, Value>)>,
}

fn as_object<T: Serialize>(m: &T) -> Map<String, Value> {
    match serde_json::to_value(m) {
        Ok(Value::Object(mut o)) => {
            o.remove("name");
            o
        }
        _ => Map::new(),
    }
}

fn label(name: Option<&str>, i: usize) -> String {
    match name {
        Some(n) if !n.is_empty() => format!("{n:?}"),
        _ => format!("#{i}"),
    }
}

fn uri_prefix(m: &Map<String, Value>) -> Option<&str> {
    m.get("uri")?.get("prefix")?.as_str()
}

/// `earlier` takes every request `later` would: `later`'s URI prefix extends `earlier`'s and
/// every other condition of `earlier` is also a condition of `later`.
fn covers(earlier: &Map<String, Value>, later: &Map<String, Value>) -> bool {
    let (Some(p1), Some(p2)) = (uri_prefix(earlier), uri_prefix(later)) else {
        return false;
    };
    p2.starts_with(p1)
        && earlier
            .iter()
            .filter(|(k, _)| k.as_str() != "uri")
            .all(|(k, v)| later.get(k) == Some(v))
}

/// Report unreachable rules and ineffective matches of one rule list (`kind`: http, tcp, tls).
fn check_rules(entry: &Entry<'_>, kind: &str, rules: &[Rule], out: &mut Vec<Message>) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut prefix_matches: Vec<(usize, &Map<String, Value>)> = Vec::new();
    for (r, rule) in rules.iter().enumerate() {
        let field = format!("spec.{kind}[{r}]");
        if rule.matches.is_empty() {
            if r + 1 != rules.len() {
                out.push(Message::new(
                    &VIRTUAL_SERVICE_UNREACHABLE_RULE,
                    entry,
                    &field,
                    &[
                        rule.name.clone().into(),
                        "only the last rule can have no matches".into(),
                    ],
                ));
            }
            continue;
        }
        let mut duplicates = 0;
        for (m, (match_name, obj)) in rule.matches.iter().enumerate() {
            let key = Value::Object(obj.clone()).to_string();
            let earlier = seen.get(&key).copied();
            let overlapping = prefix_matches
                .iter()
                .find(|(_, e)| covers(e, obj))
                .map(|(r, _)| *r);
            if let Some(dup) = earlier.or(overlapping) {
                out.push(Message::new(
                    &VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
                    entry,
                    &format!("{field}.match[{m}]"),
                    &[
                        rule.name.clone().into(),
                        match_name.clone().into(),
                        rules[dup].name.clone().into(),
                    ],
                ));
            }
            if earlier.is_some() {
                duplicates += 1;
            } else {
                seen.insert(key, r);
            }
            if uri_prefix(obj).is_some() {
                prefix_matches.push((r, obj));
            }
        }
        if duplicates == rule.matches.len() {
            out.push(Message::new(
                &VIRTUAL_SERVICE_UNREACHABLE_RULE,
                entry,
                &field,
                &[
                    rule.name.clone().into(),
                    "all matches used by prior rules".into(),
                ],
            ));
        }
    }
}

fn rules_of<R, M: Serialize>(
    rules: &[R],
    name: impl Fn(&R) -> Option<&str>,
    matches: impl Fn(&R) -> &[M],
    match_name: impl Fn(&M) -> Option<&str>,
) -> Vec<Rule> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| Rule {
            name: label(name(r), i),
            matches: matches(r)
                .iter()
                .enumerate()
                .map(|(j, m)| (label(match_name(m), j), as_object(m)))
                .collect(),
        })
        .collect()
}

impl Analyzer for CollectionValidationAnalyzer {
    fn name(&self) -> &'static str {
        "schemaValidation.CollectionValidationAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for entry in ctx.of(group::NETWORKING, "VirtualService") {
            let Some(vs) = entry.spec::<VirtualService>() else {
                continue;
            };
            let http = rules_of(
                &vs.http,
                |r| r.name.as_deref(),
                |r| &r.r#match,
                |m| m.name.as_deref(),
            );
            let tcp = rules_of(&vs.tcp, |_| None, |r| &r.r#match, |_| None);
            let tls = rules_of(&vs.tls, |_| None, |r| &r.r#match, |_| None);
            check_rules(entry, "http", &http, out);
            check_rules(entry, "tcp", &tcp, out);
            check_rules(entry, "tls", &tls, out);
        }
    }
}
