//! The admin UI's server functions: one per action, each a thin call of the same [`Admin`]
//! method the JSON API's handler calls, so both get the same checks, audit entries and errors.
//!
//! Each is posted by a plain HTML form (`application/x-www-form-urlencoded`, no JavaScript) to
//! `/admin/sfn/{name}`. Every one but login needs a live session (401), a strong enough role
//! (403) and the session's CSRF token in the form's `csrf` field (403); those refusals are the
//! response itself. Login compares its `login_csrf` field with the cookie the login page set
//! ([`LOGIN_CSRF_COOKIE`], `SameSite=Strict`), so a cross-site form cannot log a browser in.
//!
//! On success the function redirects (`302`) to the page to show next with a `msg`; any other
//! refusal (an illegal transition's 409, a bad quantity) goes back to the form's page with the
//! error in the URL (`__err`, leptos' progressive-enhancement form errors), where the page
//! shows it. A client that does not accept HTML gets the error's own status instead.

use super::super::accounts::Role;
use super::super::orders::order_id;
use super::super::sessions::{
    client_ip_of_parts, cookie, cookie_value, same_secret, session_cookie, Login, Session,
    SESSION_TTL_MS,
};
use super::super::{Admin, AdminError};
use super::query_string;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use leptos::prelude::*;
use leptos_axum::ResponseOptions;
use std::sync::Arc;

/// The login form's double-submit cookie (set by the login page, compared by [`admin_login`]).
pub const LOGIN_CSRF_COOKIE: &str = "origin_admin_login";

/// The request's admin and HTTP parts, provided by the server function route.
fn context() -> Result<(Arc<Admin>, Parts), ServerFnError> {
    let admin = use_context::<Arc<Admin>>()
        .ok_or_else(|| ServerFnError::new("the admin is not in the server function's context"))?;
    let parts = use_context::<Parts>()
        .ok_or_else(|| ServerFnError::new("the request is not in the server function's context"))?;
    Ok((admin, parts))
}

