//! Every Kubernetes manifest under `deploy/` is valid against the Kubernetes
//! API schemas, and the SpinApp against the spin-operator's CRD.
//!
//! The objects checked are what `kubectl apply -k` would send: each
//! kustomization's output, rendered here for the fields our kustomizations
//! use (`resources`, `namespace`, `images`, `configMapGenerator`; any other
//! field is reported, not ignored), and the objects of every other YAML file
//! under `deploy/` (`secret.example.yaml`). Files that are not Kubernetes
//! objects are listed in [`NOT_MANIFESTS`]; a new one must be added there.
//!
//! The schemas are checked by `tests/manifest-schemas/validate.py`, run in
//! a virtualenv that `./dev test` installs (`tests/manifest-schemas/
//! requirements.txt`): the strict schemas of `kubernetes-validate` for each
//! of [`KUBERNETES_VERSIONS`], and the vendored CRDs of [`CRDS`]. Strict as
//! `kubectl apply` is: a field the schema does not name is an error. Without
//! that virtualenv (or with an outdated one) the test fails and says how to
//! install it.

use super::{Report, collect_files, yaml};
use crowdgate_tests::{target_dir, workspace_root};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Kubernetes minor versions whose API schemas every object is checked
/// against: from 1.30 (raise it once no cluster we deploy to runs it) to
/// the newest that kubernetes-validate 1.37.0 ships.
const KUBERNETES_VERSIONS: &[&str] = &[
    "1.30", "1.31", "1.32", "1.33", "1.34", "1.35", "1.36", "1.37",
];

/// CustomResourceDefinitions that custom resources are checked against
/// (vendored: deploy/schemas/README.md says from where).
const CRDS: &[&str] = &["deploy/schemas/core.spinkube.dev_spinapps.yaml"];

/// YAML files under `deploy/` that are not Kubernetes objects, and what
/// they are instead.
const NOT_MANIFESTS: &[(&str, &str)] = &[(
    "deploy/helm/redis-values.yaml",
    "values for the Bitnami redis chart (rendered by helm, which needs the chart)",
)];

/// Where the schemas are vendored; not manifests of ours.
const SCHEMAS_DIR: &str = "deploy/schemas";

#[test]
fn manifests_are_valid_against_the_kubernetes_and_spinapp_schemas() {
    let root = workspace_root();
    let validator = Validator::installed();
    let mut report = Report::default();
    let manifests = deploy_manifests(&root, &mut report);
    // Each part, both edges and the generated round ConfigMap are among
    // what is checked: a reader that found nothing would otherwise pass.
    let kinds: BTreeSet<String> = manifests
        .iter()
        .map(|m| format!("{} {}", m.object["kind"], m.object["metadata"]["name"]).replace('"', ""))
        .collect();
    for expected in [
        "Deployment crowdgate-core",
        "Deployment crowdgate-settle",
        "Deployment crowdgate-edge",
        "StatefulSet crowdgate-redis",
        "SpinApp crowdgate-edge",
        "ConfigMap crowdgate-round",
        "Secret crowdgate-secrets",
    ] {
        assert!(
            kinds.contains(expected),
            "{expected} is not among the objects checked: {kinds:?}"
        );
    }
    validator.check(&manifests, &crds(&root), &mut report);
    assert!(
        report.problems.is_empty(),
        "manifests under deploy/ that a cluster would refuse:\n{}",
        report.render()
    );
}

