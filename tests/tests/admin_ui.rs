//! End to end: the origin's admin UI in a real browser ships an order that a shopper placed
//! through the edge's checkout, while the shopper's order page, open in another window, follows
//! it live.
//!
//! `cargo test -p shop-e2e --test admin_ui` (after `scripts/build.sh`): `wrangler dev` with the
//! worker, an origin in this process whose admin forwards status changes to that worker, the
//! demo catalog published, and Chromium through chromedriver. Ends with
//! `admin_ui: N passed, N failed`.
//!
//! What it checks, in order:
//! 1. a checkout through the edge (`POST /api/checkout` with an `X-Request-Id`) reaches the
//!    origin's `/internal/orders` carrying that request id;
//! 2. the storefront's order page hydrates under its nonce CSP (no `'unsafe-inline'` script);
//! 3. an owner made by the bootstrap code path (`create_owner`) logs in through the login form;
//! 4. the order list finds the order; its page offers exactly the legal moves; "Mark packed"
//!    then "Mark shipped" move it, each forwarded to the edge;
//! 5. the shopper's page, never reloaded, shows "shipped";
//! 6. an order placed while the origin's intake refuses orders shows as refused on the
//!    deliveries page; once the intake is fixed, its "Retry now" brings the order over;
//! 7. the audit log page lists the login, both status changes and the retry; logging out ends
//!    the session.

use axum::response::IntoResponse;
use edge_core::Catalog;
use fantoccini::{Client, Locator};
use origin::admin::{accounts, AdminConfig, EdgeTarget, HashCost};
use origin::server::{Origin, OriginConfig};
use serde_json::{json, Value};
use shop_e2e::{click, free_port, js, repo_root, wait_for, wait_hydrated, Browser, WranglerDev};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OWNER: &str = "owner@shop.test";
const PASSWORD: &str = "a long admin passphrase";
const CHECKOUT_REQUEST_ID: &str = "admin-ui-e2e-checkout-1";

