//! End-to-end checks of the edge protection (`edge_core::protect`, on by default in the
//! worker): rate limits answer 429 with `Retry-After` and recover, one shopper cannot hoard a
//! sale while others still buy (and the cart page says why), and an automated-looking checkout
//! is refused with its reason.
//!
//! Each simulated client is an address (`CF-Connecting-IP`, which local workerd passes
//! through) and, where it keeps one, its `shop_client` cookie. The limits are the shop's
//! defaults (`ProtectionConfig::default()`), read here rather than copied.

use super::promotions::{open_cart, place_order, simple_products};
use super::*;
use edge_core::protect::{ProtectionConfig, CLIENT_COOKIE};

pub(crate) fn checks() -> Vec<(&'static str, Check)> {
    checks![
        bursts_get_429_with_retry_after_and_recover,
        one_shopper_cannot_hoard_a_sale_while_others_buy,
        automated_checkouts_are_refused_with_their_reason,
        browser_cart_shows_the_hoarding_cap,
    ]
}

/// One simulated client: its address and, if it keeps cookies, its client cookie.
struct Client<'a> {
    ctx: &'a Ctx,
    ip: String,
    cookie: Option<String>,
}

/// A reply: status, `Retry-After` in seconds (if any), and the JSON (or `null`) body.
type Reply = (StatusCode, Option<u64>, Value);

impl<'a> Client<'a> {
    /// A client at `ip` keeping the client cookie `cookie` (16 hex digits), or none.
    fn new(ctx: &'a Ctx, ip: &str, cookie: Option<&str>) -> Self {
        Self {
            ctx,
            ip: ip.to_owned(),
            cookie: cookie.map(str::to_owned),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Reply, String> {
        let mut request = request.header("cf-connecting-ip", &self.ip);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("{CLIENT_COOKIE}={cookie}"));
        }
        let res = request.send().await.map_err(|e| format!("{what}: {e}"))?;
        let status = res.status();
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let text = res.text().await.map_err(|e| format!("{what}: {e}"))?;
        Ok((
            status,
            retry_after,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        ))
    }

    async fn get(&self, path: &str) -> Result<Reply, String> {
        self.send(
            self.ctx.http.get(self.ctx.url(path)),
            &format!("GET {path}"),
        )
        .await
    }

    /// `POST /api/checkout` of `lines` under idempotency `key`.
    async fn checkout(&self, lines: &[(&str, u64)], key: &str) -> Result<Reply, String> {
        let lines: Vec<Value> = lines
            .iter()
            .map(|(sku, qty)| json!({"sku": sku, "qty": qty}))
            .collect();
        let body =
            json!({"lines": lines, "email": "protect@example.com", "payment_token": "tok_visa"});
        let request = ctx_post(self.ctx, "/api/checkout")
            .header("idempotency-key", key)
            .body(body.to_string());
        self.send(request, &format!("checkout {key}")).await
    }

    /// Holds a cart the way the cart page does (`/_sfn/hold-cart`, a URL-encoded form).
    async fn hold(&self, sku: &str, qty: u64, key: &str) -> Result<Reply, String> {
        let form = format!("lines[0][sku]={sku}&lines[0][qty]={qty}&idempotency_key={key}");
        let request = ctx_post(self.ctx, "/_sfn/hold-cart")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
        self.send(request, &format!("hold {key}")).await
    }
}

fn ctx_post(ctx: &Ctx, path: &str) -> reqwest::RequestBuilder {
    ctx.http.post(ctx.url(path))
}

