//! The deployment files say only what the real binary and spin.toml accept.
//!
//! Every file under `deploy/`, the `Dockerfile` and `docs/DEPLOY.md` is read:
//! - each `crowdgate <subcommand> --flag ...` written in them (shell lines,
//!   comments, Markdown) and each Kubernetes container that runs the
//!   `crowdgate` image (its `args`, or a `command` starting with `crowdgate`)
//!   has its subcommand and every `--flag` checked against the `--help` of
//!   the real `crowdgate <subcommand>` (built by `cargo build -p crowdgate`);
//! - each `CROWDGATE_*` variable a container sets must be in the `[env: ...]`
//!   of that container's subcommand's `--help`, and each one named anywhere
//!   must be in some subcommand's (or be one of the few read outside clap);
//!   a `$(VAR)` in `args` must be a variable the container defines;
//! - each `SPIN_VARIABLE_*` and each SpinApp `spec.variables[].name` must be
//!   a variable of spin.toml's `[variables]`, and every required one must be
//!   given to both edges;
//! - the Dockerfile's ENTRYPOINT is `crowdgate` (so a container without a
//!   `command` runs it) and every path it COPYs from the repository exists.
//!
//! YAML is read with `serde_norway`; a file it cannot read is a problem
//! reported with its error, never skipped.
//!
//! The manifests' validity against the Kubernetes API schemas and the
//! SpinApp CRD is checked in [`schemas`].

#[path = "deploy/schemas.rs"]
mod schemas;

use crowdgate_tests::{crowdgate_bin, workspace_root};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Variables `crowdgate` reads without clap (so they are in no `--help`),
/// with the file that reads them: each must still be read there.
const READ_OUTSIDE_CLAP: &[(&str, &str)] = &[("CROWDGATE_LOG_FORMAT", "cli/src/telemetry.rs")];

#[test]
fn deployment_files_use_only_real_flags_variables_and_paths() {
    let root = workspace_root();
    let cli = Cli::load();
    let spin = SpinVariables::load(&root);
    let mut files = Vec::new();
    collect_files(&root.join("deploy"), &mut files);
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("kustomization.yaml")),
        "no deploy/ manifests found under {}",
        root.join("deploy").display()
    );
    files.push(root.join("Dockerfile"));
    files.push(root.join("docs/DEPLOY.md"));

    let mut report = Report::default();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        check_file(&name, &text, &cli, &spin, &mut report);
    }
    check_dockerfile(&root, &mut report);
    for (name, file) in READ_OUTSIDE_CLAP {
        let source = std::fs::read_to_string(root.join(file)).unwrap();
        if !source.contains(&format!("\"{name}\"")) {
            report.problem(
                "tests/tests/deploy.rs",
                format!("{name} is listed as read by {file}, which no longer reads it"),
            );
        }
    }
    // Each part is deployed at least once: a parser that found nothing
    // would otherwise pass.
    for sub in ["core", "settle", "host"] {
        assert!(
            report.containers.contains(sub),
            "no container runs `crowdgate {sub}` in deploy/ (found: {:?})",
            report.containers
        );
    }
    assert!(report.spin_apps > 0, "no SpinApp found in deploy/");
    assert!(
        report.problems.is_empty(),
        "the deployment files name things the binary or spin.toml do not have \
         (binary: {}):\n{}",
        crowdgate_bin().display(),
        report.render()
    );
}

