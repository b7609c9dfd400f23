//! `origin`: the origin server. `origin serve --addr 127.0.0.1:8080`.
//! (Catalogs are published with `shopctl`, the other binary of this package.)

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(Parser)]
#[command(about = "Edge shop origin server")]
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
            match axum::serve(listener, origin::server::router())
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
    }
}
