//! A test-only host for the Spin build of the storefront (`edge/spin`): just enough of Spin to
//! run our component in the end-to-end suite on a machine where the Spin CLI cannot be installed.
//! Not a product and not a Spin clone.
//!
//! What it provides, as Spin 3.x does for an HTTP component:
//! - the component's export `wasi:http/incoming-handler@0.2.x`, served over HTTP/1.1 on
//!   `--listen`, one fresh instance per request (Spin's model too);
//! - `wasi:cli`, `wasi:io`, `wasi:clocks`, `wasi:random` (wasmtime-wasi), with the component's
//!   `environment` from `--env KEY=VALUE`;
//! - `wasi:http/outgoing-handler`, only to the `--allow-outbound http://host:port` origins
//!   (Spin's `allowed_outbound_hosts`); anything else is refused with `HTTP-request-denied`;
//! - `fermyon:spin/key-value@2.0.0` (Spin's published WIT, vendored in `wit/`), in memory, for the
//!   store labels given by `--kv-store` (Spin's `key_value_stores`; `default` when none given).
//!   Values live as long as the process, shared by every request;
//! - Spin's file server components (`spin_static_fs` in `spin.toml`), as `--files
//!   PREFIX=DIR[;CACHE-CONTROL]`: a request under `PREFIX` is a file of `DIR`.
//!
//! Everything else Spin offers (variables, SQLite, Redis, ...) is absent: a component that
//! imports it fails to instantiate here, which is what we want; the import check in
//! `tests/tests/spin_component.rs` compares the component against Spin's full world.
//!
//! Its own workspace and lock: wasmtime's few hundred crates stay out of the shop's
//! `Cargo.lock`, and `scripts/spin-test-host.sh` builds it once per version (a hash of this
//! crate's files) into a cache outside the work tree, reused by later runs and fresh clones.
//!
//! ```sh
//! spin-test-host --wasm target/spin/wasm32-wasip2/release/edge_spin.wasm --listen 127.0.0.1:3000 \
//!   --allow-outbound http://127.0.0.1:8080 --env ORIGIN_URL=http://127.0.0.1:8080 --env ADMIN_TOKEN=t
//! ```
//! prints `listening on http://127.0.0.1:3000` once it accepts requests.

use anyhow::{bail, Context as _};
use hyper::server::conn::http1;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use wasmtime::component::{Component, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

mod spin {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "fermyon:spin/kv",
        with: { "fermyon:spin/key-value.store": super::OpenStore },
    });
}

use spin::fermyon::spin::key_value::{self, Error as KvError};

/// What the command line asked for.
struct Options {
    wasm: String,
    listen: String,
    env: Vec<(String, String)>,
    /// `scheme://host:port` prefixes outbound requests may go to.
    allow_outbound: Vec<String>,
    kv_stores: Vec<String>,
    /// Route prefix, directory and Cache-Control: what Spin's file server components serve.
    files: Vec<StaticFiles>,
}

/// `--files PREFIX=DIR[;CACHE-CONTROL]`: requests under `PREFIX` are files of `DIR`, as a
/// `spin_static_fs` component routed at `PREFIX...` with `CACHE_CONTROL` serves them.
struct StaticFiles {
    prefix: String,
    dir: std::path::PathBuf,
    cache_control: Option<String>,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        wasm: String::new(),
        listen: "127.0.0.1:3000".into(),
        env: Vec::new(),
        allow_outbound: Vec::new(),
        kv_stores: Vec::new(),
        files: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--wasm" => options.wasm = value,
            "--listen" => options.listen = value,
            "--env" => {
                let (key, value) = value.split_once('=').context("--env takes KEY=VALUE")?;
                options.env.push((key.into(), value.into()));
            }
            "--allow-outbound" => options.allow_outbound.push(value.trim_end_matches('/').into()),
            "--kv-store" => options.kv_stores.push(value),
            "--files" => {
                let (route, cache_control) = match value.split_once(';') {
                    Some((route, cache)) => (route, Some(cache.to_owned())),
                    None => (value.as_str(), None),
                };
                let (prefix, dir) = route.split_once('=').context("--files takes PREFIX=DIR[;CACHE-CONTROL]")?;
                options.files.push(StaticFiles { prefix: prefix.into(), dir: dir.into(), cache_control });
            }
            _ => bail!("unknown flag {flag} (--wasm, --listen, --env, --allow-outbound, --kv-store, --files)"),
        }
    }
    if options.wasm.is_empty() {
        bail!("usage: spin-test-host --wasm COMPONENT.wasm [--listen ADDR] [--env K=V]... [--allow-outbound URL]... [--kv-store LABEL]...");
    }
    if options.kv_stores.is_empty() {
        options.kv_stores.push("default".into());
    }
    Ok(options)
}

