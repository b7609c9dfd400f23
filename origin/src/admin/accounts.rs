//! Admin accounts: who may log in, with which role, and the owner's user management routes
//! (`GET/POST /admin/api/users`, `POST /admin/api/users/{id}`), everyone's own password change
//! (`POST /admin/api/me/password`), and the bootstrap used by `origin admin create-owner`.
//!
//! # Roles
//! [`Role`]s are ordered: a route that needs `Staff` admits `Staff` and `Owner`. `Viewer` reads,
//! `Staff` also moves orders and stock, `Owner` also manages accounts and reads the audit log.
//! The origin always keeps at least one enabled owner: the last one cannot be demoted or
//! disabled, so nobody can lock the shop out of its own admin.

use super::audit::{self, NewEntry};
use super::error::AdminError;
use super::passwords::{check_new_password, hash_password, HashCost};
use super::sessions::Session;
use super::store::AdminDb;
use super::{json_body, Admin};
use crate::db::OpenError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, State};
use axum::{Extension, Json};
use edge_core::order::EMAIL_LEN_MAX;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// Accounts an origin keeps at most: admin staff, not customers.
pub const USERS_MAX: i64 = 1_000;

/// What an account may do; ordered from least to most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Staff,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Staff => "staff",
            Role::Owner => "owner",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Role::Viewer, Role::Staff, Role::Owner]
            .into_iter()
            .find(|r| r.as_str() == raw)
    }
}

/// An account as the API shows it (never its hash or TOTP secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub role: Role,
    pub totp_enabled: bool,
    pub disabled: bool,
    pub created_at_ms: u64,
}

/// An account with what login needs to check it.
pub(crate) struct Credentials {
    pub user: User,
    pub password_hash: String,
    pub totp_secret: Option<Vec<u8>>,
}

/// Trims and lower-cases an e-mail (accounts are found case-insensitively) and checks it.
pub fn normalize_email(raw: &str) -> Result<String, AdminError> {
    let email = raw.trim().to_lowercase();
    let ok = email.len() <= EMAIL_LEN_MAX
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(email)
    } else {
        Err(AdminError::BadRequest(format!(
            "{raw:?} is not an e-mail address"
        )))
    }
}

const USER_COLUMNS: &str =
    "id, email, role, totp_enabled, disabled, created_at_ms, password_hash, totp_secret";

fn row_to_credentials(row: &rusqlite::Row<'_>) -> rusqlite::Result<Credentials> {
    let role: String = row.get(2)?;
    Ok(Credentials {
        user: User {
            id: row.get(0)?,
            email: row.get(1)?,
            // The schema's CHECK admits only the three names; anything else reads as the
            // weakest role rather than failing the whole listing.
            role: Role::parse(&role).unwrap_or(Role::Viewer),
            totp_enabled: row.get(3)?,
            disabled: row.get(4)?,
            created_at_ms: row.get(5)?,
        },
        password_hash: row.get(6)?,
        totp_secret: row.get(7)?,
    })
}

pub(crate) fn credentials_by_email(
    conn: &Connection,
    email: &str,
) -> rusqlite::Result<Option<Credentials>> {
    conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE email = ?1"
    ))?
    .query_row([email], row_to_credentials)
    .optional()
}

pub(crate) fn credentials_by_id(
    conn: &Connection,
    id: i64,
) -> rusqlite::Result<Option<Credentials>> {
    conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
        .query_row([id], row_to_credentials)
        .optional()
}

fn list(conn: &Connection) -> rusqlite::Result<Vec<User>> {
    let mut select = conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users ORDER BY id LIMIT ?1"
    ))?;
    let rows = select.query_map([USERS_MAX], row_to_credentials)?;
    rows.map(|r| r.map(|c| c.user)).collect()
}

fn enabled_owners(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM users WHERE role = 'owner' AND disabled = 0",
        [],
        |row| row.get(0),
    )
}

/// Inserts an account (the caller hashed the password). `Conflict` when the e-mail is taken.
pub(crate) fn insert_user(
    conn: &Connection,
    email: &str,
    role: Role,
    password_hash: &str,
    now_ms: u64,
) -> Result<User, AdminError> {
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM users", [], |row| row.get(0))?;
    if count >= USERS_MAX {
        return Err(AdminError::Conflict(format!(
            "the origin already has {USERS_MAX} accounts"
        )));
    }
    if credentials_by_email(conn, email)?.is_some() {
        return Err(AdminError::Conflict(format!(
            "an account for {email} already exists"
        )));
    }
    conn.execute(
        "INSERT INTO users (email, role, password_hash, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
        params![email, role.as_str(), password_hash, now_ms],
    )?;
    Ok(User {
        id: conn.last_insert_rowid(),
        email: email.to_owned(),
        role,
        totp_enabled: false,
        disabled: false,
        created_at_ms: now_ms,
    })
}

