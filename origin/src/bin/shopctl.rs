//! `shopctl`: the merchant's catalog tool.
//!
//! ```text
//! shopctl validate origin/data/demo-catalog.json
//! ADMIN_TOKEN=... shopctl diff origin/data/demo-catalog.json --edge http://127.0.0.1:8787
//! ADMIN_TOKEN=... shopctl publish origin/data/demo-catalog.json --edge http://127.0.0.1:8787
//! ```
//! Exit codes: 0 success, 2 invalid catalog or refused publish, 1 anything else.

use clap::{Parser, Subcommand};
use origin::cloudflare::CloudflareKv;
use origin::publish::{self, CatalogKv, EdgeAdmin, PublishError};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "shopctl",
    about = "Validate, diff and publish catalogs to the edge"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the catalog's key-value store is written.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Target {
    /// Through the edge worker's admin API (`wrangler dev` locally, or any deployed worker).
    Edge,
    /// Through the Cloudflare API (CLOUDFLARE_ACCOUNT_ID, CLOUDFLARE_API_TOKEN,
    /// CLOUDFLARE_KV_NAMESPACE_ID); stock is still seeded through the edge.
    Cloudflare,
}

#[derive(clap::Args)]
struct EdgeArgs {
    /// Catalog KV target.
    #[arg(long, value_enum, default_value = "edge")]
    target: Target,
    /// Base URL of the edge worker (its admin API writes the catalog KV and seeds stock).
    #[arg(long, default_value = "http://127.0.0.1:8787")]
    edge: String,
    /// The edge's admin token.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    token: String,
}

/// The catalog file: the project's JSON, or a Shopify product export (`.csv`).
#[derive(clap::Args)]
struct CatalogArgs {
    catalog: PathBuf,
    /// Currency of a Shopify export's prices (the CSV does not say).
    #[arg(long, default_value = "USD")]
    currency: String,
}

impl CatalogArgs {
    fn load(&self) -> Result<edge_core::Catalog, PublishError> {
        publish::load_catalog_in(&self.catalog, &self.currency)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Check a catalog file and list every problem in it, by line.
    Validate {
        #[command(flatten)]
        file: CatalogArgs,
    },
    /// Show what publishing the catalog would change: added, removed and changed SKUs.
    Diff {
        #[command(flatten)]
        file: CatalogArgs,
        #[command(flatten)]
        edge: EdgeArgs,
    },
    /// Publish the catalog as the next snapshot version; seed stock for new SKUs only.
    Publish {
        #[command(flatten)]
        file: CatalogArgs,
        #[command(flatten)]
        edge: EdgeArgs,
        /// The origin whose analytics and orders give the snapshot its trending list (the
        /// edge's best-sellers) and "bought together" lists; without it the catalog's order
        /// is used and products have no such lists.
        #[arg(long)]
        trending_from: Option<String>,
        /// The origin's token (for `--trending-from`).
        #[arg(long, env = "ORIGIN_TOKEN", hide_env_values = true)]
        origin_token: Option<String>,
    },
    /// Delete snapshot versions older than the live one, once it has been live for the grace period.
    Gc {
        #[command(flatten)]
        edge: EdgeArgs,
        /// Minutes the live version must have been live.
        #[arg(long, default_value_t = publish::GC_GRACE_MS / 60_000)]
        grace_minutes: u64,
    },
}

fn fail(e: PublishError) -> ExitCode {
    eprintln!("shopctl: {e}");
    match e {
        PublishError::Invalid(_) | PublishError::Refused { .. } => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

/// SKUs listed per kind of change.
const DIFF_SKUS_SHOWN: usize = 12;

fn print_diff(diff: &edge_core::snapshot::SnapshotDiff) {
    // The first few SKUs of each kind; a big catalog's full list would bury the summary.
    let names = |skus: &[edge_core::Sku]| {
        let shown: Vec<String> = skus
            .iter()
            .take(DIFF_SKUS_SHOWN)
            .map(ToString::to_string)
            .collect();
        let more = skus.len().saturating_sub(DIFF_SKUS_SHOWN);
        if more > 0 {
            format!("{}, … and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        }
    };
    println!("  added:   {} {}", diff.added.len(), names(&diff.added));
    println!("  removed: {} {}", diff.removed.len(), names(&diff.removed));
    println!("  changed: {} {}", diff.changed.len(), names(&diff.changed));
}

fn print_gc(gc: &publish::GcReport) {
    if gc.deferred {
        println!("  old versions kept: the version after them is younger than the grace period");
    } else if !gc.deleted_versions.is_empty() {
        println!(
            "  deleted old versions {:?} ({} keys)",
            gc.deleted_versions, gc.deleted_keys
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Validate { file } => match file.load() {
            Ok(catalog) => {
                println!(
                    "{}: {} products, {} stock units, valid",
                    file.catalog.display(),
                    catalog.products.len(),
                    catalog.levels.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Diff { file, edge } => {
            let path = file.catalog.clone();
            let result = async {
                let catalog = file.load()?;
                match edge.target {
                    Target::Edge => {
                        publish::diff(&EdgeAdmin::new(&edge.edge, &edge.token)?, &catalog).await
                    }
                    Target::Cloudflare => publish::diff(&CloudflareKv::from_env()?, &catalog).await,
                }
            };
            match result.await {
                Ok(diff) => {
                    println!(
                        "{} against the live catalog at {}:",
                        path.display(),
                        edge.edge
                    );
                    print_diff(&diff);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Publish {
            file,
            edge,
            trending_from,
            origin_token,
        } => {
            let result = async {
                let mut catalog = file.load()?;
                if let Some(origin) = &trending_from {
                    let token = origin_token.as_deref().unwrap_or_default();
                    catalog.trending = publish::fetch_trending(origin, token).await?;
                    catalog.together = publish::fetch_together(origin, token, &catalog).await?;
                }
                let admin = EdgeAdmin::new(&edge.edge, &edge.token)?;
                // Drawn on a terminal only; hidden when stderr is a pipe or a CI log.
                let bar = indicatif::ProgressBar::new(0).with_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} writing snapshot {bar:40} {pos}/{len} keys {per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                let progress = |done: usize, total: usize| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                };
                let grace = publish::GC_GRACE_MS;
                let report = match edge.target {
                    Target::Edge => {
                        publish::publish_with_grace(&admin, &admin, &catalog, progress, grace).await
                    }
                    Target::Cloudflare => {
                        publish::publish_with_grace(
                            &CloudflareKv::from_env()?,
                            &admin,
                            &catalog,
                            progress,
                            grace,
                        )
                        .await
                    }
                };
                bar.finish_and_clear();
                report
            };
            match result.await {
                Ok(report) => {
                    println!(
                        "published version {} ({} products) to {}; stock set for {} new SKUs, live stock kept for {}",
                        report.version, report.products, edge.edge, report.stock.written, report.stock.kept
                    );
                    if let Some(diff) = &report.diff {
                        print_diff(diff);
                    }
                    print_gc(&report.gc);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Gc {
            edge,
            grace_minutes,
        } => {
            let grace = grace_minutes * 60_000;
            let result = async {
                match edge.target {
                    Target::Edge => {
                        EdgeAdmin::new(&edge.edge, &edge.token)?
                            .collect_garbage(grace)
                            .await
                    }
                    Target::Cloudflare => CloudflareKv::from_env()?.collect_garbage(grace).await,
                }
            };
            match result.await {
                Ok(report) => {
                    print_gc(&report);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
    }
}
