//! The headless JSON API and the admin routes, as axum routers over a [`Shop`].
//!
//! Every error is one JSON shape, `{"error": code, "message": text}` (plus `available` for
//! insufficient stock), with a 4xx status for anything the caller can fix and 503 when a backing
//! store is down. Nothing here answers 500.

use crate::checkout::{order_id_for_key, price_order, CheckoutError, CheckoutOutcome};
use crate::codec::from_cbor;
use crate::listing::{self, ListingPage, ListingQuery};
use crate::order::CheckoutRequest;
use crate::product::Sku;
use crate::snapshot::{KvEntry, KvWrite, KV_KEY_BYTES_MAX, KV_VALUE_BYTES_MAX};
use crate::stock::OrderId;
use crate::store::{Shop, StoreError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// SKUs one `/_admin/stock` request may set; publishers send larger catalogs in batches.
pub const STOCK_LEVELS_PER_REQUEST_MAX: usize = 10_000;
/// Largest admin request body (a batch of snapshot values, or 10k stock levels).
pub const ADMIN_BODY_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Everything that can go wrong in an API call, mapped to one status and JSON body each.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    NotFound(String),
    /// A well-formed request the shop refuses (stock, payment): its status, code and details.
    Refused {
        status: StatusCode,
        code: &'static str,
        message: String,
        details: serde_json::Value,
    },
    Unauthorized,
    Store(StoreError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Store(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::BadRequest(message) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "bad_request", "message": message}),
            ),
            ApiError::NotFound(message) => (
                StatusCode::NOT_FOUND,
                json!({"error": "not_found", "message": message}),
            ),
            ApiError::Refused {
                status,
                code,
                message,
                details,
            } => {
                let mut body = json!({"error": code, "message": message});
                if let (Some(body), serde_json::Value::Object(details)) =
                    (body.as_object_mut(), details)
                {
                    body.extend(details);
                }
                (status, body)
            }
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                json!({"error": "unauthorized", "message": "missing or wrong bearer token"}),
            ),
            // A coordinator (or origin) that answers what this protocol does not expect will
            // answer it again: not a "retry later" but a deployment to fix.
            ApiError::Store(e @ StoreError::Protocol(_)) => (
                StatusCode::BAD_GATEWAY,
                json!({"error": "bad_gateway", "message": e.to_string()}),
            ),
            ApiError::Store(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "unavailable", "message": e.to_string()}),
            ),
        };
        let mut response = (status, Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

fn parse_sku(raw: &str) -> Result<Sku, ApiError> {
    Sku::parse(raw).map_err(|e| ApiError::BadRequest(format!("invalid SKU {raw:?}: {e}")))
}

fn parse_json<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| ApiError::BadRequest(format!("cannot read request body: {e}")))?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))
}

fn no_store(body: serde_json::Value) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// `/api/...`: products, stock levels and reservations.
pub fn router(shop: Shop) -> Router {
    Router::new()
        .route("/api/products", get(list_products))
        .route("/api/categories", get(list_categories))
        .route("/api/products/{sku}", get(get_product))
        .route("/api/products/{sku}/similar", get(get_similar))
        .route("/api/products/{sku}/together", get(get_together))
        .route("/api/stock/{sku}", get(get_stock))
        .route("/api/checkout", post(checkout))
        .route("/api/orders/{id}", get(get_order))
        .route("/api/{*rest}", get(unknown_route).post(unknown_route))
        .with_state(shop)
}

async fn unknown_route(Path(rest): Path<String>) -> ApiError {
    ApiError::NotFound(format!("no API route /api/{rest}"))
}

/// Longest search query accepted.
pub const QUERY_CHARS_MAX: usize = 200;

/// A page of products: all, one category (`category=`), or search results (`q=`), with the
/// listing filters, sort and page of [`ListingQuery`]; products on sale carry their sale price.
pub async fn browse(shop: &Shop, params: &[(String, String)]) -> Result<ListingPage, ApiError> {
    let mut page = listing_page(shop, params).await?;
    mark_sales(shop, &mut page.products).await?;
    Ok(page)
}

/// The snapshot's promotions; none when the value is corrupt (the page shows list prices, and
/// checkout, which reads them too, refuses with its own error).
async fn promotion_book(shop: &Shop) -> Result<Arc<crate::promo::PromotionBook>, ApiError> {
    Ok(crate::store::readable_promotions(&*shop.catalog)
        .await?
        .unwrap_or_default())
}

/// Sets each product's [`crate::ProductSummary::sale_price`]: one unit priced like a cart with the
/// automatic promotions running now ([`crate::store::CatalogStore::shelf_sales`]).
pub async fn mark_sales(
    shop: &Shop,
    products: &mut [crate::ProductSummary],
) -> Result<(), ApiError> {
    let sales = shop.catalog.shelf_sales(shop.clock.now_ms()).await?;
    for product in products {
        product.sale_price = sales.get(&product.sku).cloned();
    }
    Ok(())
}