/// A made-up flag, subcommand or variable is reported, in a manifest and in
/// a shell line alike, and real ones are not.
#[test]
fn made_up_flags_and_variables_are_reported() {
    let cli = Cli::load();
    let spin = SpinVariables::load(&workspace_root());
    let manifest = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: worker
spec:
  template:
    spec:
      containers:
        - name: settle
          image: registry.example.com/crowdgate:1
          args: ["settle", "--round", "demo", "--made-up-flag", "1", "--consumer", "$(NOT_DEFINED)"]
          env:
            - name: CROWDGATE_NOT_A_SETTING
              value: "1"
            - name: CROWDGATE_REDIS_URL
              value: redis://redis:6379/
        - name: edge
          image: crowdgate
          args:
            - host
            - --manifest=/app/spin.toml
          env:
            - name: SPIN_VARIABLE_CORE_URLL
              value: http://core
---
apiVersion: core.spinkube.dev/v1alpha1
kind: SpinApp
metadata:
  name: edge
spec:
  image: registry.example.com/edge:1
  executor: containerd-shim-spin
  variables:
    - name: signing_keys
      value: x
    - name: core_urll
      value: http://core
"#;
    let mut report = Report::default();
    check_file("example.yaml", manifest, &cli, &spin, &mut report);
    check_file(
        "example.md",
        "run `crowdgate core --listen 0.0.0.0:8080 --no-such-flag` then\n\
         crowdgate setle --round demo\n\
         the crowdgate namespace holds everything; CROWDGATE_OPS_TOKEN is real\n\
         kubectl -n crowdgate create secret generic x --from-literal=a=b\n\
         kubectl -n crowdgate exec deploy/x -- crowdgate reconcile --round demo --bogus-reconcile\n\
         X=1 Y=2 crowdgate ops --json\n",
        &cli,
        &spin,
        &mut report,
    );
    let all = report.render();
    for expected in [
        "--made-up-flag",
        "$(NOT_DEFINED)",
        "CROWDGATE_NOT_A_SETTING",
        "SPIN_VARIABLE_CORE_URLL",
        "core_urll",
        "--no-such-flag",
        "setle",
        "--bogus-reconcile",
        "`crowdgate ops` needs a subcommand",
        // spin.toml's required `edge_token` is given to neither edge.
        "edge_token",
    ] {
        assert!(all.contains(expected), "{expected} not reported:\n{all}");
    }
    for wrongly in [
        "has no --round",
        "has no --consumer",
        "has no --manifest",
        "has no --listen",
        "has no CROWDGATE_REDIS_URL",
        "CROWDGATE_OPS_TOKEN:",
        "`namespace`",
        "`create`",
        "--from-literal",
    ] {
        assert!(
            !all.contains(wrongly),
            "{wrongly:?} wrongly reported:\n{all}"
        );
    }
}

#[test]
fn a_manifest_that_is_not_yaml_is_reported() {
    let docs = yaml::parse_documents("a: 1\n---\n# only a comment\n---\nb: [x]\n").unwrap();
    assert_eq!(
        docs,
        vec![serde_json::json!({"a": 1}), serde_json::json!({"b": ["x"]})]
    );
    assert!(yaml::parse_documents("a: [1,\n").is_err());
}

// ---------------------------------------------------------------------------
// What the binary accepts

/// `crowdgate`'s subcommands (by path, e.g. `["accounts", "import"]`) and
/// what each one's `--help` lists.
struct Cli {
    helps: BTreeMap<Vec<String>, Help>,
}

#[derive(Default)]
struct Help {
    /// `--flag` → whether it takes a value.
    flags: BTreeMap<String, bool>,
    /// Variables from `[env: NAME=...]`.
    envs: BTreeSet<String>,
    /// Subcommands under this one.
    commands: BTreeSet<String>,
}

impl Cli {
    fn load() -> Cli {
        let mut helps = BTreeMap::new();
        let mut todo = vec![Vec::<String>::new()];
        while let Some(path) = todo.pop() {
            let help = Help::parse(&help_text(&path));
            for command in &help.commands {
                let mut sub = path.clone();
                sub.push(command.clone());
                todo.push(sub);
            }
            helps.insert(path, help);
        }
        assert!(
            helps.contains_key(&vec!["core".to_string()]),
            "`crowdgate --help` lists no `core`: {:?}",
            helps.keys().collect::<Vec<_>>()
        );
        Cli { helps }
    }

    /// Every variable any subcommand reads through clap.
    fn all_envs(&self) -> BTreeSet<String> {
        self.helps.values().flat_map(|h| h.envs.clone()).collect()
    }

