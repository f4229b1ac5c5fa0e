//! Every field of every Istio CRD schema (`schema/crd-all.gen.yaml`) exists in the typed model:
//! for each kind, a document that sets every property the schema lists (first enum value,
//! one map entry, one list item) must decode without an unknown-field or type error.

mod common;

use plexus_api::{kinds, load_str};
use serde_json::{Map, Value, json};

/// A value that satisfies `schema`'s type, with every listed property set.
fn maximal(schema: &Value) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if schema.get("x-kubernetes-int-or-string").is_some() {
        return json!(1);
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let fields: Map<String, Value> =
                    props.iter().map(|(k, v)| (k.clone(), maximal(v))).collect();
                Value::Object(fields)
            } else if let Some(values) =
                schema.get("additionalProperties").filter(|v| v.is_object())
            {
                json!({ "k": maximal(values) })
            } else {
                json!({ "free": { "form": 1 } })
            }
        }
        Some("array") => json!([maximal(schema.get("items").unwrap_or(&Value::Null))]),
        Some("integer") => json!(1),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        _ => json!("x"),
    }
}

/// Every property path the schema lists, for the failure report.
fn count_fields(schema: &Value) -> usize {
    let own = schema.get("properties").and_then(Value::as_object);
    let nested = [schema.get("items"), schema.get("additionalProperties")];
    own.map(|p| p.values().map(|v| 1 + count_fields(v)).sum())
        .unwrap_or(0)
        + nested
            .iter()
            .flatten()
            .filter(|v| v.is_object())
            .map(|v| count_fields(v))
            .sum::<usize>()
}

#[test]
fn corpus_every_crd_schema_field_decodes() {
    let path = common::corpus_dir().join("schema/crd-all.gen.yaml");
    let loaded = plexus_api::load_file(&path);
    let (mut kinds_checked, mut fields, mut failures) = (0, 0, Vec::new());
    for crd in &loaded.objects {
        let doc = crd.root.to_json();
        let spec = &doc["spec"];
        let kind = spec["names"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let group = spec["group"].as_str().unwrap_or_default().to_string();
        for version in spec["versions"].as_array().into_iter().flatten() {
            let schema = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
            let name = version["name"].as_str().unwrap_or_default();
            let text = json!({
                "apiVersion": format!("{group}/{name}"),
                "kind": kind,
                "metadata": {"name": "all-fields", "namespace": "ns"},
                "spec": maximal(schema),
            })
            .to_string();
            let objects = load_str(&text, "all-fields.json").objects;
            match objects.first().map(kinds::decode) {
                Some(Ok(_)) => {
                    kinds_checked += 1;
                    fields += count_fields(schema);
                }
                Some(Err(d)) => failures.push(format!("{kind} {name}: {d}")),
                None => failures.push(format!("{kind} {name}: document did not load")),
            }
        }
    }
    println!(
        "corpus crd fields: {kinds_checked} kind versions decode with all {fields} schema fields set"
    );
    assert!(
        kinds_checked >= 30,
        "only {kinds_checked} kind versions checked"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