/// A broken object is reported with its file, kind, name and the field, an
/// unknown kind and a kustomization field the renderer does not apply too;
/// the objects around them are not.
#[test]
fn a_manifest_that_breaks_a_schema_is_reported_by_file_and_field() {
    let validator = Validator::installed();
    let documents = yaml::parse_documents(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: core
spec:
  selector:
    matchLabels: {app: core}
  template:
    metadata:
      labels: {app: core}
    spec:
      containers:
        - name: core
          image: crowdgate
          imagePullPolice: Always
          ports:
            - containerPort: "8080"
---
apiVersion: v1
kind: Service
metadata:
  name: fine
spec:
  selector: {app: core}
  ports:
    - port: 8080
---
apiVersion: apps/v1
kind: Deploymnt
metadata:
  name: typo
---
apiVersion: core.spinkube.dev/v1alpha1
kind: SpinApp
metadata:
  name: edge-with-typos
spec:
  replica: 3
  executor: containerd-shim-spin
  image: registry.example.com/edge:1
  variables:
    - name: signing_keys
      valueFrom:
        secretKeyRef:
          nmae: crowdgate-secrets
          key: signing-keys
"#,
    )
    .unwrap();
    let manifests: Vec<Manifest> = documents
        .into_iter()
        .map(|object| Manifest {
            origin: "deploy/broken.yaml".into(),
            object,
        })
        .collect();
    let mut report = Report::default();
    validator.check(&manifests, &crds(&workspace_root()), &mut report);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "resources: []\npatches:\n  - path: p.yaml\n",
    )
    .unwrap();
    render(dir.path(), dir.path(), &mut BTreeSet::new(), &mut report);

    let all = report.render();
    let every_version = format!("(Kubernetes {})", KUBERNETES_VERSIONS.join(", "));
    for expected in [
        format!(
            "deploy/broken.yaml: Deployment core: \
             spec.template.spec.containers[0].imagePullPolice: unknown field {every_version}"
        ),
        format!(
            "deploy/broken.yaml: Deployment core: \
             spec.template.spec.containers[0].ports[0].containerPort: \
             '8080' is not of type 'integer' {every_version}"
        ),
        format!(
            "deploy/broken.yaml: Deploymnt typo: kind: no Deploymnt in apps/v1 {every_version}"
        ),
        "deploy/broken.yaml: SpinApp edge-with-typos: spec.replica: unknown field \
         (CRD spinapps.core.spinkube.dev v1alpha1)"
            .to_string(),
        "deploy/broken.yaml: SpinApp edge-with-typos: spec.variables[0].valueFrom.secretKeyRef.nmae: \
         unknown field (CRD spinapps.core.spinkube.dev v1alpha1)"
            .to_string(),
        "kustomization.yaml: `patches` is not applied by this test".to_string(),
    ] {
        assert!(
            all.contains(&expected),
            "not reported: {expected}\nin:\n{all}"
        );
    }
    assert!(
        !all.contains("Service fine"),
        "a valid object was reported:\n{all}"
    );
}

// ---------------------------------------------------------------------------
// What `kubectl apply` would send

/// One object to check, and the file it comes from.
struct Manifest {
    /// The file under `deploy/` (or the kustomization that generated it).
    origin: String,
    object: Value,
}

impl Manifest {
    /// `Deployment crowdgate-core`
    fn label(&self) -> String {
        format!(
            "{} {}",
            self.object["kind"].as_str().unwrap_or("(no kind)"),
            self.object["metadata"]["name"]
                .as_str()
                .unwrap_or("(no name)")
        )
    }
}

/// Every kustomization's output and every other manifest under `deploy/`.
fn deploy_manifests(root: &Path, report: &mut Report) -> Vec<Manifest> {
    let mut files = Vec::new();
    collect_files(&root.join("deploy"), &mut files);
    files.retain(|f| {
        f.extension().is_some_and(|e| e == "yaml" || e == "yml")
            && !f.starts_with(root.join(SCHEMAS_DIR))
    });
    files.sort();
    let mut manifests = Vec::new();
    let mut rendered = BTreeSet::new();
    for file in &files {
        if file.file_name().is_some_and(|n| n == "kustomization.yaml") {
            let dir = file.parent().unwrap();
            manifests.extend(render(root, dir, &mut rendered, report));
        }
    }
    for (name, _) in NOT_MANIFESTS {
        assert!(
            files.contains(&root.join(name)),
            "{name} is listed in NOT_MANIFESTS but does not exist"
        );
    }
    for file in &files {
        let name = relative(root, file);
        if rendered.contains(file) || file.ends_with("kustomization.yaml") {
            continue;
        }
        let not_a_manifest = NOT_MANIFESTS.iter().any(|(n, _)| *n == name);
        for object in read_documents(&name, file, report) {
            match (not_a_manifest, object.get("kind").is_some()) {
                (false, true) => manifests.push(Manifest {
                    origin: name.clone(),
                    object,
                }),
                (false, false) => report.problem(
                    &name,
                    "a document without `kind`: not a Kubernetes object (if it is not meant \
                     to be one, list the file in NOT_MANIFESTS in tests/tests/deploy/schemas.rs)"
                        .into(),
                ),
                (true, true) => report.problem(
                    &name,
                    "has a Kubernetes object, but is listed in NOT_MANIFESTS (so is not checked)"
                        .into(),
                ),
                (true, false) => {}
            }
        }
    }
    manifests
}

