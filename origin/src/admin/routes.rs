//! The admin route table: every route under `/admin/api/`, with who may call it, in one list
//! ([`ROUTES`]) that both builds the router ([`router`]) and is read by the tests that prove
//! each route refuses a request without a session (401), from a too-weak role (403), and — for
//! state-changing routes — without the right CSRF token (403).
//!
//! The checks live in one guard ([`guard`]) wrapped around each route from its row, not in the
//! handlers: a handler cannot forget them, and a route cannot be added without saying who may
//! call it. Handlers of logged-in routes receive the [`Session`] as an `Extension`; every route
//! receives the client's address as [`ClientIp`].

use super::accounts::Role;
use super::error::AdminError;
use super::sessions::{client_ip, same_secret, session_cookie, ClientIp, Session, CSRF_HEADER};
use super::{accounts, audit, deliveries, orders, privacy, reports, sessions, stock, totp, Admin};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use std::sync::Arc;

/// Largest request body an admin route reads (a status note, a user): small.
pub const ADMIN_BODY_BYTES_MAX: usize = 64 * 1024;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (login).
    Public,
    /// A session whose role is at least this.
    AtLeast(Role),
}

/// The HTTP methods the admin API uses. POST changes state (and needs the CSRF token); GET
/// never does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
        }
    }

    pub fn changes_state(self) -> bool {
        self == Verb::Post
    }
}

/// One row of the table.
pub struct AdminRoute {
    pub verb: Verb,
    /// The axum path, `{name}` for a parameter.
    pub path: &'static str,
    pub access: Access,
    /// The handler, as a method router for `verb`.
    pub handler: fn() -> MethodRouter<Arc<Admin>>,
}

const fn route(
    verb: Verb,
    path: &'static str,
    access: Access,
    handler: fn() -> MethodRouter<Arc<Admin>>,
) -> AdminRoute {
    AdminRoute {
        verb,
        path,
        access,
        handler,
    }
}

use Access::{AtLeast, Public};
use Role::{Owner, Staff, Viewer};
use Verb::{Get, Post};

/// Every admin route. Owner: accounts, the audit log and shoppers' data requests; staff:
/// changing orders and stock; viewer: reading orders, stock and reports.
pub static ROUTES: &[AdminRoute] = &[
    route(Post, "/admin/api/login", Public, || post(sessions::login)),
    route(Post, "/admin/api/logout", AtLeast(Viewer), || {
        post(sessions::logout)
    }),
    route(Get, "/admin/api/me", AtLeast(Viewer), || get(sessions::me)),
    route(Post, "/admin/api/me/password", AtLeast(Viewer), || {
        post(accounts::change_own_password)
    }),
    route(Post, "/admin/api/me/totp", AtLeast(Viewer), || {
        post(totp::enrol)
    }),
    route(Post, "/admin/api/me/totp/confirm", AtLeast(Viewer), || {
        post(totp::confirm)
    }),
    route(Get, "/admin/api/users", AtLeast(Owner), || {
        get(accounts::list_users)
    }),
    route(Post, "/admin/api/users", AtLeast(Owner), || {
        post(accounts::create_user)
    }),
    route(Post, "/admin/api/users/{id}", AtLeast(Owner), || {
        post(accounts::update_user)
    }),
    route(Get, "/admin/api/orders", AtLeast(Viewer), || {
        get(orders::list)
    }),
    route(Get, "/admin/api/orders/{id}", AtLeast(Viewer), || {
        get(orders::show)
    }),
    route(
        Post,
        "/admin/api/orders/{id}/status",
        AtLeast(Staff),
        || post(orders::change_status),
    ),
    route(Get, "/admin/api/outbox", AtLeast(Viewer), || {
        get(orders::outbox)
    }),
    route(Get, "/admin/api/edge/outbox", AtLeast(Viewer), || {
        get(deliveries::list)
    }),
    route(
        Post,
        "/admin/api/edge/outbox/{id}/retry",
        AtLeast(Staff),
        || post(deliveries::retry),
    ),
    route(Get, "/admin/api/stock/{sku}", AtLeast(Viewer), || {
        get(stock::show)
    }),
    route(
        Post,
        "/admin/api/stock/{sku}/restock",
        AtLeast(Staff),
        || post(stock::restock),
    ),
    route(
        Post,
        "/admin/api/stock/{sku}/adjust",
        AtLeast(Staff),
        || post(stock::adjust),
    ),
    route(Get, "/admin/api/reports/sales", AtLeast(Viewer), || {
        get(reports::sales)
    }),
    route(Get, "/admin/api/reports/sales.svg", AtLeast(Viewer), || {
        get(reports::sales_svg)
    }),
    route(Get, "/admin/api/audit", AtLeast(Owner), || get(audit::list)),
    route(Get, "/admin/api/privacy/export", AtLeast(Owner), || {
        get(privacy::export)
    }),
    route(Post, "/admin/api/privacy/erase", AtLeast(Owner), || {
        post(privacy::erase)
    }),
    route(Get, "/admin/api/audit.csv", AtLeast(Owner), || {
        get(audit::export_csv)
    }),
];

