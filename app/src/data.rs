//! Server functions: what pages ask of the shop.
//!
//! On the server each body reads the [`edge_core::Shop`] provided as context; in the browser the
//! same call becomes a POST to `/_sfn/...` on the worker. Store failures come back as errors that
//! pages turn into a notice, never as a crash.

use edge_core::listing::{CategoryInfo, ListingPage};
use edge_core::Product;
use leptos::prelude::*;
use leptos::server_fn::{self, error::FromServerFnError};
use serde::{Deserialize, Serialize};

/// A product with the stock of each of its stock units, for the product page.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProductWithStock {
    pub product: Product,
    /// (SKU, units available) for each stock unit; `None` when that level could not be read
    /// (the page says so instead of failing).
    pub levels: Vec<(String, Option<u32>)>,
    /// Products like this one, from the snapshot's vector index (empty without one).
    pub similar: Vec<edge_core::ProductSummary>,
    /// Products often bought with this one, from the snapshot's lists (empty without them).
    #[serde(default)]
    pub together: Vec<edge_core::ProductSummary>,
    /// (SKU, sale price) of each stock unit the automatic promotions discount now.
    #[serde(default)]
    pub sales: Vec<(String, edge_core::Money)>,
}

#[cfg(feature = "ssr")]
mod ssr {
    use edge_core::{Shop, Sku};
    use leptos::prelude::*;

    pub fn shop() -> Result<Shop, ServerFnError> {
        use_context::<Shop>().ok_or_else(|| ServerFnError::new("shop context missing"))
    }

    pub fn sku(raw: &str) -> Option<Sku> {
        Sku::parse(raw).ok()
    }

    fn cookie_header() -> Option<String> {
        let parts = use_context::<axum::http::request::Parts>()?;
        parts
            .headers
            .get(axum::http::header::COOKIE)?
            .to_str()
            .ok()
            .map(str::to_owned)
    }

    fn secret() -> Option<std::sync::Arc<[u8]>> {
        use_context::<crate::ssr::Personalization>()?.secret
    }

    /// Whether personalization is on for this request's shopper; `None` when the shop has it off.
    pub async fn personalization_on() -> Option<bool> {
        secret()?;
        Some(!edge_core::behaviour::opted_out(
            &cookie_header().unwrap_or_default(),
        ))
    }

    /// The shopper's history, when personalization is on and they have one.
    pub async fn history() -> Option<edge_core::behaviour::History> {
        edge_core::behaviour::history_from_cookies(&cookie_header()?, &secret()?)
    }

    /// Records an event in the shopper's history cookie; `false` when nothing was recorded
    /// (personalization off, or opted out).
    pub async fn record(sku: Sku, kind: edge_core::behaviour::EventKind) -> bool {
        let (Some(true), Some(secret)) = (personalization_on().await, secret()) else {
            return false;
        };
        let mut history = history().await.unwrap_or_default();
        let at_ms = shop().map(|s| s.clock.now_ms()).unwrap_or(0);
        let visitor = history.visitor_id().to_owned();
        if let Some(personalization) = use_context::<crate::ssr::Personalization>() {
            personalization
                .events
                .push(edge_core::events::AnalyticsEvent {
                    visitor,
                    sku: sku.clone(),
                    kind,
                    at_ms,
                    arm: None,
                });
        }
        history.record(edge_core::behaviour::Event {
            sku,
            kind,
            at_s: at_ms / 1000,
        });
        set_cookie(&edge_core::behaviour::history_set_cookie(&history, &secret));
        set_history_flag();
        true
    }

    fn set_history_flag() {
        set_cookie(&format!(
            "{}=1; Path=/; Max-Age={}; Secure; SameSite=Lax",
            super::HAS_HISTORY_COOKIE,
            edge_core::behaviour::HISTORY_MAX_AGE_S
        ));
    }

    /// Sets the [`super::HAS_HISTORY_COOKIE`] flag for a shopper with a history whose browser
    /// lacks it (a history from before the flag, or the flag cleared), so their next listing
    /// asks for a personal order. Only in server functions: their answers are private.
    pub fn flag_history() {
        let header = cookie_header().unwrap_or_default();
        if edge_core::behaviour::cookie(&header, super::HAS_HISTORY_COOKIE) != Some("1") {
            set_history_flag();
        }
    }

