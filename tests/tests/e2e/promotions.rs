//! End-to-end checks of promotions (registered in `e2e.rs` through [`checks`]), against the
//! demo catalog's `promotions` and `shipping`: shelf prices on listings and product pages, the
//! cart page's savings line by line and its refused codes, a checkout with codes whose order
//! records the server's pricing, the client's numbers never trusted, and the cart page telling
//! a shopper over the hoarding cap what the edge's protection said.
//!
//! Every amount expected here is computed from the catalog file with `edge_core::promo` (the
//! same pure pricing the edge runs), never copied from a page.

use super::*;
use edge_core::promo::{self, CartLine, CodeRefusal, PricedCart, PromotionBook};
use edge_core::{Money, Product};
use std::collections::BTreeMap;

pub(crate) fn checks() -> Vec<(&'static str, Check)> {
    checks![
        browser_sees_promo_sale_prices_on_listings_and_product_pages,
        browser_cart_shows_promo_savings_line_by_line_and_refused_codes,
        browser_checks_out_with_promo_codes_and_the_order_records_the_pricing,
        promo_checkouts_never_take_the_clients_prices,
        price_filters_and_counts_follow_the_price_shown,
    ]
}

/// The demo's codes these checks use (each must be in the catalog file).
const WELCOME: &str = "WELCOME10";
const FREE_SHIPPING: &str = "FREESHIP";
const LAUNCH: &str = "LAUNCH20";
/// A code no promotion has.
const UNKNOWN: &str = "NOSUCHCODE";

fn book(ctx: &Ctx) -> &PromotionBook {
    &ctx.catalog.promotions
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The product a stock unit (product or variant SKU) belongs to.
fn product_of<'a>(ctx: &'a Ctx, unit: &str) -> Result<&'a Product, String> {
    ctx.catalog
        .products
        .iter()
        .find(|p| p.stock_units().iter().any(|u| u.as_str() == unit))
        .ok_or_else(|| format!("the catalog has no unit {unit}"))
}

/// A cart line as the edge prices it: the catalog's unit price, product and category.
fn cart_line(ctx: &Ctx, unit: &str, qty: u32) -> Result<CartLine, String> {
    let product = product_of(ctx, unit)?;
    let sku = Sku::parse(unit).map_err(|e| e.to_string())?;
    let unit_price = product
        .price_of(&sku)
        .cloned()
        .ok_or_else(|| format!("{unit} has no price"))?;
    Ok(CartLine {
        sku,
        product: product.sku.clone(),
        category: product.category.clone(),
        unit_price,
        qty,
    })
}

/// What `lines` cost with `codes` by the catalog's promotions now (`shopper`: the e-mail at
/// checkout, `None` on the cart page).
fn priced(
    ctx: &Ctx,
    lines: &[(String, u32)],
    codes: &[&str],
    shopper: Option<&str>,
) -> Result<PricedCart, String> {
    let lines: Vec<CartLine> = lines
        .iter()
        .map(|(sku, qty)| cart_line(ctx, sku, *qty))
        .collect::<Result<_, _>>()?;
    let codes: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
    promo::price_cart(
        book(ctx),
        &lines,
        &codes,
        now_ms(),
        shopper,
        &promo::Usage::default(),
    )
    .map_err(|e| e.to_string())
}

/// The shelf price of one unit of `product` (listings price the product's own SKU at its list
/// price; product pages each stock unit).
fn shelf(ctx: &Ctx, product: &Product, unit: &Sku) -> Option<Money> {
    let unit_price = product
        .price_of(unit)
        .cloned()
        .unwrap_or_else(|| product.price.clone());
    let line = CartLine {
        sku: unit.clone(),
        product: product.sku.clone(),
        category: product.category.clone(),
        unit_price,
        qty: 1,
    };
    promo::shelf_price(book(ctx), &line, now_ms())
}

/// Simple (variant-free) products with at least `stock` units in the catalog, each with its
/// shelf sale price, if any.
pub(super) fn simple_products(ctx: &Ctx, stock: u32) -> Vec<(&Product, Option<Money>)> {
    ctx.catalog
        .products
        .iter()
        .filter(|p| {
            p.variants.is_empty()
                && ctx
                    .catalog
                    .initial_stock(&p.sku)
                    .is_some_and(|n| n >= stock)
        })
        .map(|p| (p, shelf(ctx, p, &p.sku)))
        .collect()
}

