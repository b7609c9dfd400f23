//! `origin`: the origin server.
//!
//! ```text
//! origin serve [--addr 127.0.0.1:8080] [--data-dir DIR] [--catalog FILE.json] [--token TOKEN]
//!              [--edge-url URL --edge-token TOKEN]
//! origin admin create-owner --data-dir DIR --email E [--password-stdin]
//! ```
//!
//! - `--addr`: where to listen (default `127.0.0.1:8080`).
//! - `--data-dir` (env `ORIGIN_DATA_DIR`, default `origin-data`): where the stock shards
//!   (`shard-00.sqlite` … `shard-15.sqlite`) and the orders (`orders.sqlite`) live; created when
//!   missing, with a `.gitignore` so it is never committed. Everything the origin acknowledged
//!   is in there, fsynced.
//! - `--catalog`: a catalog (JSON, or a Shopify CSV export) to serve: published into the
//!   origin's in-process catalog KV, and its stock seeded for SKUs that have none yet (a restart
//!   keeps live stock).
//! - `--token` (env `ORIGIN_TOKEN`): the bearer token of `/coordinator`, `/internal` and
//!   `/_admin`. Without one those routes answer 404.
//! - `--edge-url` (env `EDGE_URL`) and `--edge-token` (env `EDGE_ADMIN_TOKEN`), both or
//!   neither: the edge an admin's order status changes are forwarded to
//!   (`POST {EDGE_URL}/_admin/orders/{id}/status`), so the shopper's order page updates live;
//!   retried from the admin outbox while the edge is unreachable.
//!
//! `origin admin create-owner` creates the first admin account (role owner) in the data dir's
//! `admin.sqlite`, reading the password from stdin (one line; `--password-stdin` says so
//! explicitly, for scripts). It refuses when an owner exists: further accounts are made by an
//! owner through `POST /admin/api/users`, with an audit entry.
//!
//! While serving, each request writes one JSON line to stderr (`request_id`, `method`, `path`,
//! `status`, `latency_ms`; see `origin::request_log`); `ORIGIN_LOG=off` turns them off.
//!
//! A startup problem (an unwritable data dir, an invalid catalog) is printed and the process
//! exits with status 1. (Catalogs are published to edges with `shopctl`, the other binary of
//! this package.)

use clap::{Parser, Subcommand};
use origin::admin::{accounts, AdminConfig, EdgeTarget, HashCost};
use origin::server::{Origin, OriginConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(about = "Edge shop origin server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the origin: stock coordinator, orders, and the storefront API.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Directory of the SQLite databases (created when missing).
        #[arg(long, env = "ORIGIN_DATA_DIR", default_value = "origin-data")]
        data_dir: PathBuf,
        /// Catalog file to publish and seed stock from at startup.
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// Bearer token of /coordinator, /internal and /_admin.
        #[arg(long, env = "ORIGIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The edge that admin order status changes are forwarded to.
        #[arg(long, env = "EDGE_URL", requires = "edge_token")]
        edge_url: Option<String>,
        /// The edge's admin bearer token.
        #[arg(
            long,
            env = "EDGE_ADMIN_TOKEN",
            hide_env_values = true,
            requires = "edge_url"
        )]
        edge_token: Option<String>,
    },
    /// Admin accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Creates the first owner account; the password is read from stdin.
    CreateOwner {
        #[arg(long, env = "ORIGIN_DATA_DIR", default_value = "origin-data")]
        data_dir: PathBuf,
        #[arg(long)]
        email: String,
        /// Read the password from stdin (the default; accepted for scripts that say so).
        #[arg(long)]
        password_stdin: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve {
            addr,
            data_dir,
            catalog,
            token,
            edge_url,
            edge_token,
        } => {
            let edge = match (edge_url, edge_token) {
                (Some(url), Some(token)) if !url.is_empty() && !token.is_empty() => {
                    Some(EdgeTarget { url, token })
                }
                _ => None,
            };
            let admin = AdminConfig {
                edge,
                ..AdminConfig::default()
            };
            serve(
                addr,
                OriginConfig {
                    data_dir,
                    catalog,
                    token,
                },
                admin,
            )
            .await
        }
        Command::Admin {
            command:
                AdminCommand::CreateOwner {
                    data_dir,
                    email,
                    password_stdin: _,
                },
        } => create_owner(&data_dir, &email),
    }
}

fn create_owner(data_dir: &std::path::Path, email: &str) -> ExitCode {
    let mut password = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut password) {
        eprintln!("origin: cannot read the password from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let password = password.trim_end_matches(['\r', '\n']);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    match accounts::create_owner(data_dir, email, password, HashCost::Standard, now_ms) {
        Ok(user) => {
            println!(
                "origin: owner {} created (user {}) in {}",
                user.email,
                user.id,
                data_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("origin: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: SocketAddr, config: OriginConfig, admin: AdminConfig) -> ExitCode {
    let data_dir = config.data_dir.clone();
    let origin = match Origin::open_with(config, admin).await {
        Ok(origin) => Arc::new(origin),
        Err(e) => {
            eprintln!("origin: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("origin: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _background = origin.spawn_background();
    // One JSON line per request on stderr (`ORIGIN_LOG=off` silences them).
    origin::request_log::enable(std::env::var("ORIGIN_LOG").as_deref() != Ok("off"));
    println!(
        "origin: listening on http://{addr} (data in {}; stock seeded for {} new SKUs, {} kept)",
        data_dir.display(),
        origin.seeded.written,
        origin.seeded.kept
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    // With the peer's address: the admin's login throttle counts failures per client IP.
    let app = origin
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    match axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("origin: server failed: {e}");
            ExitCode::FAILURE
        }
    }
}
