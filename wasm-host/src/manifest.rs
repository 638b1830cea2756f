//! Parsing of `spin.toml` (manifest version 2) into plain structs.
//!
//! Only the subset Crowdgate uses is understood: `[application]`,
//! `[variables]`, `[[trigger.http]]` and `[component.<id>]` with `source`,
//! `allowed_outbound_hosts`, `key_value_stores` and `variables`. Unknown keys
//! (for example `[component.<id>.build]`, used by `spin build`) are ignored so
//! the same manifest runs under `spin up` and under this host. Parsing does no
//! I/O besides reading the file, and resolves nothing: variables, routes and
//! the allow-list are interpreted by their own modules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::LoadError;

/// A parsed `spin.toml`.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Directory holding the manifest; relative `source` paths start here.
    pub dir: PathBuf,
    /// `[application] name`, used in logs only.
    pub name: String,
    /// Application variables from `[variables]`, by name.
    pub variables: BTreeMap<String, VariableDecl>,
    /// `[[trigger.http]]` entries in file order.
    pub triggers: Vec<HttpTrigger>,
    /// Components by id.
    pub components: BTreeMap<String, ComponentDecl>,
}

/// One `[variables]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    /// Value used when nothing overrides it.
    #[serde(default)]
    pub default: Option<String>,
    /// Loading fails if no value is supplied for a required variable.
    #[serde(default)]
    pub required: bool,
    /// A secret value is never logged.
    #[serde(default)]
    pub secret: bool,
}

/// One `[[trigger.http]]` entry: a route served by a component.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpTrigger {
    /// Route pattern, e.g. `/hello` or `/api/...`.
    pub route: String,
    /// Id of the component that serves it.
    pub component: String,
}

/// One `[component.<id>]` table.
#[derive(Debug, Clone)]
pub struct ComponentDecl {
    /// Component id (the table key).
    pub id: String,
    /// Absolute path of the `.wasm` file (resolved against the manifest dir).
    pub source: PathBuf,
    /// Allow-list entries for outbound HTTP, possibly holding `{{ var }}` templates.
    pub allowed_outbound_hosts: Vec<String>,
    /// Key-value store labels the component may open.
    pub key_value_stores: Vec<String>,
    /// Component variables: name → template such as `"{{ core_url }}"`.
    pub variables: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: i64,
    #[serde(default)]
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Default, Deserialize)]
struct RawApplication {
    #[serde(default)]
    name: String,
}

#[derive(Default, Deserialize)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<HttpTrigger>,
}

#[derive(Deserialize)]
struct RawComponent {
    source: toml::Value,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

impl Manifest {
    /// Reads and parses the manifest at `path`.
    pub fn from_file(path: &Path) -> Result<Manifest, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::ReadManifest {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut manifest = Manifest::parse(&text, &dir).map_err(|message| LoadError::Manifest {
            path: path.to_path_buf(),
            message,
        })?;
        if let Some(target_dir) = std::env::var_os("CARGO_TARGET_DIR") {
            manifest.redirect_target_dir(&dir, Path::new(&target_dir));
        }
        Ok(manifest)
    }

    /// Sources under `<manifest dir>/target/` point at cargo's build output;
    /// when cargo builds elsewhere (`CARGO_TARGET_DIR`), follow it, as
    /// `spin build` users with a shared target dir would expect.
    pub fn redirect_target_dir(&mut self, manifest_dir: &Path, target_dir: &Path) {
        let default_target = manifest_dir.join("target");
        for component in self.components.values_mut() {
            if let Ok(rest) = component.source.strip_prefix(&default_target) {
                component.source = target_dir.join(rest);
            }
        }
    }