/// The admin routes of [`ROUTES`], each behind its [`guard`], with a JSON 404 for any other
/// path under `/admin/` (so unknown admin paths get the admin headers, not the storefront;
/// `/admin` itself is the UI's, [`super::ui`]).
pub fn router(admin: Arc<Admin>) -> Router {
    let mut router = Router::new();
    for row in ROUTES {
        let guarded = (row.handler)().layer(from_fn_with_state((admin.clone(), row), guard));
        router = router.route(row.path, guarded);
    }
    router
        .route("/admin/{*rest}", axum::routing::any(not_found))
        .layer(DefaultBodyLimit::max(ADMIN_BODY_BYTES_MAX))
        .with_state(admin)
}

async fn not_found() -> AdminError {
    AdminError::NotFound("no such admin route".into())
}

/// Enforces a row's access rule before its handler runs: a live session (401 otherwise), a
/// strong enough role (403), and on state-changing routes the session's CSRF token in
/// `X-CSRF-Token` (403).
pub async fn guard(
    State((admin, row)): State<(Arc<Admin>, &'static AdminRoute)>,
    mut request: Request,
    next: Next,
) -> Response {
    let ip = client_ip(&request);
    request.extensions_mut().insert(ClientIp(ip.clone()));
    let AtLeast(needed) = row.access else {
        return next.run(request).await;
    };
    // Owned copies: the request body is not `Sync`, so no borrow of it may cross an await.
    let cookie = session_cookie(request.headers()).map(str::to_owned);
    let csrf = request
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match check(&admin, row.verb, needed, cookie, csrf).await {
        Ok(mut session) => {
            session.ip = ip;
            request.extensions_mut().insert(session);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

async fn check(
    admin: &Admin,
    verb: Verb,
    needed: Role,
    cookie: Option<String>,
    csrf: Option<String>,
) -> Result<Session, AdminError> {
    let raw =
        cookie.ok_or_else(|| AdminError::Unauthorized("log in first: no session cookie".into()))?;
    let session = admin.session(&raw).await?.ok_or_else(|| {
        AdminError::Unauthorized("the session has ended or is unknown: log in again".into())
    })?;
    if session.role < needed {
        return Err(AdminError::Forbidden(format!(
            "this needs the {} role; {} has {}",
            needed.as_str(),
            session.email,
            session.role.as_str()
        )));
    }
    if verb.changes_state() {
        let given =
            csrf.ok_or_else(|| AdminError::Forbidden("missing X-CSRF-Token header".into()))?;
        if !same_secret(&given, &session.csrf) {
            return Err(AdminError::Forbidden("wrong X-CSRF-Token".into()));
        }
    }
    Ok(session)
}
