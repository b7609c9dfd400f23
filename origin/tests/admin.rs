//! The origin admin API, driven through its router with `oneshot` (no socket), except the edge
//! forwarding tests, which run a tiny fake edge on 127.0.0.1. Every test has its own data dir
//! and a manual clock, so lockouts and retry backoffs are stepped, not slept.

use axum::body::Body;
use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use edge_core::memory::ManualClock;
use edge_core::order::{Order, OrderLine, OrderStatus, StatusChange, ALL_STATUSES};
use edge_core::snapshot::Clock;
use edge_core::stock::{Line, OrderId, ShardReply, ShardRequest};
use edge_core::store::StockCoordinator;
use edge_core::{Money, Sku, SkuShard};
use http_body_util::BodyExt;
use origin::admin::accounts::{self, BootstrapError};
use origin::admin::routes::{Access, ROUTES};
use origin::admin::totp;
use origin::admin::{Admin, AdminConfig, EdgeTarget, HashCost};
use origin::coordinator::{OriginShards, OriginStock};
use origin::orders::OrderBook;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

const OWNER: &str = "owner@shop.test";
const PASSWORD: &str = "correct horse battery staple";
const START_MS: u64 = 1_795_000_000_000;

struct Env {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    admin: Arc<Admin>,
    app: Router,
}

fn env_with(edge: Option<EdgeTarget>) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let clock = Arc::new(ManualClock::default());
    clock.advance(START_MS);
    let shards = OriginShards::open(&dir, clock.clone()).unwrap();
    let book = OrderBook::open(&dir, clock.clone()).unwrap();
    let stock = Arc::new(OriginStock::new(shards));
    let config = AdminConfig {
        hash_cost: HashCost::Test,
        edge,
    };
    let admin = Arc::new(Admin::open(&dir, book, stock, clock.clone(), config).unwrap());
    accounts::create_owner(&dir, OWNER, PASSWORD, HashCost::Test, START_MS).unwrap();
    let app = admin.router();
    Env {
        _dir: tmp,
        clock,
        admin,
        app,
    }
}

fn env() -> Env {
    env_with(None)
}

/// A logged-in client: its cookie and CSRF token.
#[derive(Clone)]
struct Client {
    cookie: String,
    csrf: String,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    client: Option<&Client>,
    csrf: Option<&str>,
    body: Option<Value>,
    ip: Option<&str>,
) -> Reply {
    send_with(app, method, uri, client, csrf, body, ip, &[]).await
}

/// [`send`] with more request headers.
#[allow(clippy::too_many_arguments)]
async fn send_with(
    app: &Router,
    method: &str,
    uri: &str,
    client: Option<&Client>,
    csrf: Option<&str>,
    body: Option<Value>,
    ip: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(client) = client {
        request = request.header(header::COOKIE, format!("other=1; {}", client.cookie));
    }
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    let body = match body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let mut request = request.body(body).unwrap();
    if let Some(ip) = ip {
        let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(addr));
    }
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

async fn get(app: &Router, uri: &str, client: &Client) -> Reply {
    send(app, "GET", uri, Some(client), None, None, None).await
}

async fn post_as(app: &Router, uri: &str, client: &Client, body: Value) -> Reply {
    send(
        app,
        "POST",
        uri,
        Some(client),
        Some(&client.csrf),
        Some(body),
        None,
    )
    .await
}

async fn try_login(app: &Router, email: &str, password: &str, ip: Option<&str>) -> Reply {
    send(
        app,
        "POST",
        "/admin/api/login",
        None,
        None,
        Some(json!({ "email": email, "password": password })),
        ip,
    )
    .await
}