    /// Parses manifest text; relative sources are resolved against `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Manifest, String> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| e.to_string())?;
        if raw.spin_manifest_version != 2 {
            return Err(format!(
                "spin_manifest_version = {} is not supported (expected 2)",
                raw.spin_manifest_version
            ));
        }
        for (name, decl) in &raw.variables {
            if !crate::variables::is_valid_name(name) {
                return Err(format!(
                    "variable name `{name}` is invalid (lowercase letters, digits and `_`, starting with a letter)"
                ));
            }
            if decl.required && decl.default.is_some() {
                return Err(format!(
                    "variable `{name}` cannot be both required and have a default"
                ));
            }
            if !decl.required && decl.default.is_none() {
                return Err(format!(
                    "variable `{name}` must either be required or have a default"
                ));
            }
        }
        let mut components = BTreeMap::new();
        for (id, rc) in raw.component {
            let source = match rc.source {
                toml::Value::String(p) => dir.join(p),
                _ => {
                    return Err(format!(
                        "component `{id}`: only a file path is supported as `source`"
                    ));
                }
            };
            components.insert(
                id.clone(),
                ComponentDecl {
                    id,
                    source,
                    allowed_outbound_hosts: rc.allowed_outbound_hosts,
                    key_value_stores: rc.key_value_stores,
                    variables: rc.variables,
                },
            );
        }
        for trigger in &raw.trigger.http {
            if !components.contains_key(&trigger.component) {
                return Err(format!(
                    "route `{}` names component `{}`, which is not defined",
                    trigger.route, trigger.component
                ));
            }
        }
        Ok(Manifest {
            dir: dir.to_path_buf(),
            name: raw.application.name,
            variables: raw.variables,
            triggers: raw.trigger.http,
            components,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
spin_manifest_version = 2

[application]
name = "crowdgate"

[variables]
core_url = { default = "http://127.0.0.1:8080" }
ticket_key = { required = true, secret = true }

[[trigger.http]]
route = "/..."
component = "waiting-room"

[component.waiting-room]
source = "target/wasm32-wasip2/release/waiting_room.wasm"
allowed_outbound_hosts = ["{{ core_url }}"]
key_value_stores = ["default"]

[component.waiting-room.variables]
core_url = "{{ core_url }}"

[component.waiting-room.build]
command = "cargo build --target wasm32-wasip2 --release"
"#;

    #[test]
    fn parses_the_supported_subset() {
        let m = Manifest::parse(EXAMPLE, Path::new("/app")).unwrap();
        assert_eq!(m.name, "crowdgate");
        assert!(m.variables["ticket_key"].secret);
        assert_eq!(m.triggers[0].route, "/...");
        let c = &m.components["waiting-room"];
        assert_eq!(
            c.source,
            Path::new("/app/target/wasm32-wasip2/release/waiting_room.wasm")
        );
        assert_eq!(c.variables["core_url"], "{{ core_url }}");
        assert_eq!(c.key_value_stores, ["default"]);
    }

    #[test]
    fn sources_under_target_follow_cargo_target_dir() {
        let mut m = Manifest::parse(EXAMPLE, Path::new("/app")).unwrap();
        m.redirect_target_dir(Path::new("/app"), Path::new("/builds/shared"));
        assert_eq!(
            m.components["waiting-room"].source,
            Path::new("/builds/shared/wasm32-wasip2/release/waiting_room.wasm")
        );
        let mut other = Manifest::parse(
            &EXAMPLE.replace("source = \"target/", "source = \"dist/"),
            Path::new("/app"),
        )
        .unwrap();
        other.redirect_target_dir(Path::new("/app"), Path::new("/builds/shared"));
        assert!(
            other.components["waiting-room"]
                .source
                .starts_with("/app/dist")
        );
    }

    #[test]
    fn rejects_other_versions_and_unknown_components() {
        assert!(Manifest::parse("spin_manifest_version = 1", Path::new("/")).is_err());
        let err = Manifest::parse(
            "spin_manifest_version = 2\n[[trigger.http]]\nroute = \"/\"\ncomponent = \"nope\"\n",
            Path::new("/"),
        )
        .unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn variable_needs_default_or_required() {
        let err = Manifest::parse(
            "spin_manifest_version = 2\n[variables]\nx = { secret = true }\n",
            Path::new("/"),
        )
        .unwrap_err();
        assert!(err.contains("`x`"), "{err}");
    }
}