type CheckResult = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    match runtime.block_on(run()) {
        Ok(()) => {
            println!("admin_ui: ships an order from the admin UI and the shopper sees it live ... ok ({:.1?})", started.elapsed());
            println!("admin_ui: 1 passed, 0 failed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("admin_ui: ships an order from the admin UI and the shopper sees it live ... FAILED\n  {e}");
            println!("admin_ui: 0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}

/// The in-process origin, with its admin forwarding to the edge, listening on `addr` with the
/// peer's address (the audit log records it), and the request ids `/internal/orders` received.
async fn serve_origin(
    origin: Arc<Origin>,
    addr: SocketAddr,
    intake_ids: Arc<Mutex<Vec<String>>>,
    refusing: Arc<AtomicBool>,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("origin cannot listen on {addr}: {e}"))?;
    let router = origin.router().layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let intake_ids = intake_ids.clone();
            let refusing = refusing.clone();
            async move {
                if request.uri().path() == "/internal/orders" && refusing.load(Ordering::SeqCst) {
                    return (
                        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                        "order intake refuses orders for this check",
                    )
                        .into_response();
                }
                if request.uri().path() == "/internal/orders" {
                    let id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    intake_ids.lock().unwrap().push(id);
                }
                next.run(request).await
            }
        },
    ));
    tokio::spawn(async move {
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}

async fn run() -> CheckResult {
    let origin_port = free_port();
    let origin_url = format!("http://127.0.0.1:{origin_port}");
    let origin_token = format!("admin-ui-{origin_port}-{}", std::process::id());
    let data_dir = std::env::temp_dir().join(format!(
        "edge-shop-admin-ui-{}-{origin_port}",
        std::process::id()
    ));
    // The worker first: the origin's admin needs the worker's URL and token, the worker only
    // the origin's URL (its outbox retries until the origin answers).
    let edge = WranglerDev::start(&[
        ("ORIGIN_URL", origin_url.as_str()),
        ("ORIGIN_TOKEN", origin_token.as_str()),
        (
            "PERSONALIZATION_SECRET",
            "admin-ui-personalization-secret-0123",
        ),
    ])
    .await?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_millis() as u64;
    // The bootstrap code path of `origin admin create-owner`.
    accounts::create_owner(&data_dir, OWNER, PASSWORD, HashCost::Test, now_ms)
        .map_err(|e| format!("create-owner: {e}"))?;
    let origin = Arc::new(
        Origin::open_with(
            OriginConfig {
                data_dir,
                catalog: None,
                token: Some(origin_token),
            },
            AdminConfig {
                hash_cost: HashCost::Test,
                edge: Some(EdgeTarget {
                    url: edge.base_url.clone(),
                    token: edge.admin_token.clone(),
                }),
            },
        )
        .await
        .map_err(|e| format!("origin: {e}"))?,
    );
    let _background = origin.spawn_background();
    let intake_ids = Arc::new(Mutex::new(Vec::new()));
    let refusing = Arc::new(AtomicBool::new(false));
    serve_origin(
        origin.clone(),
        SocketAddr::from(([127, 0, 0, 1], origin_port)),
        intake_ids.clone(),
        refusing.clone(),
    )
    .await?;
    let catalog_path = repo_root().join("origin/data/demo-catalog.json");
    origin::publish::publish_catalog(&edge.base_url, &edge.admin_token, &catalog_path)
        .await
        .map_err(|e| format!("publishing the demo catalog: {e}"))?;
    let catalog = origin::publish::load_catalog(&catalog_path).map_err(|e| e.to_string())?;

    // 1. The shopper's order, through the edge.
    let id = place_order(&edge, &catalog, "admin-ui-e2e-order-1").await?;
    let order_id = edge_core::stock::OrderId::parse(&id).map_err(|e| e.to_string())?;
    wait_for(
        "the order at the origin",
        Duration::from_secs(60),
        || async {
            Ok(origin
                .book
                .order(&order_id)
                .await
                .map_err(|e| e.to_string())?
                .is_some())
        },
    )
    .await?;
    let ids = intake_ids.lock().unwrap().clone();
    ensure!(
        ids.iter().any(|i| i == CHECKOUT_REQUEST_ID),
        "/internal/orders got request ids {ids:?}, not the checkout's {CHECKOUT_REQUEST_ID}"
    );

    let browser = Browser::start().await?;
    let c = &browser.client;
    let result = in_browser(c, &edge, &origin_url, &id, &catalog, &refusing).await;
    let _ = browser.client.clone().close().await;
    result
}

async fn place_order(edge: &WranglerDev, catalog: &Catalog, key: &str) -> Result<String, String> {
    let sku = catalog
        .products
        .iter()
        .filter(|p| p.variants.is_empty())
        .find(|p| catalog.initial_stock(&p.sku).is_some_and(|s| s > 5))
        .map(|p| p.sku.to_string())
        .ok_or("the demo catalog has no simple product in stock")?;
    let http = reqwest::Client::new();
    let body = json!({
        "lines": [{"sku": sku, "qty": 1}],
        "email": "shopper@example.com",
        "payment_token": "tok_visa",
    });
    let res = http
        .post(format!("{}/api/checkout", edge.base_url))
        .header("idempotency-key", key)
        .header("x-request-id", CHECKOUT_REQUEST_ID)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("checkout: {e}"))?;
    let status = res.status();
    let echoed = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = res.json().await.map_err(|e| e.to_string())?;
    ensure!(status.as_u16() == 201, "checkout: {status} {body}");
    ensure!(
        echoed.as_deref() == Some(CHECKOUT_REQUEST_ID),
        "the edge echoed x-request-id {echoed:?}"
    );
    body["order_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no order_id in {body}"))
}