/// The output of the kustomization in `dir`, as `kubectl kustomize` builds
/// it for the fields handled here; any other field is reported. The files
/// it reads are added to `used`. Generated ConfigMaps keep their plain name
/// (kustomize appends a hash of the content; no schema checks a name).
fn render(
    root: &Path,
    dir: &Path,
    used: &mut BTreeSet<PathBuf>,
    report: &mut Report,
) -> Vec<Manifest> {
    let file = dir.join("kustomization.yaml");
    let name = relative(root, &file);
    let Some(kustomization) = read_documents(&name, &file, report).into_iter().next() else {
        report.problem(&name, "an empty kustomization".into());
        return Vec::new();
    };
    used.insert(file.clone());
    let mut objects = Vec::new();
    let empty = serde_json::Map::new();
    let fields = kustomization.as_object().unwrap_or(&empty);
    for (field, value) in fields {
        match field.as_str() {
            "apiVersion" | "kind" | "namespace" | "images" => {}
            "resources" => {
                for resource in value.as_array().into_iter().flatten() {
                    let path = normalize(&dir.join(resource.as_str().unwrap_or_default()));
                    if path.join("kustomization.yaml").is_file() {
                        objects.extend(render(root, &path, used, report));
                    } else if path.is_file() {
                        let origin = relative(root, &path);
                        used.insert(path.clone());
                        for object in read_documents(&origin, &path, report) {
                            objects.push(Manifest {
                                origin: origin.clone(),
                                object,
                            });
                        }
                    } else {
                        report.problem(
                            &name,
                            format!("resource {resource}: no such file or kustomization"),
                        );
                    }
                }
            }
            "configMapGenerator" => {
                for generator in value.as_array().into_iter().flatten() {
                    if let Some(object) = generate_config_map(dir, generator, &name, used, report) {
                        objects.push(Manifest {
                            origin: format!("{name} (configMapGenerator)"),
                            object,
                        });
                    }
                }
            }
            other => report.problem(
                &name,
                format!(
                    "`{other}` is not applied by this test (tests/tests/deploy/schemas.rs, \
                     `render`): teach it, so that what is checked is what kubectl applies"
                ),
            ),
        }
    }
    if let Some(namespace) = fields.get("namespace").and_then(Value::as_str) {
        for manifest in &mut objects {
            let kind = manifest.object["kind"].as_str().unwrap_or_default();
            // Cluster-scoped kinds have no namespace.
            if !matches!(
                kind,
                "Namespace"
                    | "CustomResourceDefinition"
                    | "ClusterRole"
                    | "ClusterRoleBinding"
                    | "PersistentVolume"
                    | "StorageClass"
                    | "PriorityClass"
            ) {
                manifest.object["metadata"]["namespace"] = json!(namespace);
            }
        }
    }
    for image in fields
        .get("images")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for manifest in &mut objects {
            set_image(&mut manifest.object, image);
        }
    }
    objects
}

/// A `configMapGenerator` entry's ConfigMap: `files` (`path` or
/// `key=path`) and `literals` (`key=value`).
fn generate_config_map(
    dir: &Path,
    generator: &Value,
    name: &str,
    used: &mut BTreeSet<PathBuf>,
    report: &mut Report,
) -> Option<Value> {
    let mut data = serde_json::Map::new();
    for (field, value) in generator.as_object()? {
        let entries = value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        match field.as_str() {
            "name" => {}
            "files" => {
                for entry in entries {
                    let (key, path) = entry
                        .split_once('=')
                        .unwrap_or_else(|| (entry.rsplit('/').next().unwrap(), entry));
                    let path = normalize(&dir.join(path));
                    match std::fs::read_to_string(&path) {
                        Ok(text) => {
                            used.insert(path);
                            data.insert(key.to_string(), json!(text));
                        }
                        Err(e) => {
                            report.problem(name, format!("configMapGenerator file {entry}: {e}"))
                        }
                    }
                }
            }
            "literals" => {
                for entry in entries {
                    let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
                    data.insert(key.to_string(), json!(value));
                }
            }
            other => {
                report.problem(
                    name,
                    format!("configMapGenerator `{other}` is not applied by this test (tests/tests/deploy/schemas.rs)"),
                );
            }
        }
    }
    Some(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": generator["name"]},
        "data": data,
    }))
}

/// kustomize's `images` entry: every container image named `name` (with
/// or without a tag or digest) gets `newName`, `newTag` or `digest`.
fn set_image(value: &mut Value, image: &Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key != "containers" && key != "initContainers" {
                    set_image(child, image);
                    continue;
                }
                for container in child.as_array_mut().into_iter().flatten() {
                    let Some(current) = container["image"].as_str() else {
                        continue;
                    };
                    // The name is what comes before a digest, or before a tag
                    // (a `:` after the last `/`; one before it is a port).
                    let (base, suffix) = match current.split_once('@') {
                        Some((base, _)) => (base, &current[base.len()..]),
                        None => match current.rfind(':').filter(|&i| !current[i..].contains('/')) {
                            Some(i) => (&current[..i], &current[i..]),
                            None => (current, ""),
                        },
                    };
                    if Some(base) != image["name"].as_str() {
                        continue;
                    }
                    let name = image["newName"].as_str().unwrap_or(base);
                    let new = if let Some(digest) = image["digest"].as_str() {
                        format!("{name}@{digest}")
                    } else if let Some(tag) = image["newTag"].as_str() {
                        format!("{name}:{tag}")
                    } else {
                        format!("{name}{suffix}")
                    };
                    container["image"] = json!(new);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| set_image(i, image)),
        _ => {}
    }
}