/// The sale price of each of `product`'s stock units that automatic promotions discount now.
pub async fn unit_sales(
    shop: &Shop,
    product: &crate::Product,
) -> Result<Vec<(Sku, crate::Money)>, ApiError> {
    let book = promotion_book(shop).await?;
    let now_ms = shop.clock.now_ms();
    Ok(product
        .stock_units()
        .into_iter()
        .filter_map(|unit| {
            let line = crate::promo::CartLine {
                sku: unit.clone(),
                product: product.sku.clone(),
                category: product.category.clone(),
                unit_price: product.price_of(unit)?.clone(),
                qty: 1,
            };
            Some((
                unit.clone(),
                crate::promo::shelf_price(&book, &line, now_ms)?,
            ))
        })
        .collect())
}

async fn listing_page(shop: &Shop, params: &[(String, String)]) -> Result<ListingPage, ApiError> {
    let query = ListingQuery::from_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(ApiError::BadRequest)?;
    // Price bands, their counts and price sorts go by the price shown: the sale price where
    // automatic promotions run now.
    let sales = shop.catalog.shelf_sales(shop.clock.now_ms()).await?;
    let shelf = |p: &crate::ProductSummary| sales.get(&p.sku).map_or(p.price.minor, |s| s.minor);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let category = param("category").map(listing::slug);
    if let Some(q) = param("q") {
        if q.chars().count() > QUERY_CHARS_MAX {
            return Err(ApiError::BadRequest(format!(
                "q is longer than {QUERY_CHARS_MAX} characters"
            )));
        }
        let hits = shop.catalog.search(q).await?;
        let in_category = hits.iter().filter(|p| {
            category
                .as_ref()
                .is_none_or(|c| listing::slug(&p.category) == *c)
        });
        return Ok(listing::page_priced(in_category, &query, None, shelf));
    }
    if let Some(slug) = category {
        let listing = shop
            .catalog
            .category(&slug)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no category {slug:?}")))?;
        return Ok(listing::page_priced(
            &listing.products,
            &query,
            Some(&listing.facets),
            shelf,
        ));
    }
    let products = shop.catalog.products().await?;
    // Unfiltered, every product's facets are the publish-time counts; filtered, they are
    // counted over the matches.
    let facets = if query.is_filtered() {
        None
    } else {
        Some(shop.catalog.facets().await?)
    };
    Ok(listing::page_priced(
        products.iter(),
        &query,
        facets.as_deref(),
        shelf,
    ))
}

async fn list_products(
    State(shop): State<Shop>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    Ok(Json(browse(&shop, &params).await?).into_response())
}

async fn list_categories(State(shop): State<Shop>) -> Result<Response, ApiError> {
    let categories = shop.catalog.categories().await?;
    Ok(Json(json!({ "categories": categories.as_ref() })).into_response())
}

async fn get_product(
    State(shop): State<Shop>,
    Path(sku): Path<String>,
) -> Result<Response, ApiError> {
    let sku = parse_sku(&sku)?;
    match shop.catalog.product(&sku).await? {
        Some(product) => Ok(Json(product).into_response()),
        None => Err(ApiError::NotFound(format!("no product with SKU {sku}"))),
    }
}

/// Most suggestions one call returns.
pub const SUGGESTIONS_MAX: usize = crate::similar::SIMILAR_K_MAX;

/// Whether a suggestion may be shown: not known to be sold out (from the level cache only;
/// suggestions never cost a coordinator call per candidate).
fn not_sold_out(shop: &Shop, sku: &Sku) -> bool {
    shop.levels.last_known(sku) != Some(Some(0))
}

