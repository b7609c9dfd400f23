//! Harness for the end-to-end tests: starts the real worker under `wrangler dev` (workerd) and a
//! real browser (Chromium via chromedriver), each in its own process group, stopped on drop.
//!
//! The worker must be built first (`scripts/build.sh`); the tests never build it themselves.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for `wrangler dev` to answer `/healthz` (it runs the no-op build twice first).
const WRANGLER_READY_TIMEOUT: Duration = Duration::from_secs(120);
const CHROMEDRIVER_READY_TIMEOUT: Duration = Duration::from_secs(30);

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repo")
        .to_path_buf()
}

/// A free TCP port on loopback (bound and released; good enough for a test process).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process started in its own process group; the whole group is stopped on drop.
struct ProcessGroup {
    child: Child,
}

impl ProcessGroup {
    fn spawn(mut command: Command) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt;
        command.process_group(0).stdin(Stdio::null());
        Ok(Self {
            child: command.spawn()?,
        })
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let group = -(self.child.id() as i32);
        // SIGTERM lets wrangler stop workerd; SIGKILL whatever is left after a grace period.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.exited().is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Polls `url` until it answers 2xx, the process exits, or `timeout` passes.
async fn wait_ready(
    url: &str,
    process: &mut ProcessGroup,
    timeout: Duration,
    log: &Path,
) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(res) = client.get(url).send().await {
            if res.status().is_success() {
                return Ok(());
            }
        }
        let tail = || {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        };
        if let Some(status) = process.exited() {
            return Err(format!(
                "process exited ({status}) before {url} answered; log tail:\n{}",
                tail()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{url} did not answer within {timeout:?}; log tail:\n{}",
                tail()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A copy of the built worker (`edge/build`) and its static files (`public/`) in `dir`, with
/// `wrangler.toml` minus its `[build]` table: a run serves the worker as it was built when the
/// run started. Neither an edit to a watched source file nor a rebuild in the checkout (another
/// run, a developer) reloads it mid-check, which would drop its isolate's memory.
fn test_config(root: &Path, dir: &Path) -> Result<PathBuf, String> {
    let source = std::fs::read_to_string(root.join("wrangler.toml"))
        .map_err(|e| format!("wrangler.toml: {e}"))?;
    let mut kept = Vec::new();
    let mut in_build = false;
    for line in source.lines() {
        let header = line.trim_start().starts_with('[');
        if header {
            in_build = line.trim() == "[build]";
        }
        if !in_build {
            kept.push(line);
        }
    }
    for tree in ["edge/build", "public"] {
        copy_tree(&root.join(tree), &dir.join(tree)).map_err(|e| format!("copying {tree}: {e}"))?;
    }
    let path = dir.join("wrangler.toml");
    std::fs::write(&path, kept.join("\n") + "\n")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The storefront worker under `wrangler dev --local`, with fresh state and a random admin token.
pub struct WranglerDev {
    pub base_url: String,
    pub admin_token: String,
    pub state_dir: PathBuf,
    _process: ProcessGroup,
    // After the process (fields drop in order): the worker copy goes, the state and log stay.
    _worker_copy: RemovedOnDrop,
}

/// A directory removed when this is dropped.
struct RemovedOnDrop(PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl WranglerDev {
    /// Starts the worker; `vars` become `--var NAME:VALUE` (e.g. the origin's URL and token).
    pub async fn start(vars: &[(&str, &str)]) -> Result<Self, String> {
        let root = repo_root();
        let shim = root.join("edge/build/worker/shim.mjs");
        if !shim.exists() {
            return Err(format!(
                "{} is missing: run scripts/build.sh first",
                shim.display()
            ));
        }
        let wrangler = root.join("node_modules/.bin/wrangler");
        if !wrangler.exists() {
            return Err("node_modules/.bin/wrangler is missing: run scripts/setup.sh".into());
        }
        let port = free_port();
        let state_dir =
            std::env::temp_dir().join(format!("edge-shop-e2e-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&state_dir).map_err(|e| e.to_string())?;
        let log_path = state_dir.join("wrangler.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let admin_token = format!(
            "e2e-{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let worker_copy = RemovedOnDrop(state_dir.join("worker"));
        let config = test_config(&root, &worker_copy.0)?;
        let mut command = Command::new(wrangler);
        command
            .current_dir(&root)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true")
            .env("NO_COLOR", "1")
            .args([
                "dev",
                "--local",
                "--ip",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .args([
                "--inspector-port",
                "0",
                "--show-interactive-dev-session=false",
            ])
            .arg("--config")
            .arg(&config)
            .arg("--persist-to")
            .arg(state_dir.join("state"))
            .args(["--var", &format!("ADMIN_TOKEN:{admin_token}")])
            .args(
                vars.iter()
                    .flat_map(|(name, value)| ["--var".to_string(), format!("{name}:{value}")]),
            )
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        let mut process =
            ProcessGroup::spawn(command).map_err(|e| format!("cannot start wrangler: {e}"))?;
        let base_url = format!("http://127.0.0.1:{port}");
        wait_ready(
            &format!("{base_url}/healthz"),
            &mut process,
            WRANGLER_READY_TIMEOUT,
            &log_path,
        )
        .await?;
        Ok(Self {
            base_url,
            admin_token,
            state_dir,
            _process: process,
            _worker_copy: worker_copy,
        })
    }
}

/// The origin server, in this process: its SQLite data in a temp dir, its HTTP side on a port
/// that can be taken down and brought back (an outage) without losing the data.
pub struct OriginServer {
    pub base_url: String,
    pub token: String,
    addr: std::net::SocketAddr,
    origin: std::sync::Arc<origin::server::Origin>,
    serving: Option<tokio::task::JoinHandle<()>>,
    _background: Vec<tokio::task::JoinHandle<()>>,
}

impl OriginServer {
    pub async fn start() -> Result<Self, String> {
        let port = free_port();
        let data_dir =
            std::env::temp_dir().join(format!("edge-shop-origin-{}-{port}", std::process::id()));
        let token = format!("origin-{port}-{}", std::process::id());
        let config = origin::server::OriginConfig {
            data_dir,
            catalog: None,
            token: Some(token.clone()),
        };
        let origin = std::sync::Arc::new(
            origin::server::Origin::open(config)
                .await
                .map_err(|e| e.to_string())?,
        );
        let background = origin.spawn_background();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut server = Self {
            base_url: format!("http://{addr}"),
            token,
            addr,
            origin,
            serving: None,
            _background: background,
        };
        server.resume().await?;
        Ok(server)
    }

    /// Stops answering HTTP (connections are refused); the data stays.
    pub fn outage(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
    }

    /// Answers HTTP again on the same address.
    pub async fn resume(&mut self) -> Result<(), String> {
        let router = self.origin.router();
        self.serve(router).await
    }

    /// Answers as usual, except that order intake (`POST /internal/orders`) refuses every
    /// order with 422 and a reason: a refusal a retry cannot change, until [`Self::resume`].
    pub async fn refuse_orders(&mut self) -> Result<(), String> {
        let refuse = || async {
            (
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "order intake is refusing orders (test)",
            )
        };
        let router = axum::Router::new()
            .route("/internal/orders", axum::routing::post(refuse))
            .fallback_service(self.origin.router());
        self.serve(router).await
    }

    async fn serve(&mut self, router: axum::Router) -> Result<(), String> {
        self.outage();
        // The aborted listener may take a moment to release the port.
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(e) if tries >= 50 => {
                    return Err(format!("origin cannot listen on {}: {e}", self.addr))
                }
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        self.serving = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        }));
        Ok(())
    }
}

impl Drop for OriginServer {
    fn drop(&mut self) {
        self.outage();
    }
}

/// chromedriver driving Debian's Chromium, headless.
pub struct Browser {
    pub client: fantoccini::Client,
    _driver: ProcessGroup,
    // After the driver (fields drop in order): Chromium is gone before its profile is removed.
    _profile: RemovedOnDrop,
}

impl Browser {
    pub async fn start() -> Result<Self, String> {
        let port = free_port();
        let log_path = std::env::temp_dir().join(format!("edge-shop-chromedriver-{port}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let mut command = Command::new("chromedriver");
        command
            .arg(format!("--port={port}"))
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        let mut driver = ProcessGroup::spawn(command)
            .map_err(|e| format!("cannot start chromedriver ({e}): run scripts/setup.sh test"))?;
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(
            &format!("{url}/status"),
            &mut driver,
            CHROMEDRIVER_READY_TIMEOUT,
            &log_path,
        )
        .await?;

        // A new, empty profile per browser: a reused one (the same port in an earlier run)
        // would bring that run's cookies, e.g. a shopper's history, into a "new visitor".
        let profile =
            std::env::temp_dir().join(format!("edge-shop-chromium-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir(&profile)
            .map_err(|e| format!("cannot create {}: {e}", profile.display()))?;
        let profile = RemovedOnDrop(profile);
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.0.display()),
                ]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&url)
            .await
            .map_err(|e| format!("cannot open a Chromium session: {e}"))?;
        Ok(Self {
            client,
            _driver: driver,
            _profile: profile,
        })
    }
}

/// Which host the end-to-end suite runs the storefront on: `E2E_HOST=spin` for the Spin build
/// under the test host (`tests/spin-host`), anything else (or unset) for `wrangler dev`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeHost {
    Wrangler,
    Spin,
}

impl EdgeHost {
    pub fn from_env() -> Self {
        match std::env::var("E2E_HOST").as_deref() {
            Ok("spin") => EdgeHost::Spin,
            _ => EdgeHost::Wrangler,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EdgeHost::Wrangler => "wrangler dev",
            EdgeHost::Spin => "spin-test-host",
        }
    }
}

/// The storefront under test, on either host: what the checks need is its base URL and its
/// admin token.
pub struct Edge {
    pub host: EdgeHost,
    pub base_url: String,
    pub admin_token: String,
    _running: EdgeProcess,
}

enum EdgeProcess {
    Wrangler(#[allow(dead_code)] WranglerDev),
    Spin(#[allow(dead_code)] SpinHost),
}

impl Edge {
    /// Starts the storefront on `host`; `vars` are its configuration (the origin's URL and token).
    pub async fn start(host: EdgeHost, vars: &[(&str, &str)]) -> Result<Self, String> {
        Ok(match host {
            EdgeHost::Wrangler => {
                let dev = WranglerDev::start(vars).await?;
                Self {
                    host,
                    base_url: dev.base_url.clone(),
                    admin_token: dev.admin_token.clone(),
                    _running: EdgeProcess::Wrangler(dev),
                }
            }
            EdgeHost::Spin => {
                let spin = SpinHost::start(vars).await?;
                Self {
                    host,
                    base_url: spin.base_url.clone(),
                    admin_token: spin.admin_token.clone(),
                    _running: EdgeProcess::Spin(spin),
                }
            }
        })
    }
}

/// The Spin build of the storefront (`edge/spin`) under the test-only Spin host, configured as
/// `spin.toml` declares it: the `default` key-value store, outbound HTTP only to the origin,
/// `public/pkg` and `public/images` as the file server components serve them.
pub struct SpinHost {
    pub base_url: String,
    pub admin_token: String,
    _process: ProcessGroup,
}

/// The file server components of `spin.toml`: route prefix, directory, `CACHE_CONTROL` (the
/// same as `public/_headers` gives them on Cloudflare). `tests/tests/spin_component.rs` checks
/// that `spin.toml` declares these.
pub const SPIN_FILES: &[(&str, &str, &str)] = &[
    ("/pkg/", "public/pkg", "public, max-age=31536000, immutable"),
    (
        "/images/",
        "public/images",
        "public, max-age=86400, stale-while-revalidate=604800",
    ),
];

/// Longest wait for the Spin host to compile the component and answer `/healthz`.
const SPIN_READY_TIMEOUT: Duration = Duration::from_secs(120);

impl SpinHost {
    /// The component and the host binary, as `scripts/build.sh spin` leaves them.
    pub fn artifacts() -> (PathBuf, PathBuf) {
        let root = repo_root();
        (
            root.join("target/spin/wasm32-wasip2/release/edge_spin.wasm"),
            root.join("target/spin-host/bin/spin-test-host"),
        )
    }

    pub async fn start(vars: &[(&str, &str)]) -> Result<Self, String> {
        let root = repo_root();
        let (component, host) = Self::artifacts();
        for path in [&component, &host] {
            if !path.exists() {
                return Err(format!(
                    "{} is missing: run scripts/build.sh spin and scripts/spin-test-host.sh first",
                    path.display()
                ));
            }
        }
        let port = free_port();
        let log_path =
            std::env::temp_dir().join(format!("edge-shop-spin-{}-{port}.log", std::process::id()));
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let admin_token = format!(
            "e2e-spin-{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let mut command = Command::new(host);
        command
            .current_dir(&root)
            .arg("--wasm")
            .arg(&component)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--kv-store",
                "default",
            ])
            .args(["--env", &format!("ADMIN_TOKEN={admin_token}")])
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        for (route, dir, cache_control) in SPIN_FILES {
            command.args(["--files", &format!("{route}={dir};{cache_control}")]);
        }
        for (name, value) in vars {
            command.args(["--env", &format!("{name}={value}")]);
            if *name == "ORIGIN_URL" {
                command.args(["--allow-outbound", value]);
            }
        }
        let mut process =
            ProcessGroup::spawn(command).map_err(|e| format!("cannot start the Spin host: {e}"))?;
        let base_url = format!("http://127.0.0.1:{port}");
        wait_ready(
            &format!("{base_url}/healthz"),
            &mut process,
            SPIN_READY_TIMEOUT,
            &log_path,
        )
        .await?;
        Ok(Self {
            base_url,
            admin_token,
            _process: process,
        })
    }
}

/// Polls `probe` every 100 ms until it says `true`; an error names `what` after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if probe().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the first element matching `css`.
pub async fn click(c: &fantoccini::Client, css: &str) -> Result<(), String> {
    // An element found just as its page is replaced goes stale: find it again on the new one.
    for _ in 0..3 {
        let element = c
            .find(fantoccini::Locator::Css(css))
            .await
            .map_err(|e| format!("{css}: {e}"))?;
        match element.click().await {
            Err(e) if e.is_stale_element_reference() => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            clicked => return clicked.map_err(|e| format!("click {css}: {e}")),
        }
    }
    Err(format!("click {css}: the element went stale three times"))
}

/// Runs `script` in the page and returns its value.
pub async fn js(c: &fantoccini::Client, script: &str) -> Result<serde_json::Value, String> {
    c.execute(script, vec![]).await.map_err(|e| e.to_string())
}

/// Waits until the storefront page has hydrated (the app marks `<body data-hydrated>`).
pub async fn wait_hydrated(c: &fantoccini::Client) -> Result<(), String> {
    wait_for("hydration", Duration::from_secs(20), || async {
        Ok(
            js(c, "return document.body.dataset.hydrated === 'true'").await?
                == serde_json::json!(true),
        )
    })
    .await
}