/// A YAML file's documents; one that cannot be read is a problem.
fn read_documents(name: &str, file: &Path, report: &mut Report) -> Vec<Value> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            report.problem(name, format!("cannot read: {e}"));
            return Vec::new();
        }
    };
    yaml::parse_documents(&text).unwrap_or_else(|e| {
        report.problem(name, format!("cannot read the YAML: {e}"));
        Vec::new()
    })
}

/// `a/b/../c` as `a/c`, so that a file reached through an overlay's `../base`
/// has one name.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn relative(root: &Path, file: &Path) -> String {
    file.strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string()
}

/// The vendored CRDs.
fn crds(root: &Path) -> Vec<Value> {
    CRDS.iter()
        .flat_map(|name| {
            let text = std::fs::read_to_string(root.join(name))
                .unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
            yaml::parse_documents(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The schema check

/// `tests/manifest-schemas/validate.py` and the virtualenv it runs in.
struct Validator {
    python: PathBuf,
    script: PathBuf,
}

impl Validator {
    /// The virtualenv `./dev test` installed, holding exactly the packages of
    /// `requirements.txt` (it keeps a copy of the file it installed from);
    /// panics saying how to install it otherwise.
    fn installed() -> Validator {
        let dir = workspace_root().join("tests/manifest-schemas");
        let venv = target_dir().join("tools/manifest-schemas");
        let python = venv.join("bin/python");
        let wanted = std::fs::read_to_string(dir.join("requirements.txt")).unwrap();
        let installed = std::fs::read_to_string(venv.join("requirements.txt")).ok();
        assert!(
            python.is_file() && installed.as_deref() == Some(wanted.as_str()),
            "the manifest schema validator is {} in {}: run `./dev setup tests` \
             (or `./dev test`), which makes that virtualenv with python3 -m venv and \
             installs tests/manifest-schemas/requirements.txt into it",
            if python.is_file() {
                "outdated"
            } else {
                "not installed"
            },
            venv.display()
        );
        Validator {
            python,
            script: dir.join("validate.py"),
        }
    }

    /// Reports each problem as `file: Kind name: field.path: message
    /// (Kubernetes 1.30, 1.31, ...)`, one line for all the versions that
    /// share it.
    fn check(&self, manifests: &[Manifest], crds: &[Value], report: &mut Report) {
        let request = json!({
            "kubernetes": KUBERNETES_VERSIONS,
            "crds": crds,
            "objects": manifests.iter().map(|m| &m.object).collect::<Vec<_>>(),
        });
        let mut child = Command::new(&self.python)
            .arg(&self.script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.python.display()));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(request.to_string().as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{} failed ({}): {}",
            self.script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let problems: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{} printed no JSON ({e}): {}",
                self.script.display(),
                String::from_utf8_lossy(&output.stdout)
            )
        });
        // (file, object, field, message) → what it was checked against
        // (one object may be checked more than once: base/ and each overlay)
        let mut grouped: BTreeMap<(String, String, String, String), BTreeSet<String>> =
            BTreeMap::new();
        for problem in &problems {
            let manifest = &manifests[problem["object"].as_u64().unwrap() as usize];
            let against = problem["against"].as_str().unwrap().to_string();
            grouped
                .entry((
                    manifest.origin.clone(),
                    manifest.label(),
                    problem["path"].as_str().unwrap().to_string(),
                    problem["message"].as_str().unwrap().to_string(),
                ))
                .or_default()
                .insert(against);
        }
        for ((file, label, path, message), against) in grouped {
            report.problem(
                &file,
                format!("{label}: {path}: {message} ({})", versions(&against)),
            );
        }
    }
}

/// `Kubernetes 1.30, 1.31` from `["Kubernetes 1.30", "Kubernetes 1.31"]`.
fn versions(against: &BTreeSet<String>) -> String {
    let kubernetes: Vec<&str> = against
        .iter()
        .filter_map(|a| a.strip_prefix("Kubernetes "))
        .collect();
    let mut parts: Vec<String> = against
        .iter()
        .filter(|a| !a.starts_with("Kubernetes "))
        .cloned()
        .collect();
    if !kubernetes.is_empty() {
        parts.insert(0, format!("Kubernetes {}", kubernetes.join(", ")));
    }
    parts.join("; ")
}