/// Up to `k` products like `sku`, from the snapshot's vector index, without sold-out ones.
/// Empty when the snapshot has no index (or a broken one: that is logged, not an error).
pub async fn similar_products(
    shop: &Shop,
    sku: &Sku,
    k: usize,
) -> Result<Vec<crate::ProductSummary>, ApiError> {
    let index = match shop.catalog.similar_index().await {
        Ok(Some(index)) => index,
        Ok(None) | Err(StoreError::Corrupt { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let products = shop.catalog.products().await?;
    let picks = index
        .similar(sku, k.min(SUGGESTIONS_MAX), |s| not_sold_out(shop, s))
        .unwrap_or_default();
    Ok(picks
        .into_iter()
        .filter_map(|i| products.get(i as usize).cloned())
        .collect())
}

/// The snapshot's "bought together" lists; none when none were published, or when the value is
/// corrupt (logged by the reader's error, shown as no lists: a page degrades, never fails).
async fn together_lists(shop: &Shop) -> Result<Arc<crate::store::Together>, ApiError> {
    match shop.catalog.together().await {
        Ok(together) => Ok(together),
        Err(StoreError::Corrupt { .. }) => Ok(Arc::default()),
        Err(e) => Err(e.into()),
    }
}

/// The catalog's SKU → place map, to find a few SKUs in `products` without a scan.
type Places = std::collections::HashMap<Sku, u32>;

/// Positions in `products` of the SKUs in `wanted`, from the catalog's `places`; a SKU whose
/// place holds another product (a publish between the two reads) is left out.
fn positions(
    products: &[crate::ProductSummary],
    places: &Places,
    wanted: &[&Sku],
) -> BTreeMap<Sku, u32> {
    wanted
        .iter()
        .filter_map(|sku| {
            let at = *places.get(*sku)?;
            (products.get(at as usize)?.sku == **sku).then(|| ((*sku).clone(), at))
        })
        .collect()
}

/// Up to `k` products bought together with `sku` (the published co-purchase lists, most often
/// first), without `sku` itself and sold-out ones. Empty without lists.
pub async fn bought_together(
    shop: &Shop,
    sku: &Sku,
    k: usize,
) -> Result<Vec<crate::ProductSummary>, ApiError> {
    let together = together_lists(shop).await?;
    let Some(list) = together.get(sku) else {
        return Ok(Vec::new());
    };
    let products = shop.catalog.products().await?;
    let wanted: Vec<&Sku> = list
        .iter()
        .filter(|s| *s != sku && not_sold_out(shop, s))
        .collect();
    let at = positions(&products, &*shop.catalog.positions().await?, &wanted);
    Ok(wanted
        .into_iter()
        .filter_map(|s| products.get(*at.get(s)? as usize).cloned())
        .take(k.min(SUGGESTIONS_MAX))
        .collect())
}

async fn get_together(
    State(shop): State<Shop>,
    Path(sku): Path<String>,
    Query(query): Query<SimilarQuery>,
) -> Result<Response, ApiError> {
    let sku = parse_sku(&sku)?;
    let k = query.k.unwrap_or(4);
    if k == 0 || k > SUGGESTIONS_MAX {
        return Err(ApiError::BadRequest(format!(
            "k must be 1 to {SUGGESTIONS_MAX}"
        )));
    }
    if shop.catalog.product(&sku).await?.is_none() {
        return Err(ApiError::NotFound(format!("no product with SKU {sku}")));
    }
    let together = bought_together(&shop, &sku, k).await?;
    Ok(Json(json!({ "sku": sku, "together": together })).into_response())
}

/// Candidates bought together with the shopper's products: each list's entries score the
/// product's weight divided by their rank (1, 1/2, 1/3, ...), summed over the shopper's
/// products, scaled to at most 1.
fn co_purchase_candidates(
    products: &[crate::ProductSummary],
    places: &Places,
    together: &crate::store::Together,
    weights: &[(&Sku, f32)],
    keep: impl Fn(&Sku) -> bool,
) -> Vec<(u32, f32)> {
    let mut scores: BTreeMap<&Sku, f32> = BTreeMap::new();
    for (sku, weight) in weights {
        for (rank, other) in together.get(*sku).into_iter().flatten().enumerate() {
            if keep(other) {
                *scores.entry(other).or_default() += weight / (rank + 1) as f32;
            }
        }
    }
    let top = scores.values().copied().fold(0f32, f32::max);
    let wanted: Vec<&Sku> = scores.keys().copied().collect();
    let at = positions(products, places, &wanted);
    scores
        .into_iter()
        .filter_map(|(sku, score)| Some((*at.get(sku)?, if top > 0.0 { score / top } else { 0.0 })))
        .collect()
}

/// Where a list of suggestions came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionSource {
    /// The shopper's recent products, searched in the vector index.
    Personal,
    /// Generic best-sellers (no history, no index, or nothing found).
    BestSellers,
}

/// Up to `k` products for a shopper with recent products `weights` (recency-weighted),
/// excluding `seen` and sold-out ones; topped up with best-sellers (the catalog's first
/// products) so the list is never empty while the catalog is not.
pub async fn recommended_products(
    shop: &Shop,
    weights: &[(&Sku, f32)],
    seen: &[&Sku],
    k: usize,
) -> Result<(SuggestionSource, Vec<crate::ProductSummary>), ApiError> {
    recommended_products_in(shop, weights, seen, k, crate::behaviour::Arm::Vector).await
}

/// [`recommended_products`] under an experiment arm: `CoPurchase` takes the products bought
/// together with the shopper's (the published lists) instead of the vector index, then the
/// best-sellers ranked by the shopper's category affinity (all it has before any co-purchases).
pub async fn recommended_products_in(
    shop: &Shop,
    weights: &[(&Sku, f32)],
    seen: &[&Sku],
    k: usize,
    arm: crate::behaviour::Arm,
) -> Result<(SuggestionSource, Vec<crate::ProductSummary>), ApiError> {
    let k = k.min(SUGGESTIONS_MAX);
    let products = shop.catalog.products().await?;
    let keep = |s: &Sku| !seen.contains(&s) && not_sold_out(shop, s);
    let wanted = k * RECOMMEND_CANDIDATES_PER_PICK;
    let candidates: Vec<(u32, f32)> = match arm {
        _ if weights.is_empty() => Vec::new(),
        crate::behaviour::Arm::CoPurchase => {
            let together = together_lists(shop).await?;
            let mut candidates = co_purchase_candidates(
                &products,
                &*shop.catalog.positions().await?,
                &together,
                weights,
                keep,
            );
            // Co-purchases first (a bonus above any affinity), then the catalog's best-sellers,
            // earlier ones a little higher.
            candidates.iter_mut().for_each(|(_, score)| *score += 1.0);
            let listed = products
                .iter()
                .enumerate()
                .filter(|(_, p)| keep(&p.sku))
                .take(crate::similar::CANDIDATES_MAX);
            let best_sellers =
                listed.map(|(i, _)| (i as u32, -(i as f32) / products.len().max(1) as f32 * 0.1));
            let mut seen_at: std::collections::BTreeSet<u32> =
                candidates.iter().map(|(i, _)| *i).collect();
            candidates.extend(best_sellers.filter(|(i, _)| seen_at.insert(*i)));
            candidates
        }
        crate::behaviour::Arm::Vector => match shop.catalog.similar_index().await {
            Ok(Some(index)) => index
                .recommend_scored(weights, wanted, keep)
                .unwrap_or_default(),
            Ok(None) | Err(StoreError::Corrupt { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        },
    };
    let mut personal = rerank_by_affinity(&products, weights, candidates, k);
    let source = if personal.is_empty() {
        SuggestionSource::BestSellers
    } else {
        SuggestionSource::Personal
    };
    // For diversity, personal suggestions leave the last places to best-sellers.
    personal.truncate(k - trending_places(k));
    let mut picks: Vec<crate::ProductSummary> = personal
        .into_iter()
        .filter_map(|i| products.get(i as usize).cloned())
        .collect();
    // Best-sellers: the trending list published with the snapshot, then the catalog's order.
    let trending = shop.catalog.trending().await.unwrap_or_default();
    let at = positions(
        &products,
        &*shop.catalog.positions().await?,
        &trending.iter().collect::<Vec<_>>(),
    );
    let trending_products = trending
        .iter()
        .filter_map(|sku| products.get(*at.get(sku)? as usize));
    for product in trending_products.chain(products.iter()) {
        if picks.len() >= k {
            break;
        }
        if keep(&product.sku) && !picks.iter().any(|p| p.sku == product.sku) {
            picks.push(product.clone());
        }
    }
    Ok((source, picks))
}

/// Places a list of `k` suggestions keeps for best-sellers (a quarter, at least one from four
/// suggestions up): a shopper keeps seeing what is popular beyond their own taste.
fn trending_places(k: usize) -> usize {
    if k >= 4 {
        (k / 4).max(1)
    } else {
        0
    }
}

/// Most products [`personal_order`] re-ranks at once (a listing page's worth and more).
pub const PERSONAL_ORDER_MAX: usize = 100;
/// How much a product's place in the merchant's order counts in [`personal_order`]: the
/// first product gets this much over the last, so taste reorders and merchandising still shows.
const MERCHANT_ORDER_WEIGHT: f32 = 0.1;

/// `skus` (a listing page, in the merchant's order) re-ranked for a shopper whose recent
/// products weigh `weights`: each product's match with the shopper's taste (vector index),
/// plus their interest in its category, plus a little for its original place. Unknown SKUs
/// keep their relative order at the end; without a history the order is unchanged.
pub async fn personal_order(
    shop: &Shop,
    weights: &[(&Sku, f32)],
    skus: &[Sku],
) -> Result<Vec<Sku>, ApiError> {
    let skus = &skus[..skus.len().min(PERSONAL_ORDER_MAX)];
    if weights.is_empty() {
        return Ok(skus.to_vec());
    }
    let products = shop.catalog.products().await?;
    let taste = match shop.catalog.similar_index().await {
        Ok(Some(index)) => index.taste_scores(weights, &skus.iter().collect::<Vec<_>>()),
        Ok(None) | Err(StoreError::Corrupt { .. }) => vec![None; skus.len()],
        Err(e) => return Err(e.into()),
    };
    let at = positions(
        &products,
        &*shop.catalog.positions().await?,
        &skus.iter().collect::<Vec<_>>(),
    );
    let listed: Vec<u32> = skus.iter().filter_map(|s| at.get(s).copied()).collect();
    let candidates: Vec<(u32, f32)> = skus
        .iter()
        .zip(&taste)
        .enumerate()
        .filter_map(|(place, (sku, taste))| {
            let prior = MERCHANT_ORDER_WEIGHT * (1.0 - place as f32 / skus.len() as f32);
            Some((*at.get(sku)?, taste.unwrap_or(0.0) + prior))
        })
        .collect();
    let mut ranked: Vec<Sku> = rerank_by_affinity(&products, weights, candidates, listed.len())
        .into_iter()
        .filter_map(|i| products.get(i as usize).map(|p| p.sku.clone()))
        .collect();
    ranked.extend(skus.iter().filter(|s| !at.contains_key(*s)).cloned());
    Ok(ranked)
}

/// Candidates searched per recommendation shown, for the affinity re-rank to choose from.
const RECOMMEND_CANDIDATES_PER_PICK: usize = 4;
/// How much the shopper's category affinity (0..=1) adds to a candidate's similarity.
pub const CATEGORY_AFFINITY_WEIGHT: f32 = 0.5;

/// Personalized ranking: each candidate's vector similarity plus the share of the shopper's
/// (recency-weighted) interest in its category, best `k` first. Text vectors blur categories
/// whose products share words; the affinity keeps what the shopper actually browsed on top.
fn rerank_by_affinity(
    products: &[crate::ProductSummary],
    weights: &[(&Sku, f32)],
    candidates: Vec<(u32, f32)>,
    k: usize,
) -> Vec<u32> {
    let mut by_category: BTreeMap<&str, f32> = BTreeMap::new();
    let mut total = 0f32;
    for (sku, weight) in weights {
        if let Some(product) = products.iter().find(|p| &p.sku == *sku) {
            *by_category.entry(product.category.as_str()).or_default() += weight;
            total += weight;
        }
    }
    let affinity = |category: &str| {
        if total > 0.0 {
            by_category.get(category).copied().unwrap_or(0.0) / total
        } else {
            0.0
        }
    };
    let mut scored: Vec<(u32, f32)> = candidates
        .into_iter()
        .filter_map(|(i, score)| {
            let product = products.get(i as usize)?;
            Some((
                i,
                score + CATEGORY_AFFINITY_WEIGHT * affinity(&product.category),
            ))
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.into_iter().take(k).map(|(i, _)| i).collect()
}

#[derive(Deserialize)]
struct SimilarQuery {
    k: Option<usize>,
}

async fn get_similar(
    State(shop): State<Shop>,
    Path(sku): Path<String>,
    Query(query): Query<SimilarQuery>,
) -> Result<Response, ApiError> {
    let sku = parse_sku(&sku)?;
    let k = query.k.unwrap_or(8);
    if k == 0 || k > SUGGESTIONS_MAX {
        return Err(ApiError::BadRequest(format!(
            "k must be 1 to {SUGGESTIONS_MAX}"
        )));
    }
    if shop.catalog.product(&sku).await?.is_none() {
        return Err(ApiError::NotFound(format!("no product with SKU {sku}")));
    }
    let similar = similar_products(&shop, &sku, k).await?;
    Ok(Json(json!({ "sku": sku, "similar": similar })).into_response())
}

async fn get_stock(
    State(shop): State<Shop>,
    Path(sku): Path<String>,
) -> Result<Response, ApiError> {
    let sku = parse_sku(&sku)?;
    match shop.stock.level(&sku).await? {
        Some(level) => {
            shop.levels
                .record(&sku, Some(level.available), shop.clock.now_ms());
            Ok(no_store(
                json!({ "sku": sku, "available": level.available }),
            ))
        }
        None => Err(ApiError::NotFound(format!("no stock record for SKU {sku}"))),
    }
}

/// `N` random bytes as lower-case hex (ids and one-time tokens).
pub fn random_hex<const N: usize>() -> Result<String, String> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes
        .iter()
        .fold(String::with_capacity(2 * N), |mut hex, b| {
            use std::fmt::Write;
            let _ = write!(hex, "{b:02x}");
            hex
        }))
}

/// Longest `Idempotency-Key` accepted.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;

/// The order id a checkout runs under: derived from the `Idempotency-Key` (a retry finds the
/// same order), or random when the client sent none.
fn checkout_order_id(key: Option<&str>) -> Result<OrderId, ApiError> {
    let Some(key) = key else {
        let hex = random_hex::<16>().map_err(|e| ApiError::Store(StoreError::Unavailable(e)))?;
        return Ok(OrderId::parse(&format!("r{hex}")).expect("hex is a valid order id"));
    };
    Ok(order_id_for_key(
        valid_idempotency_key(key).map_err(ApiError::BadRequest)?,
    ))
}

/// `key` if it is a usable idempotency key (1 to [`IDEMPOTENCY_KEY_LEN_MAX`] bytes), else why not.
pub fn valid_idempotency_key(key: &str) -> Result<&str, String> {
    Some(key)
        .filter(|k| !k.is_empty() && k.len() <= IDEMPOTENCY_KEY_LEN_MAX)
        .ok_or_else(|| {
            format!(
                "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} visible ASCII characters"
            )
        })
}

fn refused(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
    details: serde_json::Value,
) -> ApiError {
    ApiError::Refused {
        status,
        code,
        message: message.into(),
        details,
    }
}

impl From<CheckoutError> for ApiError {
    fn from(e: CheckoutError) -> Self {
        match e {
            CheckoutError::Invalid(message) => ApiError::BadRequest(message),
            CheckoutError::KeyReused => refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                e.to_string(),
                json!({}),
            ),
            CheckoutError::Store(e) => ApiError::Store(e),
        }
    }
}

/// What a checkout outcome answers: 201 with the order, or the refusal.
pub fn checkout_response(outcome: CheckoutOutcome) -> Result<Response, ApiError> {
    match outcome {
        CheckoutOutcome::Placed(order) => {
            let body = json!({ "order_id": order.id, "status": order.status, "total": order.total, "order": order });
            Ok((
                StatusCode::CREATED,
                [(header::CACHE_CONTROL, "no-store")],
                Json(body),
            )
                .into_response())
        }
        CheckoutOutcome::Insufficient { sku, .. } if crate::promo::is_usage_sku(&sku) => {
            Err(refused(
                StatusCode::CONFLICT,
                "promotion_used_up",
                "a discount code in your order has reached its usage limit; nothing was charged",
                json!({ "promotion": crate::promo::usage_promotion(&sku) }),
            ))
        }
        CheckoutOutcome::Insufficient { sku, available } => Err(refused(
            StatusCode::CONFLICT,
            "insufficient_stock",
            format!("only {available} of {sku} left"),
            json!({ "sku": sku, "available": available }),
        )),
        CheckoutOutcome::UnknownSku { sku } => Err(refused(
            StatusCode::CONFLICT,
            "insufficient_stock",
            format!("{sku} is not stocked"),
            json!({ "sku": sku, "available": 0 }),
        )),
        CheckoutOutcome::Declined { reason } => Err(refused(
            StatusCode::PAYMENT_REQUIRED,
            "payment_declined",
            reason,
            json!({}),
        )),
        CheckoutOutcome::PaymentTimeout => Err(refused(
            StatusCode::GATEWAY_TIMEOUT,
            "payment_timeout",
            "the payment provider did not answer in time; you have not been charged",
            json!({}),
        )),
        CheckoutOutcome::HoldExpired => Err(refused(
            StatusCode::CONFLICT,
            "hold_expired",
            "your reservation ran out before the payment finished; nothing was charged",
            json!({}),
        )),
    }
}

/// Validates, prices and runs a checkout: the one path behind `POST /api/checkout` and the
/// storefront's checkout form. `key` is the client's `Idempotency-Key`, if it sent one.
pub async fn place(
    shop: &Shop,
    key: Option<&str>,
    request: CheckoutRequest,
) -> Result<CheckoutOutcome, ApiError> {
    request.validate().map_err(ApiError::BadRequest)?;
    let order_id = checkout_order_id(key)?;
    // Prices and promotions from the snapshot, never the client's numbers.
    let (priced, _) = price_order(shop.catalog.as_ref(), &request, shop.clock.now_ms()).await?;
    Ok(shop
        .orders
        .checkout_priced(order_id, request, priced)
        .await?)
}

/// `POST /api/checkout`: prices the lines from the catalog and runs the checkout.
async fn checkout(
    State(shop): State<Shop>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: CheckoutRequest = parse_json(body)?;
    // `place` checks the key's length, as it does for the storefront's own checkouts.
    let key = idempotency_key(&headers).map_err(ApiError::BadRequest)?;
    checkout_response(place(&shop, key, request).await?)
}

/// The restock receipt of an optional idempotency key ([`crate::stock::receipt_for_key`]): none
/// without a key, why not for an unusable one.
pub fn restock_receipt(key: Option<&str>) -> Result<Option<OrderId>, String> {
    key.map(|key| valid_idempotency_key(key).map(crate::stock::receipt_for_key))
        .transpose()
}

/// The request's `Idempotency-Key`, if it sent one, as text (visible ASCII; its length is the
/// caller's to check, with [`valid_idempotency_key`]).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, String> {
    headers
        .get("idempotency-key")
        .map(|value| {
            value
                .to_str()
                .map_err(|_| "Idempotency-Key must be visible ASCII".to_owned())
        })
        .transpose()
}

async fn get_order(State(shop): State<Shop>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id =
        OrderId::parse(&id).map_err(|e| ApiError::BadRequest(format!("invalid order id: {e}")))?;
    match shop.orders.order(&id).await? {
        Some(order) => Ok(no_store(json!(order))),
        None => Err(ApiError::NotFound(format!("no order {id}"))),
    }
}

/// The admin token, the shop and the raw catalog KV, for the admin routes.
#[derive(Clone)]
struct AdminState {
    shop: Shop,
    kv: Arc<dyn KvWrite>,
    token: String,
}

/// Entries one `POST /_admin/kv` may carry; publishers send snapshots in batches.
pub const KV_ENTRIES_PER_REQUEST_MAX: usize = 1_000;
/// KV puts one admin request keeps in flight.
const KV_PUTS_IN_FLIGHT: usize = 32;

/// `/_admin/...`, behind `Authorization: Bearer <token>`: stock levels (`/_admin/stock`) and
/// the raw catalog KV a publisher writes snapshots through (`/_admin/kv`). Without a configured
/// token the routes answer 404, so a shop without one exposes nothing.
pub fn admin_router(shop: Shop, kv: Arc<dyn KvWrite>, token: Option<String>) -> Router {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Router::new().route("/_admin/{*rest}", post(admin_disabled).get(admin_disabled));
    };
    Router::new()
        .route("/_admin/stock", post(set_stock))
        .route("/_admin/stock/{sku}", get(admin_level))
        .route("/_admin/stock/{sku}/restock", post(restock))
        .route("/_admin/shards/{n}", post(shard_call))
        .route("/_admin/kv", post(put_kv))
        .route("/_admin/kv/delete", post(delete_kv))
        .route("/_admin/kv/{*key}", get(get_kv))
        .layer(DefaultBodyLimit::max(ADMIN_BODY_BYTES_MAX))
        .with_state(AdminState { shop, kv, token })
}

async fn admin_disabled() -> ApiError {
    ApiError::NotFound("the admin API is disabled: no ADMIN_TOKEN is configured".into())
}

/// Whether the request carries `Authorization: Bearer <token>` with exactly `token` (never for
/// an empty token). The one check behind every token-guarded route, edge and origin alike.
pub fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Compare without an early exit so timing does not reveal a matching prefix.
    let diff = given
        .bytes()
        .zip(token.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    !token.is_empty() && given.len() == token.len() && diff == 0
}

fn authorize(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    if bearer_matches(headers, token) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// How `/_admin/stock` treats SKUs that already have a level.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum StockMode {
    /// Overwrite: an explicit admin correction.
    #[default]
    Set,
    /// Only SKUs without a level get one: what a catalog publish does, so live stock survives.
    Seed,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetStockBody {
    levels: BTreeMap<String, u32>,
    #[serde(default)]
    mode: StockMode,
}

/// Sets stock levels, overwriting (`"mode": "set"`) or for new SKUs only (`"mode": "seed"`).
async fn set_stock(
    State(admin): State<AdminState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&headers, &admin.token)?;
    let SetStockBody { levels, mode } = parse_json(body)?;
    if levels.len() > STOCK_LEVELS_PER_REQUEST_MAX {
        return Err(ApiError::BadRequest(format!(
            "at most {STOCK_LEVELS_PER_REQUEST_MAX} SKUs per request"
        )));
    }
    let levels = levels
        .into_iter()
        .map(|(sku, level)| Ok((parse_sku(&sku)?, level)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let report = admin
        .shop
        .stock
        .seed(levels, matches!(mode, StockMode::Set))
        .await?;
    Ok(no_store(
        json!({ "written": report.written, "kept": report.kept }),
    ))
}

/// A SKU's full level: available, held, sold and received (the invariant's terms).
async fn admin_level(
    State(admin): State<AdminState>,
    headers: HeaderMap,
    Path(sku): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&headers, &admin.token)?;
    let sku = parse_sku(&sku)?;
    match admin.shop.stock.level(&sku).await? {
        Some(level) => Ok(no_store(json!({ "sku": sku, "level": level }))),
        None => Err(ApiError::NotFound(format!("no stock record for SKU {sku}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestockBody {
    qty: u32,
}

/// Adds units that arrived: `{"qty": n}`; with an `Idempotency-Key`, at most once per key
/// (a repeat answers `"repeated": true` and the level as it is).
async fn restock(
    State(admin): State<AdminState>,
    headers: HeaderMap,
    Path(sku): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&headers, &admin.token)?;
    let sku = parse_sku(&sku)?;
    let RestockBody { qty } = parse_json(body)?;
    if qty == 0 || qty > crate::stock::RESTOCK_QTY_MAX {
        return Err(ApiError::BadRequest(format!(
            "qty must be 1 to {}",
            crate::stock::RESTOCK_QTY_MAX
        )));
    }
    let receipt = idempotency_key(&headers)
        .and_then(restock_receipt)
        .map_err(ApiError::BadRequest)?;
    let done = admin
        .shop
        .stock
        .restock(&sku, qty, receipt.as_ref())
        .await?
        .map_err(|reason| refused(StatusCode::CONFLICT, "restock_refused", reason, json!({})))?;
    Ok(no_store(
        json!({ "sku": sku, "level": done.level, "repeated": done.repeated }),
    ))
}

/// One raw shard request (CBOR `ShardRequest` in, CBOR `ShardReply` out): the coordinator
/// protocol itself, for operators and the stock benchmark.
async fn shard_call(
    State(admin): State<AdminState>,
    headers: HeaderMap,
    Path(n): Path<u16>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&headers, &admin.token)?;
    let shard = crate::shard::SkuShard::from_index(n).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no shard {n}; shards are 0 to {}",
            crate::shard::SHARD_COUNT - 1
        ))
    })?;
    let body = body.map_err(|e| ApiError::BadRequest(format!("cannot read request body: {e}")))?;
    let request: crate::stock::ShardRequest = from_cbor(&body)
        .map_err(|e| ApiError::BadRequest(format!("body is not a CBOR shard request: {e}")))?;
    let reply = admin.shop.stock.on_shard(shard, request).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/cbor"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        crate::codec::to_cbor(&reply),
    )
        .into_response())
}

