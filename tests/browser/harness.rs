//! Headless Chromium driven through chromedriver: start-up, the skip rule, and the few page
//! actions the scenarios need.
//!
//! Chromium and chromedriver come from the system (Debian's `chromium` and `chromium-driver`);
//! nothing is ever downloaded. Outside CI, a machine without them skips each browser test with a
//! loud line on stderr; with `CI` set, a missing browser fails the test.

use std::{
    ffi::OsStr,
    io::Write,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use crate::common;
use fantoccini::{
    Client, ClientBuilder, Locator,
    actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction},
    elements::Element,
};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::Url;
use serde_json::json;
use tempfile::TempDir;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};
use tower_sessions::cookie::Cookie;

/// How long chromedriver may take to listen, and a page or element to appear.
const PATIENCE: Duration = Duration::from_secs(20);

/// How often to look again while waiting for the browser to arrive somewhere.
const POLL: Duration = Duration::from_millis(25);

/// The flags the issue asks for, plus QUIC off: the browser speaks plain HTTP/1.1 to loopback.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
];

/// A headless Chromium with a fresh profile, and the chromedriver that runs it.
///
/// Dropping it kills chromedriver and the browser it started (one process group) and deletes
/// the profile; [`Browser::close`] ends the session politely first.
pub struct Browser {
    client: Client,
    _driver: Driver,
    _profile: TempDir,
}

impl Browser {
    /// Starts Chromium, or returns `None` after a loud SKIPPED line when it is not installed
    /// and `CI` is not set. With `CI` set, a missing browser panics: CI must run these tests.
    pub async fn start_or_skip() -> Option<Self> {
        // libtest names each test's thread after the test.
        let test = std::thread::current().name().unwrap_or("a browser test").to_owned();
        let (chromium, chromedriver) = match (find_program("chromium"), find_program("chromedriver")) {
            (Some(chromium), Some(chromedriver)) => (chromium, chromedriver),
            (chromium, chromedriver) => {
                let missing: Vec<&str> =
                    [("chromium", chromium.is_none()), ("chromedriver", chromedriver.is_none())]
                        .into_iter()
                        .filter_map(|(name, missing)| missing.then_some(name))
                        .collect();
                let missing = missing.join(" and ");
                assert!(
                    !in_ci(),
                    "{test}: {missing} not found on PATH, and CI is set: install Debian's chromium and \
                     chromium-driver"
                );
                // Straight to stderr: the test harness captures `eprintln!` of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n!!!!! SKIPPED {test}: {missing} not found on PATH. Install Debian's chromium and \
                     chromium-driver to run the browser tests. !!!!!\n"
                );
                return None;
            }
        };
        Some(Self::start(&chromium, &chromedriver).await)
    }

    async fn start(chromium: &Path, chromedriver: &Path) -> Self {
        let driver = Driver::start(chromedriver).await;
        let profile = tempfile::Builder::new().prefix("tower-sovendus-chromium-").tempdir().unwrap();
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|flag| (*flag).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!("an object literal") };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|error| panic!("chromedriver could not start {}: {error}", chromium.display()));
        client.set_window_size(1024, 900).await.unwrap();
        Self { client, _driver: driver, _profile: profile }
    }

    /// Loads `url` as if typed into the address bar.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|error| panic!("loading {url}: {error}"));
    }

    /// Waits for the element `css` to appear on the current page.
    pub async fn find(&self, css: &str) -> Element {
        match self.client.wait().at_most(PATIENCE).for_element(Locator::Css(css)).await {
            Ok(element) => element,
            Err(error) => panic!("no `{css}` on {}: {error}", self.url().await),
        }
    }

    /// Whether the current page, already loaded, has the element `css`. Does not wait.
    pub async fn has(&self, css: &str) -> bool {
        match self.client.find(Locator::Css(css)).await {
            Ok(_) => true,
            Err(error) if error.is_no_such_element() => false,
            Err(error) => panic!("looking for `{css}`: {error}"),
        }
    }

    /// The shop's session cookie as the browser keeps it for the current page's site.
    pub async fn session_cookie(&self) -> Cookie<'static> {
        match self.client.get_named_cookie(common::SESSION_COOKIE).await {
            Ok(cookie) => cookie,
            Err(error) => panic!("no session cookie at {}: {error}", self.url().await),
        }
    }

    /// The visible text of the element `css`, once it is there.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// Clicks the element `css` and waits until the browser shows `path` (path and query).
    pub async fn click_to(&self, css: &str, path: &str) {
        self.find(css).await.click().await.unwrap_or_else(|error| panic!("clicking `{css}`: {error}"));
        self.wait_for_path(path).await;
    }

    /// Waits until the current URL's path and query are `path`.
    pub async fn wait_for_path(&self, path: &str) {
        self.wait_until(path, |current| current == path).await;
    }

    /// Waits until the current URL's path and query satisfy `arrived`; `expected` says what
    /// for the panic message.
    pub async fn wait_until(&self, expected: &str, arrived: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let url = self.url().await;
            if arrived(&path_and_query(&url)) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected to reach {expected}, but the browser shows {url}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Where the browser is now.
    pub async fn url(&self) -> Url {
        self.client.current_url().await.unwrap()
    }

    /// Reloads the current page.
    pub async fn reload(&self) {
        self.client.refresh().await.unwrap();
    }

    /// Double-clicks the element `css` with the mouse, as an impatient visitor does: the second
    /// click follows the first by `interval` (a desktop's double-click time is about 500 ms).
    pub async fn double_click(&self, css: &str, interval: Duration) {
        let element = self.find(css).await;
        let press = || PointerAction::Down { button: MOUSE_BUTTON_LEFT };
        let release = || PointerAction::Up { button: MOUSE_BUTTON_LEFT };
        let mouse = MouseActions::new("mouse".to_owned())
            .then(PointerAction::MoveToElement { element, duration: None, x: 0.0, y: 0.0 })
            .then(press())
            .then(release())
            .pause(interval)
            .then(press())
            .then(release());
        self.client.perform_actions(mouse).await.unwrap();
    }

    /// Saves a PNG of the visible page to `path`, creating its folder.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "the screenshot is not a PNG");
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Ends the WebDriver session (Chromium quits), then stops chromedriver.
    pub async fn close(self) {
        self.client.clone().close().await.unwrap();
    }
}

