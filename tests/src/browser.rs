//! A real headless Chromium for page tests, driven over WebDriver.
//!
//! [`Browser::start`] starts `chromedriver` on a port of its choosing (its log
//! goes to a temp dir and is printed if the test panics), opens a headless
//! Chromium session with a throwaway profile, and hands back a
//! [`fantoccini::Client`]. Chromium and chromedriver come from Debian's
//! `chromium` and `chromium-driver` packages, which `./dev test` installs; if
//! they are missing the test fails and says so — it never passes silently.

use crate::{Proc, workspace_root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Where Debian puts the browser and its driver; override with
/// `CROWDGATE_CHROMIUM` / `CROWDGATE_CHROMEDRIVER`.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromium flags for a quiet, sandbox-free headless run in CI.
pub const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
];

/// A headless Chromium session. Call [`Browser::close`] at the end; dropping
/// it kills chromedriver (and with it the browser) either way.
pub struct Browser {
    pub client: fantoccini::Client,
    /// chromedriver; its log is printed if the test panics.
    pub driver: Proc,
    /// The throwaway profile and the driver's log.
    _dir: TempDir,
}

fn binary(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "{} is missing: run `./dev test`, which installs the Debian packages `chromium` and `chromium-driver` \
         (or `apt-get install -y chromium chromium-driver`; set {env} to use another binary)",
        path.display()
    );
    path
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Browser {
        Browser::start_with(true).await
    }

    /// [`Browser::start`] with JavaScript switched off in the browser's
    /// settings, as a visitor who blocks scripts has it: pages get only
    /// what the server renders (and `<noscript>` content).
    pub async fn start_without_javascript() -> Browser {
        Browser::start_with(false).await
    }

    async fn start_with(javascript: bool) -> Browser {
        let chromium = binary("CROWDGATE_CHROMIUM", CHROMIUM);
        let chromedriver = binary("CROWDGATE_CHROMEDRIVER", CHROMEDRIVER);
        let dir = tempfile::tempdir().expect("temp dir");
        // Port 0: chromedriver binds a free port and says which.
        let mut driver = Proc::spawn(
            "chromedriver",
            Command::new(&chromedriver)
                .arg("--port=0")
                .arg("--allowed-ips=127.0.0.1"),
            dir.path(),
        );
        let port: u16 = driver
            .wait_for_line("the port it listens on", Duration::from_secs(30), |line| {
                let (_, rest) = line.split_once("started successfully on port ")?;
                rest.trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .ok()
            })
            .await
            .unwrap_or_else(|| panic!("chromedriver exited at start:\n{}", driver.log()));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let http = reqwest::Client::new();
        loop {
            assert!(
                !driver.has_exited(),
                "chromedriver exited at start:\n{}",
                driver.log()
            );
            if http
                .get(format!("{url}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on {url} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let profile = dir.path().join("profile");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut capabilities = serde_json::Map::new();
        // 2 = blocked, for every site (Chromium's content setting).
        let prefs = if javascript {
            serde_json::json!({})
        } else {
            serde_json::json!({ "profile.managed_default_content_settings.javascript": 2 })
        };
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": chromium, "args": args, "prefs": prefs }),
        );
        // Prompts stay open until the test accepts or dismisses them itself.
        capabilities.insert(
            "unhandledPromptBehavior".into(),
            serde_json::json!("ignore"),
        );
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(capabilities)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot start a Chromium session: {e}\n{}", driver.log()));
        Browser {
            client,
            driver,
            _dir: dir,
        }
    }

    /// Saves a PNG screenshot as `tests/artifacts/<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("can write the screenshot");
        path
    }

    /// Waits until `css` matches an element whose text satisfies `check`;
    /// returns that text.
    pub async fn wait_for_text(
        &self,
        css: &str,
        within: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = match self.client.find(fantoccini::Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if check(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{css} did not show the expected text within {within:?}; it shows {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `css` matches an element whose text is `text`.
    pub async fn wait_for_exact(&self, css: &str, within: Duration, text: &str) {
        self.wait_for_text(css, within, |shown| shown == text).await;
    }

    /// Clicks the element `css` matches.
    pub async fn click(&self, css: &str) {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Types `text` into the element `css` matches.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    /// Whether the element `css` matches is shown.
    pub async fn is_shown(&self, css: &str) -> bool {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .is_displayed()
            .await
            .unwrap()
    }

    /// Waits (up to 5 s) until the element `css` matches is enabled
    /// (`enabled`) or disabled.
    pub async fn wait_until_enabled(&self, css: &str, enabled: bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let element = self
                .client
                .find(fantoccini::Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("{css}: {e}"));
            if element.is_enabled().await.unwrap() == enabled {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} is not {} within 5 s",
                if enabled { "enabled" } else { "disabled" }
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ends the session and chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.driver.kill();
    }
}

/// `tests/artifacts/` (gitignored), created if needed.
pub fn artifacts_dir() -> PathBuf {
    let dir = workspace_root().join("tests").join("artifacts");
    std::fs::create_dir_all(&dir).expect("can create tests/artifacts");
    dir
}

/// Whether a path exists and is non-empty (for artifact checks).
pub fn non_empty(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}