    /// Checks one invocation's arguments (after `crowdgate`); returns the
    /// subcommand path it resolved to, if it did.
    fn check_args(&self, args: &[String], mut problem: impl FnMut(String)) -> Option<Vec<String>> {
        let mut path: Vec<String> = Vec::new();
        let mut previous_takes_value = false;
        let mut flags: Vec<&str> = Vec::new();
        for arg in args {
            if arg == "--" {
                break;
            }
            let help = &self.helps[&path];
            if let Some(flag) = arg.strip_prefix("--") {
                let name = format!("--{}", flag.split('=').next().unwrap_or(""));
                flags.push(arg);
                previous_takes_value =
                    !arg.contains('=') && self.find_flag(&path, &name).unwrap_or(false);
                continue;
            }
            if arg.starts_with('-') && arg.len() > 1 {
                previous_takes_value = false;
                continue; // a short flag: clap's -h / -V only
            }
            if previous_takes_value {
                previous_takes_value = false;
                continue;
            }
            if help.commands.is_empty() {
                continue; // a positional value (a file, a number)
            }
            if help.commands.contains(arg) {
                path.push(arg.clone());
            } else {
                problem(format!(
                    "`crowdgate {}` has no subcommand `{arg}` (it has: {})",
                    path.join(" "),
                    help.commands.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
                return None;
            }
        }
        // `crowdgate ops` alone names the group; with flags it is a command.
        if !self.helps[&path].commands.is_empty()
            && !flags.is_empty()
            && !flags.iter().any(|f| is_help(f))
        {
            problem(format!(
                "`crowdgate {}` needs a subcommand (one of: {})",
                path.join(" "),
                self.helps[&path]
                    .commands
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return None;
        }
        for flag in flags {
            let name = flag.split('=').next().unwrap();
            if self.find_flag(&path, name).is_none() {
                problem(format!(
                    "`crowdgate {} --help` has no {name}",
                    path.join(" ")
                ));
            }
        }
        Some(path)
    }

    /// Whether `crowdgate <path> --help` lists `flag`, and if so whether it
    /// takes a value.
    fn find_flag(&self, path: &[String], flag: &str) -> Option<bool> {
        if is_help(flag) {
            return Some(false);
        }
        self.helps[path].flags.get(flag).copied()
    }
}

fn is_help(flag: &str) -> bool {
    flag == "--help" || flag == "--version"
}

/// `crowdgate <path> --help`, run without any CROWDGATE_* of our own
/// environment (clap would print their values).
fn help_text(path: &[String]) -> String {
    let mut command = Command::new(crowdgate_bin());
    command.args(path).arg("--help");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CROWDGATE_") {
            command.env_remove(name);
        }
    }
    let output = command.output().expect("crowdgate runs");
    assert!(
        output.status.success(),
        "`crowdgate {} --help` failed: {}",
        path.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("help is UTF-8")
}

impl Help {
    /// Reads clap's help: option lines start with `--flag` (or `-x, --flag`),
    /// a value is `<VALUE>` after the flag, variables are `[env: NAME=...]`
    /// (or `[env: NAME]` for hidden values), subcommands are the indented
    /// names under `Commands:`.
    fn parse(text: &str) -> Help {
        let mut help = Help::default();
        let mut in_commands = false;
        for line in text.lines() {
            if line.trim().is_empty() {
                in_commands = false;
                continue;
            }
            if line.starts_with("Commands:") {
                in_commands = true;
                continue;
            }
            if in_commands {
                if let Some(name) = line
                    .strip_prefix("  ")
                    .and_then(|l| l.split_whitespace().next())
                    && name != "help"
                {
                    help.commands.insert(name.to_string());
                }
                continue;
            }
            let mut option = line.trim_start();
            if option.starts_with('-') && option.get(2..4) == Some(", ") {
                option = &option[4..];
            }
            if option.starts_with("--") {
                let mut words = option.split_whitespace();
                let flag = words.next().unwrap();
                let takes_value = words.next().is_some_and(|w| w.starts_with('<'));
                help.flags.insert(flag.to_string(), takes_value);
            }
        }
        let mut rest = text;
        while let Some(at) = rest.find("[env: ") {
            rest = &rest[at + 6..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            help.envs.insert(name);
        }
        help
    }
}

/// spin.toml's `[variables]`: name → required (no default).
struct SpinVariables(BTreeMap<String, bool>);

impl SpinVariables {
    fn load(root: &Path) -> SpinVariables {
        let manifest = crowdgate_wasm_host::manifest::Manifest::from_file(&root.join("spin.toml"))
            .expect("spin.toml loads");
        SpinVariables(
            manifest
                .variables
                .iter()
                .map(|(name, decl)| (name.clone(), decl.required && decl.default.is_none()))
                .collect(),
        )
    }

    fn required(&self) -> impl Iterator<Item = &String> {
        self.0.iter().filter(|(_, req)| **req).map(|(name, _)| name)
    }
}

// ---------------------------------------------------------------------------
// Checking files

#[derive(Default)]
struct Report {
    problems: BTreeSet<(String, String)>,
    /// Subcommands some container runs.
    containers: BTreeSet<String>,
    spin_apps: usize,
}

impl Report {
    fn problem(&mut self, file: &str, what: String) {
        self.problems.insert((file.to_string(), what));
    }

    fn render(&self) -> String {
        self.problems
            .iter()
            .map(|(file, what)| format!("  {file}: {what}\n"))
            .collect()
    }
}

fn collect_files(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, into);
        } else {
            into.push(path);
        }
    }
}

fn check_file(name: &str, text: &str, cli: &Cli, spin: &SpinVariables, report: &mut Report) {
    let mut checked_envs = BTreeSet::new();
    if name.ends_with(".yaml") || name.ends_with(".yml") {
        match yaml::parse_documents(text) {
            Ok(docs) => {
                for doc in &docs {
                    check_document(name, doc, cli, spin, report, &mut checked_envs);
                }
            }
            Err(err) => report.problem(name, format!("cannot read the YAML: {err}")),
        }
    }
    check_text(name, text, cli, spin, report, &checked_envs);
}

/// Shell lines, comments and prose: `crowdgate <sub> --flags` and the
/// variable names written anywhere.
fn check_text(
    name: &str,
    text: &str,
    cli: &Cli,
    spin: &SpinVariables,
    report: &mut Report,
    already_checked: &BTreeSet<String>,
) {
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    for line in joined.lines() {
        for args in crowdgate_invocations(line) {
            let looks_like_a_command = args.iter().any(|a| a.starts_with("--"));
            let first = &args[0];
            let known =
                cli.helps[&Vec::<String>::new()].commands.contains(first) || first.starts_with('-');
            if !known && !looks_like_a_command {
                continue; // prose: "the crowdgate namespace"
            }
            let mut problems = Vec::new();
            cli.check_args(&args, |p| problems.push(p));
            for p in problems {
                report.problem(name, format!("`crowdgate {}`: {p}", args.join(" ")));
            }
        }
    }
    let known = cli.all_envs();
    for var in words_with_prefix(text, "CROWDGATE_") {
        if already_checked.contains(&var)
            || READ_OUTSIDE_CLAP.iter().any(|(n, _)| *n == var)
            || known.contains(&var)
            || (var.ends_with('_') && known.iter().any(|k| k.starts_with(&var)))
        {
            continue;
        }
        report.problem(
            name,
            format!("{var}: no `crowdgate` subcommand reads it (in no --help's [env: ...])"),
        );
    }
    for var in words_with_prefix(text, "SPIN_VARIABLE_") {
        let variable = var["SPIN_VARIABLE_".len()..].to_ascii_lowercase();
        if variable.is_empty()
            || spin.0.contains_key(&variable)
            || (variable.ends_with('_') && spin.0.keys().any(|k| k.starts_with(&variable)))
        {
            continue;
        }
        report.problem(
            name,
            format!("{var}: spin.toml has no variable `{variable}`"),
        );
    }
}

/// The arguments after each `crowdgate` run as a command in `line`: the
/// word `crowdgate` (alone, or at the end of a path) where a command starts
/// (the line's or a comment's start, after `|`, `;`, `&&`, `--`, a backtick,
/// a quote, `exec`, ... or `NAME=value` assignments), followed by a space;
/// up to the end of the shell command (`|`, `;`, `&&`, a backtick, a
/// bracket, a redirection or a comment). `kubectl -n crowdgate ...` and
/// "the crowdgate namespace" are not commands.
fn crowdgate_invocations(line: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = line[from..].find("crowdgate") {
        let start = from + at;
        let end = start + "crowdgate".len();
        from = end;
        let before = line[..start].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || "_-.:@$".contains(c)) {
            continue;
        }
        if !line[end..].starts_with([' ', '\t']) {
            continue;
        }
        // The word's own token may be a path (/usr/local/bin/crowdgate).
        let token_start = line[..start]
            .rfind(|c: char| c.is_whitespace() || "`\"'(|;".contains(c))
            .map_or(0, |i| i + 1);
        if !line[token_start..start]
            .chars()
            .all(|c| c == '/' || c == '.' || c.is_ascii_alphanumeric() || c == '_' || c == '-')
            || !at_command_start(&line[..token_start])
        {
            continue;
        }
        let rest = &line[end..];
        let stop = rest
            .char_indices()
            .find(|&(i, c)| {
                "|;`()<>".contains(c)
                    || rest[i..].starts_with("&&")
                    || (c == '#' && rest[..i].ends_with([' ', '\t']))
            })
            .map_or(rest.len(), |(i, _)| i);
        let args: Vec<String> = rest[..stop]
            .split_whitespace()
            .map(|w| w.trim_matches(|c| "\"',[]".contains(c)).to_string())
            .filter(|w| !w.is_empty())
            .collect();
        if !args.is_empty() {
            found.push(args);
        }
    }
    found
}

