//! Cross-object analysis: analyzers that look at the whole set of objects at once and report
//! messages with Istio's `ISTxxxx` codes (the same catalogue `istioctl analyze` uses), so a
//! user of either tool reads the same codes and wording.
//!
//! An [`Analyzer`] is a pure function over an immutable [`Context`]; [`analyze`] runs every
//! analyzer and returns the messages sorted by file and line.

pub mod catalogue;
mod context;
mod message;
mod pipeline;
pub mod selector;
pub mod util;

mod istio;
mod k8s;
mod registry;

mod authn;
mod authz;
mod conditions;
mod deprecation;
mod destinationrule;
mod envoyfilter;
mod gateway;
mod k8sgateway;
mod multicluster;
mod schema;
mod selection;
mod service;
mod serviceentry;
mod sidecar;
mod telemetry;
mod virtualservice;

pub use catalogue::MessageType;
pub use context::{Context, Entry};
pub use message::{Arg, Level, Message, render};
pub use pipeline::validate_and_analyze;

use plexus_api::Object;

use crate::mesh::{MeshConfig, MeshNetworks};

/// One analyzer: a named check over all objects.
pub trait Analyzer: Sync {
    /// Istio's name for the analyzer (`virtualservice.DestinationHostAnalyzer`), so results can
    /// be compared with `istioctl analyze` and analyzers selected by the same name.
    fn name(&self) -> &'static str;
    /// Append this analyzer's findings to `out`.
    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>);
}

/// Every analyzer Plexus implements, in a stable order.
pub fn all_analyzers() -> Vec<&'static dyn Analyzer> {
    let mut out: Vec<&'static dyn Analyzer> = Vec::new();
    out.extend_from_slice(authn::ANALYZERS);
    out.extend_from_slice(authz::ANALYZERS);
    out.extend_from_slice(conditions::ANALYZERS);
    out.extend_from_slice(deprecation::ANALYZERS);
    out.extend_from_slice(destinationrule::ANALYZERS);
    out.extend_from_slice(envoyfilter::ANALYZERS);
    out.extend_from_slice(gateway::ANALYZERS);
    out.extend_from_slice(k8sgateway::ANALYZERS);
    out.extend_from_slice(multicluster::ANALYZERS);
    out.extend_from_slice(schema::ANALYZERS);
    out.extend_from_slice(service::ANALYZERS);
    out.extend_from_slice(serviceentry::ANALYZERS);
    out.extend_from_slice(sidecar::ANALYZERS);
    out.extend_from_slice(telemetry::ANALYZERS);
    out.extend_from_slice(virtualservice::ANALYZERS);
    out
}

/// The analyzer with Istio's name `name`, if Plexus implements it.
pub fn analyzer_by_name(name: &str) -> Option<&'static dyn Analyzer> {
    all_analyzers().into_iter().find(|a| a.name() == name)
}

/// Inputs to an analysis run besides the objects.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub mesh: MeshConfig,
    pub networks: Option<MeshNetworks>,
    /// Namespace given to objects that have none (`istioctl analyze` uses `default`). `None`
    /// keeps them namespace-less, as Istio's analyzer unit tests do.
    pub default_namespace: Option<String>,
    /// Add Istio's stand-in ingress gateway (a Pod and a Service in the root namespace) unless
    /// the mesh config turns the ingress controller off: file-only analysis otherwise reports
    /// every Gateway bound to the default `istio: ingressgateway` workload as broken. Both
    /// `istioctl analyze` and Istio's analyzer tests do this.
    pub default_ingress: bool,
}

/// Run the given analyzers over `objects`; messages come back sorted by file, line and code.
pub fn run(objects: &[Object], opts: &Options, analyzers: &[&dyn Analyzer]) -> Vec<Message> {
    let mut objects = expand_lists(objects);
    if opts.default_ingress && opts.mesh.ingress_controller_mode != "OFF" {
        objects.extend(default_ingress_gateway(&opts.mesh));
    }
    let ctx = Context::new(
        &objects,
        &opts.mesh,
        opts.networks.as_ref(),
        opts.default_namespace.as_deref(),
    );
    let mut out = Vec::new();
    for a in analyzers {
        let start = out.len();
        a.analyze(&ctx, &mut out);
        for m in &mut out[start..] {
            m.analyzer = a.name();
        }
    }
    sort_dedup(&mut out);
    out
}

