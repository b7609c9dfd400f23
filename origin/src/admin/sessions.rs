//! Logging in and out, and what a logged-in request carries.
//!
//! # Sessions
//! `POST /admin/api/login {email, password, totp?}` checks the throttle ([`super::lockout`]),
//! the argon2id hash (against a dummy hash when the account does not exist, so the answer's
//! timing does not reveal which e-mails have accounts) and the TOTP code if the account has
//! one. It then stores a session whose id is 256 random bits, kept in `admin.sqlite` only as its
//! SHA-256 (a leaked database yields no usable session), and sets it as the cookie
//! [`SESSION_COOKIE`] (`HttpOnly; Secure; SameSite=Strict; Path=/admin`), valid for
//! [`SESSION_TTL_MS`].
//!
//! # CSRF
//! Every state-changing request must also send `X-CSRF-Token`. The token is derived from the
//! session id (SHA-256 of a label and the id), so it is tied to the session, needs no storage,
//! and cannot be computed from the database. Login returns it in the body, and `GET
//! /admin/api/me` returns it again (for a reloaded page). `SameSite=Strict` already keeps the
//! cookie off cross-site requests; the token is the second, independent lock. Login itself
//! takes JSON only, which a cross-site form cannot send without a CORS preflight.

use super::accounts::{credentials_by_email, normalize_email, Role};
use super::audit::{self, NewEntry};
use super::error::AdminError;
use super::lockout::{self, ACCOUNT_FAILURES_FREE, IP_FAILURES_FREE};
use super::passwords::verify_password;
use super::{json_body, totp, Admin};
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "origin_admin_session";
/// The header a state-changing request carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts after login (a working day).
pub const SESSION_TTL_MS: u64 = 8 * 3_600 * 1_000;
/// Sessions one account may hold at once; logging in past it ends the oldest.
pub const SESSIONS_PER_USER_MAX: i64 = 20;

/// A logged-in request's account, as the guard found it.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    pub user_id: i64,
    pub email: String,
    pub role: Role,
    pub expires_at_ms: u64,
    /// The CSRF token of this session.
    pub csrf: String,
    /// The client's address, for the audit log.
    pub ip: Option<String>,
    #[serde(skip)]
    pub(crate) id_hash: String,
}

impl Session {
    /// An audit entry by this session's account.
    pub fn entry(&self, at_ms: u64, action: &str, target: String) -> NewEntry {
        NewEntry {
            at_ms,
            actor: Some(self.email.clone()),
            ip: self.ip.clone(),
            action: action.into(),
            target: Some(target),
            before: None,
            after: None,
        }
    }
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What the database keeps of a session id.
fn id_hash(raw: &str) -> String {
    sha256_hex(&[b"origin-admin-session\0", raw.as_bytes()])
}

/// The CSRF token of the session whose id is `raw`.
pub fn csrf_token(raw: &str) -> String {
    sha256_hex(&[b"origin-admin-csrf\0", raw.as_bytes()])
}

/// Equal in constant time (for equal lengths), so a timing probe learns nothing of a prefix.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The client's address: the socket's peer (the server runs with connect info). A request
/// without one (a test's `oneshot`, or a proxy setup that strips it) is `None`.
pub fn client_ip<B>(request: &Request<B>) -> Option<String> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}

/// The client's address of a request taken apart (the admin UI's server functions).
pub fn client_ip_of_parts(parts: &axum::http::request::Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}

/// The value of the cookie `name` in a request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value)
}

/// The session cookie's value in a request's `Cookie` headers.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie_value(headers, SESSION_COOKIE)
}

/// The live session with id `raw`, if any (an unknown, expired or disabled account's is not).
pub(crate) fn lookup(
    conn: &Connection,
    raw: &str,
    now_ms: u64,
) -> rusqlite::Result<Option<Session>> {
    let hash = id_hash(raw);
    conn.prepare_cached(
        "SELECT u.id, u.email, u.role, s.expires_at_ms FROM sessions s \
         JOIN users u ON u.id = s.user_id \
         WHERE s.id_hash = ?1 AND s.expires_at_ms > ?2 AND u.disabled = 0",
    )?
    .query_row(params![hash, now_ms], |row| {
        let role: String = row.get(2)?;
        Ok(Session {
            user_id: row.get(0)?,
            email: row.get(1)?,
            role: Role::parse(&role).unwrap_or(Role::Viewer),
            expires_at_ms: row.get(3)?,
            csrf: csrf_token(raw),
            ip: None,
            id_hash: hash.clone(),
        })
    })
    .optional()
}