/// The key-value stores, by label: what every request's instance sees.
type Stores = Arc<HashMap<String, Arc<Mutex<HashMap<String, Vec<u8>>>>>>;

/// An open `store` resource: the label's map.
pub struct OpenStore {
    map: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

/// Per-request state of one instance.
struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutboundHooks,
    stores: Stores,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Outbound requests only to the allowed origins, as Spin's `allowed_outbound_hosts`.
struct OutboundHooks {
    allowed: Arc<Vec<String>>,
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn std::future::Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<
                        dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>>
                            + Send,
                    >,
                )>,
            > + Send,
    > {
        let uri = request.uri();
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map(|a| a.as_str()).unwrap_or("")
        );
        if !self.allowed.iter().any(|allowed| *allowed == origin) {
            eprintln!(
                "spin-test-host: outbound request to {origin} denied (not in --allow-outbound)"
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied.into()) });
        }
        _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
            ))
        })
    }
}

impl key_value::Host for Host {}

impl key_value::HostStore for Host {
    fn open(&mut self, label: String) -> Result<Resource<OpenStore>, KvError> {
        let Some(map) = self.stores.get(&label) else {
            return Err(KvError::NoSuchStore);
        };
        self.table
            .push(OpenStore { map: map.clone() })
            .map_err(|_| KvError::StoreTableFull)
    }

    fn get(&mut self, store: Resource<OpenStore>, key: String) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.map(&store)?.lock().unwrap().get(&key).cloned())
    }

    fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KvError> {
        self.map(&store)?.lock().unwrap().insert(key, value);
        Ok(())
    }

    fn delete(&mut self, store: Resource<OpenStore>, key: String) -> Result<(), KvError> {
        self.map(&store)?.lock().unwrap().remove(&key);
        Ok(())
    }

    fn exists(&mut self, store: Resource<OpenStore>, key: String) -> Result<bool, KvError> {
        Ok(self.map(&store)?.lock().unwrap().contains_key(&key))
    }

    fn get_keys(&mut self, store: Resource<OpenStore>) -> Result<Vec<String>, KvError> {
        Ok(self.map(&store)?.lock().unwrap().keys().cloned().collect())
    }

    fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl Host {
    fn map(
        &self,
        store: &Resource<OpenStore>,
    ) -> Result<Arc<Mutex<HashMap<String, Vec<u8>>>>, KvError> {
        self.table
            .get(store)
            .map(|open| open.map.clone())
            .map_err(|e| KvError::Other(e.to_string()))
    }
}

/// Everything a request needs to get its own instance.
struct Server {
    pre: ProxyPre<Host>,
    options: Options,
    allowed: Arc<Vec<String>>,
    stores: Stores,
}