/// The protection's decisions for `client` (`ip|cookie`), newest first.
async fn decisions_of(ctx: &Ctx, client: &str) -> Result<Vec<Value>, String> {
    let res = ctx
        .admin(reqwest::Method::GET, "/_admin/protection")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    ensure!(
        res.status() == StatusCode::OK,
        "/_admin/protection: {}",
        res.status()
    );
    let body: Value = res.json().await.map_err(|e| e.to_string())?;
    Ok(body["decisions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["client"] == client)
        .cloned()
        .collect())
}

fn sold_out_sku(ctx: &Ctx) -> Result<String, String> {
    ctx.catalog
        .levels
        .iter()
        .find(|(_, s)| *s == 0)
        .map(|(sku, _)| sku.to_string())
        .ok_or_else(|| "demo has no sold-out SKU".into())
}

/// Checkouts (10 a minute per client) and searches (60 a minute) past their budget answer 429
/// with `Retry-After` and a message; other clients are not affected; after the wait the same
/// client is served again; the refusal is logged with its reason.
async fn bursts_get_429_with_retry_after_and_recover(ctx: &Ctx) -> CheckResult {
    let config = ProtectionConfig::default();
    let sold_out = sold_out_sku(ctx)?;
    let cookie = "0123456789abcdef";
    let burster = Client::new(ctx, "10.200.1.1", Some(cookie));
    // Checkouts of a sold-out SKU: each is answered (409) and takes no stock.
    for n in 0..config.checkout.requests {
        let (status, _, body) = burster
            .checkout(&[(&sold_out, 1)], &format!("burst-{n}"))
            .await?;
        ensure!(
            status == StatusCode::CONFLICT,
            "checkout {n} within the budget: {status} {body}"
        );
    }
    let (status, retry_after, body) = burster.checkout(&[(&sold_out, 1)], "burst-over").await?;
    let window_s = config.checkout.per_ms / 1_000;
    let per_request_s = window_s.div_ceil(u64::from(config.checkout.requests));
    ensure!(
        status == StatusCode::TOO_MANY_REQUESTS && body["error"] == "rate_limited",
        "checkout past the budget: {status} {body}"
    );
    let wait = retry_after.ok_or("429 without Retry-After")?;
    ensure!(
        (1..=per_request_s).contains(&wait),
        "Retry-After {wait} s, expected 1..={per_request_s}"
    );
    ensure!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("try again in"))
            && body["retry_after_s"] == wait,
        "the refusal should say when to come back: {body}"
    );
    // Someone else, and the same address with another cookie (a household), still check out.
    let (status, _, body) = Client::new(ctx, "10.200.1.2", None)
        .checkout(&[(&sold_out, 1)], "burst-other")
        .await?;
    ensure!(
        status == StatusCode::CONFLICT,
        "another client is limited too: {status} {body}"
    );
    let (status, _, body) = Client::new(ctx, "10.200.1.1", Some("fedcba9876543210"))
        .checkout(&[(&sold_out, 1)], "burst-sibling")
        .await?;
    ensure!(
        status == StatusCode::CONFLICT,
        "the address's other client is limited too: {status} {body}"
    );
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let (status, _, body) = burster.checkout(&[(&sold_out, 1)], "burst-after").await?;
    ensure!(
        status == StatusCode::CONFLICT,
        "after Retry-After the client is served again: {status} {body}"
    );
    let logged = decisions_of(ctx, &format!("10.200.1.1|{cookie}")).await?;
    ensure!(
        logged.iter().any(|d| d["action"] == "rate_limited"
            && d["route"] == "checkout"
            && d["reason"]
                .as_str()
                .is_some_and(|r| r.contains("requests per"))),
        "the refusal is not logged with its reason: {logged:?}"
    );

    let searcher = Client::new(ctx, "10.200.1.3", Some("00000000000000aa"));
    for n in 0..config.search.requests {
        let (status, _, _) = searcher
            .get(&format!("/api/products?q=mug&page={}", 1 + n % 2))
            .await?;
        ensure!(
            status == StatusCode::OK,
            "search {n} within the budget: {status}"
        );
    }
    let (status, retry_after, body) = searcher.get("/api/products?q=mug").await?;
    ensure!(
        status == StatusCode::TOO_MANY_REQUESTS && body["error"] == "rate_limited",
        "search past the budget: {status} {body}"
    );
    let wait = retry_after.ok_or("search 429 without Retry-After")?;
    // Browsing that is not a search is not limited.
    let (status, _, _) = searcher.get("/api/products?page=1").await?;
    ensure!(
        status == StatusCode::OK,
        "a listing during the search limit: {status}"
    );
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let (status, _, body) = searcher.get("/api/products?q=mug").await?;
    ensure!(
        status == StatusCode::OK,
        "search after Retry-After: {status} {body}"
    );
    Ok(())
}