/// Stores a new session for `user_id`; its raw id (for the cookie).
fn start(conn: &Connection, user_id: i64, now_ms: u64) -> Result<(String, u64), AdminError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| AdminError::Unavailable(format!("no randomness for a session: {e}")))?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let expires_at_ms = now_ms + SESSION_TTL_MS;
    conn.execute("DELETE FROM sessions WHERE expires_at_ms <= ?1", [now_ms])?;
    conn.execute(
        "DELETE FROM sessions WHERE id_hash IN (SELECT id_hash FROM sessions WHERE user_id = ?1 \
         ORDER BY created_at_ms DESC LIMIT -1 OFFSET ?2)",
        params![user_id, SESSIONS_PER_USER_MAX - 1],
    )?;
    conn.execute(
        "INSERT INTO sessions (id_hash, user_id, created_at_ms, expires_at_ms) \
         VALUES (?1, ?2, ?3, ?4)",
        params![id_hash(&raw), user_id, now_ms, expires_at_ms],
    )?;
    Ok((raw, expires_at_ms))
}

/// The `Set-Cookie` value that sets (or, with an empty value and `max_age_s == 0`, clears)
/// the session cookie.
pub fn cookie(value: &str, max_age_s: u64) -> String {
    format!("{SESSION_COOKIE}={value}; HttpOnly; Secure; SameSite=Strict; Path=/admin; Max-Age={max_age_s}")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub totp: Option<String>,
}

