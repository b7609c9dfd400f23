//! The admin UI: Leptos pages rendered on the origin under `/admin`, for the same staff
//! accounts as the JSON API.
//!
//! # Shape
//! Server-rendered only, no hydration bundle and no script at all: every page is a Leptos view
//! rendered to HTML by its axum handler after it loaded what it shows through the same
//! [`Admin`] methods as the JSON API, and every action is a plain HTML `<form>` posting to a
//! Leptos server function ([`actions`]) served by `leptos_axum` at `/admin/sfn/{name}`. So the
//! pages work without JavaScript, and the admin's strict CSP (`script-src 'self'`, no inline
//! anything, [`super::headers`]) holds as is; the stylesheet is `/admin/ui.css`.
//!
//! # Pages
//! - `/admin/login`: e-mail, password and the TOTP code (for accounts that enabled it).
//! - `/admin/orders?status=&from=&to=&email=&sku=&q=&page=`: the order search with filters and
//!   pages; `/admin/orders/{id}`: one order with its lines, full status history and admin
//!   actions, and (staff) one button per status the state machine allows next.
//! - `/admin/stock?sku=`: every SKU's level (available, held, sold, received); with one exact
//!   SKU, (staff) its restock and adjust forms, each with a required reason.
//! - `/admin/deliveries`: orders the edge placed that the origin has not received (tries, the
//!   last error, refused ones marked), each with (staff) "Retry now"; and this origin's own
//!   follow-ups waiting to reach the edge or the stock shards.
//! - `/admin/users` (owner): every account, with forms to add one, change a role, disable or
//!   enable, and set a password.
//! - `/admin/privacy?email=` (owner): a shopper's orders (the audited export, also as JSON)
//!   and the form that erases their e-mail from them, which needs a confirmation.
//! - `/admin/reports?from=&to=`: sales per currency, per day, top products, and the SVG chart
//!   drawn by the server (`/admin/api/reports/sales.svg`).
//! - `/admin/audit?page=` (owner): the audit log, and its CSV (`/admin/api/audit.csv`).
//!
//! A page without a live session redirects to the login page; one the role may not see is a
//! 403 page. Viewers get no action forms, and the server functions refuse them anyway (403).

pub mod actions;
mod pages;

use super::accounts::Role;
use super::sessions::{session_cookie, Session};
use super::Admin;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use edge_core::store::StockCoordinator;
use leptos::prelude::provide_context;
use std::collections::HashMap;
use std::sync::Arc;

/// Largest form a server function reads.
pub const FORM_BYTES_MAX: usize = 16 * 1024;

/// The UI's routes (merged into [`Admin::router`], behind the same security headers).
pub fn routes(admin: Arc<Admin>) -> Router {
    actions::register();
    Router::new()
        .route("/admin", get(index))
        .route("/admin/", get(index))
        .route("/admin/ui.css", get(stylesheet))
        .route("/admin/login", get(login_page))
        .route("/admin/orders", get(orders_page))
        .route("/admin/orders/{id}", get(order_page))
        .route("/admin/stock", get(stock_page))
        .route("/admin/reports", get(reports_page))
        .route("/admin/deliveries", get(deliveries_page))
        .route("/admin/users", get(users_page))
        .route("/admin/privacy", get(privacy_page))
        .route("/admin/audit", get(audit_page))
        .route("/admin/sfn/{*name}", post(server_fn))
        .layer(DefaultBodyLimit::max(FORM_BYTES_MAX))
        .with_state(admin)
}

/// Every server function of [`actions`], with the admin in its context.
async fn server_fn(State(admin): State<Arc<Admin>>, request: Request) -> Response {
    leptos_axum::handle_server_fns_with_context(move || provide_context(admin.clone()), request)
        .await
        .into_response()
}

/// `a=1&b=x%20y` from pairs (empty values left out).
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.append_pair(name, value);
    }
    out.finish()
}

/// A page's query: its own fields plus the flash message (`msg`) and a server function's
/// error (`__err`), which every page shows.
type Params = Query<HashMap<String, String>>;

/// What a page's banner says: a success message, or the refused action's reason.
#[derive(Clone, Debug, Default)]
pub struct Flash {
    pub msg: Option<String>,
    pub error: Option<String>,
}