/// Two-line carts (one unit of a product on sale, one of a product that is not, each with at
/// least `stock` units), in catalog order, with what they cost with `codes`; those `fits` accepts.
fn carts_with(
    ctx: &Ctx,
    stock: u32,
    codes: &[&str],
    fits: impl Fn(&PricedCart) -> bool,
) -> Result<Vec<(Vec<(String, u32)>, PricedCart)>, String> {
    for code in [WELCOME, FREE_SHIPPING, LAUNCH] {
        ensure!(
            book(ctx).by_code(code).is_some(),
            "the demo catalog has no code {code}"
        );
    }
    let products = simple_products(ctx, stock);
    let mut found = Vec::new();
    for (sale, _) in products.iter().filter(|(_, s)| s.is_some()) {
        for (plain, _) in products.iter().filter(|(_, s)| s.is_none()) {
            let lines = vec![(sale.sku.to_string(), 1), (plain.sku.to_string(), 1)];
            let cart = priced(ctx, &lines, codes, None)?;
            if fits(&cart) {
                found.push((lines, cart));
            }
        }
    }
    Ok(found)
}

/// "$12.34" (or "−$12.34") in minor units.
fn minor_of(shown: &str) -> Result<u64, String> {
    let digits: String = shown.chars().filter(|c| c.is_ascii_digit()).collect();
    ensure!(
        !digits.is_empty() && shown.contains('.'),
        "{shown:?} is not an amount"
    );
    digits.parse().map_err(|e| format!("{shown:?}: {e}"))
}

/// What the cart page shows of its pricing.
#[derive(Debug, PartialEq)]
struct CartShown {
    /// SKU → (quantity, saving cell).
    lines: BTreeMap<String, (String, String)>,
    subtotal: String,
    discount: String,
    shipping: String,
    total: String,
    /// (promotion id, its saving line), in the page's order.
    savings: Vec<(String, String)>,
    refused: Vec<String>,
}

impl CartShown {
    /// What the page must show for a cart priced as `cart`.
    fn expected(cart: &PricedCart) -> Self {
        let money = |minor: u64| Money::new(minor, &cart.currency);
        CartShown {
            lines: cart
                .lines
                .iter()
                .map(|l| {
                    let saving = if l.discount_minor > 0 {
                        format!("−{}", money(l.discount_minor))
                    } else {
                        String::new()
                    };
                    (l.sku.to_string(), (l.qty.to_string(), saving))
                })
                .collect(),
            subtotal: cart.subtotal.to_string(),
            discount: format!("−{}", cart.discount),
            shipping: if cart.shipping.minor == 0 {
                "Free".into()
            } else {
                cart.shipping.to_string()
            },
            total: cart.total.to_string(),
            savings: cart
                .applied
                .iter()
                .map(|a| {
                    let code = a
                        .code
                        .as_ref()
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default();
                    (a.id.clone(), format!("{}{code} −{}", a.title, a.saving))
                })
                .collect(),
            refused: cart
                .rejected_codes
                .iter()
                .map(|r| format!("{}: {}", r.code, r.refusal))
                .collect(),
        }
    }