/// Whether a command may start right after `before`.
fn at_command_start(before: &str) -> bool {
    let mut words: Vec<&str> = before.split_whitespace().collect();
    // `VAR=value VAR2=value crowdgate ...`
    while words.last().is_some_and(|w| {
        w.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    }) {
        words.pop();
    }
    let Some(last) = words.last() else {
        return true;
    };
    const STARTERS: &[&str] = &[
        "|", "||", ";", "&&", "&", "--", "#", "$", ">", "exec", "sudo", "env", "xargs", "then",
        "do", "else", "time", "watch",
    ];
    STARTERS.contains(last) || last.ends_with(['`', '"', '\'', '(', '|', ';', '#'])
}

/// Every `PREFIX[A-Z0-9_]*` word in `text`.
fn words_with_prefix(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        if text[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        let word: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        words.insert(word);
    }
    words
}

/// Kubernetes objects: containers that run `crowdgate`, and SpinApps.
fn check_document(
    name: &str,
    doc: &Value,
    cli: &Cli,
    spin: &SpinVariables,
    report: &mut Report,
    checked_envs: &mut BTreeSet<String>,
) {
    if doc["kind"] == "SpinApp" {
        report.spin_apps += 1;
        let spec = &doc["spec"];
        for field in ["image", "executor"] {
            if spec[field].as_str().is_none_or(str::is_empty) {
                report.problem(name, format!("SpinApp without spec.{field}"));
            }
        }
        let given: BTreeSet<&str> = spec["variables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str())
            .collect();
        for variable in &given {
            if !spin.0.contains_key(*variable) {
                report.problem(
                    name,
                    format!("SpinApp variable `{variable}`: spin.toml has no such variable"),
                );
            }
        }
        for required in spin.required() {
            if !given.contains(required.as_str()) {
                report.problem(
                    name,
                    format!("SpinApp does not set spin.toml's required variable `{required}`"),
                );
            }
        }
    }
    let mut containers = Vec::new();
    find_containers(doc, &mut containers);
    for container in containers {
        check_container(name, container, cli, spin, report, checked_envs);
    }
}

fn find_containers<'a>(value: &'a Value, into: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "containers" || key == "initContainers" {
                    into.extend(child.as_array().into_iter().flatten());
                } else {
                    find_containers(child, into);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| find_containers(i, into)),
        _ => {}
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        })
        .collect()
}

