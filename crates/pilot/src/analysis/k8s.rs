//! The parts of Kubernetes kinds the analyzers read (Service, Pod, Deployment, Namespace,
//! Secret, ConfigMap, Gateway API kinds), decoded leniently: these kinds are not validated by
//! Plexus, so unknown fields are simply not read.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::context::{Context, Entry, group};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceSpec {
    pub ports: Vec<ServicePort>,
    pub selector: BTreeMap<String, String>,
    #[serde(rename = "type")]
    pub type_: String,
    pub external_name: String,
    #[serde(rename = "clusterIP")]
    pub cluster_ip: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServicePort {
    pub name: String,
    pub port: i64,
    pub protocol: String,
    pub app_protocol: String,
    /// An integer or a named port.
    pub target_port: Option<Value>,
}

impl ServicePort {
    /// The target port as a number, defaulting to `port` when absent; `None` for a named port.
    pub fn target_number(&self) -> Option<i64> {
        match &self.target_port {
            None | Some(Value::Null) => Some(self.port),
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            Some(_) => None,
        }
    }

    /// The target port as written (number or name), `port` when absent.
    pub fn target_display(&self) -> String {
        match &self.target_port {
            None | Some(Value::Null) => self.port.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpec {
    pub containers: Vec<Container>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    pub ports: Vec<ContainerPort>,
    pub env: Vec<EnvVar>,
    pub args: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerPort {
    pub container_port: i64,
    pub name: String,
    pub protocol: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct EnvVar {
    pub name: String,
    pub value: Option<String>,
}

/// `spec.template` of a Deployment.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DeploymentSpec {
    pub selector: Option<LabelSelector>,
    pub template: PodTemplate,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PodTemplate {
    pub metadata: TemplateMeta,
    pub spec: PodSpec,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct TemplateMeta {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
}

/// A Secret's payload: `data` (base64) and `stringData` (plain), and its `type`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Secret {
    pub data: BTreeMap<String, String>,
    pub string_data: BTreeMap<String, String>,
    #[serde(rename = "type")]
    pub type_: String,
}

/// A Gateway API Gateway's listeners.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct K8sGatewaySpec {
    pub gateway_class_name: String,
    pub listeners: Vec<K8sListener>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct K8sListener {
    pub name: String,
    pub hostname: Option<String>,
    pub port: i64,
    pub protocol: String,
}

/// Pods of the input, with their effective namespace.
pub fn pods<'c, 'a>(ctx: &'c Context<'a>) -> &'c [Entry<'a>] {
    ctx.of(group::CORE, "Pod")
}

/// Services of the input.
pub fn services<'c, 'a>(ctx: &'c Context<'a>) -> &'c [Entry<'a>] {
    ctx.of(group::CORE, "Service")
}