    pub fn set_cookie(value: &str) {
        if let (Some(response), Ok(value)) = (
            use_context::<leptos_axum::ResponseOptions>(),
            axum::http::HeaderValue::from_str(value),
        ) {
            response.append_header(axum::http::header::SET_COOKIE, value);
        }
    }

    /// Queues an analytics-only event (a recommendation shown or clicked) under an arm.
    pub fn queue(
        visitor: &str,
        sku: Sku,
        kind: edge_core::behaviour::EventKind,
        arm: edge_core::behaviour::Arm,
    ) {
        let (Some(personalization), Ok(shop)) =
            (use_context::<crate::ssr::Personalization>(), shop())
        else {
            return;
        };
        let event = edge_core::events::AnalyticsEvent {
            visitor: visitor.to_owned(),
            sku,
            kind,
            at_ms: shop.clock.now_ms(),
            // Tagged with the experiment too: a later experiment may reuse an arm's name.
            arm: Some(format!(
                "{}/{}",
                edge_core::behaviour::RECOMMENDATIONS_EXPERIMENT,
                arm.as_str()
            )),
        };
        personalization.events.push(event);
    }

    /// Store errors are logged with their detail and shown to shoppers in general terms.
    pub fn unavailable(e: edge_core::StoreError) -> ServerFnError {
        leptos::logging::error!("store error: {e}");
        ServerFnError::new(format!("temporarily unavailable: {e}"))
    }
}

/// Categories with their product counts, for navigation.
#[server(prefix = "/_sfn", endpoint = "categories")]
pub async fn list_categories() -> Result<Vec<CategoryInfo>, ServerFnError> {
    let shop = ssr::shop()?;
    Ok(shop
        .catalog
        .categories()
        .await
        .map_err(ssr::unavailable)?
        .as_ref()
        .clone())
}

/// Why a listing could not be shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BrowseError {
    /// Bad filter, sort or page in the URL (400).
    BadQuery(String),
    /// No such category (404).
    NoSuchCategory,
}

/// A listing page: all products, a category (`category`), or search results (`q`), filtered,
/// sorted and paged by the other URL parameters.
#[server(prefix = "/_sfn", endpoint = "browse")]
pub async fn browse(
    params: std::collections::BTreeMap<String, String>,
) -> Result<Result<ListingPage, BrowseError>, ServerFnError> {
    use edge_core::api::{browse, ApiError};
    let shop = ssr::shop()?;
    let params: Vec<(String, String)> = params.into_iter().collect();
    match browse(&shop, &params).await {
        Ok(page) => Ok(Ok(page)),
        Err(ApiError::BadRequest(message)) => Ok(Err(BrowseError::BadQuery(message))),
        Err(ApiError::NotFound(_)) => Ok(Err(BrowseError::NoSuchCategory)),
        Err(ApiError::Store(e)) => Err(ssr::unavailable(e)),
        Err(other) => Err(ServerFnError::new(format!("{other:?}"))),
    }
}

/// A product and its live stock, or `None` for an unknown SKU.
#[server(prefix = "/_sfn", endpoint = "product")]
pub async fn product_detail(sku: String) -> Result<Option<ProductWithStock>, ServerFnError> {
    let shop = ssr::shop()?;
    let Some(sku) = ssr::sku(&sku) else {
        return Ok(None);
    };
    let Some(product) = shop.catalog.product(&sku).await.map_err(ssr::unavailable)? else {
        return Ok(None);
    };
    // Levels of all stock units at once. A page shows levels at most a couple of seconds old;
    // the browser then refreshes the selected one live.
    let reads = product.stock_units().into_iter().map(|unit| {
        let shop = shop.clone();
        let unit = unit.clone();
        async move {
            let level = shop.display_level(&unit).await.unwrap_or_else(|e| {
                leptos::logging::error!("stock level for {unit} unavailable: {e}");
                None
            });
            (unit.to_string(), level)
        }
    });
    let levels = futures::future::join_all(reads).await;
    let mut similar = edge_core::api::similar_products(&shop, &sku, SIMILAR_SHOWN)
        .await
        .unwrap_or_else(|e| {
            leptos::logging::error!("similar items for {sku} unavailable: {e:?}");
            Vec::new()
        });
    let mut together = edge_core::api::bought_together(&shop, &sku, TOGETHER_SHOWN)
        .await
        .unwrap_or_else(|e| {
            leptos::logging::error!("bought-together list for {sku} unavailable: {e:?}");
            Vec::new()
        });
    for strip in [&mut similar, &mut together] {
        let _ = edge_core::api::mark_sales(&shop, strip).await;
    }
    let sales = edge_core::api::unit_sales(&shop, &product)
        .await
        .unwrap_or_else(|e| {
            leptos::logging::error!("promotions for {sku} unavailable: {e:?}");
            Vec::new()
        });
    let sales = sales
        .into_iter()
        .map(|(unit, price)| (unit.to_string(), price))
        .collect();
    Ok(Some(ProductWithStock {
        product,
        levels,
        similar,
        together,
        sales,
    }))
}