/// A CBOR list of at most [`KV_ENTRIES_PER_REQUEST_MAX`] `what`s from a request body.
fn cbor_batch<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    what: &str,
) -> Result<Vec<T>, ApiError> {
    let body = body.map_err(|e| ApiError::BadRequest(format!("cannot read request body: {e}")))?;
    let items: Vec<T> = from_cbor(&body)
        .map_err(|e| ApiError::BadRequest(format!("body is not a CBOR list of {what}: {e}")))?;
    if items.len() > KV_ENTRIES_PER_REQUEST_MAX {
        return Err(ApiError::BadRequest(format!(
            "at most {KV_ENTRIES_PER_REQUEST_MAX} {what} per request"
        )));
    }
    Ok(items)
}

/// Writes a batch of raw KV entries (CBOR `[KvEntry]`), in order. Publishers write a snapshot's
/// keys this way, and its pointer last, in a batch of its own.
async fn put_kv(
    State(admin): State<AdminState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&headers, &admin.token)?;
    let entries: Vec<KvEntry> = cbor_batch(body, "entries")?;
    if let Some(bad) = entries
        .iter()
        .find(|e| e.key.is_empty() || e.key.len() > KV_KEY_BYTES_MAX)
    {
        return Err(ApiError::BadRequest(format!(
            "key {:?} must be 1 to {KV_KEY_BYTES_MAX} bytes",
            bad.key
        )));
    }
    if let Some(bad) = entries.iter().find(|e| e.value.len() > KV_VALUE_BYTES_MAX) {
        return Err(ApiError::BadRequest(format!(
            "value of {:?} exceeds {KV_VALUE_BYTES_MAX} bytes",
            bad.key
        )));
    }
    let written = entries.len();
    // Puts of one batch are independent: keep a bounded number in flight.
    let mut entries = entries.into_iter();
    loop {
        let wave: Vec<KvEntry> = entries.by_ref().take(KV_PUTS_IN_FLIGHT).collect();
        if wave.is_empty() {
            break;
        }
        let kv = &admin.kv;
        let puts = wave
            .into_iter()
            .map(|KvEntry { key, value }| async move { kv.put(&key, value).await });
        futures::future::try_join_all(puts).await?;
    }
    Ok(no_store(json!({ "written": written })))
}

