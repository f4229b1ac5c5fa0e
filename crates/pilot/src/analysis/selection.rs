//! Checks shared by kinds that select workloads in their namespace (Sidecar, Telemetry): a
//! selector must select some pod, two objects must not select the same pod, and a namespace
//! may hold only one object without a selector.

use std::collections::BTreeMap;

use super::catalogue::{MessageType, REFERENCED_RESOURCE_NOT_FOUND};
use super::context::{Context, Entry};
use super::k8s;
use super::message::{Arg, Message};
use super::selector;

/// One selecting object: its entry, its selector (`None` when it has none) and the field the
/// selector is written at.
pub struct Selecting<'c, 'a> {
    pub entry: &'c Entry<'a>,
    pub labels: Option<BTreeMap<String, String>>,
    pub field: &'static str,
}

/// Objects with a selector that selects no pod of their namespace get IST0101; objects that
/// select a pod another object also selects get `conflict` (args: names, namespace, pod).
pub fn check_selectors(
    ctx: &Context<'_>,
    items: &[Selecting<'_, '_>],
    conflict: &MessageType,
    out: &mut Vec<Message>,
) {
    // pod (ns, name) -> the objects selecting it
    let mut by_pod: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        let Some(labels) = &it.labels else { continue };
        let pods: Vec<_> = k8s::pods(ctx)
            .iter()
            .filter(|p| p.ns == it.entry.ns && selector::matches(labels, p.labels()))
            .collect();
        if pods.is_empty() {
            out.push(Message::new(
                &REFERENCED_RESOURCE_NOT_FOUND,
                it.entry,
                it.field,
                &["selector".into(), selector::to_string(labels).into()],
            ));
        }
        for p in pods {
            by_pod
                .entry((p.ns.clone(), p.name().to_string()))
                .or_default()
                .push(i);
        }
    }
    for ((ns, pod), selecting) in by_pod {
        if selecting.len() < 2 {
            continue;
        }
        let names: Vec<String> = selecting
            .iter()
            .map(|&i| items[i].entry.name().to_string())
            .collect();
        for &i in &selecting {
            out.push(Message::new(
                conflict,
                items[i].entry,
                items[i].field,
                &[
                    Arg::List(names.clone()),
                    ns.clone().into(),
                    pod.clone().into(),
                ],
            ));
        }
    }
}

/// Every object in a namespace that holds more than one object without a selector gets
/// `multiple` (args: names, namespace).
pub fn check_defaults(items: &[Selecting<'_, '_>], multiple: &MessageType, out: &mut Vec<Message>) {
    let mut by_ns: BTreeMap<&str, Vec<&Selecting<'_, '_>>> = BTreeMap::new();
    for it in items.iter().filter(|it| it.labels.is_none()) {
        by_ns.entry(it.entry.ns.as_str()).or_default().push(it);
    }
    for (ns, list) in by_ns {
        if list.len() < 2 {
            continue;
        }
        let names: Vec<String> = list.iter().map(|it| it.entry.name().to_string()).collect();
        for it in list {
            out.push(Message::new(
                multiple,
                it.entry,
                "metadata.name",
                &[Arg::List(names.clone()), ns.into()],
            ));
        }
    }
}