fn check_container(
    name: &str,
    container: &Value,
    cli: &Cli,
    spin: &SpinVariables,
    report: &mut Report,
    checked_envs: &mut BTreeSet<String>,
) {
    let label = format!("container `{}`", container["name"].as_str().unwrap_or("?"));
    let image = container["image"].as_str().unwrap_or("");
    let image_name = image.split('@').next().unwrap().rsplit('/').next().unwrap();
    let image_name = image_name.split(':').next().unwrap();
    let command = strings(&container["command"]);
    let args = strings(&container["args"]);
    // The Dockerfile's ENTRYPOINT runs `crowdgate` (checked below).
    let invocation: Vec<String> = match command.first() {
        Some(program) if program.rsplit('/').next() == Some("crowdgate") => {
            command[1..].iter().chain(&args).cloned().collect()
        }
        Some(_) => return, // another program; shell lines are read as text
        None if image_name == "crowdgate" => args,
        None => return,
    };
    let env: Vec<&Value> = container["env"].as_array().into_iter().flatten().collect();
    let env_names: BTreeSet<&str> = env.iter().filter_map(|e| e["name"].as_str()).collect();
    if container.get("envFrom").is_some() {
        report.problem(
            name,
            format!("{label}: envFrom hides which variables it sets; list them under env"),
        );
    }
    if invocation.is_empty() {
        report.problem(
            name,
            format!("{label}: runs `crowdgate` with no subcommand"),
        );
        return;
    }
    let mut problems = Vec::new();
    let path = cli.check_args(&invocation, |p| problems.push(p));
    for p in problems {
        report.problem(name, format!("{label}: {p}"));
    }
    for arg in &invocation {
        let mut rest = arg.as_str();
        while let Some(at) = rest.find("$(") {
            let Some(close) = rest[at..].find(')') else {
                break;
            };
            let var = &rest[at + 2..at + close];
            if !env_names.contains(var) {
                report.problem(
                    name,
                    format!("{label}: `$({var})` in args, but the container defines no {var} (Kubernetes would pass it literally)"),
                );
            }
            rest = &rest[at + close..];
        }
    }
    let Some(path) = path else { return };
    let sub = path.join(" ");
    report.containers.insert(sub.clone());
    let help = &cli.helps[&path];
    for var in &env_names {
        if var.starts_with("CROWDGATE_") {
            checked_envs.insert(var.to_string());
            if !help.envs.contains(*var) && !READ_OUTSIDE_CLAP.iter().any(|(n, _)| n == var) {
                report.problem(
                    name,
                    format!("{label}: `crowdgate {sub} --help` has no {var}"),
                );
            }
        }
        if let Some(variable) = var.strip_prefix("SPIN_VARIABLE_") {
            let variable = variable.to_ascii_lowercase();
            checked_envs.insert(var.to_string());
            if !spin.0.contains_key(&variable) {
                report.problem(
                    name,
                    format!("{label}: {var}: spin.toml has no variable `{variable}`"),
                );
            }
        }
    }
    if sub == "host" {
        for required in spin.required() {
            let var = format!("SPIN_VARIABLE_{}", required.to_ascii_uppercase());
            if !env_names.contains(var.as_str()) {
                report.problem(
                    name,
                    format!("{label}: does not set {var} (spin.toml's required `{required}`)"),
                );
            }
        }
    }
}

