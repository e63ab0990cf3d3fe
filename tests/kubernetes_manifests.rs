//! packaging/kubernetes/: the manifests parse as YAML and carry the fields that matter —
//! the footage claim is its own object (deleting the app keeps the footage), the camera
//! password comes from a Secret mounted as a file that `camera.password_file` names, every
//! `DASHCAM_*` variable is a real configuration key with a valid value, and the Service
//! reaches the container's port. Not run on a cluster (the README says so).

use std::path::PathBuf;

use serde_json::Value;

fn manifest(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/kubernetes")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{name}: not YAML: {e}"))
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for k in path {
        cur = &cur[*k];
    }
    cur.as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string: {cur}"))
}

#[test]
fn footage_claim_secret_deployment_and_service_fit_together() {
    let pvc = manifest("pvc.yaml");
    let secret = manifest("secret.yaml");
    let dep = manifest("deployment.yaml");
    let svc = manifest("service.yaml");
    assert_eq!(s(&pvc, &["kind"]), "PersistentVolumeClaim");
    assert_eq!(s(&secret, &["kind"]), "Secret");
    assert_eq!(s(&dep, &["kind"]), "Deployment");
    assert_eq!(s(&dep, &["apiVersion"]), "apps/v1");
    assert_eq!(s(&svc, &["kind"]), "Service");
    assert!(pvc["spec"]["resources"]["requests"]["storage"].is_string());
    // The Deployment only refers to the claim; it does not own one.
    assert!(dep["spec"]["template"]["spec"]["volumeClaimTemplates"].is_null());
    assert_eq!(dep["spec"]["replicas"], 1);
    assert_eq!(s(&dep, &["spec", "strategy", "type"]), "Recreate");

    let pod = &dep["spec"]["template"]["spec"];
    let labels = &dep["spec"]["template"]["metadata"]["labels"];
    assert_eq!(dep["spec"]["selector"]["matchLabels"], *labels);
    let volumes = pod["volumes"].as_array().expect("volumes");
    let claim = volumes
        .iter()
        .find(|v| v["persistentVolumeClaim"].is_object())
        .expect("a claim volume");
    assert_eq!(
        s(claim, &["persistentVolumeClaim", "claimName"]),
        s(&pvc, &["metadata", "name"])
    );
    let secret_vol = volumes
        .iter()
        .find(|v| v["secret"].is_object())
        .expect("a secret volume");
    assert_eq!(
        s(secret_vol, &["secret", "secretName"]),
        s(&secret, &["metadata", "name"])
    );
    let key = secret["stringData"]
        .as_object()
        .and_then(|m| m.keys().next().cloned())
        .expect("a secret key");

    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let mounts = c["volumeMounts"].as_array().expect("mounts");
    let mount_of = |vol: &Value| {
        mounts
            .iter()
            .find(|m| m["name"] == vol["name"])
            .map(|m| s(m, &["mountPath"]).to_string())
            .expect("mounted")
    };
    let footage_dir = mount_of(claim);
    let secret_dir = mount_of(secret_vol);

    // The environment is the configuration: each variable a key, the whole valid.
    let env: Vec<(String, String)> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            assert!(e["valueFrom"].is_null(), "{e}: secrets go in files");
            (s(e, &["name"]).to_string(), s(e, &["value"]).to_string())
        })
        .collect();
    for (k, v) in &env {
        assert!(!v.contains("change-me"), "{k} carries the password");
    }
    let cfg = dashcam::config::Config::from_toml_and_env("", "deployment.yaml", env.clone())
        .expect("the Deployment's DASHCAM_* environment is a valid configuration");
    let known: Vec<&str> = env
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("DASHCAM_"))
        .collect();
    assert_eq!(known.len(), 6, "{known:?}");
    assert_eq!(cfg.dir, PathBuf::from(&footage_dir));
    assert!(cfg.source.starts_with("rtsp://"));
    // A user name in the URL at most: the password is in the mounted file.
    let authority = cfg.source["rtsp://".len()..]
        .split('/')
        .next()
        .unwrap_or("");
    assert!(!authority.split('@').next().unwrap_or("").contains(':') || !authority.contains('@'));
    assert_eq!(
        cfg.camera.password_file,
        Some(PathBuf::from(format!("{secret_dir}/{key}")))
    );

    // The Service selects the pod and reaches its port.
    assert_eq!(svc["spec"]["selector"], *labels);
    let port = &svc["spec"]["ports"][0];
    let target = s(port, &["targetPort"]);
    assert!(
        c["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .any(|p| p["name"] == target),
        "targetPort {target} is no container port"
    );
}