/// Units available now, for the live stock line; `None` for a SKU without stock.
#[server(prefix = "/_sfn", endpoint = "stock")]
pub async fn stock_level(sku: String) -> Result<Option<u32>, ServerFnError> {
    let shop = ssr::shop()?;
    let Some(sku) = ssr::sku(&sku) else {
        return Ok(None);
    };
    Ok(shop
        .stock
        .level(&sku)
        .await
        .map_err(ssr::unavailable)?
        .map(|l| l.available))
}

/// One cart line as the cart page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartItem {
    pub sku: String,
    pub title: String,
    pub image: String,
    pub unit_price: edge_core::Money,
    /// Units available now; `None` when unknown.
    pub available: Option<u32>,
}

/// Titles, prices and stock of the cart's SKUs; SKUs the catalog no longer sells are left out.
#[server(prefix = "/_sfn", endpoint = "cart")]
pub async fn cart_items(skus: Vec<String>) -> Result<Vec<CartItem>, ServerFnError> {
    let shop = ssr::shop()?;
    if skus.len() > crate::cart::CART_LINES_MAX {
        return Err(ServerFnError::new("too many cart lines"));
    }
    let reads = skus
        .into_iter()
        .filter_map(|raw| ssr::sku(&raw))
        .map(|sku| {
            let shop = shop.clone();
            async move {
                let product = shop.catalog.unit(&sku).await?;
                let Some(product) = product else {
                    return Ok(None);
                };
                let unit_price = product
                    .price_of(&sku)
                    .cloned()
                    .unwrap_or_else(|| product.price.clone());
                let available = shop.display_level(&sku).await.unwrap_or(None);
                Ok(Some(CartItem {
                    sku: sku.to_string(),
                    title: product.title,
                    image: product.image,
                    unit_price,
                    available,
                }))
            }
        });
    let items: Result<Vec<Option<CartItem>>, edge_core::StoreError> =
        futures::future::join_all(reads).await.into_iter().collect();
    Ok(items
        .map_err(ssr::unavailable)?
        .into_iter()
        .flatten()
        .collect())
}

/// Why a cart call (holding the cart, placing the order) did not run to an answer: the edge's
/// protection refused it before its server function ran, or the call failed.
///
/// The protection (`edge_core::protect`) answers such calls itself with its own JSON
/// (`{"error", "message", "retry_after_s"?}`: 429 `hold_limit` or `rate_limited`, 403
/// `checkout_refused`), not in the server function's encoding; [`FromServerFnError::de`] reads
/// that shape first, so the page can tell the shopper what the shop said instead of a
/// decoding error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CartCallError {
    /// Refused by the edge's protection: `code` is its `error`, `message` what to tell the
    /// shopper ("at most 5 of KIT-001 per shopper every 15 minutes (3 already)").
    Refused {
        code: String,
        message: String,
        retry_after_s: Option<u64>,
    },
    /// The shop could not be reached or failed; the detail is for the log, not the shopper.
    Failed(String),
}

/// The `error` codes of the edge protection's refusals, whose messages are meant for shoppers.
/// Other errors of the edge (a 503 with a store's detail) stay [`CartCallError::Failed`].
pub const PROTECTION_REFUSALS: [&str; 4] = [
    "rate_limited",
    "hold_limit",
    "checkout_refused",
    "too_large",
];

impl std::fmt::Display for CartCallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CartCallError::Refused { message, .. } => f.write_str(message),
            CartCallError::Failed(detail) => f.write_str(detail),
        }
    }
}

impl From<ServerFnError> for CartCallError {
    fn from(e: ServerFnError) -> Self {
        CartCallError::Failed(e.to_string())
    }
}