/// `POST /admin/api/login`: sets the session cookie; `{user, csrf_token, expires_at_ms}`.
pub async fn login(
    State(admin): State<Arc<Admin>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    body: Result<Json<Login>, JsonRejection>,
) -> Result<Response, AdminError> {
    let login = json_body(body)?;
    let (raw, session) = admin.login(login, ip).await?;
    let max_age_s = SESSION_TTL_MS / 1_000;
    let mut response = Json(json!({
        "user": { "id": session.user_id, "email": session.email, "role": session.role },
        "csrf_token": session.csrf,
        "expires_at_ms": session.expires_at_ms,
    }))
    .into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&cookie(&raw, max_age_s)) {
        headers.insert(header::SET_COOKIE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The client's address, put in the request's extensions by the route guard.
#[derive(Clone, Debug)]
pub struct ClientIp(pub Option<String>);

impl Admin {
    /// Checks credentials and starts a session: its raw id and the session. Every outcome but
    /// a lock refusal is audited (`login`, `login.failed`).
    pub async fn login(
        &self,
        login: Login,
        ip: Option<String>,
    ) -> Result<(String, Session), AdminError> {
        let email = normalize_email(&login.email)
            .map_err(|_| AdminError::Unauthorized("wrong e-mail or password".into()))?;
        let now_ms = self.now_ms();
        let (account_key, ip_key) = (
            lockout::account_key(&email),
            ip.as_deref().map(lockout::ip_key),
        );
        let (keys, lookup_email) = ((account_key.clone(), ip_key.clone()), email.clone());
        let (locked, credentials) = self
            .db
            .read(move |conn| {
                let mut locked = lockout::locked_for_s(conn, &keys.0, now_ms)?;
                if let Some(ip_key) = &keys.1 {
                    locked = locked.max(lockout::locked_for_s(conn, ip_key, now_ms)?);
                }
                Ok((locked, credentials_by_email(conn, &lookup_email)?))
            })
            .await?;
        if let Some(retry_after_s) = locked {
            return Err(AdminError::Locked { retry_after_s });
        }
        let stored_hash = credentials.as_ref().map(|c| c.password_hash.clone());
        let (dummy, cost) = (self.dummy_hash.clone(), self.config.hash_cost);
        let password = login.password;
        let password_ok = tokio::task::spawn_blocking(move || {
            let stored_hash =
                stored_hash.unwrap_or_else(|| Admin::dummy_hash_blocking(&dummy, cost));
            verify_password(&password, &stored_hash)
        })
        .await
        .map_err(|e| AdminError::Unavailable(e.to_string()))?;
        let mut totp_step = None;
        let failure = match &credentials {
            None => Some("no such account"),
            Some(_) if !password_ok => Some("wrong password"),
            Some(c) if c.user.disabled => Some("account disabled"),
            Some(c) if c.user.totp_enabled => match (&login.totp, &c.totp_secret) {
                (None, _) => None,
                (Some(code), Some(secret)) => {
                    totp_step = totp::matching_step(secret, code, now_ms / 1_000);
                    totp_step.is_none().then_some("wrong TOTP code")
                }
                (Some(_), None) => Some("wrong TOTP code"),
            },
            Some(_) => None,
        };
        let entry = NewEntry {
            at_ms: now_ms,
            actor: Some(email.clone()),
            ip: ip.clone(),
            ..NewEntry::default()
        };
        if let Some(reason) = failure {
            let (account_key, ip_key) = (account_key.clone(), ip_key.clone());
            let target = credentials.as_ref().map(|c| format!("user:{}", c.user.id));
            self.db
                .write(move |conn| {
                    lockout::record_failure(conn, &account_key, ACCOUNT_FAILURES_FREE, now_ms)?;
                    if let Some(ip_key) = &ip_key {
                        lockout::record_failure(conn, ip_key, IP_FAILURES_FREE, now_ms)?;
                    }
                    audit::append(
                        conn,
                        &NewEntry {
                            action: "login.failed".into(),
                            target,
                            after: Some(json!({ "reason": reason })),
                            ..entry
                        },
                    )?;
                    Ok(())
                })
                .await?;
            return Err(AdminError::Unauthorized("wrong e-mail or password".into()));
        }
        // Here the account exists, is enabled and its password (and TOTP, if given) is right.
        let Some(credentials) = credentials else {
            return Err(AdminError::Unauthorized("wrong e-mail or password".into()));
        };
        if credentials.user.totp_enabled && login.totp.is_none() {
            return Err(AdminError::TotpRequired);
        }
        let user = credentials.user;
        let (raw, expires_at_ms) = self
            .db
            .write(move |conn| {
                if let Some(step) = totp_step {
                    let fresh = conn.execute(
                        "UPDATE users SET totp_last_step = ?1 WHERE id = ?2 AND totp_last_step < ?1",
                        params![step, user.id],
                    )?;
                    if fresh == 0 {
                        return Err(AdminError::Unauthorized(
                            "that TOTP code was already used: wait for the next one".into(),
                        ));
                    }
                }
                lockout::clear(conn, &account_key)?;
                let started = start(conn, user.id, now_ms)?;
                audit::append(
                    conn,
                    &NewEntry {
                        action: "login".into(),
                        target: Some(format!("user:{}", user.id)),
                        ..entry
                    },
                )?;
                Ok(started)
            })
            .await?;
        let session = Session {
            user_id: user.id,
            email: user.email,
            role: user.role,
            expires_at_ms,
            csrf: csrf_token(&raw),
            ip,
            id_hash: id_hash(&raw),
        };
        Ok((raw, session))
    }

    /// The live session of a request's cookie, if any.
    pub async fn session(&self, raw: &str) -> Result<Option<Session>, AdminError> {
        let raw = raw.to_owned();
        let now_ms = self.now_ms();
        self.db
            .read(move |conn| Ok(lookup(conn, &raw, now_ms)?))
            .await
    }
}

/// `POST /admin/api/logout`: ends the session and clears the cookie.
pub async fn logout(
    State(admin): State<Arc<Admin>>,
    Extension(session): Extension<Session>,
) -> Result<Response, AdminError> {
    admin.logout(&session).await?;
    let mut response = Json(json!({ "logged_out": true })).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie("", 0)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

impl Admin {
    /// Ends `session` (audited as `logout`).
    pub async fn logout(&self, session: &Session) -> Result<(), AdminError> {
        let now_ms = self.now_ms();
        let actor = session.clone();
        self.db
            .write(move |conn| {
                conn.execute("DELETE FROM sessions WHERE id_hash = ?1", [&actor.id_hash])?;
                audit::append(
                    conn,
                    &actor.entry(now_ms, "logout", format!("user:{}", actor.user_id)),
                )?;
                Ok(())
            })
            .await
    }
}

/// `GET /admin/api/me`: the session's account and its CSRF token.
pub async fn me(Extension(session): Extension<Session>) -> Json<Value> {
    Json(json!({
        "user": { "id": session.user_id, "email": session.email, "role": session.role },
        "csrf_token": session.csrf,
        "expires_at_ms": session.expires_at_ms,
    }))
}
