//! `origin`: run the origin server, or validate and publish a catalog.
//!
//! ```text
//! origin serve --addr 127.0.0.1:8080
//! origin validate origin/data/demo-catalog.json
//! ADMIN_TOKEN=... origin publish origin/data/demo-catalog.json --edge http://127.0.0.1:8787
//! ```

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(about = "Edge shop origin server and catalog publisher")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the origin API.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
    },
    /// Check a catalog file and list every problem in it.
    Validate { catalog: PathBuf },
    /// Validate a catalog and publish it to an edge (products to KV, stock to new SKUs only).
    Publish {
        catalog: PathBuf,
        /// Base URL of the edge worker.
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        edge: String,
        /// The edge's admin token.
        #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
        token: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { addr } => {
            let listener = match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => listener,
                Err(e) => {
                    eprintln!("origin: cannot listen on {addr}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!("origin: listening on http://{addr}");
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            match axum::serve(listener, origin::server::router()).with_graceful_shutdown(shutdown).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("origin: server failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Validate { catalog } => match origin::publish::load_catalog(&catalog) {
            Ok((_, c)) => {
                println!("{}: {} products, valid", catalog.display(), c.products.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", catalog.display());
                ExitCode::from(2)
            }
        },
        Command::Publish { catalog, edge, token } => {
            match origin::publish::publish_catalog(&edge, &token, &catalog).await {
                Ok(report) => {
                    println!(
                        "published {} products to {edge}: stock set for {} new SKUs, kept live stock of {}",
                        report.products, report.stock_written, report.stock_kept
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("publish failed: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