impl FromServerFnError for CartCallError {
    type Encoder = server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: server_fn::error::ServerFnErrorErr) -> Self {
        CartCallError::Failed(value.to_string())
    }

    fn de(data: server_fn::Bytes) -> Self {
        #[derive(Deserialize)]
        struct EdgeRefusal {
            error: String,
            message: String,
            #[serde(default)]
            retry_after_s: Option<u64>,
        }
        if let Ok(r) = serde_json::from_slice::<EdgeRefusal>(&data) {
            if PROTECTION_REFUSALS.contains(&r.error.as_str()) {
                return CartCallError::Refused {
                    code: r.error,
                    message: r.message,
                    retry_after_s: r.retry_after_s,
                };
            }
        }
        serde_json::from_slice(&data).unwrap_or_else(|_| {
            CartCallError::Failed(String::from_utf8_lossy(&data).chars().take(200).collect())
        })
    }
}

/// How the checkout form's submission ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlaceOrderResult {
    Placed {
        order_id: String,
    },
    /// Refused for a reason the shopper can act on (stock, card, input); nothing was charged.
    Refused {
        message: String,
        sku: Option<String>,
        available: Option<u32>,
    },
}

/// Places the order: the same path as `POST /api/checkout`, with the form's idempotency key
/// (a resubmission after a lost answer finds the same order).
#[server(prefix = "/_sfn", endpoint = "place-order")]
pub async fn place_order(
    lines: Vec<edge_core::stock::Line>,
    email: String,
    payment_token: String,
    idempotency_key: String,
    /// The discount codes entered, comma-separated (empty: none).
    codes: String,
) -> Result<PlaceOrderResult, CartCallError> {
    use edge_core::api::{place, ApiError};
    use edge_core::checkout::CheckoutOutcome;
    use edge_core::order::CheckoutRequest;
    let shop = ssr::shop()?;
    let codes = codes
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let request = CheckoutRequest {
        lines,
        email,
        payment_token,
        codes,
    };
    let refused = |message: String| {
        Ok(PlaceOrderResult::Refused {
            message,
            sku: None,
            available: None,
        })
    };
    match place(&shop, Some(&idempotency_key), request).await {
        Ok(CheckoutOutcome::Placed(order)) => {
            for line in &order.lines {
                ssr::record(line.sku.clone(), edge_core::behaviour::EventKind::Purchased).await;
            }
            Ok(PlaceOrderResult::Placed { order_id: order.id.to_string() })
        }
        Ok(CheckoutOutcome::Insufficient { sku, .. }) if edge_core::promo::is_usage_sku(&sku) => {
            refused("A discount code in your order has reached its usage limit. Nothing was charged; remove it to order without it.".into())
        }
        Ok(CheckoutOutcome::Insufficient { sku, available }) => Ok(PlaceOrderResult::Refused {
            message: format!("Only {available} of {sku} left: please lower the quantity."),
            sku: Some(sku.to_string()),
            available: Some(available),
        }),
        Ok(CheckoutOutcome::UnknownSku { sku }) => Ok(PlaceOrderResult::Refused {
            message: format!("{sku} is no longer stocked."),
            sku: Some(sku.to_string()),
            available: Some(0),
        }),
        Ok(CheckoutOutcome::Declined { reason }) => refused(format!("Payment declined: {reason}.")),
        Ok(CheckoutOutcome::PaymentTimeout) => {
            refused("The payment provider did not answer in time. You have not been charged; please try again.".into())
        }
        Ok(CheckoutOutcome::HoldExpired) => refused("Your reservation ran out before payment finished. Nothing was charged.".into()),
        Err(ApiError::BadRequest(message)) => refused(message),
        Err(ApiError::Refused { message, .. }) => refused(message),
        Err(ApiError::Store(e)) => Err(ssr::unavailable(e).into()),
        Err(other) => Err(ServerFnError::new(format!("{other:?}")).into()),
    }
}

/// A placed order, for its page; `None` for an unknown id.
#[server(prefix = "/_sfn", endpoint = "order")]
pub async fn order_detail(id: String) -> Result<Option<edge_core::order::Order>, ServerFnError> {
    let shop = ssr::shop()?;
    let Ok(id) = edge_core::stock::OrderId::parse(&id) else {
        return Ok(None);
    };
    shop.orders.order(&id).await.map_err(ssr::unavailable)
}

/// The cart's holds as the cart page shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CartHoldView {
    Held {
        expires_at_ms: u64,
    },
    Refused {
        message: String,
    },
    /// The key was used up (the order was checked out or given up): hold under a new one.
    Spent,
}