/// Why `origin admin create-owner` did nothing. Each says what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot create the data dir {}: {source}", path.display())]
    DataDir {
        source: std::io::Error,
        path: std::path::PathBuf,
    },
    #[error(
        "an owner account already exists; log in as it and add users with POST /admin/api/users"
    )]
    OwnerExists,
    #[error("{0}")]
    Refused(AdminError),
}

/// Creates the first owner account in `data_dir`'s `admin.sqlite`; refuses when any owner
/// exists (a second owner is made by an owner, through the API, with an audit entry).
pub fn create_owner(
    data_dir: &Path,
    email: &str,
    password: &str,
    cost: HashCost,
    now_ms: u64,
) -> Result<User, BootstrapError> {
    std::fs::create_dir_all(data_dir).map_err(|source| BootstrapError::DataDir {
        source,
        path: data_dir.to_owned(),
    })?;
    let email = normalize_email(email).map_err(BootstrapError::Refused)?;
    check_new_password(password).map_err(BootstrapError::Refused)?;
    let hash = hash_password(password, cost).map_err(BootstrapError::Refused)?;
    let db = AdminDb::open(data_dir)?;
    db.blocking(|conn| {
        crate::db::begin_immediate(conn).map_err(|e| BootstrapError::Refused(e.into()))?;
        let result = (|| {
            let owners: i64 =
                conn.query_row("SELECT COUNT(*) FROM users WHERE role = 'owner'", [], |r| {
                    r.get(0)
                })?;
            if owners > 0 {
                return Err(BootstrapError::OwnerExists);
            }
            let user = insert_user(conn, &email, Role::Owner, &hash, now_ms)
                .map_err(BootstrapError::Refused)?;
            audit::append(
                conn,
                &NewEntry {
                    at_ms: now_ms,
                    actor: Some("origin admin create-owner".into()),
                    ip: None,
                    action: "user.create".into(),
                    target: Some(format!("user:{}", user.id)),
                    before: None,
                    after: Some(json!(user)),
                },
            )
            .map_err(|e| BootstrapError::Refused(e.into()))?;
            Ok(user)
        })();
        crate::db::finish(conn, result, |e| BootstrapError::Refused(e.into()))
    })
}

impl From<rusqlite::Error> for BootstrapError {
    fn from(e: rusqlite::Error) -> Self {
        BootstrapError::Refused(e.into())
    }
}