/// Sort by file, line and code, and drop repeats of the same finding (same code, resource and
/// text), as `istioctl analyze` does.
fn sort_dedup(out: &mut Vec<Message>) {
    out.sort_by(|a, b| {
        (&a.path, a.line, a.code, &a.resource, &a.message).cmp(&(
            &b.path,
            b.line,
            b.code,
            &b.resource,
            &b.message,
        ))
    });
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|m| seen.insert((m.code, m.resource.clone(), m.message.clone())));
}

/// The source name of the stand-in ingress gateway objects.
pub const DEFAULT_INGRESS_SOURCE: &str = "<default ingress gateway>";

/// A Pod labelled `istio: ingressgateway` and its Service (`meshConfig.ingressService`, ports
/// 80, 443, 31400 and 15443) in the root namespace: the default ingress gateway an Istio
/// install provides.
pub fn default_ingress_gateway(mesh: &MeshConfig) -> Vec<Object> {
    let svc = &mesh.ingress_service;
    let ns = &mesh.root_namespace;
    let mut ports = String::new();
    for (name, port) in [
        ("http2", 80),
        ("https", 443),
        ("tcp", 31400),
        ("tls", 15443),
    ] {
        ports.push_str(&format!(
            "  - {{name: {name}, port: {port}, protocol: TCP, targetPort: {port}}}\n"
        ));
    }
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {svc}-dummypod\n  namespace: {ns}\n  labels: {{istio: ingressgateway}}\nspec:\n  containers:\n  - name: istio-proxy\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {svc}\n  namespace: {ns}\nspec:\n  selector: {{istio: ingressgateway}}\n  ports:\n{ports}"
    );
    plexus_api::load_str(&text, DEFAULT_INGRESS_SOURCE).objects
}

/// Kubernetes `List` documents (`kind: List`, `items: [...]`) stand for their items, as
/// `kubectl apply` treats them; items that are not objects are skipped (validation reports
/// them).
pub fn expand_lists(objects: &[Object]) -> Vec<Object> {
    let mut out = Vec::with_capacity(objects.len());
    for obj in objects {
        let items = obj.root.get("items").and_then(|n| n.as_seq());
        match items {
            Some(items) if obj.group.is_empty() && obj.kind == "List" => {
                for item in items {
                    if let Ok(o) = Object::from_node(item.clone(), obj.origin.path.clone()) {
                        out.push(o);
                    }
                }
            }
            _ => out.push(obj.clone()),
        }
    }
    out
}

/// Run every analyzer over `objects` with the mesh config, placing namespace-less objects in
/// `default` as `istioctl analyze` does. This is the analysis the control plane runs too.
pub fn analyze(objects: &[Object], mesh: &MeshConfig) -> Vec<Message> {
    let opts = Options {
        mesh: mesh.clone(),
        networks: None,
        default_namespace: Some("default".into()),
        default_ingress: true,
    };
    run(objects, &opts, &all_analyzers())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyzer_names_are_unique_and_istio_shaped() {
        let names: Vec<&str> = all_analyzers().iter().map(|a| a.name()).collect();
        let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert_eq!(names.len(), 27);
        assert!(names.iter().all(|n| n.contains('.')), "{names:?}");
        assert!(analyzer_by_name("virtualservice.GatewayAnalyzer").is_some());
        assert!(analyzer_by_name("injection.Analyzer").is_none());
    }

    #[test]
    fn lists_expand_and_default_ingress_is_added() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.istio.io/v1\n  kind: Gateway\n  metadata: {name: g, namespace: ns}\n  spec:\n    selector: {istio: ingressgateway}\n    servers:\n    - port: {number: 8080, name: http, protocol: HTTP}\n      hosts: ['*']\n";
        let loaded = plexus_api::load_str(text, "list.yaml");
        let mut opts = Options {
            default_ingress: true,
            ..Options::default()
        };
        let ports = [analyzer_by_name("gateway.IngressGatewayPortAnalyzer").expect("exists")];
        let msgs = run(&loaded.objects, &opts, &ports);
        // The stand-in ingress gateway exists, but does not expose 8080.
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert_eq!(
            (msgs[0].code, msgs[0].resource.as_str()),
            ("IST0162", "Gateway ns/g")
        );
        assert_eq!(msgs[0].line, 10);
        opts.mesh.ingress_controller_mode = "OFF".into();
        let msgs = run(&loaded.objects, &opts, &ports);
        assert_eq!(msgs[0].code, "IST0101", "{msgs:?}");
    }
}
