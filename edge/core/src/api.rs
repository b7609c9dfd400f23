//! The headless JSON API and the admin routes, as axum routers over a [`Shop`].
//!
//! Every error is one JSON shape, `{"error": code, "message": text}` (plus `available` for
//! insufficient stock), with a 4xx status for anything the caller can fix and 503 when a backing
//! store is down. Nothing here answers 500.

use crate::product::{Catalog, CatalogProblem, Sku};
use crate::stock::{ReserveOutcome, RESERVE_QTY_MAX};
use crate::store::{Shop, StoreError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

/// Largest catalog an admin publish accepts in one request body.
pub const PUBLISH_BODY_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Everything that can go wrong in an API call, mapped to one status and JSON body each.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    NotFound(String),
    InsufficientStock { available: u32 },
    InvalidCatalog(Vec<CatalogProblem>),
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
            ApiError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, json!({"error": "bad_request", "message": message}))
            }
            ApiError::NotFound(message) => {
                (StatusCode::NOT_FOUND, json!({"error": "not_found", "message": message}))
            }
            ApiError::InsufficientStock { available } => (
                StatusCode::CONFLICT,
                json!({"error": "insufficient_stock", "message": "not enough stock", "available": available}),
            ),
            ApiError::InvalidCatalog(problems) => (
                StatusCode::BAD_REQUEST,
                json!({
                    "error": "invalid_catalog",
                    "message": format!("{} problem(s); nothing was published", problems.len()),
                    "problems": problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }),
            ),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                json!({"error": "unauthorized", "message": "missing or wrong bearer token"}),
            ),
            ApiError::Store(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "unavailable", "message": e.to_string()}),
            ),
        };
        let mut response = (status, Json(body)).into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

fn parse_sku(raw: &str) -> Result<Sku, ApiError> {
    Sku::parse(raw).map_err(|e| ApiError::BadRequest(format!("invalid SKU {raw:?}: {e}")))
}

fn parse_json<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|e| ApiError::BadRequest(format!("cannot read request body: {e}")))?;
    serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))
}

fn no_store(body: serde_json::Value) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// `/api/...`: products, stock levels and reservations.
pub fn router(shop: Shop) -> Router {
    Router::new()
        .route("/api/products", get(list_products))
        .route("/api/products/{sku}", get(get_product))
        .route("/api/stock/{sku}", get(get_stock))
        .route("/api/stock/{sku}/reserve", post(reserve_stock))
        .route("/api/{*rest}", get(unknown_route).post(unknown_route))
        .with_state(shop)
}

async fn unknown_route(Path(rest): Path<String>) -> ApiError {
    ApiError::NotFound(format!("no API route /api/{rest}"))
}

async fn list_products(State(shop): State<Shop>) -> Result<Response, ApiError> {
    let products = shop.catalog.products().await?;
    Ok(Json(json!({ "products": products })).into_response())
}

async fn get_product(State(shop): State<Shop>, Path(sku): Path<String>) -> Result<Response, ApiError> {
    let sku = parse_sku(&sku)?;
    match shop.catalog.product(&sku).await? {
        Some(product) => Ok(Json(product).into_response()),
        None => Err(ApiError::NotFound(format!("no product with SKU {sku}"))),
    }
}

async fn get_stock(State(shop): State<Shop>, Path(sku): Path<String>) -> Result<Response, ApiError> {
    let sku = parse_sku(&sku)?;
    match shop.stock.level(&sku).await? {
        Some(available) => Ok(no_store(json!({ "sku": sku, "available": available }))),
        None => Err(ApiError::NotFound(format!("no stock record for SKU {sku}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReserveBody {
    qty: u32,
}

async fn reserve_stock(
    State(shop): State<Shop>,
    Path(sku): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let sku = parse_sku(&sku)?;
    let ReserveBody { qty } = parse_json(body)?;
    if qty == 0 || qty > RESERVE_QTY_MAX {
        return Err(ApiError::BadRequest(format!("qty must be 1 to {RESERVE_QTY_MAX}, got {qty}")));
    }
    match shop.stock.reserve(&sku, qty).await? {
        Some(ReserveOutcome::Reserved { remaining }) => Ok(no_store(json!({ "remaining": remaining }))),
        Some(ReserveOutcome::Insufficient { available }) => Err(ApiError::InsufficientStock { available }),
        None => Err(ApiError::NotFound(format!("no stock record for SKU {sku}"))),
    }
}

/// The admin token and the shop, for the admin routes.
#[derive(Clone)]
struct AdminState {
    shop: Shop,
    token: String,
}

/// `/_admin/...`: publish a catalog and set stock, behind `Authorization: Bearer <token>`.
/// Without a configured token the routes answer 404, so a shop without one exposes nothing.
pub fn admin_router(shop: Shop, token: Option<String>) -> Router {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Router::new().route("/_admin/{*rest}", post(admin_disabled).get(admin_disabled));
    };
    Router::new()
        .route("/_admin/publish", post(publish_catalog))
        .route("/_admin/stock", post(set_stock))
        .layer(DefaultBodyLimit::max(PUBLISH_BODY_BYTES_MAX))
        .with_state(AdminState { shop, token })
}

async fn admin_disabled() -> ApiError {
    ApiError::NotFound("the admin API is disabled: no ADMIN_TOKEN is configured".into())
}

fn authorize(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    // Compare without an early exit so timing does not reveal a matching prefix.
    let same_len = given.len() == token.len();
    let diff = given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if same_len && diff == 0 {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Validates a catalog file, writes its products and index, and seeds stock for new SKUs only.
async fn publish_catalog(
    State(admin): State<AdminState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&headers, &admin.token)?;
    let body = body.map_err(|e| ApiError::BadRequest(format!("cannot read request body: {e}")))?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("catalog is not UTF-8".into()))?;
    let catalog = Catalog::from_json(text).map_err(ApiError::InvalidCatalog)?;
    admin.shop.catalog.publish(&catalog.products).await?;
    let levels = catalog.products.iter().map(|p| p.sku.clone()).zip(catalog.stock.iter().copied()).collect();
    let seeded = admin.shop.stock.seed(levels, false).await?;
    Ok(no_store(json!({
        "products": catalog.products.len(),
        "stock_written": seeded.written,
        "stock_kept": seeded.kept,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetStockBody {
    levels: BTreeMap<String, u32>,
}

/// Overwrites stock levels (an explicit admin restock or correction).
async fn set_stock(
    State(admin): State<AdminState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&headers, &admin.token)?;
    let SetStockBody { levels } = parse_json(body)?;
    let levels = levels
        .into_iter()
        .map(|(sku, level)| Ok((parse_sku(&sku)?, level)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let report = admin.shop.stock.seed(levels, true).await?;
    Ok(no_store(json!({ "written": report.written })))
}