/// Holds the cart's lines under the checkout's idempotency key, so the checkout that follows
/// sells exactly these units; the page shows until when they are held.
#[server(prefix = "/_sfn", endpoint = "hold-cart")]
pub async fn hold_cart(
    lines: Vec<edge_core::stock::Line>,
    idempotency_key: String,
) -> Result<CartHoldView, CartCallError> {
    use edge_core::checkout::{hold_cart, order_id_for_key, CartHold};
    let shop = ssr::shop()?;
    edge_core::stock::validate_lines(&lines).map_err(ServerFnError::new)?;
    let key =
        edge_core::api::valid_idempotency_key(&idempotency_key).map_err(ServerFnError::new)?;
    let order = order_id_for_key(key);
    Ok(
        match hold_cart(shop.stock.as_ref(), &order, &lines)
            .await
            .map_err(ssr::unavailable)?
        {
            CartHold::Held { expires_at_ms } => CartHoldView::Held { expires_at_ms },
            CartHold::Refused {
                sku: Some(sku),
                available,
            } => CartHoldView::Refused {
                message: format!("Only {available} of {sku} left: please lower the quantity."),
            },
            CartHold::Refused { sku: None, .. } => CartHoldView::Refused {
                message: "Some items are no longer available.".into(),
            },
            CartHold::Spent => CartHoldView::Spent,
        },
    )
}

/// Gives back the holds of a cart that changed (its old key is spent).
#[server(prefix = "/_sfn", endpoint = "release-cart")]
pub async fn release_cart(
    lines: Vec<edge_core::stock::Line>,
    idempotency_key: String,
) -> Result<(), ServerFnError> {
    use edge_core::checkout::{order_id_for_key, release_cart};
    let shop = ssr::shop()?;
    edge_core::stock::validate_lines(&lines).map_err(ServerFnError::new)?;
    let order = order_id_for_key(&idempotency_key);
    release_cart(shop.stock.as_ref(), &order, &lines)
        .await
        .map_err(ssr::unavailable)
}

/// What the shopper did, from the browser: `viewed` (a product page), `carted`.
#[server(prefix = "/_sfn", endpoint = "record")]
pub async fn record_event(sku: String, kind: String) -> Result<bool, ServerFnError> {
    use edge_core::behaviour::EventKind;
    let kind = match kind.as_str() {
        "viewed" => EventKind::Viewed,
        "carted" => EventKind::Carted,
        _ => return Err(ServerFnError::new(format!("unknown event kind {kind:?}"))),
    };
    let Some(sku) = ssr::sku(&sku) else {
        return Err(ServerFnError::new("invalid SKU"));
    };
    Ok(ssr::record(sku, kind).await)
}

/// Products the shopper looked at lately, newest first (empty when opted out or unknown).
#[server(prefix = "/_sfn", endpoint = "recent")]
pub async fn recently_viewed() -> Result<Vec<edge_core::ProductSummary>, ServerFnError> {
    let shop = ssr::shop()?;
    let Some(history) = ssr::history().await else {
        return Ok(Vec::new());
    };
    if !history.events.is_empty() {
        ssr::flag_history();
    }
    let products = shop.catalog.products().await.map_err(ssr::unavailable)?;
    let summaries = history
        .seen()
        .into_iter()
        .filter_map(|sku| products.iter().find(|p| &p.sku == sku).cloned())
        .take(RECENT_SHOWN)
        .collect();
    Ok(summaries)
}

/// Products a "recently viewed" strip shows.
pub const RECENT_SHOWN: usize = 8;

/// A cookie the browser can read, set beside the (HttpOnly, signed) history cookie: it says only
/// that a history exists, so pages skip asking for a personal order when there is none.
pub const HAS_HISTORY_COOKIE: &str = "shop_has_history";

/// Whether this browser has a behaviour history (see [`HAS_HISTORY_COOKIE`]); always `true`
/// outside the browser.
pub fn may_have_history() -> bool {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let cookies = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.dyn_into::<web_sys::HtmlDocument>().ok())
            .and_then(|d| d.cookie().ok())
            .unwrap_or_default();
        let flag = format!("{HAS_HISTORY_COOKIE}=1");
        cookies.split(';').any(|pair| pair.trim() == flag)
    }
    #[cfg(not(feature = "hydrate"))]
    true
}

