//! Semantic validation: the rules Istio's `pkg/config/validation` applies that a CRD schema
//! cannot express (host syntax, exclusive fields, weights, durations, regexes, CIDRs, …),
//! re-implemented from the documented behaviour, plus the Istio 1.5 rules for the legacy kinds
//! and Kubernetes-like rules for Plexus `Workload` and the Kubernetes kinds.
//!
//! Every check works on a typed [`Resource`] and reports through [`Ctx::err`], which builds a
//! diagnostic located at the field's line: `spec.http[0].route: total weight must be …`.

mod authz;
mod destination_rule;
mod extensions;
mod gateway;
mod http_route;
mod legacy;
mod service_entry;
mod sidecar;
pub mod util;
mod virtual_service;
mod workload;

use crate::kinds::Resource;
use crate::object::{Diagnostic, Object};

/// Collects the diagnostics of one object.
pub struct Ctx<'a> {
    pub obj: &'a Object,
    pub out: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    pub fn new(obj: &'a Object) -> Self {
        Ctx {
            obj,
            out: Vec::new(),
        }
    }

    /// An error at `path`, worded `path: message`.
    pub fn err(&mut self, path: &str, message: impl std::fmt::Display) {
        let text = if path.is_empty() {
            message.to_string()
        } else {
            format!("{path}: {message}")
        };
        self.out.push(self.obj.error(path, text));
    }

    /// Report `Err(message)` at `path`.
    pub fn check(&mut self, path: &str, result: Result<(), String>) {
        if let Err(message) = result {
            self.err(path, message);
        }
    }

    /// The namespace the object lives in (`default` when unset).
    pub fn namespace(&self) -> &str {
        self.obj.namespace_or_default()
    }
}

/// Run the semantic checks of `res` (decoded from `obj`).
pub fn check(obj: &Object, res: &Resource) -> Vec<Diagnostic> {
    let mut cx = Ctx::new(obj);
    match res {
        Resource::VirtualService(vs) => virtual_service::check(&mut cx, vs),
        Resource::DestinationRule(dr) => destination_rule::check(&mut cx, dr),
        Resource::Gateway(gw) => gateway::check(&mut cx, gw),
        Resource::ServiceEntry(se) => service_entry::check(&mut cx, se),
        Resource::Sidecar(sc) => sidecar::check(&mut cx, sc),
        Resource::WorkloadEntry(we) => service_entry::check_workload_entry(&mut cx, "spec", we),
        Resource::WorkloadGroup(wg) => service_entry::check_workload_group(&mut cx, wg),
        Resource::EnvoyFilter(ef) => extensions::check_envoy_filter(&mut cx, ef),
        Resource::ProxyConfig(pc) => extensions::check_proxy_config(&mut cx, pc),
        Resource::PeerAuthentication(pa) => authz::check_peer_authentication(&mut cx, pa),
        Resource::RequestAuthentication(ra) => authz::check_request_authentication(&mut cx, ra),
        Resource::AuthorizationPolicy(ap) => authz::check_authorization_policy(&mut cx, ap),
        Resource::Telemetry(t) => extensions::check_telemetry(&mut cx, t),
        Resource::WasmPlugin(w) => extensions::check_wasm_plugin(&mut cx, w),
        Resource::TrafficExtension(t) => extensions::check_traffic_extension(&mut cx, t),
        Resource::ServiceRole(r) => legacy::check_service_role(&mut cx, r),
        Resource::ServiceRoleBinding(b) => legacy::check_service_role_binding(&mut cx, b),
        Resource::RbacConfig(c) | Resource::ClusterRbacConfig(c) => {
            legacy::check_rbac_config(&mut cx, c)
        }
        Resource::Policy(p) => legacy::check_authn_policy(&mut cx, p, false),
        Resource::MeshPolicy(p) => legacy::check_authn_policy(&mut cx, p, true),
        Resource::Service(s) => workload::check_service(&mut cx, s),
        Resource::Endpoints(e) => workload::check_endpoints(&mut cx, e),
        Resource::EndpointSlice(e) => workload::check_endpoint_slice(&mut cx, e),
        Resource::Namespace(_) | Resource::ServiceAccount(_) => {}
        Resource::Secret(s) => {
            if let Err(e) = crate::credential::from_secret(s) {
                cx.err(&e.field, e.message);
            }
        }
        Resource::Workload(w) => workload::check_workload(&mut cx, w),
    }
    cx.out
}

/// Decode `obj` and run its semantic checks; a decode error is the only diagnostic then.
pub fn validate(obj: &Object) -> Vec<Diagnostic> {
    match crate::kinds::decode(obj) {
        Ok(res) => check(obj, &res),
        Err(d) => vec![*d],
    }
}
