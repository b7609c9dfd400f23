//! `origin`: the origin server.
//!
//! ```text
//! origin serve [--addr 127.0.0.1:8080] [--data-dir DIR] [--catalog FILE.json] [--token TOKEN]
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
//!
//! A startup problem (an unwritable data dir, an invalid catalog) is printed and the process
//! exits with status 1. (Catalogs are published to edges with `shopctl`, the other binary of
//! this package.)

use clap::{Parser, Subcommand};
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
        } => {
            serve(
                addr,
                OriginConfig {
                    data_dir,
                    catalog,
                    token,
                },
            )
            .await
        }
    }
}

async fn serve(addr: SocketAddr, config: OriginConfig) -> ExitCode {
    let data_dir = config.data_dir.clone();
    let origin = match Origin::open(config).await {
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
    println!(
        "origin: listening on http://{addr} (data in {}; stock seeded for {} new SKUs, {} kept)",
        data_dir.display(),
        origin.seeded.written,
        origin.seeded.kept
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match axum::serve(listener, origin.router())
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