fn accepts_html(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// An [`AdminError`] as the server function's error. `hard`: the response carries the error's
/// status even for a form post (no session, a weak role, a bad CSRF token: there is no form to
/// go back to); otherwise a form post goes back to its page with the message.
fn refuse(parts: &Parts, error: AdminError, hard: bool) -> ServerFnError {
    if hard || !accepts_html(parts) {
        if let Some(response) = use_context::<ResponseOptions>() {
            response.set_status(error.status());
        }
    }
    ServerFnError::ServerError(error.to_string())
}

/// The acting session: live (401), at least `needed` (403), and `csrf` its token (403).
async fn acting(
    admin: &Admin,
    parts: &Parts,
    needed: Role,
    csrf: &str,
) -> Result<Session, ServerFnError> {
    let raw = session_cookie(&parts.headers).map(str::to_owned);
    let checked = async {
        let raw =
            raw.ok_or_else(|| AdminError::Unauthorized("log in first: no session cookie".into()))?;
        let mut session = admin.session(&raw).await?.ok_or_else(|| {
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
        if !same_secret(csrf, &session.csrf) {
            return Err(AdminError::Forbidden(
                "wrong or missing CSRF token: reload the page and try again".into(),
            ));
        }
        session.ip = client_ip_of_parts(parts);
        Ok(session)
    }
    .await;
    checked.map_err(|e| refuse(parts, e, true))
}

fn set_cookie(value: String) {
    if let (Some(response), Ok(value)) = (
        use_context::<ResponseOptions>(),
        HeaderValue::from_str(&value),
    ) {
        response.append_header(header::SET_COOKIE, value);
    }
}

/// Redirects a successful action to `path` with `msg` to show there.
fn done(path: &str, msg: &str) {
    leptos_axum::redirect(&format!("{path}?{}", query_string(&[("msg", msg)])));
}

/// Logs in; on success sets the session cookie and goes to the orders.
#[server(prefix = "/admin/sfn", endpoint = "login")]
pub async fn admin_login(
    email: String,
    password: String,
    totp: String,
    login_csrf: String,
) -> Result<(), ServerFnError> {
    let (admin, parts) = context()?;
    let expected = cookie_value(&parts.headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_secret(&login_csrf, expected) {
        return Err(refuse(
            &parts,
            AdminError::Forbidden(
                "the login form has expired or was not sent from this site: reload it".into(),
            ),
            false,
        ));
    }
    let totp = Some(totp.trim().to_owned()).filter(|t| !t.is_empty());
    let login = Login {
        email,
        password,
        totp,
    };
    let (raw, _session) = admin
        .login(login, client_ip_of_parts(&parts))
        .await
        .map_err(|e| match e {
            // The API's message names its JSON field; the form's says what to do.
            AdminError::TotpRequired => refuse(
                &parts,
                AdminError::Unauthorized(
                    "this account has two-factor login: enter the code from its authenticator app"
                        .into(),
                ),
                false,
            ),
            e => refuse(&parts, e, false),
        })?;
    set_cookie(cookie(&raw, SESSION_TTL_MS / 1_000));
    set_cookie(format!(
        "{LOGIN_CSRF_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/admin; Max-Age=0"
    ));
    leptos_axum::redirect("/admin/orders");
    Ok(())
}

/// Ends the session and goes to the login page.
#[server(prefix = "/admin/sfn", endpoint = "logout")]
pub async fn admin_logout(csrf: String) -> Result<(), ServerFnError> {
    let (admin, parts) = context()?;
    let session = acting(&admin, &parts, Role::Viewer, &csrf).await?;
    admin
        .logout(&session)
        .await
        .map_err(|e| refuse(&parts, e, false))?;
    set_cookie(cookie("", 0));
    done("/admin/login", "logged out");
    Ok(())
}

/// Moves an order to `status` (staff): only along the state machine.
#[server(prefix = "/admin/sfn", endpoint = "order_status")]
pub async fn change_order_status(
    id: String,
    status: String,
    note: String,
    csrf: String,
) -> Result<(), ServerFnError> {
    let (admin, parts) = context()?;
    let session = acting(&admin, &parts, Role::Staff, &csrf).await?;
    let order = order_id(&id).map_err(|e| refuse(&parts, e, false))?;
    let note = Some(note.trim().to_owned()).filter(|n| !n.is_empty());
    let reply = admin
        .change_status(&session, &order, &status, note)
        .await
        .map_err(|e| refuse(&parts, e, false))?;
    let msg = format!(
        "now {}; stock: {}, edge: {}",
        reply["to"].as_str().unwrap_or(&status),
        reply["stock"].as_str().unwrap_or("?"),
        reply["edge"].as_str().unwrap_or("?"),
    );
    done(&format!("/admin/orders/{order}"), &msg);
    Ok(())
}

fn whole_number(parts: &Parts, name: &str, raw: &str) -> Result<u32, ServerFnError> {
    raw.trim().parse::<u32>().map_err(|_| {
        refuse(
            parts,
            AdminError::BadRequest(format!("{name} must be a whole number, not {raw:?}")),
            false,
        )
    })
}

/// Adds `qty` received units to a SKU (staff), once per rendered form (`receipt`): submitting
/// the same form again (a double click, a resend after a timeout) adds nothing.
#[server(prefix = "/admin/sfn", endpoint = "restock")]
pub async fn restock_sku(
    sku: String,
    qty: String,
    reason: String,
    receipt: Option<String>,
    csrf: String,
) -> Result<(), ServerFnError> {
    let (admin, parts) = context()?;
    let session = acting(&admin, &parts, Role::Staff, &csrf).await?;
    let qty = whole_number(&parts, "qty", &qty)?;
    // A form without a receipt (a page rendered before receipts) restocks unguarded.
    let key = receipt
        .filter(|r| !r.is_empty())
        .map(|r| format!("admin-form:{r}"));
    let (sku, done) = admin
        .restock(&session, &sku, qty, &reason, key.as_deref())
        .await
        .map_err(|e| refuse(&parts, e, false))?;
    let msg = if done.repeated {
        format!(
            "this restock of {sku} was already recorded; nothing added: {} available",
            done.level.available
        )
    } else {
        format!(
            "{sku} restocked by {qty}: {} available",
            done.level.available
        )
    };
    leptos_axum::redirect(&format!(
        "/admin/stock?{}",
        query_string(&[("sku", sku.as_str()), ("msg", &msg)])
    ));
    Ok(())
}

/// Sets a SKU's available units after a count (staff).
#[server(prefix = "/admin/sfn", endpoint = "adjust")]
pub async fn adjust_sku(
    sku: String,
    available: String,
    reason: String,
    csrf: String,
) -> Result<(), ServerFnError> {
    let (admin, parts) = context()?;
    let session = acting(&admin, &parts, Role::Staff, &csrf).await?;
    let available = whole_number(&parts, "available", &available)?;
    let (sku, after) = admin
        .adjust(&session, &sku, available, &reason)
        .await
        .map_err(|e| refuse(&parts, e, false))?;
    let msg = format!("{sku} adjusted: {} available", after.available);
    leptos_axum::redirect(&format!(
        "/admin/stock?{}",
        query_string(&[("sku", sku.as_str()), ("msg", &msg)])
    ));
    Ok(())
}

/// Asks the edge to send a waiting order to the origin now (staff).
#[server(prefix = "/admin/sfn", endpoint = "retry_delivery")]
pub async fn retry_delivery(id: String, csrf: String) -> Result<(), ServerFnError> {
    let (admin, parts) = context()?;
    let session = acting(&admin, &parts, Role::Staff, &csrf).await?;
    admin
        .retry_edge_delivery(&session, &id)
        .await
        .map_err(|e| refuse(&parts, e, false))?;
    done(
        "/admin/deliveries",
        &format!("order {id}: the edge sends it now"),
    );
    Ok(())
}

/// Adds an account (owner).
#[server(prefix = "/admin/sfn", endpoint = "create_account")]
pub async fn create_account(
    email: String,
    password: String,
    role: String,
    csrf: String,
) -> Result<(), ServerFnError> {
    let (admin, parts) = context()?;
    let session = acting(&admin, &parts, Role::Owner, &csrf).await?;
    let role = parse_role(&parts, &role)?;
    let new = super::super::accounts::NewUser {
        email,
        password,
        role,
    };
    let user = admin
        .create_user(&session, new)
        .await
        .map_err(|e| refuse(&parts, e, false))?;
    done(
        "/admin/users",
        &format!("{} added as {}", user.email, user.role.as_str()),
    );
    Ok(())
}

/// Changes an account's role, disabled flag or password, whichever the form sent (owner).
#[server(prefix = "/admin/sfn", endpoint = "update_account")]
pub async fn update_account(
    id: String,
    role: Option<String>,
    disabled: Option<String>,
    password: Option<String>,
    csrf: String,
) -> Result<(), ServerFnError> {
    let (admin, parts) = context()?;
    let session = acting(&admin, &parts, Role::Owner, &csrf).await?;
    let bad = |message: String| refuse(&parts, AdminError::BadRequest(message), false);
    let id: i64 = id
        .trim()
        .parse()
        .map_err(|_| bad(format!("no account {id:?}")))?;
    let change = super::super::accounts::UserChange {
        role: role.as_deref().map(|r| parse_role(&parts, r)).transpose()?,
        disabled: match disabled.as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(bad(format!(
                    "disabled must be true or false, not {other:?}"
                )))
            }
        },
        password,
    };
    let user = admin
        .update_user(&session, id, change)
        .await
        .map_err(|e| refuse(&parts, e, false))?;
    let state = if user.disabled { "disabled" } else { "active" };
    done(
        "/admin/users",
        &format!("{}: {}, {state}", user.email, user.role.as_str()),
    );
    Ok(())
}

fn parse_role(parts: &Parts, raw: &str) -> Result<Role, ServerFnError> {
    Role::parse(raw).ok_or_else(|| {
        refuse(
            parts,
            AdminError::BadRequest(format!("no role {raw:?}: owner, staff or viewer")),
            false,
        )
    })
}

/// Replaces a shopper's e-mail on their orders with a placeholder (owner), once confirmed.
#[server(prefix = "/admin/sfn", endpoint = "erase_shopper")]
pub async fn erase_shopper(
    email: String,
    confirm: Option<String>,
    csrf: String,
) -> Result<(), ServerFnError> {
    let (admin, parts) = context()?;
    let session = acting(&admin, &parts, Role::Owner, &csrf).await?;
    if confirm.as_deref() != Some("yes") {
        let message = "tick the confirmation: erasing cannot be undone".to_owned();
        return Err(refuse(&parts, AdminError::BadRequest(message), false));
    }
    let erased = admin
        .privacy_erase(&session, &email)
        .await
        .map_err(|e| refuse(&parts, e, false))?;
    let msg = format!(
        "{} orders anonymised: the e-mail is now {}",
        erased.orders_anonymised, erased.replaced_by
    );
    done("/admin/privacy", &msg);
    Ok(())
}

/// Registers every server function (also done by `inventory` at startup; explicit so a
/// linker that drops unreferenced statics cannot lose one).
pub fn register() {
    use leptos::server_fn::axum::register_explicit;
    register_explicit::<AdminLogin>();
    register_explicit::<AdminLogout>();
    register_explicit::<ChangeOrderStatus>();
    register_explicit::<RestockSku>();
    register_explicit::<AdjustSku>();
    register_explicit::<RetryDelivery>();
    register_explicit::<CreateAccount>();
    register_explicit::<UpdateAccount>();
    register_explicit::<EraseShopper>();
}

/// The message of a server function error carried back in a page's `__err` parameter.
pub fn error_message(encoded: &str) -> String {
    use leptos::server_fn::error::ServerFnUrlError;
    match ServerFnUrlError::<ServerFnError>::decode_err(encoded) {
        ServerFnError::ServerError(message) => message,
        other => other.to_string(),
    }
}