/// Whether personalization is on for this shopper (`None`: the shop has it off).
#[server(prefix = "/_sfn", endpoint = "personalization")]
pub async fn personalization_state() -> Result<Option<bool>, ServerFnError> {
    Ok(ssr::personalization_on().await)
}

/// Turns personalization off (history forgotten) or back on for this shopper.
#[server(prefix = "/_sfn", endpoint = "set-personalization")]
pub async fn set_personalization(enabled: bool) -> Result<(), ServerFnError> {
    for value in edge_core::behaviour::opt_out_set_cookies(!enabled) {
        ssr::set_cookie(&value);
    }
    // Either way the history is gone.
    ssr::set_cookie(&format!(
        "{HAS_HISTORY_COOKIE}=; Path=/; Max-Age=0; Secure; SameSite=Lax"
    ));
    Ok(())
}

/// Similar products a product page shows.
pub const SIMILAR_SHOWN: usize = 4;
/// Products a product page shows as "frequently bought together".
pub const TOGETHER_SHOWN: usize = 4;
/// Products a "recommended" strip shows.
pub const RECOMMENDED_SHOWN: usize = 6;

/// Suggestions for the home page: from the shopper's recent behaviour when there is some (and
/// personalization is on), generic best-sellers otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suggestions {
    pub personal: bool,
    pub products: Vec<edge_core::ProductSummary>,
    /// The experiment arm that ranked them (personal suggestions only).
    pub arm: Option<String>,
}

#[server(prefix = "/_sfn", endpoint = "recommended")]
pub async fn recommended() -> Result<Suggestions, ServerFnError> {
    let shop = ssr::shop()?;
    let history = ssr::history().await.unwrap_or_default();
    let now_s = shop.clock.now_ms() / 1000;
    let weights = history.weights(now_s);
    let seen = history.seen();
    let arm = edge_core::behaviour::Arm::of(&history.visitor);
    let (source, mut products) =
        edge_core::api::recommended_products_in(&shop, &weights, &seen, RECOMMENDED_SHOWN, arm)
            .await
            .map_err(|e| ServerFnError::new(format!("{e:?}")))?;
    let _ = edge_core::api::mark_sales(&shop, &mut products).await;
    let personal = source == edge_core::api::SuggestionSource::Personal;
    // Exposure, for the experiment's click-through (only personal lists are in the experiment).
    if personal {
        for product in &products {
            ssr::queue(
                &history.visitor,
                product.sku.clone(),
                edge_core::behaviour::EventKind::Shown,
                arm,
            );
        }
    }
    Ok(Suggestions {
        personal,
        products,
        arm: personal.then(|| arm.as_str().to_owned()),
    })
}

/// A listing page's SKUs in this shopper's order (their taste and category interest), or
/// `None` when there is nothing to personalize (personalization off, opted out, no history).
/// Listings are cached for everyone; the browser asks this after hydration.
#[server(prefix = "/_sfn", endpoint = "personal-order")]
pub async fn personal_order(skus: Vec<String>) -> Result<Option<Vec<String>>, ServerFnError> {
    let shop = ssr::shop()?;
    let Some(history) = ssr::history().await else {
        return Ok(None);
    };
    let weights = history.weights(shop.clock.now_ms() / 1000);
    if weights.is_empty() {
        return Ok(None);
    }
    let skus: Vec<edge_core::Sku> = skus
        .iter()
        .take(edge_core::api::PERSONAL_ORDER_MAX)
        .filter_map(|s| ssr::sku(s))
        .collect();
    let ranked = edge_core::api::personal_order(&shop, &weights, &skus)
        .await
        .map_err(|e| ServerFnError::new(format!("{e:?}")))?;
    Ok(Some(ranked.into_iter().map(|s| s.to_string()).collect()))
}

/// A click on a recommendation, for the experiment's click-through.
#[server(prefix = "/_sfn", endpoint = "clicked")]
pub async fn record_click(sku: String, arm: String) -> Result<(), ServerFnError> {
    let (Some(sku), Some(arm)) = (ssr::sku(&sku), edge_core::behaviour::Arm::parse(&arm)) else {
        return Err(ServerFnError::new("invalid SKU or arm"));
    };
    if let Some(history) = ssr::history().await {
        ssr::queue(
            &history.visitor,
            sku,
            edge_core::behaviour::EventKind::Clicked,
            arm,
        );
    }
    Ok(())
}