    async fn read(c: &fantoccini::Client) -> Result<Self, String> {
        let v = js(
            c,
            "const t = s => { const e = document.querySelector(s); return e ? e.textContent : '' };
             const dd = document.querySelector('[data-testid=cart-summary] dd');
             return {
               lines: [...document.querySelectorAll('tr.cart-line')].map(tr => [tr.dataset.sku,
                 tr.querySelector('.qty-value').textContent, tr.querySelector('td.line-saving').textContent]),
               subtotal: dd ? dd.textContent : '',
               discount: t('[data-testid=cart-discount]'), shipping: t('[data-testid=cart-shipping]'),
               total: t('[data-testid=cart-total]'),
               savings: [...document.querySelectorAll('[data-testid=cart-saving]')].map(li => [li.dataset.promotion, li.textContent]),
               refused: [...document.querySelectorAll('[data-testid=code-refused]')].map(li => li.textContent),
             }",
        )
        .await?;
        let strings = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let pairs = |v: &Value| -> Vec<Vec<String>> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|row| row.as_array().into_iter().flatten().map(strings).collect())
                .collect()
        };
        Ok(CartShown {
            lines: pairs(&v["lines"])
                .into_iter()
                .map(|r| (r[0].clone(), (r[1].clone(), r[2].clone())))
                .collect(),
            subtotal: strings(&v["subtotal"]),
            discount: strings(&v["discount"]),
            shipping: strings(&v["shipping"]),
            total: strings(&v["total"]),
            savings: pairs(&v["savings"])
                .into_iter()
                .map(|r| (r[0].clone(), r[1].clone()))
                .collect(),
            refused: v["refused"]
                .as_array()
                .into_iter()
                .flatten()
                .map(strings)
                .collect(),
        })
    }

    /// The shown numbers add up by themselves: the line savings and the shipping saving make
    /// the discount line... and subtotal − savings + shipping is the total.
    fn adds_up(&self, cart: &PricedCart) -> CheckResult {
        let line_savings: u64 = self
            .lines
            .values()
            .filter(|(_, s)| !s.is_empty())
            .map(|(_, s)| minor_of(s))
            .sum::<Result<_, _>>()?;
        let discount = minor_of(&self.discount)?;
        ensure!(
            line_savings == discount,
            "the line savings {line_savings} do not make the savings line {discount}: {self:?}"
        );
        let shipping = if self.shipping == "Free" {
            0
        } else {
            minor_of(&self.shipping)?
        };
        let promotions: u64 = self
            .savings
            .iter()
            .map(|(_, s)| minor_of(s.rsplit('−').next().unwrap_or_default()))
            .sum::<Result<_, _>>()?;
        let shipping_saved = cart.shipping_before.minor - cart.shipping.minor;
        ensure!(promotions == discount + shipping_saved, "the promotions' savings {promotions} are not the discount {discount} + the shipping saved {shipping_saved}");
        let total = minor_of(&self.total)?;
        ensure!(
            minor_of(&self.subtotal)? - discount + shipping == total,
            "subtotal {} − savings {} + shipping {} is not the total {}",
            self.subtotal,
            self.discount,
            self.shipping,
            self.total
        );
        Ok(())
    }
}