impl Server {
    fn store(&self) -> Store<Host> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr().inherit_stdout();
        for (key, value) in &self.options.env {
            wasi.env(key, value);
        }
        Store::new(
            self.pre.engine(),
            Host {
                wasi: wasi.build(),
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                hooks: OutboundHooks {
                    allowed: self.allowed.clone(),
                },
                stores: self.stores.clone(),
            },
        )
    }

    async fn handle(
        self: Arc<Self>,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> anyhow::Result<hyper::Response<HyperOutgoingBody>> {
        if let Some(files) = self
            .options
            .files
            .iter()
            .find(|f| request.uri().path().starts_with(&f.prefix))
        {
            return Ok(static_file(files, request.uri().path()));
        }
        let mut store = self.store();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let request = wt(store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request))?;
        let out = wt(store.data_mut().http().new_response_outparam(sender))?;
        let pre = self.pre.clone();
        // The instance runs in its own task: it may go on writing the body after the headers.
        let task = tokio::task::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, out)
                .await
        });
        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => bail!("the component answered with an error: {code:?}"),
            Err(_) => match task.await {
                Ok(Ok(())) => bail!("the component never set a response"),
                Ok(Err(e)) => bail!("the component trapped: {e:?}"),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// wasmtime's own error type as an `anyhow` one (with its chain of causes).
fn wt<T>(result: wasmtime::Result<T>) -> anyhow::Result<T> {
    result.map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// A file of `files` for `path`, or 404 (also for any path that tries to leave the directory).
fn static_file(files: &StaticFiles, path: &str) -> hyper::Response<HyperOutgoingBody> {
    use http_body_util::BodyExt;
    let relative = &path[files.prefix.len()..];
    let safe = !relative
        .split('/')
        .any(|part| part == ".." || part.starts_with('.'));
    let body = |bytes: Vec<u8>| {
        http_body_util::Full::new(bytes::Bytes::from(bytes))
            .map_err(|never| match never {})
            .boxed_unsync()
    };
    let file = if safe {
        std::fs::read(files.dir.join(relative.trim_start_matches('/'))).ok()
    } else {
        None
    };
    let Some(bytes) = file else {
        let mut response = hyper::Response::new(body(b"not found".to_vec()));
        *response.status_mut() = hyper::StatusCode::NOT_FOUND;
        return response;
    };
    let content_type = match relative.rsplit('.').next().unwrap_or("") {
        "js" | "mjs" => "text/javascript",
        "wasm" => "application/wasm",
        "css" => "text/css",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "json" => "application/json",
        "html" => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    };
    let mut response = hyper::Response::new(body(bytes));
    response
        .headers_mut()
        .insert("content-type", http::HeaderValue::from_static(content_type));
    if let Some(cache) = files
        .cache_control
        .as_deref()
        .and_then(|c| http::HeaderValue::from_str(c).ok())
    {
        response.headers_mut().insert("cache-control", cache);
    }
    response
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let engine = wt(Engine::new(&Config::new()))?;
    let started = std::time::Instant::now();
    let component = wt(Component::from_file(&engine, &options.wasm))
        .with_context(|| format!("cannot load the component {}", options.wasm))?;
    eprintln!(
        "spin-test-host: compiled {} in {:?}",
        options.wasm,
        started.elapsed()
    );
    let mut linker = Linker::new(&engine);
    wt(wasmtime_wasi::p2::add_to_linker_async(&mut linker))?;
    wt(wasmtime_wasi_http::p2::add_only_http_to_linker_async(
        &mut linker,
    ))?;
    wt(key_value::add_to_linker::<
        Host,
        wasmtime::component::HasSelf<Host>,
    >(&mut linker, |host| host))?;
    let pre = wt(linker.instantiate_pre(&component).and_then(ProxyPre::new))
        .context("the component needs something this host does not provide")?;
    let stores: Stores = Arc::new(
        options
            .kv_stores
            .iter()
            .map(|label| (label.clone(), Arc::default()))
            .collect(),
    );
    let allowed = Arc::new(options.allow_outbound.clone());
    let listener = TcpListener::bind(&options.listen).await?;
    let server = Arc::new(Server {
        pre,
        options,
        allowed,
        stores,
    });
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (client, _) = listener.accept().await?;
        let server = server.clone();
        tokio::task::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let server = server.clone();
                async move {
                    server.handle(request).await.map_err(|e| {
                        eprintln!("spin-test-host: {e:?}");
                        e
                    })
                }
            });
            if let Err(e) = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(client), service)
                .await
            {
                eprintln!("spin-test-host: connection: {e}");
            }
        });
    }
}