/// In a sale of one SKU, a shopper buys up to the cap (units per SKU per window) and is then
/// refused with a message naming the SKU, holds at most `holds_max` carts at once, and cannot
/// start afresh by dropping the cookie past the address's cap; meanwhile other shoppers buy,
/// and stock accounts for exactly the orders placed.
async fn one_shopper_cannot_hoard_a_sale_while_others_buy(ctx: &Ctx) -> CheckResult {
    let config = ProtectionConfig::default();
    let skus = sale_skus(ctx, 6);
    let (sku, hold_sku) = (skus[5].clone(), skus[4].clone());
    let stock = 100;
    ctx.set_stock(json!({ sku.as_str(): stock, hold_sku.as_str(): stock }))
        .await?;
    let result = async {
        let cap = u64::from(config.units_per_sku_max);
        let hoarder = Client::new(ctx, "10.201.0.1", Some("00000000000000b1"));
        let mut sold = 0;
        // Up to the cap in two orders.
        for (n, qty) in [(0, cap - 1), (1, 1)] {
            let (status, _, body) = hoarder.checkout(&[(&sku, qty)], &format!("hoard-{n}")).await?;
            ensure!(status == StatusCode::CREATED, "the hoarder's order {n} within the cap: {status} {body}");
            sold += qty;
        }
        let (status, _, body) = hoarder.checkout(&[(&sku, 1)], "hoard-over").await?;
        ensure!(
            status == StatusCode::TOO_MANY_REQUESTS && body["error"] == "hold_limit",
            "one unit past the cap: {status} {body}"
        );
        ensure!(
            body["message"].as_str().is_some_and(|m| m.contains(&sku) && m.contains(&format!("at most {cap}"))),
            "the refusal should name the SKU and the cap: {body}"
        );
        // Others still buy while the hoarder is capped.
        for n in 0..10 {
            let (status, body) = ctx.checkout(&[(&sku, 2)], "tok_visa", &format!("hoard-other-{n}")).await?;
            ensure!(status == StatusCode::CREATED, "shopper {n} buying beside the hoarder: {status} {body}");
            sold += 2;
        }
        // Dropping the cookie gives a new client, not a new address: the address's cap
        // (`ip_factor` shoppers' worth) ends it.
        let address_cap = cap * u64::from(config.ip_factor);
        let mut refused_at = None;
        for n in 0..address_cap {
            let (status, _, body) = Client::new(ctx, "10.201.0.1", None).checkout(&[(&sku, 1)], &format!("hoard-fresh-{n}")).await?;
            match status {
                StatusCode::CREATED => sold += 1,
                StatusCode::TOO_MANY_REQUESTS if body["error"] == "hold_limit" => {
                    refused_at = Some(n);
                    break;
                }
                _ => return Err(format!("cookie-less order {n}: {status} {body}")),
            }
        }
        ensure!(
            refused_at == Some(address_cap - cap),
            "the address bought {} units before refusal (cap {address_cap}), refused at {refused_at:?}",
            cap + refused_at.unwrap_or(address_cap)
        );
        let level = ctx.admin_level(&sku).await?;
        ensure!(
            level["available"] == stock - sold && level["held"] == 0,
            "stock does not match the orders placed ({sold} sold of {stock}): {level}"
        );

        // Open carts: at most `holds_max` at once per shopper; releasing one makes room.
        let holder = Client::new(ctx, "10.201.0.2", Some("00000000000000b2"));
        for n in 0..config.holds_max {
            let (status, _, body) = holder.hold(&hold_sku, 1, &format!("cart-{n}")).await?;
            ensure!(status == StatusCode::OK, "cart hold {n}: {status} {body}");
        }
        let (status, _, body) = holder.hold(&hold_sku, 1, "cart-over").await?;
        ensure!(
            status == StatusCode::TOO_MANY_REQUESTS && body["error"] == "hold_limit",
            "a hold past {} open carts: {status} {body}",
            config.holds_max
        );
        let level = ctx.admin_level(&hold_sku).await?;
        ensure!(level["held"] == config.holds_max, "the refused hold took stock: {level}");
        let release = "lines[0][sku]=SKU&lines[0][qty]=1&idempotency_key=cart-0".replace("SKU", &hold_sku);
        let request = ctx_post(ctx, "/_sfn/release-cart").header("content-type", "application/x-www-form-urlencoded").body(release);
        let (status, _, body) = holder.send(request, "release cart-0").await?;
        ensure!(status.is_success(), "release: {status} {body}");
        let (status, _, body) = holder.hold(&hold_sku, 1, "cart-again").await?;
        ensure!(status == StatusCode::OK, "a hold after a release: {status} {body}");
        Ok(())
    }
    .await;
    // Whatever happened, the other checks find the catalog's levels (holds released too).
    for n in ["cart-0", "cart-1", "cart-2", "cart-again"] {
        let release = format!("lines[0][sku]={hold_sku}&lines[0][qty]=1&idempotency_key={n}");
        let request = ctx_post(ctx, "/_sfn/release-cart")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(release);
        let _ = Client::new(ctx, "10.201.0.2", Some("00000000000000b2"))
            .send(request, "release")
            .await;
    }
    restore_levels(ctx, &[sku, hold_sku]).await?;
    result
}

