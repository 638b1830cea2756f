//! Application variables and the `fermyon:spin/variables` interface.
//!
//! Values are resolved once, at load: each `[variables]` entry takes its value
//! from the host's override map, else from the environment variable
//! `SPIN_VARIABLE_<UPPERCASE_NAME>` (as `spin up` does), else from its
//! `default`; a required variable with no value fails the load. Each
//! component then sees only the variables it maps in
//! `[component.<id>.variables]`, whose templates (`"{{ core_url }}"`,
//! literal text, or a mix) are expanded against the application values.
//! Resolving up front keeps the per-request path a map lookup and turns every
//! configuration mistake into a load error instead of a failed request.
//!
//! Values derived from a `secret` variable are held in [`Value`], whose
//! `Debug` prints `<secret>`, so they cannot leak through logs.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::LoadError;
use crate::bindings::fermyon::spin::variables::{self as wit, Error};
use crate::manifest::VariableDecl;

/// A resolved variable value. `Debug` hides secret values.
#[derive(Clone, PartialEq, Eq)]
pub struct Value {
    text: String,
    secret: bool,
}

impl Value {
    /// The value itself; callers must not log it when [`Value::is_secret`].
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// Whether the value is, or was built from, a secret variable.
    pub fn is_secret(&self) -> bool {
        self.secret
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("<secret>")
        } else {
            fmt::Debug::fmt(&self.text, f)
        }
    }
}

/// Application-level variable values, by name.
#[derive(Debug, Clone, Default)]
pub struct AppVariables {
    values: HashMap<String, Value>,
}

impl AppVariables {
    /// Resolves every declared variable from `overrides`, then `env`
    /// (called with the full `SPIN_VARIABLE_…` name), then its default.
    pub fn resolve(
        decls: &BTreeMap<String, VariableDecl>,
        overrides: &HashMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<AppVariables, LoadError> {
        let mut values = HashMap::new();
        for (name, decl) in decls {
            let env_name = env_var_name(name);
            let text = overrides
                .get(name)
                .cloned()
                .or_else(|| env(&env_name))
                .or_else(|| decl.default.clone());
            let Some(text) = text else {
                return Err(LoadError::MissingVariable {
                    name: name.clone(),
                    env: env_name,
                });
            };
            values.insert(
                name.clone(),
                Value {
                    text,
                    secret: decl.secret,
                },
            );
        }
        Ok(AppVariables { values })
    }

    /// Expands `{{ name }}` placeholders in `template`. The result is secret
    /// if any placeholder named a secret variable.
    pub fn expand(&self, template: &str) -> Result<Value, String> {
        let mut text = String::with_capacity(template.len());
        let mut secret = false;
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            text.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed `{{{{` in `{template}`"))?;
            let name = after[..end].trim();
            let value = self
                .values
                .get(name)
                .ok_or_else(|| format!("`{template}` uses undeclared variable `{name}`"))?;
            text.push_str(&value.text);
            secret |= value.secret;
            rest = &after[end + 2..];
        }
        text.push_str(rest);
        Ok(Value { text, secret })
    }
}

/// The variables one component may read, already expanded.
#[derive(Debug, Clone, Default)]
pub struct ComponentVariables {
    values: HashMap<String, Value>,
}

impl ComponentVariables {
    /// Expands a component's `[component.<id>.variables]` table.
    pub fn resolve(
        component: &str,
        templates: &BTreeMap<String, String>,
        app: &AppVariables,
    ) -> Result<ComponentVariables, LoadError> {
        let mut values = HashMap::new();
        for (name, template) in templates {
            let err = |message: String| LoadError::ComponentConfig {
                id: component.to_string(),
                message: format!("variable `{name}`: {message}"),
            };
            if !is_valid_name(name) {
                return Err(err("invalid name".into()));
            }
            values.insert(name.clone(), app.expand(template).map_err(err)?);
        }
        Ok(ComponentVariables { values })
    }

    /// What `variables.get(name)` returns to the guest.
    pub fn get(&self, name: &str) -> Result<String, Error> {
        if !is_valid_name(name) {
            return Err(Error::InvalidName(name.to_string()));
        }
        match self.values.get(name) {
            Some(v) => Ok(v.text.clone()),
            None => Err(Error::Undefined(format!(
                "no variable for {name:?} is mapped for this component"
            ))),
        }
    }
}