/// Reads one raw KV value (for publishers: the pointer and manifests).
async fn get_kv(
    State(admin): State<AdminState>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&headers, &admin.token)?;
    match admin.kv.get(&key).await? {
        Some(bytes) => Ok((
            [
                (header::CONTENT_TYPE, "application/cbor"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            bytes,
        )
            .into_response()),
        None => Err(ApiError::NotFound(format!("no KV value under {key:?}"))),
    }
}

/// Deletes a batch of raw KV keys (CBOR `[key]`): publishers collecting old snapshot versions.
async fn delete_kv(
    State(admin): State<AdminState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&headers, &admin.token)?;
    let keys: Vec<String> = cbor_batch(body, "keys")?;
    if keys.iter().any(|k| k == crate::snapshot::POINTER_KEY) {
        return Err(ApiError::BadRequest(
            "the live pointer cannot be deleted".into(),
        ));
    }
    let deleted = keys.len();
    let kv = &admin.kv;
    for wave in keys.chunks(KV_PUTS_IN_FLIGHT) {
        futures::future::try_join_all(wave.iter().map(|key| kv.delete(key))).await?;
    }
    Ok(no_store(json!({ "deleted": deleted })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(sku: &str, category: &str) -> crate::ProductSummary {
        serde_json::from_value(serde_json::json!({
            "sku": sku, "title": sku, "price": {"minor": 100, "currency": "USD"},
            "category": category, "image": "/i.svg"
        }))
        .unwrap()
    }

    #[test]
    fn affinity_lifts_the_browsed_category_over_slightly_closer_text() {
        let products = vec![
            summary("K1", "Kitchen"),
            summary("A1", "Apparel"),
            summary("A2", "Apparel"),
            summary("K2", "Kitchen"),
        ];
        let (k1, a1) = (products[0].sku.clone(), products[1].sku.clone());
        // The shopper mostly browsed kitchen things; apparel candidates score a bit higher on text.
        let weights = [(&k1, 3.0f32), (&a1, 1.0f32)];
        let candidates = vec![(1, 0.80), (2, 0.78), (3, 0.60)];
        assert_eq!(
            rerank_by_affinity(&products, &weights, candidates.clone(), 2),
            vec![3, 1]
        );
        // Without history the order is the vector order.
        assert_eq!(
            rerank_by_affinity(&products, &[], candidates, 2),
            vec![1, 2]
        );
    }
}