/// A client that fires requests faster than a person and checks out without having looked at
/// a page is refused (403 with a message) and the decision lists both reasons; a shopper who
/// browses first checks out, scored clean.
async fn automated_checkouts_are_refused_with_their_reason(ctx: &Ctx) -> CheckResult {
    let config = ProtectionConfig::default();
    let sku = sale_skus(ctx, 4)[3].clone();
    let before = ctx.admin_level(&sku).await?;
    let cookie = "00000000000000c1";
    let bot = Client::new(ctx, "10.202.0.1", Some(cookie));
    for n in 0..=config.burst_requests_max {
        let (status, _, _) = bot
            .get(&format!("/api/products?page={}", 1 + n % 3))
            .await?;
        ensure!(status == StatusCode::OK, "API read {n}: {status}");
    }
    let (status, _, body) = bot.checkout(&[(&sku, 1)], "bot-1").await?;
    ensure!(
        status == StatusCode::FORBIDDEN && body["error"] == "checkout_refused",
        "an automated checkout: {status} {body}"
    );
    ensure!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("automated")),
        "the refusal should say why: {body}"
    );
    let logged = decisions_of(ctx, &format!("10.202.0.1|{cookie}")).await?;
    let decision = logged
        .iter()
        .find(|d| d["action"] == "bot")
        .ok_or_else(|| format!("no bot decision logged: {logged:?}"))?;
    let reason = decision["reason"].as_str().unwrap_or_default();
    ensure!(
        reason.contains("no page views")
            && reason.contains("requests in")
            && decision["bot_score"].as_u64() >= Some(u64::from(config.bot_score_max)),
        "the decision should list both signals and a score past {}: {decision}",
        config.bot_score_max
    );
    ensure!(
        ctx.admin_level(&sku).await? == before,
        "the refused checkout took stock"
    );

    // A person: pages first, and not faster than a person checks out.
    let person = Client::new(ctx, "10.202.0.2", Some("00000000000000c2"));
    for path in ["/".to_owned(), format!("/p/{sku}")] {
        let (status, _, _) = person.get(&path).await?;
        ensure!(status == StatusCode::OK, "GET {path}: {status}");
    }
    tokio::time::sleep(Duration::from_millis(config.human_checkout_ms_min + 200)).await;
    let (status, _, body) = person.checkout(&[(&sku, 1)], "person-1").await?;
    ensure!(
        status == StatusCode::CREATED,
        "a person's checkout: {status} {body}"
    );
    let logged = decisions_of(ctx, "10.202.0.2|00000000000000c2").await?;
    ensure!(
        logged
            .first()
            .is_some_and(|d| d["action"] == "allowed" && d["bot_score"] == 0),
        "the person's checkout should be logged with score 0: {logged:?}"
    );
    restore_levels(ctx, &[sku]).await
}