/// Waits until the cart page shows `cart`'s pricing; the error shows what it showed instead.
async fn wait_for_cart(
    c: &fantoccini::Client,
    cart: &PricedCart,
    what: &str,
) -> Result<CartShown, String> {
    let expected = CartShown::expected(cart);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = CartShown::read(c).await?;
        if shown == expected {
            return Ok(shown);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{what}: the cart page shows\n      {shown:?}\n    expected\n      {expected:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Opens the shop, puts `lines` in the stored cart and opens the cart page, hydrated, with
/// every line shown. Returns when the first page was opened (the bot score counts from it).
pub(super) async fn open_cart(
    ctx: &Ctx,
    c: &fantoccini::Client,
    lines: &[(String, u32)],
) -> Result<Instant, String> {
    let first_page = Instant::now();
    c.goto(&ctx.url("/")).await.map_err(|e| e.to_string())?;
    wait_hydrated(c).await?;
    let stored: Vec<Value> = lines
        .iter()
        .map(|(sku, qty)| json!({"sku": sku, "qty": qty}))
        .collect();
    c.execute(
        "localStorage.setItem('edge-shop-cart', arguments[0]); return null",
        vec![json!(Value::from(stored).to_string())],
    )
    .await
    .map_err(|e| e.to_string())?;
    c.goto(&ctx.url("/cart")).await.map_err(|e| e.to_string())?;
    wait_hydrated(c).await?;
    let count = json!(lines.len());
    wait_for("the cart lines", Duration::from_secs(10), || async {
        Ok(js(c, "return document.querySelectorAll('tr.cart-line').length").await? == count)
    })
    .await?;
    Ok(first_page)
}

async fn enter_code(c: &fantoccini::Client, code: &str) -> CheckResult {
    c.find(Locator::Css("[data-testid=code-input]"))
        .await
        .map_err(|e| e.to_string())?
        .send_keys(code)
        .await
        .map_err(|e| e.to_string())?;
    click(c, "button.apply-code").await
}

/// Places the order from the cart page as `email` (at least `human_ms` after the shopper's
/// first page, as a person would); returns the order id from the order page it lands on.
pub(super) async fn place_order(
    c: &fantoccini::Client,
    email: &str,
    first_page: Instant,
) -> Result<String, String> {
    c.find(Locator::Css("input[name=email]"))
        .await
        .map_err(|e| e.to_string())?
        .send_keys(email)
        .await
        .map_err(|e| e.to_string())?;
    let human = Duration::from_millis(
        edge_core::protect::ProtectionConfig::default().human_checkout_ms_min + 500,
    );
    if let Some(wait) = human.checked_sub(first_page.elapsed()) {
        tokio::time::sleep(wait).await;
    }
    submit_order(c).await
}

/// Listings (in the browser, every category) and product pages show the sale price beside the
/// struck-through list price exactly for the units the automatic promotions discount, at the
/// price the catalog's rules give; the JSON API's `sale_price` agrees.
async fn browser_sees_promo_sale_prices_on_listings_and_product_pages(ctx: &Ctx) -> CheckResult {
    let expected: BTreeMap<String, (String, Option<String>)> = ctx
        .catalog
        .products
        .iter()
        .map(|p| {
            (
                p.sku.to_string(),
                (
                    p.price.to_string(),
                    shelf(ctx, p, &p.sku).map(|m| m.to_string()),
                ),
            )
        })
        .collect();
    let on_sale = expected.values().filter(|(_, sale)| sale.is_some()).count();
    ensure!(
        on_sale > 0 && on_sale < expected.len(),
        "the demo must put some products on sale, not all: {on_sale} of {}",
        expected.len()
    );

    // The JSON API, every product.
    for page in 1..10 {
        let (status, body) = ctx
            .json("GET", &format!("/api/products?page={page}"), None)
            .await?;
        ensure!(
            status == StatusCode::OK,
            "/api/products?page={page}: {status}"
        );
        for p in body["products"].as_array().into_iter().flatten() {
            let sku = p["sku"].as_str().unwrap_or_default();
            let sale = p.get("sale_price").filter(|s| !s.is_null()).map(|s| {
                Money::new(
                    s["minor"].as_u64().unwrap_or(0),
                    s["currency"].as_str().unwrap_or(""),
                )
                .to_string()
            });
            ensure!(
                expected.get(sku).map(|(_, s)| s) == Some(&sale),
                "/api/products: {sku} has sale_price {sale:?}, expected {:?}",
                expected.get(sku)
            );
        }
        if body["page"] == body["pages"] {
            break;
        }
    }

    let browser = Browser::start().await?;
    let c = &browser.client;
    let result: CheckResult = async {
        // Every category's listing, hydrated: each card's price tag.
        let categories: BTreeSet<String> = ctx.catalog.products.iter().map(|p| edge_core::listing::slug(&p.category)).collect();
        let mut seen = BTreeSet::new();
        for slug in categories {
            c.goto(&ctx.url(&format!("/c/{slug}"))).await.map_err(|e| e.to_string())?;
            wait_hydrated(c).await?;
            let cards = js(
                c,
                "return [...document.querySelectorAll('li.card')].map(li => {
                   const t = s => { const e = li.querySelector(s); return e ? e.textContent : null };
                   return [li.dataset.sku, t('.price s.was'), t('.price .sale'), t('.price')] })",
            )
            .await?;
            for card in cards.as_array().into_iter().flatten() {
                let sku = card[0].as_str().unwrap_or_default().to_owned();
                let (list, sale) = expected.get(&sku).ok_or(format!("/c/{slug} lists {sku}, not in the catalog"))?;
                let shown = (card[1].as_str(), card[2].as_str(), card[3].as_str().unwrap_or_default());
                match sale {
                    Some(sale) => ensure!(
                        shown.0 == Some(list.as_str()) && shown.1 == Some(sale.as_str()),
                        "/c/{slug}: {sku} shows {shown:?}, expected {sale} beside the struck-through {list}"
                    ),
                    None => ensure!(
                        shown == (None, None, list.as_str()),
                        "/c/{slug}: {sku} is not on sale but shows {shown:?}, expected just {list}"
                    ),
                }
                seen.insert(sku);
            }
        }
        ensure!(seen.len() == expected.len(), "the category listings show {} of {} products", seen.len(), expected.len());

        // Product pages, hydrated: every unit of a product on sale and of one that is not.
        let sale_product = ctx.catalog.products.iter().find(|p| shelf(ctx, p, &p.sku).is_some()).ok_or("nothing on sale")?;
        let plain = ctx.catalog.products.iter().find(|p| !p.variants.is_empty()).ok_or("no product with variants")?;
        for product in [sale_product, plain] {
            for unit in product.stock_units() {
                let list = product.price_of(unit).ok_or("a unit without a price")?.to_string();
                let sale = shelf(ctx, product, unit).map(|m| m.to_string());
                let path = format!("/p/{}?variant={unit}", product.sku);
                let path = if product.variants.is_empty() { format!("/p/{unit}") } else { path };
                c.goto(&ctx.url(&path)).await.map_err(|e| e.to_string())?;
                wait_hydrated(c).await?;
                let shown = js(
                    c,
                    "const t = s => { const e = document.querySelector(s); return e ? e.textContent : null };
                     return [t('p.price s.was'), t('p.price .sale'), t('p.price')]",
                )
                .await?;
                let shown = (shown[0].as_str(), shown[1].as_str(), shown[2].as_str().unwrap_or_default());
                match &sale {
                    Some(sale) => ensure!(
                        shown.0 == Some(list.as_str()) && shown.1 == Some(sale.as_str()),
                        "{path} shows {shown:?}, expected {sale} beside the struck-through {list}"
                    ),
                    None => ensure!(shown == (None, None, list.as_str()), "{path} is not on sale but shows {shown:?}"),
                }
            }
        }
        Ok(())
    }
    .await;
    let _ = browser.client.clone().close().await;
    result?;

    // Every product page as served (the HTML crawlers see): the same price line.
    for product in &ctx.catalog.products {
        let path = format!("/p/{}", product.sku);
        let (status, html) = ctx.get(&path).await?;
        ensure!(status == StatusCode::OK, "{path}: {status}");
        let price = html
            .split("<p class=\"price\">")
            .nth(1)
            .and_then(|rest| rest.split("</p>").next())
            .ok_or(format!("{path} has no price line"))?;
        let unit = product.stock_units()[0];
        let list = product
            .price_of(unit)
            .ok_or("a unit without a price")?
            .to_string();
        match shelf(ctx, product, unit) {
            Some(sale) => ensure!(
                price.contains(&format!(">{list}</s>"))
                    && price.contains(&format!(">{sale}</span>")),
                "{path}: price line {price:?}, expected {sale} beside the struck-through {list}"
            ),
            None => ensure!(
                !price.contains("<s") && price.contains(&list),
                "{path}: price line {price:?}, expected just {list}"
            ),
        }
    }
    Ok(())
}

/// The cart page prices the cart with the automatic promotions and the codes entered: a saving
/// per line, each promotion's saving, shipping, a total that adds up, and each code that does
/// nothing refused with its reason (unknown; below the minimum order). Changing a quantity
/// prices it again.
async fn browser_cart_shows_promo_savings_line_by_line_and_refused_codes(ctx: &Ctx) -> CheckResult {
    let codes = [WELCOME, FREE_SHIPPING, LAUNCH, UNKNOWN];
    // A cart where the welcome code and free shipping apply, the launch code is below its
    // minimum, and both lines save something.
    let carts = carts_with(ctx, 3, &codes, |cart| {
        let applied = |id: &str| cart.applied.iter().any(|a| a.code.as_deref() == Some(id));
        let refused = |code: &str, why: fn(&CodeRefusal) -> bool| {
            cart.rejected_codes
                .iter()
                .any(|r| r.code == code && why(&r.refusal))
        };
        applied(WELCOME)
            && applied(FREE_SHIPPING)
            && refused(LAUNCH, |r| matches!(r, CodeRefusal::BelowMinimum { .. }))
            && refused(UNKNOWN, |r| *r == CodeRefusal::Unknown)
            && cart.lines.iter().all(|l| l.discount_minor > 0)
    })?;
    let (lines, with_codes) = carts.into_iter().next().ok_or(
        "no cart of the demo shows both codes applying and the launch code below its minimum",
    )?;
    let without_codes = priced(ctx, &lines, &[], None)?;
    ensure!(
        !without_codes.applied.is_empty(),
        "nothing in {lines:?} is on sale"
    );

    let browser = Browser::start().await?;
    let c = &browser.client;
    let result: CheckResult = async {
        // Added from the product pages, as a shopper does.
        for (n, (sku, _)) in lines.iter().enumerate() {
            c.goto(&ctx.url(&format!("/p/{sku}")))
                .await
                .map_err(|e| e.to_string())?;
            wait_hydrated(c).await?;
            click(c, "button.add-to-cart").await?;
            let want = (n + 1).to_string();
            wait_for("the cart badge", Duration::from_secs(5), || async {
                Ok(text_of(c, "[data-testid=cart-badge]").await? == want)
            })
            .await?;
        }
        c.goto(&ctx.url("/cart")).await.map_err(|e| e.to_string())?;
        wait_hydrated(c).await?;
        let shown = wait_for_cart(c, &without_codes, "without codes").await?;
        shown.adds_up(&without_codes)?;

        for code in codes {
            enter_code(c, code).await?;
            let want = json!(codes.iter().position(|c| *c == code).unwrap_or(0) + 1);
            wait_for("the code's chip", Duration::from_secs(5), || async {
                Ok(js(
                    c,
                    "return document.querySelectorAll('[data-testid=code]').length",
                )
                .await?
                    == want)
            })
            .await?;
        }
        let shown = wait_for_cart(c, &with_codes, "with the codes").await?;
        shown.adds_up(&with_codes)?;

        // One more of the line that is not on sale: priced again, line by line.
        let plain = &lines[1].0;
        click(c, &format!("tr.cart-line[data-sku='{plain}'] button.more")).await?;
        let more = vec![lines[0].clone(), (plain.clone(), 2)];
        let again = priced(ctx, &more, &codes, None)?;
        let shown = wait_for_cart(c, &again, "after one more").await?;
        shown.adds_up(&again)
    }
    .await;
    let _ = browser.client.clone().close().await;
    result
}

/// A shopper checks out in the browser with codes: the order records the promotions the server
/// applied and its total is the server's pricing, on the API and on the order page.
async fn browser_checks_out_with_promo_codes_and_the_order_records_the_pricing(
    ctx: &Ctx,
) -> CheckResult {
    let codes = [WELCOME, FREE_SHIPPING];
    // A cart (other than the cart page check's) the welcome code applies to beside a sale.
    let carts = carts_with(ctx, 10, &codes, |cart| {
        cart.applied
            .iter()
            .any(|a| a.code.as_deref() == Some(WELCOME))
            && cart.applied.iter().any(|a| a.code.is_none())
    })?;
    let (lines, preview) = carts
        .into_iter()
        .nth(1)
        .ok_or("no second cart of the demo the welcome code applies to")?;
    // The page leaves out the codes it already showed as refused (free shipping on a cart
    // that ships free anyway).
    let sent: Vec<&str> = codes
        .iter()
        .copied()
        .filter(|c| !preview.rejected_codes.iter().any(|r| r.code == *c))
        .collect();
    let email = "promo-checkout@example.com";
    let expected = priced(ctx, &lines, &sent, Some(email))?;
    let skus: Vec<String> = lines.iter().map(|(s, _)| s.clone()).collect();
    let before: Vec<u64> = vec![ctx.level(&skus[0]).await?, ctx.level(&skus[1]).await?];

    let browser = Browser::start().await?;
    let c = &browser.client;
    let result: CheckResult = async {
        let first_page = open_cart(ctx, c, &lines).await?;
        for code in codes {
            enter_code(c, code).await?;
        }
        wait_for_cart(c, &preview, "before checkout").await?;
        wait_for("the hold notice", Duration::from_secs(10), || async {
            Ok(js(c, "return !!document.querySelector('[data-testid=hold-expiry]')").await? == json!(true))
        })
        .await?;
        let id = place_order(c, email, first_page).await?;

        let (status, order) = ctx.json("GET", &format!("/api/orders/{id}"), None).await?;
        ensure!(status == StatusCode::OK, "order {id}: {status} {order}");
        let total: Money = serde_json::from_value(order["total"].clone()).map_err(|e| format!("order total {}: {e}", order["total"]))?;
        ensure!(total == expected.total, "order {id} charged {total}, the server's pricing is {}", expected.total);
        let pricing: edge_core::order::OrderPricing =
            serde_json::from_value(order["pricing"].clone()).map_err(|e| format!("order {id} pricing {}: {e}", order["pricing"]))?;
        ensure!(pricing.promotions == expected.applied, "order {id} records {:?}, expected {:?}", pricing.promotions, expected.applied);
        ensure!(
            (&pricing.subtotal, &pricing.discount, &pricing.shipping) == (&expected.subtotal, &expected.discount, &expected.shipping),
            "order {id} pricing {pricing:?}, expected {expected:?}"
        );
        let unit_prices: BTreeMap<String, Money> = order["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| Some((l["sku"].as_str()?.to_owned(), serde_json::from_value(l["unit_price"].clone()).ok()?)))
            .collect();
        let catalog_prices: BTreeMap<String, Money> = expected.lines.iter().map(|l| (l.sku.to_string(), l.unit_price.clone())).collect();
        ensure!(unit_prices == catalog_prices, "order {id} lines {unit_prices:?}, the catalog's {catalog_prices:?}");

        // The order page shows the same record.
        let shown = js(
            c,
            "return [document.querySelector('[data-testid=order-total]').textContent,
                     [...document.querySelectorAll('[data-testid=order-saving]')].map(li => li.dataset.promotion)]",
        )
        .await?;
        let ids: Vec<&str> = expected.applied.iter().map(|a| a.id.as_str()).collect();
        ensure!(shown == json!([expected.total.to_string(), ids]), "the order page shows {shown}, expected {} and {ids:?}", expected.total);
        for (sku, was) in skus.iter().zip(&before) {
            let now = ctx.level(sku).await?;
            ensure!(now + 1 == *was, "{sku}: level {was} -> {now} after buying one");
        }
        Ok(())
    }
    .await;
    let _ = browser.client.clone().close().await;
    restore_levels(ctx, &skus).await?;
    result
}

/// The client's numbers are never trusted: `POST /api/checkout` refuses a price or total the
/// client adds (400, nothing sold), and the checkout server function the cart page calls
/// ignores them and charges the server's pricing.
async fn promo_checkouts_never_take_the_clients_prices(ctx: &Ctx) -> CheckResult {
    let (sku, _) = simple_products(ctx, 10)
        .into_iter()
        .find(|(_, sale)| sale.is_some())
        .ok_or("nothing on sale")?;
    let sku = sku.sku.to_string();
    let lines = vec![(sku.clone(), 2)];
    let expected = priced(ctx, &lines, &[WELCOME], Some("tamper@example.com"))?;
    ensure!(
        expected.discount.minor > 0,
        "two of {sku} with {WELCOME} save nothing"
    );
    let before = ctx.level(&sku).await?;
    let one_cent = json!({"minor": 1, "currency": expected.currency});
    let base = json!({"lines": [{"sku": sku, "qty": 2}], "email": "tamper@example.com", "payment_token": "tok_visa", "codes": [WELCOME]});
    let mut tampered = Vec::new();
    for (field, value) in [
        ("total", one_cent.clone()),
        ("discount", json!(expected.subtotal)),
        ("pricing", json!({"total": one_cent})),
    ] {
        let mut body = base.clone();
        body[field] = value;
        tampered.push((field.to_owned(), body));
    }
    let mut body = base.clone();
    body["lines"][0]["unit_price"] = one_cent.clone();
    tampered.push(("lines[0].unit_price".into(), body));
    for (n, (field, body)) in tampered.into_iter().enumerate() {
        let key = format!("tamper-api-{n}");
        let res = ctx
            .http
            .post(ctx.url("/api/checkout"))
            .header("idempotency-key", &key)
            .header("cf-connecting-ip", shopper_ip(&key))
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = res.status();
        let reply: Value = res.json().await.map_err(|e| e.to_string())?;
        ensure!(
            status == StatusCode::BAD_REQUEST && reply["error"] == "bad_request",
            "a checkout with its own {field} answered {status} {reply}"
        );
    }
    ensure!(
        ctx.level(&sku).await? == before,
        "refused checkouts took stock of {sku}"
    );

    // The cart page's server function, with the client's amounts in the form: a price on a
    // line is refused like the API's; order-level amounts are ignored, and the order charges
    // the server's pricing.
    let result: CheckResult = async {
        let line_price = format!("lines[0][sku]={sku}&lines[0][qty]=2&lines[0][unit_price]=1&email=tamper%40example.com&payment_token=tok_visa&idempotency_key=tamper-sfn-0&codes={WELCOME}");
        let (status, reply) = sfn_place_order(ctx, "tamper-sfn-0", line_price).await?;
        ensure!(!status.is_success() && reply.get("Placed").is_none(), "place-order with a line's own price: {status} {reply}");
        ensure!(ctx.level(&sku).await? == before, "a refused place-order took stock of {sku}");

        let amounts = format!(
            "lines[0][sku]={sku}&lines[0][qty]=2&total=1&discount={}&email=tamper%40example.com&payment_token=tok_visa&idempotency_key=tamper-sfn-1&codes={WELCOME}",
            expected.subtotal.minor
        );
        let (status, reply) = sfn_place_order(ctx, "tamper-sfn-1", amounts).await?;
        let Some(id) = reply["Placed"]["order_id"].as_str() else {
            // Refused is as good as ignored, as long as nothing was sold.
            ensure!(!status.is_success() || reply.get("Refused").is_some(), "place-order with the client's total: {status} {reply}");
            ensure!(ctx.level(&sku).await? == before, "a refused place-order took stock of {sku}");
            return Ok(());
        };
        let (status, order) = ctx.json("GET", &format!("/api/orders/{id}"), None).await?;
        ensure!(status == StatusCode::OK, "order {id}: {status} {order}");
        let total: Money = serde_json::from_value(order["total"].clone()).map_err(|e| e.to_string())?;
        ensure!(total == expected.total, "place-order with the client's total charged {total}, the server's pricing is {}", expected.total);
        let unit: Money = serde_json::from_value(order["lines"][0]["unit_price"].clone()).map_err(|e| e.to_string())?;
        ensure!(unit == expected.lines[0].unit_price, "the order's unit price {unit} is not the catalog's");
        Ok(())
    }
    .await;
    restore_levels(ctx, &[sku]).await?;
    result
}

/// `POST /_sfn/place-order` (the cart page's checkout) with a form body, as the shopper `key`
/// names; the status and the JSON reply (`Null` when it is not JSON).
async fn sfn_place_order(
    ctx: &Ctx,
    key: &str,
    form: String,
) -> Result<(StatusCode, Value), String> {
    let res = ctx
        .http
        .post(ctx.url("/_sfn/place-order"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .header("cf-connecting-ip", shopper_ip(key))
        .body(form)
        .send()
        .await
        .map_err(|e| format!("place-order {key}: {e}"))?;
    let status = res.status();
    let text = res.text().await.map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// A category where a running sale moves a product into another price band: its price filter
/// lists the products by the price shown, and the band counts agree.
async fn price_filters_and_counts_follow_the_price_shown(ctx: &Ctx) -> CheckResult {
    use edge_core::listing::{slug, PriceBand};
    let shown = |p: &Product| {
        shelf(ctx, p, &p.sku)
            .unwrap_or_else(|| p.price.clone())
            .minor
    };
    let moved = ctx
        .catalog
        .products
        .iter()
        .find(|p| PriceBand::of(shown(p)) != PriceBand::of(p.price.minor))
        .ok_or("the demo's sales move no product into another price band")?;
    let category = slug(&moved.category);
    let members: Vec<&Product> = ctx
        .catalog
        .products
        .iter()
        .filter(|p| slug(&p.category) == category)
        .collect();
    let (status, body) = ctx
        .json("GET", &format!("/api/products?category={category}"), None)
        .await?;
    ensure!(status == StatusCode::OK, "/api/products answered {status}");
    let counts: BTreeMap<String, u64> = body["facets"]["price"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|pair| Some((pair[0].as_str()?.to_owned(), pair[1].as_u64()?)))
        .collect();
    for band in [
        PriceBand::of(shown(moved)),
        PriceBand::of(moved.price.minor),
    ] {
        let expected: Vec<String> = members
            .iter()
            .filter(|p| PriceBand::of(shown(p)) == band)
            .map(|p| p.sku.to_string())
            .collect();
        let (status, html) = ctx
            .get(&format!("/c/{category}?price={}", band.slug()))
            .await?;
        ensure!(
            status == StatusCode::OK,
            "{category} at {} answered {status}",
            band.slug()
        );
        ensure!(
            listed_skus(&html) == expected,
            "/c/{category}?price={} lists {:?}, expected {expected:?} ({} is {} on sale)",
            band.slug(),
            listed_skus(&html),
            moved.sku,
            shown(moved)
        );
        let key = serde_json::to_value(band).map_err(|e| e.to_string())?;
        let count = key
            .as_str()
            .and_then(|k| counts.get(k))
            .copied()
            .unwrap_or(0);
        ensure!(
            count == expected.len() as u64,
            "{category}'s {} count is {count}, the filter lists {}",
            band.slug(),
            expected.len()
        );
    }
    Ok(())
}