/// ENTRYPOINT runs `crowdgate`; every COPY source from the build context
/// exists.
fn check_dockerfile(root: &Path, report: &mut Report) {
    let text = std::fs::read_to_string(root.join("Dockerfile")).expect("a Dockerfile");
    let text = text.replace("\\\n", " ");
    let mut entrypoint = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().map(|w| w.to_ascii_uppercase()).as_deref() {
            Some("ENTRYPOINT") => entrypoint = Some(words[1..].join(" ")),
            Some("COPY") | Some("ADD") => {
                if words.iter().any(|w| w.starts_with("--from=")) {
                    continue;
                }
                let operands: Vec<&str> = words[1..]
                    .iter()
                    .copied()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                for source in &operands[..operands.len().saturating_sub(1)] {
                    if !root.join(source).exists() {
                        report.problem(
                            "Dockerfile",
                            format!("COPY {source}: no such path in the repository"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    if entrypoint.as_deref() != Some(r#"["crowdgate"]"#) {
        report.problem(
            "Dockerfile",
            format!(
                "ENTRYPOINT is {entrypoint:?}, not [\"crowdgate\"]: manifests that run the image \
                 without a command rely on it"
            ),
        );
    }
}

// ---------------------------------------------------------------------------

/// YAML documents as JSON values, through `serde_norway` (a maintained
/// serde_yaml); a document that is only comments is left out.
mod yaml {
    use serde::Deserialize;
    use serde_json::Value;

    pub fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
        let mut docs = Vec::new();
        for doc in serde_norway::Deserializer::from_str(text) {
            let value = Value::deserialize(doc).map_err(|e| e.to_string())?;
            if !value.is_null() {
                docs.push(value);
            }
        }
        Ok(docs)
    }
}
