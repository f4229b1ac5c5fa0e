//! Telemetry analyzers: selectors (as for Sidecars), entries that name no provider when the
//! mesh has no default for them, and the deprecated Lightstep tracing provider.

use super::Analyzer;
use super::catalogue::{
    CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS, DEPRECATED, INVALID_TELEMETRY_PROVIDER,
    MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS,
};
use super::context::{Context, Entry, group};
use super::istio::{Telemetry, s};
use super::message::Message;
use super::selection::{self, Selecting};

pub static ANALYZERS: &[&dyn Analyzer] = &[
    &SelectorAnalyzer,
    &DefaultSelectorAnalyzer,
    &ProviderAnalyzer,
    &LightstepAnalyzer,
];

fn telemetries<'c, 'a>(ctx: &'c Context<'a>) -> Vec<(&'c Entry<'a>, Telemetry)> {
    ctx.of(group::TELEMETRY, "Telemetry")
        .iter()
        .filter_map(|e| e.spec::<Telemetry>().map(|t| (e, t)))
        .collect()
}

fn selecting<'c, 'a>(all: &[(&'c Entry<'a>, Telemetry)]) -> Vec<Selecting<'c, 'a>> {
    all.iter()
        .map(|(e, t)| Selecting {
            entry: e,
            labels: t.selector.as_ref().map(|s| s.match_labels.clone()),
            field: "spec.selector",
        })
        .collect()
}

/// `telemetry.SelectorAnalyzer`: selectors select pods, and no pod is selected twice.
pub struct SelectorAnalyzer;

impl Analyzer for SelectorAnalyzer {
    fn name(&self) -> &'static str {
        "telemetry.SelectorAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let all = telemetries(ctx);
        let items = selecting(&all);
        selection::check_selectors(ctx, &items, &CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS, out);
    }
}

/// `telemetry.DefaultSelectorAnalyzer`: one selector-less Telemetry per namespace.
pub struct DefaultSelectorAnalyzer;

impl Analyzer for DefaultSelectorAnalyzer {
    fn name(&self) -> &'static str {
        "telemetry.DefaultSelectorAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let all = telemetries(ctx);
        let items = selecting(&all);
        selection::check_defaults(
            &items,
            &MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS,
            out,
        );
    }
}

/// `telemetry.ProviderAnalyzer`: an entry that names no provider (and does not disable) uses
/// the mesh's default provider for its kind; without one the entry is ignored.
pub struct ProviderAnalyzer;

impl Analyzer for ProviderAnalyzer {
    fn name(&self) -> &'static str {
        "telemetry.ProviderAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let d = &ctx.mesh.default_providers;
        for (entry, t) in telemetries(ctx) {
            // (field, index of the first entry without providers that is not disabled, defaults)
            let kinds = [
                (
                    "tracing",
                    t.tracing.iter().position(|p| p.providers.is_empty()),
                    &d.tracing,
                ),
                (
                    "metrics",
                    t.metrics.iter().position(|p| p.providers.is_empty()),
                    &d.metrics,
                ),
                (
                    "accessLogging",
                    t.access_logging
                        .iter()
                        .position(|p| p.providers.is_empty() && p.disabled != Some(true)),
                    &d.access_logging,
                ),
            ];
            let ineffective = kinds.iter().find_map(|(field, i, defaults)| {
                let i = (*i)?;
                defaults.is_empty().then(|| format!("spec.{field}[{i}]"))
            });
            if let Some(field) = ineffective {
                out.push(Message::new(
                    &INVALID_TELEMETRY_PROVIDER,
                    entry,
                    &field,
                    &[entry.name().into(), entry.ns.clone().into()],
                ));
            }
        }
    }
}

/// `telemetry.LightstepAnalyzer`: the Lightstep tracing provider is deprecated in favour of
/// OpenTelemetry.
pub struct LightstepAnalyzer;

impl Analyzer for LightstepAnalyzer {
    fn name(&self) -> &'static str {
        "telemetry.LightstepAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let lightstep: Vec<&str> = ctx
            .mesh
            .extension_providers
            .iter()
            .filter(|p| p.kind == "lightstep")
            .map(|p| p.name.as_str())
            .collect();
        for (entry, t) in telemetries(ctx) {
            for (i, tracing) in t.tracing.iter().enumerate() {
                if tracing
                    .providers
                    .iter()
                    .any(|p| lightstep.contains(&s(&p.name)))
                {
                    out.push(Message::new(
                        &DEPRECATED,
                        entry,
                        &format!("spec.tracing[{i}]"),
                        &["The Lightstep provider is deprecated, please migrate to OpenTelemetry provider.".into()],
                    ));
                }
            }
        }
    }
}