/// One shopper buys the hoarding cap's worth of a SKU less a few, then comes back for more: the
/// edge's protection refuses to hold or sell them, and the cart page says why in the
/// protection's words (not a failed call), both for the hold and for the checkout.
async fn browser_cart_shows_the_hoarding_cap(ctx: &Ctx) -> CheckResult {
    let config = edge_core::protect::ProtectionConfig::default();
    let cap = config.units_per_sku_max;
    let (first, second) = (cap / 2 + 1, cap / 2 + 1);
    ensure!(
        first <= cap && first + second > cap,
        "cap {cap}: {first} + {second} units do not cross it"
    );
    // A product no other browser check buys (after the flash sales' SKUs), with stock for both.
    let flash: Vec<String> = sale_skus(ctx, 20);
    let sku = simple_products(ctx, first + second)
        .into_iter()
        .map(|(p, _)| p.sku.to_string())
        .find(|s| !flash.contains(s))
        .ok_or("no product for the hoarding check")?;
    let before = ctx.level(&sku).await?;
    let wanted = format!(
        "at most {cap} of {sku} per shopper every {} minutes ({first} already)",
        config.window_ms / 60_000
    );

    let browser = Browser::start().await?;
    let c = &browser.client;
    let result: CheckResult = async {
        let first_page = open_cart(ctx, c, &[(sku.clone(), first)]).await?;
        wait_for("the hold notice", Duration::from_secs(10), || async {
            Ok(js(c, "return !!document.querySelector('[data-testid=hold-expiry]')").await? == json!(true))
        })
        .await?;
        place_order(c, "hoarder@example.com", first_page).await?;
        ensure!(ctx.level(&sku).await? + u64::from(first) == before, "{sku}: {first} units were not sold");

        // Back for more: the same shopper (same browser), the same SKU.
        open_cart(ctx, c, &[(sku.clone(), second)]).await?;
        let refused = wait_for("the hold refusal", Duration::from_secs(10), || async {
            Ok(js(c, "const h = document.querySelector('[data-testid=hold-refused]'); return h && h.textContent").await?.as_str().is_some_and(|t| t.contains(&wanted)))
        })
        .await;
        if let Err(e) = refused {
            let notice = js(c, "const h = document.querySelector('.hold'); return h && h.textContent").await?;
            return Err(format!("{e}: expected {wanted:?}, the page shows {notice}"));
        }
        let level = ctx.admin_level(&sku).await?;
        ensure!(level["held"] == 0, "{sku} is held after the refusal: {level}");

        c.find(Locator::Css("input[name=email]")).await.map_err(|e| e.to_string())?.send_keys("hoarder@example.com").await.map_err(|e| e.to_string())?;
        click(c, "button.place-order").await?;
        let message = wait_for("the checkout refusal", Duration::from_secs(10), || async {
            Ok(text_of(c, "[data-testid=checkout-message]").await.unwrap_or_default().contains(&wanted))
        })
        .await;
        if let Err(e) = message {
            let shown = text_of(c, "[data-testid=checkout-message]").await.unwrap_or_default();
            return Err(format!("{e}: expected {wanted:?}, the page shows {shown:?}"));
        }
        let shown = text_of(c, "[data-testid=checkout-message]").await?;
        ensure!(!shown.contains("could not reach"), "the refusal reads as a failed call: {shown:?}");
        ensure!(js(c, "return location.pathname").await? == json!("/cart"), "a refused checkout left the cart page");
        ensure!(ctx.level(&sku).await? + u64::from(first) == before, "{sku}: the refused checkout sold units");
        Ok(())
    }
    .await;
    let _ = browser.client.clone().close().await;
    restore_levels(ctx, &[sku]).await?;
    result
}
