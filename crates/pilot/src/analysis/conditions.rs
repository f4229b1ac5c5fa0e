//! `conditions.ConditionAnalyzer`: status conditions Istio (or the Gateway API controller in
//! Istio) wrote that report a problem: `status: "False"`, or a partially invalid object.
//! Conditions other controllers own (types with a foreign `domain/` prefix) are not ours to
//! judge.

use plexus_api::yaml::Node;

use super::Analyzer;
use super::catalogue::NEGATIVE_CONDITION_STATUS;
use super::context::{Context, Entry};
use super::message::Message;

pub static ANALYZERS: &[&dyn Analyzer] = &[&ConditionAnalyzer];

pub struct ConditionAnalyzer;

/// Reason Istio sets on a policy it accepted only in part.
const PARTIALLY_INVALID: &str = "PartiallyInvalid";

fn field<'n>(n: &'n Node, key: &str) -> &'n str {
    n.get(key).and_then(Node::as_str).unwrap_or("")
}

fn istio_owned(condition_type: &str) -> bool {
    match condition_type.split_once('/') {
        Some((domain, _)) => domain == "istio.io" || domain.ends_with(".istio.io"),
        None => true,
    }
}

fn report_conditions(entry: &Entry<'_>, list: Option<&Node>, path: &str, out: &mut Vec<Message>) {
    let Some(conditions) = list.and_then(Node::as_seq) else {
        return;
    };
    for (i, c) in conditions.iter().enumerate() {
        let kind = field(c, "type");
        let negative = field(c, "status") == "False" || field(c, "reason") == PARTIALLY_INVALID;
        if negative && istio_owned(kind) {
            out.push(Message::new(
                &NEGATIVE_CONDITION_STATUS,
                entry,
                &format!("{path}[{i}]"),
                &[
                    kind.into(),
                    field(c, "reason").into(),
                    field(c, "message").into(),
                ],
            ));
        }
    }
}

impl Analyzer for ConditionAnalyzer {
    fn name(&self) -> &'static str {
        "conditions.ConditionAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for entry in ctx.all() {
            let Some(status) = entry.obj.root.get("status") else {
                continue;
            };
            report_conditions(entry, status.get("conditions"), "status.conditions", out);
            // Gateway API routes report per parent.
            let parents = status
                .get("parents")
                .and_then(Node::as_seq)
                .unwrap_or_default();
            for (i, parent) in parents.iter().enumerate() {
                let path = format!("status.parents[{i}].conditions");
                report_conditions(entry, parent.get("conditions"), &path, out);
            }
        }
    }
}