fn client_of(reply: &Reply) -> Client {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let set_cookie = reply.headers[header::SET_COOKIE].to_str().unwrap();
    Client {
        cookie: set_cookie.split(';').next().unwrap().to_owned(),
        csrf: reply.body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

async fn login(app: &Router, email: &str, password: &str) -> Client {
    client_of(&try_login(app, email, password, None).await)
}

/// An owner session, plus a staff and a viewer account made by it.
async fn team(env: &Env) -> (Client, Client, Client) {
    let owner = login(&env.app, OWNER, PASSWORD).await;
    for (email, role) in [("staff@shop.test", "staff"), ("viewer@shop.test", "viewer")] {
        let made = post_as(
            &env.app,
            "/admin/api/users",
            &owner,
            json!({ "email": email, "password": PASSWORD, "role": role }),
        )
        .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    }
    let staff = login(&env.app, "staff@shop.test", PASSWORD).await;
    let viewer = login(&env.app, "viewer@shop.test", PASSWORD).await;
    (owner, staff, viewer)
}

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

fn order(id: &str, email: &str, lines: &[(&str, u32)], placed_at_ms: u64) -> Order {
    let lines: Vec<OrderLine> = lines
        .iter()
        .map(|(s, qty)| OrderLine {
            sku: sku(s),
            title: format!("Title of {s}"),
            qty: *qty,
            unit_price: Money::new(1_000, "USD"),
        })
        .collect();
    let total = edge_core::order::total(&lines).unwrap();
    Order {
        id: OrderId::parse(id).unwrap(),
        email: email.into(),
        lines,
        total,
        status: OrderStatus::Paid,
        charge_id: format!("ch_{id}"),
        placed_at_ms,
        history: vec![
            StatusChange {
                status: OrderStatus::Placed,
                at_ms: placed_at_ms,
            },
            StatusChange {
                status: OrderStatus::Paid,
                at_ms: placed_at_ms,
            },
        ],
        pricing: None,
    }
}

/// Stores a paid order whose units were held and sold on the origin's own shards.
async fn sold_order(env: &Env, id: &str, lines: &[(&str, u32)]) -> Order {
    let order = order(id, "shopper@example.com", lines, START_MS);
    let mut by_shard: BTreeMap<SkuShard, Vec<Line>> = BTreeMap::new();
    for line in &order.lines {
        by_shard
            .entry(SkuShard::of(&line.sku))
            .or_default()
            .push(line.line());
    }
    for (shard, lines) in by_shard {
        let reserve = ShardRequest::Reserve {
            order: order.id.clone(),
            lines,
            ttl_ms: 60_000,
        };
        let held = env.admin.stock.on_shard(shard, reserve).await.unwrap();
        assert!(matches!(held, ShardReply::Held { .. }), "{held:?}");
        let commit = ShardRequest::Commit {
            order: order.id.clone(),
        };
        assert_eq!(
            env.admin.stock.on_shard(shard, commit).await.unwrap(),
            ShardReply::Committed
        );
    }
    assert!(env.admin.book.store(&order).await.unwrap());
    order
}

async fn seed(env: &Env, levels: &[(&str, u32)]) {
    let levels = levels.iter().map(|(s, n)| (sku(s), *n)).collect();
    env.admin.stock.seed(levels, true).await.unwrap();
}

async fn audit_actions(env: &Env, owner: &Client) -> Vec<String> {
    let page = get(&env.app, "/admin/api/audit", owner).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let mut actions: Vec<String> = page.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    actions.reverse();
    actions
}

#[test]
fn bootstrap_creates_one_owner_and_refuses_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_origin");
    let run = |email: &str, password: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(bin)
            .args([
                "admin",
                "create-owner",
                "--password-stdin",
                "--email",
                email,
            ])
            .arg("--data-dir")
            .arg(tmp.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let short = run("boss@shop.test", "short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("12 characters"));
    let made = run("Boss@Shop.test", PASSWORD);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(String::from_utf8_lossy(&made.stdout).contains("owner boss@shop.test created"));
    let again = run("other@shop.test", PASSWORD);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("an owner account already exists"));
    // The library refuses the same way.
    assert!(matches!(
        accounts::create_owner(tmp.path(), "x@shop.test", PASSWORD, HashCost::Test, 1),
        Err(BootstrapError::OwnerExists)
    ));
}

#[tokio::test]
async fn login_sets_a_strict_session_cookie_and_a_csrf_token_and_logout_ends_it() {
    let env = env();
    let reply = try_login(&env.app, "  OWNER@shop.test ", PASSWORD, None).await;
    let cookie = reply.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    let client = client_of(&reply);
    let id = client.cookie.split_once('=').unwrap().1;
    assert_eq!(id.len(), 43, "256 bits, base64url");
    assert_eq!(reply.body["user"]["role"], "owner");
    // The database keeps only a hash of the session id.
    let stored: Vec<String> = env.admin.db.blocking(|conn| {
        let mut s = conn.prepare("SELECT id_hash FROM sessions").unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    });
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains(id));

    let me = get(&env.app, "/admin/api/me", &client).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["csrf_token"], client.csrf.as_str());
    let wrong = try_login(&env.app, OWNER, "not the password!!", None).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["message"], "wrong e-mail or password");
    let nobody = try_login(&env.app, "nobody@shop.test", PASSWORD, None).await;
    assert_eq!(nobody.body["message"], "wrong e-mail or password");

    let out = post_as(&env.app, "/admin/api/logout", &client, json!({})).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text);
    assert!(out.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        get(&env.app, "/admin/api/me", &client).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Sessions expire.
    let client = login(&env.app, OWNER, PASSWORD).await;
    env.clock.advance(8 * 3_600 * 1_000);
    assert_eq!(
        get(&env.app, "/admin/api/me", &client).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// A request path for a route, its parameters filled in.
fn example_path(path: &str) -> String {
    path.split('/')
        .map(|part| {
            if part.starts_with('{') {
                "x1".to_owned()
            } else {
                part.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_admin_route_refuses_no_session_a_weak_role_and_a_bad_csrf_token() {
    use origin::admin::accounts::Role;
    let env = env();
    let (owner, staff, viewer) = team(&env).await;
    let session_of = |role: Role| match role {
        Role::Owner => &owner,
        Role::Staff => &staff,
        Role::Viewer => &viewer,
    };
    let mut checked = 0;
    for row in ROUTES {
        let uri = example_path(row.path);
        let method = row.verb.as_str();
        let Access::AtLeast(needed) = row.access else {
            assert_eq!(row.path, "/admin/api/login", "only login is public");
            continue;
        };
        let body = row.verb.changes_state().then(|| json!({}));
        // No session.
        let none = send(&env.app, method, &uri, None, None, body.clone(), None).await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert_eq!(none.body["error"], "unauthorized");
        // A forged cookie is no session either.
        let forged = Client {
            cookie: "origin_admin_session=AAAA".into(),
            csrf: "x".into(),
        };
        let fake = send(
            &env.app,
            method,
            &uri,
            Some(&forged),
            Some("x"),
            body.clone(),
            None,
        )
        .await;
        assert_eq!(fake.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        // Every role below the one needed.
        for weaker in [Role::Viewer, Role::Staff]
            .into_iter()
            .filter(|r| *r < needed)
        {
            let client = session_of(weaker);
            let reply = send(
                &env.app,
                method,
                &uri,
                Some(client),
                Some(&client.csrf),
                body.clone(),
                None,
            )
            .await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{method} {uri} as {weaker:?}"
            );
            assert!(reply.body["message"].as_str().unwrap().contains("role"));
        }
        if row.verb.changes_state() {
            let client = session_of(needed);
            for csrf in [None, Some("wrong"), Some(staff.csrf.as_str())]
                .into_iter()
                .filter(|c| *c != Some(client.csrf.as_str()))
            {
                let reply = send(
                    &env.app,
                    method,
                    &uri,
                    Some(client),
                    csrf,
                    body.clone(),
                    None,
                )
                .await;
                assert_eq!(
                    reply.status,
                    StatusCode::FORBIDDEN,
                    "{method} {uri} csrf {csrf:?}"
                );
                assert!(reply.body["message"].as_str().unwrap().contains("CSRF"));
            }
        }
        // With the right session and token the guard lets it through (whatever the handler
        // then says about the made-up parameters).
        let client = session_of(needed);
        if row.path != "/admin/api/logout" {
            let reply = send(
                &env.app,
                method,
                &uri,
                Some(client),
                Some(&client.csrf),
                body.clone(),
                None,
            )
            .await;
            assert!(
                ![
                    StatusCode::UNAUTHORIZED,
                    StatusCode::FORBIDDEN,
                    StatusCode::METHOD_NOT_ALLOWED
                ]
                .contains(&reply.status),
                "{method} {uri}: {} {}",
                reply.status,
                reply.text
            );
        }
        checked += 1;
    }
    assert_eq!(checked, ROUTES.len() - 1);
}

#[tokio::test]
async fn five_failures_lock_an_account_for_a_growing_time() {
    let env = env();
    for _ in 0..5 {
        let reply = try_login(&env.app, OWNER, "wrong password!!", None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let locked = try_login(&env.app, OWNER, PASSWORD, None).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(locked.body["message"], "locked, try again in 30 s");
    assert_eq!(locked.headers[header::RETRY_AFTER], "30");
    env.clock.advance(20_000);
    let locked = try_login(&env.app, OWNER, PASSWORD, None).await;
    assert_eq!(locked.body["message"], "locked, try again in 10 s");
    env.clock.advance(10_000);
    // Unlocked; one more failure locks it for twice as long.
    assert_eq!(
        try_login(&env.app, OWNER, "wrong password!!", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let locked = try_login(&env.app, OWNER, PASSWORD, None).await;
    assert_eq!(locked.body["message"], "locked, try again in 60 s");
    env.clock.advance(60_000);
    // A success clears the account's count.
    login(&env.app, OWNER, PASSWORD).await;
    for _ in 0..4 {
        try_login(&env.app, OWNER, "wrong password!!", None).await;
    }
    login(&env.app, OWNER, PASSWORD).await;
}

#[tokio::test]
async fn twenty_failures_from_one_ip_lock_that_ip_for_every_account() {
    let env = env();
    for n in 0..20 {
        let email = format!("guess{n}@shop.test");
        let reply = try_login(&env.app, &email, "wrong password!!", Some("203.0.113.9")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    let locked = try_login(&env.app, OWNER, PASSWORD, Some("203.0.113.9")).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.body["message"]
        .as_str()
        .unwrap()
        .starts_with("locked, try again in"));
    // Another address is not affected, and the audit log names the address.
    let owner = client_of(&try_login(&env.app, OWNER, PASSWORD, Some("198.51.100.1")).await);
    let page = get(&env.app, "/admin/api/audit", &owner).await;
    let entries = page.body["entries"].as_array().unwrap();
    assert_eq!(entries[0]["action"], "login");
    assert_eq!(entries[0]["ip"], "198.51.100.1");
    assert_eq!(entries[1]["action"], "login.failed");
    assert_eq!(entries[1]["ip"], "203.0.113.9");
    assert_eq!(entries[1]["after"]["reason"], "no such account");
}

#[tokio::test]
async fn totp_enrolment_then_login_needs_the_code() {
    let env = env();
    let owner = login(&env.app, OWNER, PASSWORD).await;
    let enrol = post_as(&env.app, "/admin/api/me/totp", &owner, json!({})).await;
    assert_eq!(enrol.status, StatusCode::OK, "{}", enrol.text);
    let url = enrol.body["otpauth_url"].as_str().unwrap();
    assert!(url.starts_with("otpauth://totp/"), "{url}");
    // Before confirming, login needs no code.
    login(&env.app, OWNER, PASSWORD).await;
    let secret: Vec<u8> = env.admin.db.blocking(|conn| {
        conn.query_row("SELECT totp_secret FROM users WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap()
    });
    assert_eq!(
        totp::base32(&secret),
        enrol.body["secret"].as_str().unwrap()
    );
    let now_s = env.clock.now_ms() / 1_000;
    let bad = post_as(
        &env.app,
        "/admin/api/me/totp/confirm",
        &owner,
        json!({ "code": "000000" }),
    )
    .await;
    let expected_bad = if totp::code_at(&secret, now_s) == "000000" {
        200
    } else {
        400
    };
    assert_eq!(bad.status.as_u16(), expected_bad);
    let ok = post_as(
        &env.app,
        "/admin/api/me/totp/confirm",
        &owner,
        json!({ "code": totp::code_at(&secret, now_s) }),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);

    let without = try_login(&env.app, OWNER, PASSWORD, None).await;
    assert_eq!(without.status, StatusCode::UNAUTHORIZED);
    assert_eq!(without.body["error"], "totp_required");
    let login_with = |code: String| {
        let app = env.app.clone();
        async move {
            send(
                &app,
                "POST",
                "/admin/api/login",
                None,
                None,
                Some(json!({ "email": OWNER, "password": PASSWORD, "totp": code })),
                None,
            )
            .await
        }
    };
    let wrong_code = format!(
        "{:06}",
        (totp::code_at(&secret, now_s).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    assert_eq!(
        login_with(wrong_code).await.status,
        StatusCode::UNAUTHORIZED
    );
    let with = login_with(totp::code_at(&secret, now_s)).await;
    client_of(&with);
    // The same code again (an overheard one) is refused, the next step's is not.
    let replay = login_with(totp::code_at(&secret, now_s)).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(replay.body["message"]
        .as_str()
        .unwrap()
        .contains("already used"));
    env.clock.advance(30_000);
    client_of(&login_with(totp::code_at(&secret, now_s + 30)).await);
}

#[tokio::test]
async fn owners_manage_accounts_and_the_last_owner_stays() {
    let env = env();
    let (owner, staff, _viewer) = team(&env).await;
    let users = get(&env.app, "/admin/api/users", &owner).await;
    let list = users.body["users"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert!(list.iter().all(|u| u.get("password_hash").is_none()));
    let taken = post_as(
        &env.app,
        "/admin/api/users",
        &owner,
        json!({ "email": "STAFF@shop.test", "password": PASSWORD, "role": "viewer" }),
    )
    .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let demote_self = post_as(
        &env.app,
        "/admin/api/users/1",
        &owner,
        json!({ "role": "staff" }),
    )
    .await;
    assert_eq!(
        demote_self.status,
        StatusCode::CONFLICT,
        "{}",
        demote_self.text
    );
    // Disabling an account ends its sessions at once.
    let disabled = post_as(
        &env.app,
        "/admin/api/users/2",
        &owner,
        json!({ "disabled": true }),
    )
    .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text);
    assert_eq!(
        get(&env.app, "/admin/api/me", &staff).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        try_login(&env.app, "staff@shop.test", PASSWORD, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn orders_are_searched_filtered_and_paged() {
    let env = env();
    let (_owner, _staff, viewer) = team(&env).await;
    let day_ms = 86_400_000;
    for n in 0..30u64 {
        let email = if n % 3 == 0 {
            "alice@example.com"
        } else {
            "bob@example.com"
        };
        let line = if n % 5 == 0 { "TEA-1" } else { "MUG-1" };
        let o = order(
            &format!("ord-{n:02}"),
            email,
            &[(line, 1)],
            START_MS + n * day_ms,
        );
        env.admin.book.store(&o).await.unwrap();
    }
    let page = get(&env.app, "/admin/api/orders?page_size=10", &viewer).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.body["total"], 30);
    assert_eq!(page.body["next"], 2);
    assert_eq!(page.body["orders"][0]["id"], "ord-29", "newest first");
    let last = get(&env.app, "/admin/api/orders?page_size=10&page=3", &viewer).await;
    assert_eq!(last.body["orders"].as_array().unwrap().len(), 10);
    assert_eq!(last.body["next"], Value::Null);
    let alice = get(
        &env.app,
        "/admin/api/orders?email=ALICE@example.com",
        &viewer,
    )
    .await;
    assert_eq!(alice.body["total"], 10);
    let tea = get(&env.app, "/admin/api/orders?sku=TEA-1", &viewer).await;
    assert_eq!(tea.body["total"], 6);
    let text = get(&env.app, "/admin/api/orders?q=ord-1", &viewer).await;
    assert_eq!(text.body["total"], 10);
    let title = get(&env.app, "/admin/api/orders?q=of%20TEA", &viewer).await;
    assert_eq!(title.body["total"], 6);
    let wildcard = get(&env.app, "/admin/api/orders?q=%25", &viewer).await;
    assert_eq!(wildcard.body["total"], 0, "% is literal");
    let from = START_MS + 10 * day_ms;
    let to = START_MS + 20 * day_ms;
    let range = get(
        &env.app,
        &format!("/admin/api/orders?from={from}&to={to}"),
        &viewer,
    )
    .await;
    assert_eq!(range.body["total"], 10);
    let paid = get(&env.app, "/admin/api/orders?status=paid", &viewer).await;
    assert_eq!(paid.body["total"], 30);
    for bad in [
        "status=lost",
        "page=0",
        "page_size=1000",
        "from=yesterday",
        "nope=1",
    ] {
        let reply = get(&env.app, &format!("/admin/api/orders?{bad}"), &viewer).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let one = get(&env.app, "/admin/api/orders/ord-03", &viewer).await;
    assert_eq!(one.body["order"]["email"], "alice@example.com");
    assert_eq!(one.body["history"].as_array().unwrap().len(), 2);
    assert_eq!(one.body["next_statuses"], json!(["packed", "cancelled"]));
    assert_eq!(
        get(&env.app, "/admin/api/orders/ord-99", &viewer)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_illegal_move_is_a_409_that_says_why() {
    let env = env();
    let (_owner, staff, _viewer) = team(&env).await;
    seed(&env, &[("MUG-1", 5)]).await;
    sold_order(&env, "o-1", &[("MUG-1", 1)]).await;
    for status in ["packed", "shipped"] {
        let r = post_as(
            &env.app,
            "/admin/api/orders/o-1/status",
            &staff,
            json!({ "status": status }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let r = post_as(
        &env.app,
        "/admin/api/orders/o-1/status",
        &staff,
        json!({ "status": "cancelled" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.body["message"],
        "an order that is shipped cannot become cancelled"
    );
    let r = post_as(
        &env.app,
        "/admin/api/orders/o-1/status",
        &staff,
        json!({ "status": "lost" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = post_as(
        &env.app,
        "/admin/api/orders/nope/status",
        &staff,
        json!({ "status": "paid" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// A small deterministic generator (xorshift64*): the same seed gives the same walk.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

#[tokio::test]
async fn random_status_walks_never_leave_the_state_machine_or_lose_stock() {
    let env = env();
    let (_owner, staff, _viewer) = team(&env).await;
    let skus = ["MUG-1", "TEA-1", "CUP-9"];
    seed(&env, &[("MUG-1", 100), ("TEA-1", 100), ("CUP-9", 100)]).await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let walks = 12;
    let steps = 10;
    let mut orders = Vec::new();
    for w in 0..walks {
        let a = skus[w % 3];
        let b = skus[(w + 1) % 3];
        let lines = [(a, 1 + (w % 4) as u32), (b, 2)];
        orders.push(sold_order(&env, &format!("walk-{w}"), &lines).await);
    }
    for step in 0..steps {
        for order in &orders {
            // Mostly legal moves, sometimes any status at all.
            let current = env
                .admin
                .book
                .order(&order.id)
                .await
                .unwrap()
                .unwrap()
                .status;
            let legal: Vec<OrderStatus> = ALL_STATUSES
                .into_iter()
                .filter(|s| current.can_move_to(*s))
                .collect();
            let next = if legal.is_empty() || rng.below(4) == 0 {
                ALL_STATUSES[rng.below(ALL_STATUSES.len())]
            } else {
                legal[rng.below(legal.len())]
            };
            let uri = format!("/admin/api/orders/{}/status", order.id);
            let r = post_as(
                &env.app,
                &uri,
                &staff,
                json!({ "status": next.as_str(), "note": format!("step {step}") }),
            )
            .await;
            if current.can_move_to(next) {
                assert_eq!(
                    r.status,
                    StatusCode::OK,
                    "{current:?} -> {next:?}: {}",
                    r.text
                );
                let expected = if next.returns_stock() {
                    "returned"
                } else {
                    "none"
                };
                assert_eq!(r.body["stock"], expected);
            } else {
                assert_eq!(r.status, StatusCode::CONFLICT, "{current:?} -> {next:?}");
            }
        }
        // After every round: each order's history is a legal path, and every SKU's units are
        // all accounted for, with exactly the returned orders' units back in stock.
        let mut out: BTreeMap<String, u32> = BTreeMap::new();
        for order in &orders {
            let stored = env.admin.book.order(&order.id).await.unwrap().unwrap();
            for pair in stored.history.windows(2) {
                assert!(
                    pair[0].status.can_move_to(pair[1].status),
                    "{:?}",
                    stored.history
                );
            }
            assert_eq!(stored.history.last().unwrap().status, stored.status);
            let returned = stored.history.iter().any(|c| c.status.returns_stock());
            for line in &stored.lines {
                if !returned {
                    *out.entry(line.sku.to_string()).or_default() += line.qty;
                }
            }
        }
        for s in skus {
            let level = env.admin.stock.level(&sku(s)).await.unwrap().unwrap();
            level.check(&sku(s)).unwrap();
            let sold = out.get(s).copied().unwrap_or(0);
            assert_eq!(level.sold, sold, "{s} after step {step}");
            assert_eq!(level.available, 100 - sold, "{s} after step {step}");
            assert_eq!(level.received, 100);
        }
    }
}

#[tokio::test]
async fn stock_is_read_restocked_and_adjusted_with_the_invariant_kept() {
    let env = env();
    let (owner, staff, viewer) = team(&env).await;
    seed(&env, &[("MUG-1", 10)]).await;
    sold_order(&env, "s-1", &[("MUG-1", 3)]).await;
    let level = get(&env.app, "/admin/api/stock/MUG-1", &viewer).await;
    assert_eq!(
        level.body,
        json!({ "sku": "MUG-1", "available": 7, "held": 0, "sold": 3, "received": 10 })
    );
    assert_eq!(
        get(&env.app, "/admin/api/stock/NOPE", &viewer).await.status,
        StatusCode::NOT_FOUND
    );
    let r = post_as(
        &env.app,
        "/admin/api/stock/MUG-1/restock",
        &staff,
        json!({ "qty": 5, "reason": "delivery 42" }),
    )
    .await;
    assert_eq!(
        r.body,
        json!({ "sku": "MUG-1", "available": 12, "held": 0, "sold": 3, "received": 15, "repeated": false })
    );
    // A restock sent with an Idempotency-Key counts once, however often it is sent; the key
    // cannot be reused for other units. Every try is audited, repeats marked.
    let keyed = |qty: u32| {
        send_with(
            &env.app,
            "POST",
            "/admin/api/stock/MUG-1/restock",
            Some(&staff),
            Some(&staff.csrf),
            Some(json!({ "qty": qty, "reason": "delivery 43" })),
            None,
            &[("idempotency-key", "delivery-43")],
        )
    };
    let first = keyed(2).await;
    assert_eq!(
        (
            first.body["available"].clone(),
            first.body["repeated"].clone()
        ),
        (json!(14), json!(false))
    );
    let again = keyed(2).await;
    assert_eq!(
        (
            again.body["available"].clone(),
            again.body["repeated"].clone()
        ),
        (json!(14), json!(true))
    );
    let other = keyed(3).await;
    assert_eq!(other.status, StatusCode::CONFLICT, "{}", other.text);
    assert!(other.text.contains("already used"), "{}", other.text);
    let audit = get(&env.app, "/admin/api/audit", &owner).await;
    let repeats: Vec<_> = audit.body["entries"].as_array().unwrap()[..2]
        .iter()
        .map(|e| {
            (
                e["action"].clone(),
                e["after"]["request"]["repeated"].clone(),
            )
        })
        .collect();
    assert_eq!(
        repeats,
        [
            (json!("stock.restock"), json!(true)),
            (json!("stock.restock"), json!(false))
        ]
    );
    // Without a key, the same restock sent twice counts twice.
    for available in [19, 24] {
        let r = post_as(
            &env.app,
            "/admin/api/stock/MUG-1/restock",
            &staff,
            json!({ "qty": 5, "reason": "delivery 44, unkeyed" }),
        )
        .await;
        assert_eq!(r.body["available"], available);
    }
    let r = post_as(
        &env.app,
        "/admin/api/stock/MUG-1/adjust",
        &staff,
        json!({ "available": 4, "reason": "count" }),
    )
    .await;
    assert_eq!(
        r.body,
        json!({ "sku": "MUG-1", "available": 4, "held": 0, "sold": 3, "received": 7 })
    );
    for (uri, body) in [
        (
            "/admin/api/stock/MUG-1/restock",
            json!({ "qty": 0, "reason": "x" }),
        ),
        (
            "/admin/api/stock/MUG-1/restock",
            json!({ "qty": 1, "reason": " " }),
        ),
        (
            "/admin/api/stock/MUG-1/adjust",
            json!({ "available": -1, "reason": "x" }),
        ),
    ] {
        assert_eq!(
            post_as(&env.app, uri, &staff, body).await.status,
            StatusCode::BAD_REQUEST
        );
    }
    let page = get(&env.app, "/admin/api/audit", &owner).await;
    let adjust = &page.body["entries"][0];
    assert_eq!(adjust["action"], "stock.adjust");
    assert_eq!(adjust["actor"], "staff@shop.test");
    assert_eq!(adjust["before"]["available"], 24);
    assert_eq!(adjust["after"]["available"], 4);
    assert_eq!(adjust["after"]["request"]["reason"], "count");
}

#[tokio::test]
async fn every_admin_action_appends_exactly_one_audit_entry_that_cannot_be_rewritten() {
    let env = env();
    let owner = login(&env.app, OWNER, PASSWORD).await;
    // The bootstrap and this login.
    assert_eq!(audit_actions(&env, &owner).await, ["user.create", "login"]);
    let mut expected: Vec<&str> = vec!["user.create", "login"];
    let mut check = |action: &'static str| {
        expected.push(action);
        expected.clone()
    };
    post_as(
        &env.app,
        "/admin/api/users",
        &owner,
        json!({ "email": "s@shop.test", "password": PASSWORD, "role": "staff" }),
    )
    .await;
    assert_eq!(audit_actions(&env, &owner).await, check("user.create"));
    post_as(
        &env.app,
        "/admin/api/users/2",
        &owner,
        json!({ "role": "viewer" }),
    )
    .await;
    assert_eq!(audit_actions(&env, &owner).await, check("user.update"));
    try_login(&env.app, "s@shop.test", "wrong password!!", None).await;
    assert_eq!(audit_actions(&env, &owner).await, check("login.failed"));
    seed(&env, &[("MUG-1", 5)]).await;
    sold_order(&env, "a-1", &[("MUG-1", 1)]).await;
    post_as(
        &env.app,
        "/admin/api/orders/a-1/status",
        &owner,
        json!({ "status": "cancelled", "note": "asked by phone" }),
    )
    .await;
    assert_eq!(audit_actions(&env, &owner).await, check("order.status"));
    post_as(
        &env.app,
        "/admin/api/stock/MUG-1/restock",
        &owner,
        json!({ "qty": 1, "reason": "found one" }),
    )
    .await;
    assert_eq!(audit_actions(&env, &owner).await, check("stock.restock"));
    post_as(
        &env.app,
        "/admin/api/stock/MUG-1/adjust",
        &owner,
        json!({ "available": 2, "reason": "count" }),
    )
    .await;
    assert_eq!(audit_actions(&env, &owner).await, check("stock.adjust"));
    // Refused actions change nothing and log nothing.
    post_as(
        &env.app,
        "/admin/api/orders/a-1/status",
        &owner,
        json!({ "status": "shipped" }),
    )
    .await;
    assert_eq!(audit_actions(&env, &owner).await, expected);
    post_as(&env.app, "/admin/api/logout", &owner, json!({})).await;
    let owner = login(&env.app, OWNER, PASSWORD).await;
    let actions = audit_actions(&env, &owner).await;
    assert_eq!(&actions[actions.len() - 2..], ["logout", "login"]);

    let order = get(&env.app, "/admin/api/orders/a-1", &owner).await;
    let action = &order.body["admin_actions"][0];
    assert_eq!(action["before"]["status"], "paid");
    assert_eq!(
        action["after"],
        json!({ "status": "cancelled", "note": "asked by phone" })
    );

    let csv = get(&env.app, "/admin/api/audit.csv", &owner).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let mut reader = csv::Reader::from_reader(csv.text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), actions.len());
    let order_row = rows.iter().find(|r| &r[4] == "order.status").unwrap();
    assert_eq!(
        &order_row[7],
        r#"{"note":"asked by phone","status":"cancelled"}"#
    );

    // The log is append-only in SQLite itself.
    for statement in ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"] {
        let refused = env.admin.db.blocking(|conn| conn.execute(statement, []));
        assert!(
            refused.unwrap_err().to_string().contains("append-only"),
            "{statement}"
        );
    }
}

#[tokio::test]
async fn admin_responses_carry_the_security_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let config = origin::server::OriginConfig {
        data_dir: tmp.path().to_owned(),
        catalog: None,
        token: None,
    };
    let admin = AdminConfig {
        hash_cost: HashCost::Test,
        edge: None,
    };
    let origin = Arc::new(
        origin::server::Origin::open_with(config, admin)
            .await
            .unwrap(),
    );
    accounts::create_owner(tmp.path(), OWNER, PASSWORD, HashCost::Test, START_MS).unwrap();
    let app = origin.router();
    let owner = login(&app, OWNER, PASSWORD).await;
    let replies = [
        try_login(&app, OWNER, "wrong password!!", None).await,
        get(&app, "/admin/api/me", &owner).await,
        get(&app, "/admin/api/audit.csv", &owner).await,
        send(&app, "GET", "/admin/api/orders", None, None, None, None).await,
        send(&app, "GET", "/admin/nothing-here", None, None, None, None).await,
        send(
            &app,
            "POST",
            "/admin/api/logout",
            Some(&owner),
            None,
            None,
            None,
        )
        .await,
    ];
    for reply in replies {
        let csp = reply.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(reply.headers[header::STRICT_TRANSPORT_SECURITY]
            .to_str()
            .unwrap()
            .starts_with("max-age="));
        assert_eq!(reply.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(reply.headers[header::REFERRER_POLICY], "same-origin");
    }
    // The storefront is not the admin's: no admin headers there.
    let health = send(&app, "GET", "/healthz", None, None, None, None).await;
    assert!(health
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .is_none());
}

/// A fake edge: records each `POST /_admin/orders/{id}/status` and answers 200 (409 for an
/// order named `conflict`).
#[derive(Clone, Default)]
struct FakeEdge {
    calls: Arc<Mutex<Vec<(String, String, String)>>>,
}

async fn fake_edge_status(
    State(edge): State<FakeEdge>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let status = body["status"].as_str().unwrap_or_default().to_owned();
    edge.calls.lock().unwrap().push((id.clone(), status, auth));
    if id == "conflict" {
        return (StatusCode::CONFLICT, Json(json!({ "error": "conflict" })));
    }
    (StatusCode::OK, Json(json!({ "ok": true })))
}

/// The fake edge's outbox: one order the origin refused, `e-9`.
async fn fake_edge_outbox(headers: HeaderMap) -> (StatusCode, Json<Value>) {
    if headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap())
        != Some("Bearer edge-admin-token")
    {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "token" })));
    }
    let delivery = json!({
        "order_id": "e-9", "placed_at_ms": START_MS, "total": {"minor": 1250, "currency": "USD"},
        "next_try_ms": START_MS + 300_000, "attempts": 3,
        "last_error": "protocol error: origin refused the order (422): no such SKU",
        "last_try_ms": START_MS + 1_000, "refused": true
    });
    (
        StatusCode::OK,
        Json(json!({ "deliveries": [delivery], "unreachable_shards": [] })),
    )
}

/// "Retry now" at the fake edge: recorded; 404 for any order but `e-9`.
async fn fake_edge_retry(
    State(edge): State<FakeEdge>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    edge.calls
        .lock()
        .unwrap()
        .push((id.clone(), "retry".into(), auth));
    if id != "e-9" {
        return (
            StatusCode::NOT_FOUND,
            format!("order {id} is not waiting for delivery to the origin"),
        );
    }
    (
        StatusCode::OK,
        json!({ "order_id": id, "next_try_ms": START_MS }).to_string(),
    )
}

async fn serve_fake_edge(listener: tokio::net::TcpListener, edge: FakeEdge) {
    let app = Router::new()
        .route("/_admin/orders/{id}/status", post(fake_edge_status))
        .route("/_admin/outbox", axum::routing::get(fake_edge_outbox))
        .route("/_admin/outbox/{id}/retry", post(fake_edge_retry))
        .with_state(edge);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

/// An admin whose edge is a [`FakeEdge`] (token `edge-admin-token`).
async fn env_with_fake_edge() -> (Env, FakeEdge) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let edge = FakeEdge::default();
    serve_fake_edge(listener, edge.clone()).await;
    let env = env_with(Some(EdgeTarget {
        url,
        token: "edge-admin-token".into(),
    }));
    (env, edge)
}

#[tokio::test]
async fn status_changes_are_forwarded_to_the_edge_with_its_token() {
    let (env, edge) = env_with_fake_edge().await;
    let (_owner, staff, _viewer) = team(&env).await;
    seed(&env, &[("MUG-1", 5)]).await;
    sold_order(&env, "e-1", &[("MUG-1", 2)]).await;
    let r = post_as(
        &env.app,
        "/admin/api/orders/e-1/status",
        &staff,
        json!({ "status": "cancelled" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["edge"], "delivered");
    assert_eq!(r.body["stock"], "returned");
    let r = post_as(
        &env.app,
        "/admin/api/orders/e-1/status",
        &staff,
        json!({ "status": "refunded" }),
    )
    .await;
    assert_eq!(r.body["edge"], "delivered");
    assert_eq!(
        *edge.calls.lock().unwrap(),
        [
            (
                "e-1".to_owned(),
                "cancelled".to_owned(),
                "Bearer edge-admin-token".to_owned()
            ),
            (
                "e-1".to_owned(),
                "refunded".to_owned(),
                "Bearer edge-admin-token".to_owned()
            ),
        ]
    );
    // An edge that refuses (409) is not retried forever: the row is dropped and audited.
    env.admin
        .book
        .store(&order("conflict", "a@b.co", &[("MUG-1", 1)], START_MS))
        .await
        .unwrap();
    let r = post_as(
        &env.app,
        "/admin/api/orders/conflict/status",
        &staff,
        json!({ "status": "packed" }),
    )
    .await;
    assert_eq!(r.body["edge"], "refused");
    assert_eq!(r.body["to"], "packed", "the origin keeps the change");
    let outbox = get(&env.app, "/admin/api/outbox", &staff).await;
    assert_eq!(outbox.body["waiting"], json!([]));
}

#[tokio::test]
async fn an_unreachable_edge_gets_the_change_later_in_order() {
    // A port that nothing listens on (yet).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let env = env_with(Some(EdgeTarget {
        url: format!("http://{addr}"),
        token: "t".into(),
    }));
    let (_owner, staff, viewer) = team(&env).await;
    seed(&env, &[("MUG-1", 5)]).await;
    sold_order(&env, "d-1", &[("MUG-1", 1)]).await;
    for status in ["cancelled", "refunded"] {
        let r = post_as(
            &env.app,
            "/admin/api/orders/d-1/status",
            &staff,
            json!({ "status": status }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["edge"], "queued");
        assert_eq!(r.body["to"], status, "the origin keeps the change");
    }
    assert_eq!(
        r_level(&env).await,
        5,
        "the origin's stock came back regardless"
    );
    let waiting = get(&env.app, "/admin/api/outbox", &viewer).await;
    let rows = waiting.body["waiting"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["status"], "cancelled");
    assert_eq!(rows[0]["attempts"], 1);
    assert!(rows[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("unreachable"));
    // Not due yet: nothing runs.
    assert_eq!(env.admin.run_outbox_due().await.unwrap(), 0);
    // Still down when due: backed off further.
    env.clock.advance(1_000);
    assert_eq!(env.admin.run_outbox_due().await.unwrap(), 1);
    let rows = get(&env.app, "/admin/api/outbox", &viewer).await.body["waiting"].clone();
    assert_eq!(rows[0]["attempts"], 2);
    assert_eq!(rows[0]["next_attempt_at_ms"], env.clock.now_ms() + 2_000);
    // The edge comes up; the next due run delivers both, oldest first.
    let edge = FakeEdge::default();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    serve_fake_edge(listener, edge.clone()).await;
    env.clock.advance(2_000);
    assert_eq!(env.admin.run_outbox_due().await.unwrap(), 1);
    env.clock.advance(60_000);
    env.admin.run_outbox_due().await.unwrap();
    let calls: Vec<String> = edge
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.1.clone())
        .collect();
    assert_eq!(calls, ["cancelled", "refunded"]);
    let rows = get(&env.app, "/admin/api/outbox", &viewer).await;
    assert_eq!(rows.body["waiting"], json!([]));
}

async fn r_level(env: &Env) -> u32 {
    env.admin
        .stock
        .level(&sku("MUG-1"))
        .await
        .unwrap()
        .unwrap()
        .available
}

#[tokio::test]
async fn a_shoppers_data_is_exported_and_erased_but_the_orders_stay() {
    let env = env();
    let (owner, staff, _viewer) = team(&env).await;
    for (id, email) in [
        ("p-1", "Jane@Example.com"),
        ("p-2", "jane@example.com"),
        ("p-3", "joe@example.com"),
    ] {
        env.admin
            .book
            .store(&order(id, email, &[("MUG-1", 1)], START_MS))
            .await
            .unwrap();
    }
    let export = get(
        &env.app,
        "/admin/api/privacy/export?email=jane@example.com",
        &owner,
    )
    .await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.text);
    assert_eq!(export.body["orders"].as_array().unwrap().len(), 2);
    let staff_try = post_as(
        &env.app,
        "/admin/api/privacy/erase",
        &staff,
        json!({ "email": "jane@example.com" }),
    )
    .await;
    assert_eq!(staff_try.status, StatusCode::FORBIDDEN);
    let erased = post_as(
        &env.app,
        "/admin/api/privacy/erase",
        &owner,
        json!({ "email": " JANE@example.com" }),
    )
    .await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.text);
    assert_eq!(erased.body["orders_anonymised"], 2);
    let placeholder = erased.body["replaced_by"].as_str().unwrap().to_owned();
    assert!(placeholder.starts_with("erased-") && placeholder.ends_with("@invalid"));
    for id in ["p-1", "p-2"] {
        let stored = env
            .admin
            .book
            .order(&OrderId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            stored.email, placeholder,
            "the order stays, its e-mail does not"
        );
        assert_eq!(stored.total, Money::new(1_000, "USD"));
    }
    let left = get(&env.app, "/admin/api/orders?q=jane", &owner).await;
    assert_eq!(left.body["total"], 0);
    let joe = get(&env.app, "/admin/api/orders?email=joe@example.com", &owner).await;
    assert_eq!(joe.body["total"], 1);
    // The audit log names the request by digest, never the e-mail.
    let csv = get(&env.app, "/admin/api/audit.csv", &owner).await;
    assert!(csv.text.contains("privacy.erase") && csv.text.contains("privacy.export"));
    assert!(!csv.text.to_lowercase().contains("jane"), "{}", csv.text);
}

#[tokio::test]
async fn sales_report_counts_revenue_per_day_and_draws_it() {
    let env = env();
    let (_owner, staff, viewer) = team(&env).await;
    let day_ms = 86_400_000;
    let day0 = START_MS / day_ms * day_ms;
    // Day 0: two orders (1 + 3 mugs); day 2: one tea order, and one cancelled (not revenue).
    env.admin
        .book
        .store(&order("r-1", "a@b.co", &[("MUG-1", 1)], day0 + 1_000))
        .await
        .unwrap();
    env.admin
        .book
        .store(&order("r-2", "a@b.co", &[("MUG-1", 3)], day0 + 2_000))
        .await
        .unwrap();
    env.admin
        .book
        .store(&order(
            "r-3",
            "a@b.co",
            &[("TEA-1", 2), ("MUG-1", 1)],
            day0 + 2 * day_ms,
        ))
        .await
        .unwrap();
    env.admin
        .book
        .store(&order("r-4", "a@b.co", &[("TEA-1", 9)], day0 + 2 * day_ms))
        .await
        .unwrap();
    let cancel = post_as(
        &env.app,
        "/admin/api/orders/r-4/status",
        &staff,
        json!({ "status": "cancelled" }),
    )
    .await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.text);
    let uri = format!(
        "/admin/api/reports/sales?from={}&to={}",
        day0,
        day0 + 3 * day_ms - 1
    );
    let report = get(&env.app, &uri, &viewer).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    let usd = &report.body["currencies"][0];
    assert_eq!(usd["currency"], "USD");
    assert_eq!(usd["orders"], 3);
    assert_eq!(usd["revenue_minor"], 7_000);
    assert_eq!(usd["aov_minor"], 2_333);
    let days: Vec<(u64, u64)> = usd["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["orders"].as_u64().unwrap(),
                d["revenue_minor"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(days, [(2, 4_000), (0, 0), (1, 3_000)]);
    let top = &report.body["top_products"];
    assert_eq!(top[0]["sku"], "MUG-1");
    assert_eq!(top[0]["units"], 5);
    assert_eq!(top[1]["sku"], "TEA-1");
    assert_eq!(
        top[1]["units"], 2,
        "the cancelled order's units do not count"
    );
    let svg = get(&env.app, &uri.replace("sales?", "sales.svg?"), &viewer).await;
    assert_eq!(
        svg.headers[header::CONTENT_TYPE],
        "image/svg+xml; charset=utf-8"
    );
    assert!(svg
        .text
        .starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(svg.text.matches("<rect").count(), 3, "one bar per day");
    assert!(svg.text.contains("total 70.00, 3 orders"), "{}", svg.text);
    assert!(!svg.text.contains("<script") && !svg.text.contains("style="));
    let too_long = get(
        &env.app,
        "/admin/api/reports/sales?from=2020-01-01&to=2026-01-01",
        &viewer,
    )
    .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn metrics_count_requests_and_report_orders_outbox_and_expiries() {
    let tmp = tempfile::tempdir().unwrap();
    let config = origin::server::OriginConfig {
        data_dir: tmp.path().to_owned(),
        catalog: None,
        token: Some("metrics-token".into()),
    };
    let admin = AdminConfig {
        hash_cost: HashCost::Test,
        edge: None,
    };
    let origin = Arc::new(
        origin::server::Origin::open_with(config, admin)
            .await
            .unwrap(),
    );
    origin
        .book
        .store(&order("m-1", "a@b.co", &[("MUG-1", 1)], START_MS))
        .await
        .unwrap();
    let app = origin.router();
    try_login(&app, OWNER, "wrong password!!", None).await;
    send(&app, "GET", "/healthz", None, None, None, None).await;
    let scrape = |token: Option<&'static str>| {
        let app = app.clone();
        async move {
            let mut request = Request::get("/metrics");
            if let Some(token) = token {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let response = app
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        }
    };
    assert_eq!(scrape(None).await.0, StatusCode::UNAUTHORIZED);
    let (status, text) = scrape(Some("metrics-token")).await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "origin_http_requests_total{area=\"admin\",code=\"4xx\"} 1",
        "origin_http_requests_total{area=\"other\",code=\"2xx\"} 1",
        "origin_http_request_duration_seconds_count{area=\"admin\"} 1",
        "origin_orders{status=\"paid\"} 1",
        "origin_admin_outbox_depth 0",
        "origin_holds_expired_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
}

#[tokio::test]
async fn the_expiry_timer_counts_the_holds_it_releases() {
    let env = env();
    seed(&env, &[("MUG-1", 5)]).await;
    let shards = env.admin.stock.transport();
    for id in ["h-1", "h-2"] {
        let reserve = ShardRequest::Reserve {
            order: OrderId::parse(id).unwrap(),
            lines: vec![Line {
                sku: sku("MUG-1"),
                qty: 1,
            }],
            ttl_ms: 1_000,
        };
        let held = env
            .admin
            .stock
            .on_shard(SkuShard::of(&sku("MUG-1")), reserve)
            .await;
        assert!(matches!(held, Ok(ShardReply::Held { .. })), "{held:?}");
    }
    assert_eq!(shards.expire_due().await.unwrap(), 0);
    env.clock.advance(1_000);
    assert_eq!(shards.expire_due().await.unwrap(), 2);
    assert_eq!(shards.expired_total(), 2);
}

#[tokio::test]
async fn over_real_http_the_cookie_works_and_the_audit_log_sees_the_peer_address() {
    let tmp = tempfile::tempdir().unwrap();
    let config = origin::server::OriginConfig {
        data_dir: tmp.path().to_owned(),
        catalog: None,
        token: None,
    };
    let admin = AdminConfig {
        hash_cost: HashCost::Test,
        edge: None,
    };
    let origin = Arc::new(
        origin::server::Origin::open_with(config, admin)
            .await
            .unwrap(),
    );
    accounts::create_owner(tmp.path(), OWNER, PASSWORD, HashCost::Test, START_MS).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // As `origin serve` runs it: with the peer's address.
    let app = origin
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{base}/admin/api/login"))
        .json(&json!({ "email": OWNER, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body: Value = login.json().await.unwrap();
    let audit: Value = http
        .get(format!("{base}/admin/api/audit"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["entries"][0]["action"], "login");
    assert_eq!(audit["entries"][0]["ip"], "127.0.0.1");
    let logout = http
        .post(format!("{base}/admin/api/logout"))
        .header(header::COOKIE, &cookie)
        .header("x-csrf-token", body["csrf_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 200);
}

#[tokio::test]
async fn a_change_cut_short_by_a_crash_is_finished_or_dropped_by_recovery() {
    use origin::admin::audit::NewEntry;
    use origin::admin::outbox::{record_intent, Intent};
    let env = env();
    let (owner, _staff, _viewer) = team(&env).await;
    seed(&env, &[("MUG-1", 5)]).await;
    sold_order(&env, "c-1", &[("MUG-1", 2)]).await;
    env.admin
        .book
        .store(&order("c-2", "a@b.co", &[("MUG-1", 1)], START_MS))
        .await
        .unwrap();
    let now_ms = env.clock.now_ms();
    let intent = |order: &str, status: OrderStatus| Intent {
        order: order.into(),
        status,
        at_ms: now_ms,
        entry: NewEntry {
            at_ms: now_ms,
            actor: Some("staff@shop.test".into()),
            action: "order.status".into(),
            target: Some(format!("order:{order}")),
            after: Some(json!({ "status": status, "note": null })),
            ..NewEntry::default()
        },
    };
    // c-1: the crash came after the order moved; c-2: before it moved.
    let moved_intent = intent("c-1", OrderStatus::Cancelled);
    env.admin
        .db
        .blocking(|conn| record_intent(conn, &moved_intent))
        .unwrap();
    let c1 = OrderId::parse("c-1").unwrap();
    env.admin
        .book
        .change_status(&c1, OrderStatus::Cancelled, now_ms)
        .await
        .unwrap();
    let unmoved_intent = intent("c-2", OrderStatus::Packed);
    env.admin
        .db
        .blocking(|conn| record_intent(conn, &unmoved_intent))
        .unwrap();
    assert_eq!(r_level(&env).await, 3);
    let before = audit_actions(&env, &owner).await.len();

    env.admin.run_outbox_due().await.unwrap();
    let page = get(&env.app, "/admin/api/audit", &owner).await;
    let entries = page.body["entries"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        before + 1,
        "one entry, for the change that happened"
    );
    assert_eq!(entries[0]["target"], "order:c-1");
    assert_eq!(entries[0]["before"]["status"], "paid");
    assert_eq!(entries[0]["after"]["status"], "cancelled");
    assert_eq!(r_level(&env).await, 5, "its stock came back");
    let left: i64 = env.admin.db.blocking(|conn| {
        conn.query_row("SELECT COUNT(*) FROM pending_changes", [], |r| r.get(0))
            .unwrap()
    });
    assert_eq!(left, 0);
    let c2 = env
        .admin
        .book
        .order(&OrderId::parse("c-2").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c2.status, OrderStatus::Paid);
    // Running again changes nothing.
    env.admin.run_outbox_due().await.unwrap();
    assert_eq!(audit_actions(&env, &owner).await.len(), before + 1);
}

#[tokio::test]
async fn a_refused_csrf_token_changes_nothing() {
    let env = env();
    let (owner, staff, _viewer) = team(&env).await;
    seed(&env, &[("MUG-1", 5)]).await;
    sold_order(&env, "x-1", &[("MUG-1", 1)]).await;
    let before = audit_actions(&env, &owner).await;
    // The staff's own cookie, with the owner's token, then none: a forged cross-site request.
    for csrf in [Some(owner.csrf.as_str()), None] {
        let r = send(
            &env.app,
            "POST",
            "/admin/api/orders/x-1/status",
            Some(&staff),
            csrf,
            Some(json!({ "status": "cancelled" })),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = send(
            &env.app,
            "POST",
            "/admin/api/stock/MUG-1/restock",
            Some(&staff),
            csrf,
            Some(json!({ "qty": 5, "reason": "forged" })),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    let stored = env
        .admin
        .book
        .order(&OrderId::parse("x-1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, OrderStatus::Paid);
    assert_eq!(r_level(&env).await, 4);
    assert_eq!(audit_actions(&env, &owner).await, before);
}

#[tokio::test]
async fn changing_ones_password_needs_the_current_one_and_ends_other_sessions() {
    let env = env();
    let (owner, staff, _viewer) = team(&env).await;
    let other = login(&env.app, "staff@shop.test", PASSWORD).await;
    let uri = "/admin/api/me/password";
    let new = "an even longer passphrase";
    let wrong = post_as(
        &env.app,
        uri,
        &staff,
        json!({ "current": "nope nope nope", "new": new }),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let short = post_as(
        &env.app,
        uri,
        &staff,
        json!({ "current": PASSWORD, "new": "short" }),
    )
    .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    let ok = post_as(
        &env.app,
        uri,
        &staff,
        json!({ "current": PASSWORD, "new": new }),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(
        get(&env.app, "/admin/api/me", &staff).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&env.app, "/admin/api/me", &other).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        try_login(&env.app, "staff@shop.test", PASSWORD, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    login(&env.app, "staff@shop.test", new).await;
    assert!(audit_actions(&env, &owner)
        .await
        .contains(&"user.password".to_owned()));
}

#[test]
fn serve_takes_the_edge_url_and_token_together_or_not_at_all() {
    let bin = env!("CARGO_BIN_EXE_origin");
    let tmp = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(bin)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:1",
            "--edge-url",
            "http://127.0.0.1:9",
        ])
        .arg("--data-dir")
        .arg(tmp.path())
        .env_remove("EDGE_ADMIN_TOKEN")
        .env_remove("EDGE_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--edge-token"), "{stderr}");
}

// ---- The admin UI (server-rendered pages, forms posting to server functions) ----

/// A form post to a UI server function, as a browser sends it: urlencoded, `Accept:
/// text/html`, and a same-origin `Referer` (the page the form is on).
/// The value of the hidden input `name` in a rendered page.
fn hidden_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no hidden {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

async fn form_post(
    app: &Router,
    action: &str,
    cookie: Option<&str>,
    referer: &str,
    fields: &[(&str, &str)],
) -> Reply {
    let mut body = String::new();
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            body.push('&');
        }
        body.push_str(&format!("{name}={}", value.replace(' ', "+")));
    }
    let mut request = Request::post(action)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .header(header::REFERER, format!("http://origin.test{referer}"));
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: Value::Null,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn location(reply: &Reply) -> String {
    reply.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .trim_start_matches("http://origin.test")
        .to_owned()
}

/// A page of the UI, as a logged-in browser gets it.
async fn page(app: &Router, uri: &str, client: &Client) -> Reply {
    send(app, "GET", uri, Some(client), None, None, None).await
}

/// Logs in through the login page's form: the client (cookie and the CSRF token the pages
/// carry).
async fn ui_login(env: &Env, email: &str) -> Client {
    ui_login_on(&env.app, email).await
}

async fn ui_login_on(app: &Router, email: &str) -> Client {
    let login_page = send(app, "GET", "/admin/login", None, None, None, None).await;
    assert_eq!(login_page.status, StatusCode::OK);
    let login_cookie = login_page.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let token = login_cookie.split('=').nth(1).unwrap().to_owned();
    assert!(login_page.text.contains(&token), "{}", login_page.text);
    let reply = form_post(
        app,
        "/admin/sfn/login",
        Some(&login_cookie),
        "/admin/login",
        &[
            ("email", email),
            ("password", PASSWORD),
            ("totp", ""),
            ("login_csrf", &token),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.text);
    assert_eq!(location(&reply), "/admin/orders");
    let cookie = reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("origin_admin_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let orders = page(
        app,
        "/admin/orders",
        &Client {
            cookie: cookie.clone(),
            csrf: String::new(),
        },
    )
    .await;
    assert_eq!(orders.status, StatusCode::OK, "{}", orders.text);
    let csrf = hidden_value(&orders.text, "csrf");
    Client { cookie, csrf }
}

#[tokio::test]
async fn the_ui_logs_in_through_its_form_and_refuses_a_forged_or_wrong_login() {
    let env = env();
    // No session: every page goes to the login page.
    for uri in ["/admin", "/admin/orders", "/admin/stock", "/admin/audit"] {
        let reply = send(&env.app, "GET", uri, None, None, None, None).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(reply.headers[header::LOCATION], "/admin/login", "{uri}");
    }
    let login_page = send(&env.app, "GET", "/admin/login", None, None, None, None).await;
    let csp = login_page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(!login_page.text.contains("<script"), "{}", login_page.text);
    // A cross-site form has no login cookie: refused, nothing audited as a login.
    let forged = form_post(
        &env.app,
        "/admin/sfn/login",
        None,
        "/admin/login",
        &[
            ("email", OWNER),
            ("password", PASSWORD),
            ("totp", ""),
            ("login_csrf", "abc"),
        ],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FOUND);
    assert!(
        location(&forged).contains("__err="),
        "{}",
        location(&forged)
    );
    assert!(forged.headers.get(header::SET_COOKIE).is_none());
    // A wrong password goes back to the login page, which says why.
    let cookie = "origin_admin_login=0123456789abcdef";
    let wrong = form_post(
        &env.app,
        "/admin/sfn/login",
        Some(cookie),
        "/admin/login",
        &[
            ("email", OWNER),
            ("password", "not it"),
            ("totp", ""),
            ("login_csrf", "0123456789abcdef"),
        ],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FOUND);
    let back = send(&env.app, "GET", &location(&wrong), None, None, None, None).await;
    assert!(
        back.text.contains("wrong e-mail or password"),
        "{}",
        back.text
    );
    let owner = ui_login(&env, OWNER).await;
    let audit = page(&env.app, "/admin/audit", &owner).await;
    assert_eq!(audit.status, StatusCode::OK);
    assert!(audit.text.contains("login.failed") && audit.text.contains(">login<"));
    assert!(audit.text.contains("/admin/api/audit.csv"));
    // Logging out ends the session.
    let out = form_post(
        &env.app,
        "/admin/sfn/logout",
        Some(&owner.cookie),
        "/admin/orders",
        &[("csrf", &owner.csrf)],
    )
    .await;
    assert_eq!(out.status, StatusCode::FOUND, "{}", out.text);
    assert!(location(&out).starts_with("/admin/login"));
    let after = page(&env.app, "/admin/orders", &owner).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn ui_order_page_offers_only_legal_moves_and_its_server_functions_check_role_and_csrf() {
    let env = env();
    let (_owner, _staff, _viewer) = team(&env).await;
    seed(&env, &[("UI-1", 5)]).await;
    let order = sold_order(&env, "ui-order-1", &[("UI-1", 2)]).await;
    let staff = ui_login(&env, "staff@shop.test").await;
    let viewer = ui_login(&env, "viewer@shop.test").await;
    let uri = format!("/admin/orders/{}", order.id);

    let list = page(&env.app, "/admin/orders?status=paid&sku=UI-1", &staff).await;
    assert!(list.text.contains(&uri), "{}", list.text);
    let none = page(&env.app, "/admin/orders?status=shipped", &staff).await;
    assert!(!none.text.contains(&uri));

    // Staff see one button per legal move (paid → packed, cancelled), nothing else.
    let staff_page = page(&env.app, &uri, &staff).await;
    assert_eq!(staff_page.status, StatusCode::OK);
    for status in ALL_STATUSES {
        let button = format!("data-status=\"{}\"", status.as_str());
        assert_eq!(
            staff_page.text.contains(&button),
            OrderStatus::Paid.can_move_to(status),
            "{status:?}"
        );
    }
    // Viewers see no form, and the server function refuses them with a 403.
    let viewer_page = page(&env.app, &uri, &viewer).await;
    assert!(!viewer_page.text.contains("/admin/sfn/order_status"));
    let id = order.id.to_string();
    let refused = form_post(
        &env.app,
        "/admin/sfn/order_status",
        Some(&viewer.cookie),
        &uri,
        &[
            ("id", &id),
            ("status", "packed"),
            ("note", ""),
            ("csrf", &viewer.csrf),
        ],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    // Staff without the session's CSRF token: 403 too.
    let forged = form_post(
        &env.app,
        "/admin/sfn/order_status",
        Some(&staff.cookie),
        &uri,
        &[
            ("id", &id),
            ("status", "packed"),
            ("note", ""),
            ("csrf", "nope"),
        ],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text);
    // An illegal move (a stale page) goes back with the state machine's reason.
    let illegal = form_post(
        &env.app,
        "/admin/sfn/order_status",
        Some(&staff.cookie),
        &uri,
        &[
            ("id", &id),
            ("status", "delivered"),
            ("note", ""),
            ("csrf", &staff.csrf),
        ],
    )
    .await;
    assert_eq!(illegal.status, StatusCode::FOUND);
    let shown = page(&env.app, &location(&illegal), &staff).await;
    assert!(
        shown
            .text
            .contains("an order that is paid cannot become delivered"),
        "{}",
        shown.text
    );
    let still = env.admin.book.order(&order.id).await.unwrap().unwrap();
    assert_eq!(still.status, OrderStatus::Paid);
    // A legal one moves it, with the note, and the page shows the history.
    let moved = form_post(
        &env.app,
        "/admin/sfn/order_status",
        Some(&staff.cookie),
        &uri,
        &[
            ("id", &id),
            ("status", "packed"),
            ("note", "box 7"),
            ("csrf", &staff.csrf),
        ],
    )
    .await;
    assert_eq!(moved.status, StatusCode::FOUND, "{}", moved.text);
    assert!(location(&moved).starts_with(&format!("{uri}?msg=")));
    let now = page(&env.app, &location(&moved), &staff).await;
    assert!(now.text.contains("now packed"), "{}", now.text);
    assert!(now.text.contains("box 7") && now.text.contains("order.status"));
    assert!(now.text.contains("data-status=\"shipped\""));
    assert_eq!(
        env.admin
            .book
            .order(&order.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        OrderStatus::Packed
    );
}

#[tokio::test]
async fn ui_stock_page_lists_levels_and_restocks_and_adjusts_with_a_reason() {
    let env = env();
    let (_owner, _staff, _viewer) = team(&env).await;
    seed(&env, &[("UI-A", 5), ("UI-B", 1)]).await;
    let staff = ui_login(&env, "staff@shop.test").await;
    let viewer = ui_login(&env, "viewer@shop.test").await;
    // The admin opened without its shards lists nothing; one exact SKU still shows.
    let one = page(&env.app, "/admin/stock?sku=UI-A", &staff).await;
    assert!(
        one.text.contains("available 5, held 0, sold 0, received 5"),
        "{}",
        one.text
    );
    assert!(one.text.contains("/admin/sfn/restock") && one.text.contains("/admin/sfn/adjust"));
    let viewer_view = page(&env.app, "/admin/stock?sku=UI-A", &viewer).await;
    assert!(!viewer_view.text.contains("/admin/sfn/restock"));

    // The form carries a receipt per rendering; each rendering has its own.
    let receipt = hidden_value(&one.text, "receipt");
    assert_eq!(receipt.len(), 32, "{receipt:?}");
    let other_rendering = page(&env.app, "/admin/stock?sku=UI-A", &staff).await;
    assert_ne!(hidden_value(&other_rendering.text, "receipt"), receipt);
    let restock_fields = [
        ("sku", "UI-A"),
        ("qty", "3"),
        ("reason", "delivery 12"),
        ("receipt", receipt.as_str()),
        ("csrf", staff.csrf.as_str()),
    ];
    let restock_form = || {
        form_post(
            &env.app,
            "/admin/sfn/restock",
            Some(&staff.cookie),
            "/admin/stock?sku=UI-A",
            &restock_fields,
        )
    };
    let restocked = restock_form().await;
    assert_eq!(restocked.status, StatusCode::FOUND, "{}", restocked.text);
    let after = page(&env.app, &location(&restocked), &staff).await;
    assert!(
        after
            .text
            .contains("available 8, held 0, sold 0, received 8"),
        "{}",
        after.text
    );
    // The same form sent again (a double click, a resend): recorded once, and the page says so.
    let resent = restock_form().await;
    assert_eq!(resent.status, StatusCode::FOUND, "{}", resent.text);
    let after = page(&env.app, &location(&resent), &staff).await;
    assert!(
        after.text.contains("already recorded; nothing added")
            && after
                .text
                .contains("available 8, held 0, sold 0, received 8"),
        "{}",
        after.text
    );
    // No reason: refused with the reason why, nothing changed.
    let no_reason = form_post(
        &env.app,
        "/admin/sfn/adjust",
        Some(&staff.cookie),
        "/admin/stock?sku=UI-A",
        &[
            ("sku", "UI-A"),
            ("available", "2"),
            ("reason", ""),
            ("csrf", &staff.csrf),
        ],
    )
    .await;
    let shown = page(&env.app, &location(&no_reason), &staff).await;
    assert!(
        shown.text.contains("say why the stock changes"),
        "{}",
        shown.text
    );
    let adjusted = form_post(
        &env.app,
        "/admin/sfn/adjust",
        Some(&staff.cookie),
        "/admin/stock?sku=UI-A",
        &[
            ("sku", "UI-A"),
            ("available", "2"),
            ("reason", "count"),
            ("csrf", &staff.csrf),
        ],
    )
    .await;
    assert_eq!(adjusted.status, StatusCode::FOUND);
    let level = env.admin.stock.level(&sku("UI-A")).await.unwrap().unwrap();
    assert_eq!((level.available, level.received), (2, 2));
    let viewer_try = form_post(
        &env.app,
        "/admin/sfn/restock",
        Some(&viewer.cookie),
        "/admin/stock?sku=UI-A",
        &[
            ("sku", "UI-A"),
            ("qty", "3"),
            ("reason", "x"),
            ("csrf", &viewer.csrf),
        ],
    )
    .await;
    assert_eq!(viewer_try.status, StatusCode::FORBIDDEN);
    // Both changes audited once each, with their reasons; the viewer's refusal changed nothing.
    let owner = login(&env.app, OWNER, PASSWORD).await;
    let actions = audit_actions(&env, &owner).await;
    let stock: Vec<_> = actions.iter().filter(|a| a.starts_with("stock.")).collect();
    assert_eq!(stock, ["stock.restock", "stock.restock", "stock.adjust"]);
    let reports = page(&env.app, "/admin/reports", &viewer).await;
    assert_eq!(reports.status, StatusCode::OK);
    assert!(reports.text.contains("/admin/api/reports/sales.svg"));
    let audit = page(&env.app, "/admin/audit", &viewer).await;
    assert_eq!(audit.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn ui_login_asks_for_the_totp_code_of_an_account_that_has_one() {
    let env = env();
    let owner = login(&env.app, OWNER, PASSWORD).await;
    let enrol = post_as(&env.app, "/admin/api/me/totp", &owner, json!({})).await;
    assert_eq!(enrol.status, StatusCode::OK, "{}", enrol.text);
    let secret: Vec<u8> = env.admin.db.blocking(|conn| {
        conn.query_row("SELECT totp_secret FROM users WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap()
    });
    let now_s = env.clock.now_ms() / 1_000;
    let confirmed = post_as(
        &env.app,
        "/admin/api/me/totp/confirm",
        &owner,
        json!({ "code": totp::code_at(&secret, now_s) }),
    )
    .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text);
    env.clock.advance(30_000);
    let cookie = "origin_admin_login=feedface";
    let form = |code: String| {
        let app = env.app.clone();
        async move {
            form_post(
                &app,
                "/admin/sfn/login",
                Some(cookie),
                "/admin/login",
                &[
                    ("email", OWNER),
                    ("password", PASSWORD),
                    ("totp", &code),
                    ("login_csrf", "feedface"),
                ],
            )
            .await
        }
    };
    let without = form(String::new()).await;
    assert_eq!(without.status, StatusCode::FOUND);
    let page = send(&env.app, "GET", &location(&without), None, None, None, None).await;
    assert!(
        page.text
            .contains("enter the code from its authenticator app"),
        "{}",
        page.text
    );
    assert!(page.text.contains("name=\"totp\""));
    let with = form(totp::code_at(&secret, now_s + 30)).await;
    assert_eq!(with.status, StatusCode::FOUND, "{}", with.text);
    assert_eq!(location(&with), "/admin/orders");
    assert!(with
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().unwrap().starts_with("origin_admin_session=")));
}

#[tokio::test]
async fn ui_stock_page_lists_every_sku_of_the_origins_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let catalog = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo-catalog.json");
    let config = origin::server::OriginConfig {
        data_dir: tmp.path().to_owned(),
        catalog: Some(catalog.clone()),
        token: None,
    };
    let admin = AdminConfig {
        hash_cost: HashCost::Test,
        edge: None,
    };
    let origin = Arc::new(
        origin::server::Origin::open_with(config, admin)
            .await
            .unwrap(),
    );
    accounts::create_owner(tmp.path(), OWNER, PASSWORD, HashCost::Test, START_MS).unwrap();
    let app = origin.router();
    let owner = ui_login_on(&app, OWNER).await;
    let all = page(&app, "/admin/stock", &owner).await;
    assert_eq!(all.status, StatusCode::OK);
    assert!(all.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(all.headers.contains_key("x-request-id"));
    let levels = origin::publish::load_catalog(&catalog).unwrap().levels;
    assert!(levels.len() > 40);
    for (sku, _) in &levels {
        assert!(
            all.text.contains(&format!(">{sku}</a>")),
            "{sku} missing from the stock page"
        );
    }
    // A prefix narrows the list.
    let (first, available) = &levels[0];
    let prefix = &first.as_str()[..first.as_str().len() - 1];
    let narrowed = page(&app, &format!("/admin/stock?sku={prefix}"), &owner).await;
    let rows = narrowed.text.matches("<tr><td><a href=").count();
    assert!(rows >= 1 && rows < levels.len(), "{rows} rows for {prefix}");
    let one = page(&app, &format!("/admin/stock?sku={first}"), &owner).await;
    assert!(
        one.text.contains(&format!(
            "available {available}, held 0, sold 0, received {available}"
        )),
        "{}",
        one.text
    );
}

#[tokio::test]
async fn the_edges_waiting_orders_are_listed_and_retried_by_staff() {
    let (env, edge) = env_with_fake_edge().await;
    let (owner, staff, viewer) = team(&env).await;

    // Viewers see the edge's outbox as the edge lists it.
    let listed = get(&env.app, "/admin/api/edge/outbox", &viewer).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let waiting = &listed.body["deliveries"][0];
    assert_eq!(
        (
            &waiting["order_id"],
            &waiting["refused"],
            &waiting["attempts"]
        ),
        (&json!("e-9"), &json!(true), &json!(3))
    );
    // Staff retry one, with the edge's token; the edge's 404 for an order it does not have
    // stays a 404 with its reason; a viewer may not retry.
    let retried = post_as(
        &env.app,
        "/admin/api/edge/outbox/e-9/retry",
        &staff,
        json!({}),
    )
    .await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
    assert_eq!(retried.body["retry"]["order_id"], "e-9");
    let unknown = post_as(
        &env.app,
        "/admin/api/edge/outbox/e-1/retry",
        &staff,
        json!({}),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
    assert!(
        unknown.text.contains("not waiting for delivery"),
        "{}",
        unknown.text
    );
    let refused = post_as(
        &env.app,
        "/admin/api/edge/outbox/e-9/retry",
        &viewer,
        json!({}),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        *edge.calls.lock().unwrap(),
        [
            (
                "e-9".to_owned(),
                "retry".to_owned(),
                "Bearer edge-admin-token".to_owned()
            ),
            (
                "e-1".to_owned(),
                "retry".to_owned(),
                "Bearer edge-admin-token".to_owned()
            ),
        ]
    );
    let actions = audit_actions(&env, &owner).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "edge_delivery.retry")
            .count(),
        1,
        "only the retry the edge took is audited: {actions:?}"
    );

    // The page lists it, with a retry form for staff only; the form retries and says so.
    let staff_ui = ui_login(&env, "staff@shop.test").await;
    let viewer_ui = ui_login(&env, "viewer@shop.test").await;
    let shown = page(&env.app, "/admin/deliveries", &staff_ui).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(
        shown
            .text
            .contains("data-order=\"e-9\" data-state=\"refused\"")
            && shown.text.contains("no such SKU")
            && shown.text.contains("/admin/sfn/retry_delivery"),
        "{}",
        shown.text
    );
    let viewer_page = page(&env.app, "/admin/deliveries", &viewer_ui).await;
    assert!(
        viewer_page.text.contains("e-9") && !viewer_page.text.contains("/admin/sfn/retry_delivery")
    );
    let posted = form_post(
        &env.app,
        "/admin/sfn/retry_delivery",
        Some(&staff_ui.cookie),
        "/admin/deliveries",
        &[("id", "e-9"), ("csrf", staff_ui.csrf.as_str())],
    )
    .await;
    assert_eq!(posted.status, StatusCode::FOUND, "{}", posted.text);
    assert!(
        location(&posted).starts_with("/admin/deliveries?msg="),
        "{}",
        location(&posted)
    );
    assert_eq!(edge.calls.lock().unwrap().len(), 3);

    // Without an edge there is nothing to list: 409 with the reason, and the page says it.
    let alone = env_with(None);
    let (_, _, viewer) = team(&alone).await;
    let r = get(&alone.app, "/admin/api/edge/outbox", &viewer).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.text.contains("--edge-url"), "{}", r.text);
    let viewer_ui = ui_login(&alone, "viewer@shop.test").await;
    let shown = page(&alone.app, "/admin/deliveries", &viewer_ui).await;
    assert!(
        shown.text.contains("id=\"edge-outbox-error\""),
        "{}",
        shown.text
    );
}

#[tokio::test]
async fn ui_owners_manage_accounts_and_shoppers_data() {
    let env = env();
    let (owner_api, _staff_api, viewer_api) = team(&env).await;
    let owner = ui_login(&env, OWNER).await;
    let staff = ui_login(&env, "staff@shop.test").await;
    let viewer = ui_login(&env, "viewer@shop.test").await;
    for uri in ["/admin/users", "/admin/privacy"] {
        let refused = page(&env.app, uri, &staff).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{uri}");
        assert!(
            refused.text.contains("needs the owner role"),
            "{}",
            refused.text
        );
    }
    let listed = page(&env.app, "/admin/users", &owner).await;
    assert_eq!(listed.status, StatusCode::OK);
    for email in [OWNER, "staff@shop.test", "viewer@shop.test"] {
        assert!(
            listed.text.contains(&format!("data-user=\"{email}\"")),
            "{email}"
        );
    }
    let user_id = |email: &'static str| {
        let app = env.app.clone();
        let owner_api = owner_api.clone();
        async move {
            let users = get(&app, "/admin/api/users", &owner_api).await;
            users.body["users"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["email"] == email)
                .map(|u| u["id"].as_i64().unwrap().to_string())
                .unwrap()
        }
    };
    let post = |action: &'static str, client: &Client, fields: Vec<(&'static str, String)>| {
        let (app, cookie, csrf) = (env.app.clone(), client.cookie.clone(), client.csrf.clone());
        async move {
            let mut fields: Vec<(&str, &str)> =
                fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            fields.push(("csrf", &csrf));
            form_post(&app, action, Some(&cookie), "/admin/users", &fields).await
        }
    };

    // Staff cannot add an account; the owner can, and it can log in.
    let new_account = vec![
        ("email", "new@shop.test".to_owned()),
        ("password", PASSWORD.to_owned()),
        ("role", "staff".to_owned()),
    ];
    let refused = post("/admin/sfn/create_account", &staff, new_account.clone()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let added = post("/admin/sfn/create_account", &owner, new_account).await;
    assert_eq!(added.status, StatusCode::FOUND, "{}", added.text);
    assert!(
        location(&added).starts_with("/admin/users?msg="),
        "{}",
        location(&added)
    );
    assert_eq!(
        try_login(&env.app, "new@shop.test", PASSWORD, None)
            .await
            .status,
        StatusCode::OK
    );

    // A role change, then disabling: the viewer's session ends at once.
    let viewer_id = user_id("viewer@shop.test").await;
    let promoted = post(
        "/admin/sfn/update_account",
        &owner,
        vec![("id", viewer_id.clone()), ("role", "staff".to_owned())],
    )
    .await;
    assert_eq!(promoted.status, StatusCode::FOUND, "{}", promoted.text);
    let shown = page(&env.app, "/admin/users", &owner).await;
    assert!(shown
        .text
        .contains("data-user=\"viewer@shop.test\" data-role=\"staff\" data-disabled=\"false\""));
    let disabled = post(
        "/admin/sfn/update_account",
        &owner,
        vec![("id", viewer_id.clone()), ("disabled", "true".to_owned())],
    )
    .await;
    assert_eq!(disabled.status, StatusCode::FOUND, "{}", disabled.text);
    assert_eq!(
        page(&env.app, "/admin/orders", &viewer).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        get(&env.app, "/admin/api/me", &viewer_api).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The last owner stays one: the refusal goes back to the page with the reason.
    let owner_id = user_id(OWNER).await;
    let demoted = post(
        "/admin/sfn/update_account",
        &owner,
        vec![("id", owner_id), ("role", "staff".to_owned())],
    )
    .await;
    assert!(
        location(&demoted).contains("__err="),
        "{}",
        location(&demoted)
    );
    let bad = post(
        "/admin/sfn/update_account",
        &owner,
        vec![("id", viewer_id), ("disabled", "maybe".to_owned())],
    )
    .await;
    assert!(location(&bad).contains("__err="), "{}", location(&bad));

    // Shoppers' data: the look-up lists their orders; erasing needs the confirmation.
    env.admin
        .book
        .store(&order(
            "gdpr-1",
            "erase.me@example.com",
            &[("MUG-1", 1)],
            START_MS,
        ))
        .await
        .unwrap();
    let found = page(
        &env.app,
        "/admin/privacy?email=erase.me%40example.com",
        &owner,
    )
    .await;
    assert_eq!(found.status, StatusCode::OK);
    assert!(
        found
            .text
            .contains("1 orders placed with erase.me@example.com")
            && found.text.contains("/admin/orders/gdpr-1")
            && found.text.contains("/admin/sfn/erase_shopper"),
        "{}",
        found.text
    );
    let email = vec![("email", "erase.me@example.com".to_owned())];
    let unconfirmed = post("/admin/sfn/erase_shopper", &owner, email.clone()).await;
    assert!(
        location(&unconfirmed).contains("__err="),
        "{}",
        location(&unconfirmed)
    );
    assert_eq!(
        env.admin
            .book
            .orders_by_email("erase.me@example.com")
            .await
            .unwrap()
            .len(),
        1
    );
    let mut confirmed_fields = email;
    confirmed_fields.push(("confirm", "yes".to_owned()));
    let erased = post("/admin/sfn/erase_shopper", &owner, confirmed_fields).await;
    assert_eq!(erased.status, StatusCode::FOUND, "{}", erased.text);
    assert!(
        location(&erased).starts_with("/admin/privacy?msg="),
        "{}",
        location(&erased)
    );
    assert!(env
        .admin
        .book
        .orders_by_email("erase.me@example.com")
        .await
        .unwrap()
        .is_empty());
    let actions = audit_actions(&env, &owner_api).await;
    for action in [
        "user.create",
        "user.update",
        "privacy.export",
        "privacy.erase",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} not in {actions:?}"
        );
    }
}