async fn in_browser(
    c: &Client,
    edge: &WranglerDev,
    origin_url: &str,
    id: &str,
    catalog: &Catalog,
    refusing: &AtomicBool,
) -> CheckResult {
    // 2. The shopper's page, hydrated under a CSP whose scripts need the page's nonce.
    let shopper_url = format!("{}/orders/{id}", edge.base_url);
    let csp = reqwest::get(&shopper_url)
        .await
        .map_err(|e| e.to_string())?
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ensure!(
        csp.contains("'nonce-")
            && !csp.contains("'unsafe-inline' 'wasm")
            && !script_src(&csp).contains("unsafe-inline"),
        "the order page's CSP allows inline scripts: {csp}"
    );
    c.goto(&shopper_url).await.map_err(|e| e.to_string())?;
    wait_hydrated(c).await?;
    ensure!(
        shopper_status(c).await? == json!("paid"),
        "the new order is not paid"
    );
    js(c, "window.__adminUiMarker = 'same page'; return null").await?;
    let shopper_window = c.window().await.map_err(|e| e.to_string())?;

    // 3. The admin, in a window of its own.
    let admin_window = c.new_window(false).await.map_err(|e| e.to_string())?.handle;
    c.switch_to_window(admin_window.clone())
        .await
        .map_err(|e| e.to_string())?;
    c.goto(&format!("{origin_url}/admin/orders"))
        .await
        .map_err(|e| e.to_string())?;
    ensure!(
        path(c).await? == "/admin/login",
        "no session, yet not on the login page"
    );
    fill(c, "input[name=email]", OWNER).await?;
    fill(c, "input[name=password]", PASSWORD).await?;
    click(c, "#login").await?;
    wait_for(
        "the orders page after login",
        Duration::from_secs(10),
        || async { Ok(path(c).await? == "/admin/orders") },
    )
    .await?;

    // 4. Find the order, open it, pack and ship it.
    fill(c, "input[name=email]", "shopper@example.com").await?;
    click(c, "form.filters button").await?;
    // On the filtered list (the submit loads a new page): the unfiltered one may show it too.
    wait_for("the order in the filtered list", Duration::from_secs(10), || async {
        Ok(js(
            c,
            &format!("return location.search.includes('email=') && !!document.querySelector('#orders a[href=\"/admin/orders/{id}\"]')"),
        )
        .await?
            == json!(true))
    })
    .await?;
    click(c, &format!("#orders a[href=\"/admin/orders/{id}\"]")).await?;
    for (step, (status, offered)) in [
        ("packed", ["packed", "cancelled"]),
        ("shipped", ["shipped", "cancelled"]),
    ]
    .into_iter()
    .enumerate()
    {
        let buttons = js(
            c,
            "return Array.from(document.querySelectorAll('#transitions button')).map(b => b.value)",
        )
        .await?;
        ensure!(
            buttons == json!(offered),
            "step {step}: offered {buttons}, expected {offered:?}"
        );
        click(c, &format!("#transitions button[value={status}]")).await?;
        wait_for(
            &format!("the order {status}"),
            Duration::from_secs(10),
            || async {
                Ok(js(
                    c,
                    "const s = document.getElementById('order-status'); return s && s.textContent",
                )
                .await?
                    == json!(status))
            },
        )
        .await?;
        let flash = js(
            c,
            "const f = document.querySelector('.flash.ok'); return f && f.textContent",
        )
        .await?;
        ensure!(
            flash
                .as_str()
                .is_some_and(|f| f.contains("edge: delivered")),
            "{status}: the change did not reach the edge: {flash}"
        );
    }

    // 5. The shopper's page followed, without a reload.
    c.switch_to_window(shopper_window)
        .await
        .map_err(|e| e.to_string())?;
    wait_for(
        "the shopper's page to say shipped",
        Duration::from_secs(10),
        || async { Ok(shopper_status(c).await? == json!("shipped")) },
    )
    .await?;
    ensure!(
        js(c, "return window.__adminUiMarker || null").await? == json!("same page"),
        "the shopper's order page reloaded"
    );

    // 6. An order the origin refuses waits at the edge: the deliveries page shows it refused
    //    with the reason; once the intake is fixed, "Retry now" brings it over.
    c.switch_to_window(admin_window)
        .await
        .map_err(|e| e.to_string())?;
    refusing.store(true, Ordering::SeqCst);
    let refused = place_order(edge, catalog, "admin-ui-e2e-refused-1").await?;
    let row = format!("#edge-outbox tr[data-order=\"{refused}\"]");
    wait_for("the refused order on the deliveries page", Duration::from_secs(30), || async {
        c.goto(&format!("{origin_url}/admin/deliveries"))
            .await
            .map_err(|e| e.to_string())?;
        Ok(js(
            c,
            &format!("const r = document.querySelector('{row}[data-state=refused]'); return !!r && r.textContent.includes('422')"),
        )
        .await?
            == json!(true))
    })
    .await?;
    refusing.store(false, Ordering::SeqCst);
    click(c, &format!("{row} button.retry")).await?;
    wait_for("the retry's message", Duration::from_secs(10), || async {
        let flash = js(
            c,
            "const f = document.querySelector('.flash.ok'); return f && f.textContent",
        )
        .await?;
        Ok(flash.as_str().is_some_and(|f| f.contains(&refused)))
    })
    .await?;
    wait_for(
        "the refused order at the origin",
        Duration::from_secs(30),
        || async {
            c.goto(&format!("{origin_url}/admin/orders/{refused}"))
                .await
                .map_err(|e| e.to_string())?;
            Ok(js(
                c,
                "const o = document.getElementById('order-id'); return o && o.textContent",
            )
            .await?
                == json!(refused))
        },
    )
    .await?;
    c.goto(&format!("{origin_url}/admin/deliveries"))
        .await
        .map_err(|e| e.to_string())?;
    ensure!(
        js(c, &format!("return !document.querySelector('{row}')")).await? == json!(true),
        "the delivered order {refused} is still on the deliveries page"
    );

    // 7. The audit log has the login, both moves of the first order and the retry.
    c.goto(&format!("{origin_url}/admin/audit"))
        .await
        .map_err(|e| e.to_string())?;
    let rows = js(
        c,
        "return Array.from(document.querySelectorAll('#audit tbody tr')).map(r => [r.cells[4].textContent, r.cells[5].textContent, r.cells[7].textContent])",
    )
    .await?;
    let rows: Vec<(String, String, String)> =
        serde_json::from_value(rows).map_err(|e| e.to_string())?;
    ensure!(
        rows.iter().any(|(action, _, _)| action == "login"),
        "no login in the audit log: {rows:?}"
    );
    let moves: Vec<&str> = rows
        .iter()
        .rev()
        .filter(|(action, target, _)| action == "order.status" && *target == format!("order:{id}"))
        .map(|(_, _, after)| after.as_str())
        .collect();
    ensure!(
        moves.len() == 2 && moves[0].contains("packed") && moves[1].contains("shipped"),
        "the audit log's moves of {id}: {moves:?}"
    );
    ensure!(
        rows.iter()
            .any(|(action, target, _)| action == "edge_delivery.retry"
                && *target == format!("order:{refused}")),
        "no retry of {refused} in the audit log: {rows:?}"
    );
    click(c, "#logout").await?;
    wait_for(
        "the login page after logout",
        Duration::from_secs(10),
        || async { Ok(path(c).await? == "/admin/login") },
    )
    .await?;
    c.goto(&format!("{origin_url}/admin/orders"))
        .await
        .map_err(|e| e.to_string())?;
    ensure!(
        path(c).await? == "/admin/login",
        "the session outlived its logout"
    );
    Ok(())
}

/// The `script-src` directive of a CSP.
fn script_src(csp: &str) -> &str {
    csp.split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .unwrap_or("")
}

async fn shopper_status(c: &Client) -> Result<Value, String> {
    js(
        c,
        "const s = document.querySelector('[data-testid=order-status]'); return s && s.dataset.status",
    )
    .await
}

async fn path(c: &Client) -> Result<String, String> {
    Ok(js(c, "return location.pathname")
        .await?
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

async fn fill(c: &Client, css: &str, text: &str) -> CheckResult {
    let input = c
        .find(Locator::Css(css))
        .await
        .map_err(|e| format!("{css}: {e}"))?;
    input
        .clear()
        .await
        .map_err(|e| format!("clear {css}: {e}"))?;
    input
        .send_keys(text)
        .await
        .map_err(|e| format!("type into {css}: {e}"))
}