/// `GET /admin/api/users` (owner): every account.
pub async fn list_users(State(admin): State<Arc<Admin>>) -> Result<Json<Value>, AdminError> {
    Ok(Json(json!({ "users": admin.users().await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    pub password: String,
    pub role: Role,
}

/// `POST /admin/api/users` (owner) `{email, password, role}`: 201 with the new account.
pub async fn create_user(
    State(admin): State<Arc<Admin>>,
    Extension(session): Extension<Session>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<User>), AdminError> {
    let new = json_body(body)?;
    let user = admin.create_user(&session, new).await?;
    Ok((axum::http::StatusCode::CREATED, Json(user)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
}

/// `POST /admin/api/users/{id}` (owner) `{role?, disabled?, password?}`: the account after.
/// Disabling an account or changing its password ends its sessions.
pub async fn update_user(
    State(admin): State<Arc<Admin>>,
    Extension(session): Extension<Session>,
    UrlPath(id): UrlPath<i64>,
    body: Result<Json<UserChange>, JsonRejection>,
) -> Result<Json<User>, AdminError> {
    let change = json_body(body)?;
    Ok(Json(admin.update_user(&session, id, change).await?))
}

impl Admin {
    /// Every account, in the order they were made.
    pub async fn users(&self) -> Result<Vec<User>, AdminError> {
        self.db.read(|conn| Ok(list(conn)?)).await
    }

    /// Creates an account (an owner's action, audited).
    pub async fn create_user(&self, actor: &Session, new: NewUser) -> Result<User, AdminError> {
        let email = normalize_email(&new.email)?;
        check_new_password(&new.password)?;
        let cost = self.config.hash_cost;
        let password = new.password;
        let hash = tokio::task::spawn_blocking(move || hash_password(&password, cost))
            .await
            .map_err(|e| AdminError::Unavailable(e.to_string()))??;
        let now_ms = self.now_ms();
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                let user = insert_user(conn, &email, new.role, &hash, now_ms)?;
                audit::append(
                    conn,
                    &actor
                        .entry(now_ms, "user.create", format!("user:{}", user.id))
                        .with_after(json!(user)),
                )?;
                Ok(user)
            })
            .await
    }

    /// Changes an account's role, disabled flag or password (an owner's action, audited).
    pub async fn update_user(
        &self,
        actor: &Session,
        id: i64,
        change: UserChange,
    ) -> Result<User, AdminError> {
        let hash = match change.password {
            Some(password) => {
                check_new_password(&password)?;
                let cost = self.config.hash_cost;
                Some(
                    tokio::task::spawn_blocking(move || hash_password(&password, cost))
                        .await
                        .map_err(|e| AdminError::Unavailable(e.to_string()))??,
                )
            }
            None => None,
        };
        let now_ms = self.now_ms();
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                let before = credentials_by_id(conn, id)?
                    .ok_or_else(|| AdminError::NotFound(format!("no user {id}")))?
                    .user;
                let mut after = before.clone();
                if let Some(role) = change.role {
                    after.role = role;
                }
                if let Some(disabled) = change.disabled {
                    after.disabled = disabled;
                }
                let was_owner = before.role == Role::Owner && !before.disabled;
                let is_owner = after.role == Role::Owner && !after.disabled;
                if was_owner && !is_owner && enabled_owners(conn)? <= 1 {
                    return Err(AdminError::Conflict(
                        "this is the last enabled owner: make another owner first".into(),
                    ));
                }
                conn.execute(
                    "UPDATE users SET role = ?1, disabled = ?2 WHERE id = ?3",
                    params![after.role.as_str(), after.disabled, id],
                )?;
                if let Some(hash) = &hash {
                    conn.execute(
                        "UPDATE users SET password_hash = ?1 WHERE id = ?2",
                        params![hash, id],
                    )?;
                }
                if after.disabled || hash.is_some() {
                    conn.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
                }
                let mut after_json = json!(after);
                if hash.is_some() {
                    after_json["password"] = json!("changed");
                }
                audit::append(
                    conn,
                    &actor
                        .entry(now_ms, "user.update", format!("user:{id}"))
                        .with_before(json!(before))
                        .with_after(after_json),
                )?;
                Ok(after)
            })
            .await
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current: String,
    pub new: String,
}

/// `POST /admin/api/me/password {current, new}` (any role): changes the session's own password
/// and ends the account's other sessions (this one stays).
pub async fn change_own_password(
    State(admin): State<Arc<Admin>>,
    Extension(session): Extension<Session>,
    body: Result<Json<PasswordChange>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let change = json_body(body)?;
    check_new_password(&change.new)?;
    let user_id = session.user_id;
    let stored = admin
        .db
        .read(move |conn| Ok(credentials_by_id(conn, user_id)?))
        .await?
        .ok_or_else(|| AdminError::Unauthorized("the account is gone".into()))?
        .password_hash;
    let cost = admin.config.hash_cost;
    let hash = tokio::task::spawn_blocking(move || {
        if !super::passwords::verify_password(&change.current, &stored) {
            return Err(AdminError::Forbidden(
                "the current password is wrong".into(),
            ));
        }
        hash_password(&change.new, cost)
    })
    .await
    .map_err(|e| AdminError::Unavailable(e.to_string()))??;
    let now_ms = admin.now_ms();
    let actor = session.clone();
    admin
        .db
        .write(move |conn| {
            conn.execute(
                "UPDATE users SET password_hash = ?1 WHERE id = ?2",
                params![hash, actor.user_id],
            )?;
            conn.execute(
                "DELETE FROM sessions WHERE user_id = ?1 AND id_hash != ?2",
                params![actor.user_id, actor.id_hash],
            )?;
            audit::append(
                conn,
                &actor
                    .entry(now_ms, "user.password", format!("user:{}", actor.user_id))
                    .with_after(json!({ "password": "changed" })),
            )?;
            Ok(())
        })
        .await?;
    Ok(Json(json!({ "password_changed": true })))
}
