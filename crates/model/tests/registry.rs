//! Registry building from Kubernetes, Istio and Plexus objects.

use plexus_model::{MeshConfig, Protocol, Registry, ReplicaAddresses, Resolution, Snapshot};

const YAML: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
  - {name: grpc-x, port: 7070, targetPort: grpc}
  - {port: 3306, appProtocol: mysql}
---
apiVersion: plexus.dev/v1alpha1
kind: Workload
metadata: {name: reviews-v1, namespace: default, labels: {app: reviews, version: v1}}
spec:
  replicas: 2
  serviceAccount: bookinfo-reviews
  ports: [{name: grpc, containerPort: 17070}]
---
apiVersion: plexus.dev/v1alpha1
kind: Workload
metadata: {name: other, namespace: prod, labels: {app: reviews}}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [api.example.com, b.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  location: MESH_EXTERNAL
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm, namespace: default}
spec:
  hosts: [vm.internal]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
  resolution: STATIC
  location: MESH_INTERNAL
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: default}
spec: {address: 10.1.1.1, labels: {app: vm}, ports: {http: 9999}, serviceAccount: vm}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  ports: [{name: tcp, port: 5432}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: db, namespace: default}
subsets:
- addresses: [{ip: 10.2.0.1}]
  notReadyAddresses: [{ip: 10.2.0.2}]
  ports: [{name: tcp, port: 15432}]
"#;

#[test]
fn builds_services_workloads_and_membership() {
    let loaded = plexus_api::load_str(YAML, "r.yaml");
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let mut replicas = ReplicaAddresses::default();
    replicas.insert(
        "default",
        "reviews-v1",
        vec!["127.0.0.10".into(), "127.0.0.11".into()],
    );
    replicas.insert("prod", "other", vec!["127.0.0.20".into()]);
    let (reg, diags) = Registry::build(&loaded.objects, &replicas);
    assert!(diags.is_empty(), "{diags:?}");

    let (ri, reviews) = reg
        .services_named("reviews.default.svc.cluster.local")
        .next()
        .expect("reviews");
    let protos: Vec<Protocol> = reviews.ports.iter().map(|p| p.protocol).collect();
    assert_eq!(protos, [Protocol::Http, Protocol::Grpc, Protocol::Mysql]);
    let http: Vec<(&str, u16)> = reg
        .endpoints_of(ri, 9080)
        .iter()
        .map(|e| (e.address.as_str(), e.port))
        .collect();
    // The prod workload has matching labels but another namespace: not a member.
    assert_eq!(http, [("127.0.0.10", 9080), ("127.0.0.11", 9080)]);
    assert_eq!(
        reg.endpoints_of(ri, 7070)[0].port,
        17070,
        "named targetPort"
    );
    let w = &reg.workloads[reg.endpoints_of(ri, 9080)[0].workload];
    assert_eq!(
        (w.name.as_str(), w.service_account.as_str()),
        ("reviews-v1-0", "bookinfo-reviews")
    );

    let ext: Vec<_> = reg
        .services
        .iter()
        .filter(|s| s.source.name == "ext")
        .collect();
    assert_eq!(ext.len(), 2, "one service per host");
    assert_eq!(ext[0].resolution, Resolution::Dns);
    let (ei, _) = reg.services_named("api.example.com").next().expect("ext");
    assert_eq!(reg.endpoints_of(ei, 443)[0].address, "api.example.com");

    let (vi, _) = reg.services_named("vm.internal").next().expect("vm");
    let vm = &reg.endpoints_of(vi, 80)[0];
    assert_eq!(
        (vm.address.as_str(), vm.port),
        ("10.1.1.1", 9999),
        "WE named port wins"
    );

    let (di, _) = reg
        .services_named("db.default.svc.cluster.local")
        .next()
        .expect("db");
    let db = reg.endpoints_of(di, 5432);
    assert_eq!(db.len(), 2);
    assert_eq!(db[0].port, 15432);
    assert!(reg.workloads[db[0].workload].healthy);
    assert!(!reg.workloads[db[1].workload].healthy);
}

#[test]
fn snapshot_orders_config_and_reports_bad_objects() {
    let text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: b, namespace: default}\nspec: {hosts: [x], http: [{route: [{destination: {host: x}}]}]}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a, namespace: default}\nspec: {hosts: [y], http: [{route: [{destination: {host: y}}]}]}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: bad, namespace: default}\nspec: {host: x, bogus: 1}\n";
    let loaded = plexus_api::load_str(text, "c.yaml");
    let (snap, diags) = Snapshot::build(
        "v1",
        &loaded.objects,
        MeshConfig::default(),
        &ReplicaAddresses::default(),
    );
    let names: Vec<&str> = snap
        .config
        .virtual_services
        .iter()
        .map(|c| c.name())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert!(snap.config.destination_rules.is_empty());
    assert_eq!(diags.len(), 1);
    assert!(diags[0].message.contains("bogus"), "{}", diags[0]);
}