/// The path and query of `url`, as a link would write them.
pub fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// chromedriver on a free loopback port, in a process group of its own with the browsers it
/// starts, so that dropping it leaves no Chromium behind even when a test panics.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(chromedriver: &Path) -> Self {
        let port = free_loopback_port();
        let mut child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", chromedriver.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        // chromedriver says on stdout when it listens; waiting for that line beats polling.
        let ready = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = lines.next_line().await? {
                if line.contains("started successfully") {
                    return Ok(true);
                }
            }
            Ok::<_, std::io::Error>(false)
        })
        .await;
        match ready {
            Ok(Ok(true)) => {}
            other => panic!("chromedriver did not start on port {port}: {other:?}"),
        }
        // Keep reading its output so that a full pipe never blocks it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and every Chromium process it started. Chromium
        // outlives a chromedriver killed alone.
        let Some(group) = self.child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) else { return };
        // SAFETY: killpg only sends a signal; the group is the one chromedriver was started in,
        // and its leader is our child, not yet reaped (the `Child` still holds it), so the ID
        // cannot have been reused.
        unsafe {
            libc::killpg(group, libc::SIGKILL);
        }
    }
}

/// A loopback port nobody listens on right now.
fn free_loopback_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `name` on the `PATH`, if it is there.
fn find_program(name: impl AsRef<OsStr>) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name.as_ref())).find(|candidate| candidate.is_file())
}

/// Whether we run in CI, where a skipped browser test would hide a broken setup.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}