fn flash(params: &HashMap<String, String>) -> Flash {
    Flash {
        msg: params.get("msg").filter(|m| !m.is_empty()).cloned(),
        error: params
            .get("__err")
            .map(|encoded| actions::error_message(encoded)),
    }
}

fn param(params: &HashMap<String, String>, name: &str) -> String {
    params.get(name).cloned().unwrap_or_default()
}

/// The request's session, or the response to give instead (to the login page).
async fn page_session(admin: &Admin, headers: &HeaderMap) -> Result<Session, Response> {
    let login = || Redirect::to("/admin/login").into_response();
    let raw = session_cookie(headers).ok_or_else(login)?;
    match admin.session(raw).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(login()),
        Err(e) => Err(html(
            e.status(),
            pages::message_page("Unavailable", None, &e.to_string()),
        )),
    }
}

/// A page's session, as an extractor: a request without a live one gets the login page (or
/// the reason the sessions cannot be read) instead of the page.
struct PageSession(Session);

impl axum::extract::FromRequestParts<Arc<Admin>> for PageSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        admin: &Arc<Admin>,
    ) -> Result<Self, Response> {
        page_session(admin, &parts.headers).await.map(PageSession)
    }
}

/// [`PageSession`] for a page only owners see: a 403 page for anyone else.
struct OwnerSession(Session);

impl axum::extract::FromRequestParts<Arc<Admin>> for OwnerSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        admin: &Arc<Admin>,
    ) -> Result<Self, Response> {
        let PageSession(session) = PageSession::from_request_parts(parts, admin).await?;
        if session.role < Role::Owner {
            return Err(html(
                StatusCode::FORBIDDEN,
                pages::message_page(
                    "Owners only",
                    Some(&session),
                    "this page needs the owner role",
                ),
            ));
        }
        Ok(OwnerSession(session))
    }
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Html(format!("<!DOCTYPE html>{body}")),
    )
        .into_response()
}

fn ok(body: String) -> Response {
    html(StatusCode::OK, body)
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        pages::STYLESHEET,
    )
        .into_response()
}

async fn index(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    match page_session(&admin, &headers).await {
        Ok(_) => Redirect::to("/admin/orders").into_response(),
        Err(response) => response,
    }
}