/// Spin's variable-name rule: lowercase ASCII letters, digits and `_`,
/// starting with a letter.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `core_url` → `SPIN_VARIABLE_CORE_URL`.
pub fn env_var_name(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

/// The per-store view that implements the WIT interface.
pub struct VariablesView<'a> {
    /// The calling component's variables.
    pub vars: &'a ComponentVariables,
}

impl wit::Host for VariablesView<'_> {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Error>> {
        Ok(self.vars.get(&name))
    }
}

/// Marker type naming [`VariablesView`] as the host data for `add_to_linker`.
pub struct Variables;

impl wasmtime::component::HasData for Variables {
    type Data<'a> = VariablesView<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decls() -> BTreeMap<String, VariableDecl> {
        let mut d = BTreeMap::new();
        d.insert(
            "core_url".to_string(),
            VariableDecl {
                default: Some("http://127.0.0.1:8080".into()),
                ..Default::default()
            },
        );
        d.insert(
            "key".to_string(),
            VariableDecl {
                required: true,
                secret: true,
                ..Default::default()
            },
        );
        d
    }

    fn env_with_key(name: &str) -> Option<String> {
        (name == "SPIN_VARIABLE_KEY").then(|| "s3cret".to_string())
    }

    #[test]
    fn precedence_is_override_then_env_then_default() {
        let app = AppVariables::resolve(&decls(), &HashMap::new(), env_with_key).unwrap();
        assert_eq!(app.values["core_url"].expose(), "http://127.0.0.1:8080");
        assert_eq!(app.values["key"].expose(), "s3cret");

        let overrides = HashMap::from([("key".to_string(), "over".to_string())]);
        let app = AppVariables::resolve(&decls(), &overrides, env_with_key).unwrap();
        assert_eq!(app.values["key"].expose(), "over");
    }

    #[test]
    fn missing_required_variable_names_the_env_var() {
        let err = AppVariables::resolve(&decls(), &HashMap::new(), |_| None).unwrap_err();
        assert!(err.to_string().contains("SPIN_VARIABLE_KEY"), "{err}");
    }

    #[test]
    fn templates_expand_and_carry_secrecy() {
        let app = AppVariables::resolve(&decls(), &HashMap::new(), env_with_key).unwrap();
        let v = app.expand("{{ core_url }}/api").unwrap();
        assert_eq!(v.expose(), "http://127.0.0.1:8080/api");
        assert!(!v.is_secret());
        let v = app.expand("Bearer {{key}}").unwrap();
        assert_eq!(v.expose(), "Bearer s3cret");
        assert_eq!(format!("{v:?}"), "<secret>");
        assert_eq!(app.expand("plain").unwrap().expose(), "plain");
        assert!(app.expand("{{ nope }}").is_err());
        assert!(app.expand("{{ core_url").is_err());
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let app = AppVariables::resolve(&decls(), &HashMap::new(), env_with_key).unwrap();
        let debug = format!("{app:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("127.0.0.1"), "{debug}");
    }

    #[test]
    fn component_sees_only_mapped_variables() {
        let app = AppVariables::resolve(&decls(), &HashMap::new(), env_with_key).unwrap();
        let templates = BTreeMap::from([("url".to_string(), "{{ core_url }}".to_string())]);
        let vars = ComponentVariables::resolve("c", &templates, &app).unwrap();
        assert_eq!(vars.get("url").unwrap(), "http://127.0.0.1:8080");
        assert!(matches!(vars.get("core_url"), Err(Error::Undefined(_))));
        assert!(matches!(vars.get("Bad-Name"), Err(Error::InvalidName(_))));
    }

    #[test]
    fn names_follow_spin_rules() {
        assert!(is_valid_name("core_url2"));
        assert!(!is_valid_name("Core"));
        assert!(!is_valid_name("2x"));
        assert!(!is_valid_name(""));
        assert_eq!(env_var_name("core_url"), "SPIN_VARIABLE_CORE_URL");
    }
}