async fn login_page(Query(params): Params) -> Response {
    // A fresh double-submit token per form (see `actions::admin_login`).
    let Ok(token) = edge_core::api::random_hex::<16>() else {
        return html(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::message_page("Unavailable", None, "no randomness for the login form"),
        );
    };
    let mut response = ok(pages::login_page(&flash(&params), &token));
    let cookie = format!(
        "{}={token}; HttpOnly; Secure; SameSite=Strict; Path=/admin; Max-Age=3600",
        actions::LOGIN_CSRF_COOKIE
    );
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn orders_page(
    State(admin): State<Arc<Admin>>,
    PageSession(session): PageSession,
    Query(params): Params,
) -> Response {
    let mut flash = flash(&params);
    let filters = pages::OrderFilters {
        status: param(&params, "status"),
        from: param(&params, "from"),
        to: param(&params, "to"),
        email: param(&params, "email"),
        sku: param(&params, "sku"),
        q: param(&params, "q"),
    };
    let page = match param(&params, "page") {
        p if p.is_empty() => Ok(1),
        p => p
            .parse::<usize>()
            .map_err(|_| format!("page {p:?} is not a number")),
    };
    let query = super::orders::ListQuery {
        status: Some(filters.status.clone()),
        from: Some(filters.from.clone()),
        to: Some(filters.to.clone()),
        email: Some(filters.email.clone()),
        sku: Some(filters.sku.clone()),
        q: Some(filters.q.clone()),
        page: page.as_ref().ok().copied(),
        page_size: None,
    };
    let result = match page {
        Ok(_) => admin.search_orders(query).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let orders = match result {
        Ok(orders) => Some(orders),
        Err(e) => {
            flash.error = Some(e);
            None
        }
    };
    ok(pages::orders_page(
        &session,
        &flash,
        &filters,
        orders.as_ref(),
    ))
}

async fn order_page(
    State(admin): State<Arc<Admin>>,
    PageSession(session): PageSession,
    UrlPath(id): UrlPath<String>,
    Query(params): Params,
) -> Response {
    let detail = match super::orders::order_id(&id) {
        Ok(id) => admin.order_detail(&id).await,
        Err(e) => Err(e),
    };
    match detail {
        Ok(detail) => ok(pages::order_page(&session, &flash(&params), &detail)),
        Err(e) => html(
            e.status(),
            pages::message_page("Order", Some(&session), &e.to_string()),
        ),
    }
}

async fn stock_page(
    State(admin): State<Arc<Admin>>,
    PageSession(session): PageSession,
    Query(params): Params,
) -> Response {
    let mut flash = flash(&params);
    let prefix = param(&params, "sku");
    let (levels, more) = match admin.stock_levels(&prefix).await {
        Ok(found) => found,
        Err(e) => {
            flash.error = Some(e.to_string());
            (Vec::new(), false)
        }
    };
    // One exact SKU (a row's link, or a SKU typed in full): its own level, with the forms.
    let selected = match edge_core::Sku::parse(&prefix) {
        Ok(sku) if !prefix.is_empty() => match admin.stock.level(&sku).await {
            Ok(level) => level.map(|level| (sku, level)),
            Err(e) => {
                flash.error = Some(e.to_string());
                None
            }
        },
        _ => None,
    };
    // The restock form's receipt: submitting this rendering twice restocks once.
    let receipt = match edge_core::api::random_hex::<16>() {
        Ok(receipt) => receipt,
        Err(e) => {
            return html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::message_page("Stock", Some(&session), &e),
            )
        }
    };
    ok(pages::stock_page(
        &session,
        &flash,
        &prefix,
        &levels,
        more,
        selected.as_ref(),
        &receipt,
    ))
}

async fn deliveries_page(
    State(admin): State<Arc<Admin>>,
    PageSession(session): PageSession,
    Query(params): Params,
) -> Response {
    let flash = flash(&params);
    let edge = admin.edge_outbox().await.map_err(|e| e.to_string());
    let here = admin.waiting_follow_ups().await.map_err(|e| e.to_string());
    ok(pages::deliveries_page(&session, &flash, &edge, &here))
}

async fn users_page(
    State(admin): State<Arc<Admin>>,
    OwnerSession(session): OwnerSession,
    Query(params): Params,
) -> Response {
    let mut flash = flash(&params);
    let users = admin.users().await.unwrap_or_else(|e| {
        flash.error = Some(e.to_string());
        Vec::new()
    });
    ok(pages::users_page(&session, &flash, &users))
}

/// With `?email=`, that shopper's orders (an audited export) and the erase form.
async fn privacy_page(
    State(admin): State<Arc<Admin>>,
    OwnerSession(session): OwnerSession,
    Query(params): Params,
) -> Response {
    let mut flash = flash(&params);
    let email = param(&params, "email");
    let found = if email.trim().is_empty() {
        None
    } else {
        match admin.privacy_export(&session, &email).await {
            Ok(found) => Some(found),
            Err(e) => {
                flash.error = Some(e.to_string());
                None
            }
        }
    };
    ok(pages::privacy_page(
        &session,
        &flash,
        &email,
        found.as_ref(),
    ))
}

async fn reports_page(
    State(admin): State<Arc<Admin>>,
    PageSession(session): PageSession,
    Query(params): Params,
) -> Response {
    let mut flash = flash(&params);
    let (from, to) = (param(&params, "from"), param(&params, "to"));
    let range = super::reports::range(
        super::reports::RangeQuery {
            from: Some(from.clone()),
            to: Some(to.clone()),
        },
        admin.now_ms(),
    );
    let sales = match range {
        Ok((from_ms, to_ms)) => admin.sales(from_ms, to_ms).await,
        Err(e) => Err(e),
    };
    let sales = match sales {
        Ok(sales) => Some(sales),
        Err(e) => {
            flash.error = Some(e.to_string());
            None
        }
    };
    ok(pages::reports_page(
        &session,
        &flash,
        &from,
        &to,
        sales.as_ref(),
    ))
}

async fn audit_page(
    State(admin): State<Arc<Admin>>,
    OwnerSession(session): OwnerSession,
    Query(params): Params,
) -> Response {
    let page = param(&params, "page").parse::<usize>().unwrap_or(1);
    match admin.audit_page(page).await {
        Ok((entries, next)) => ok(pages::audit_page(
            &session,
            &flash(&params),
            page,
            &entries,
            next,
        )),
        Err(e) => html(
            e.status(),
            pages::message_page("Audit log", Some(&session), &e.to_string()),
        ),
    }
}
