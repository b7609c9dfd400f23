//! TOTP second factor (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits — what every authenticator
//! app speaks), written out over the `hmac` and `sha1` crates.
//!
//! Enrolment is two steps so a typo in the app cannot lock anyone out: `POST
//! /admin/api/me/totp` stores a fresh 160-bit secret as *pending* and returns it (base32, and as
//! an `otpauth://` URL for a QR code); `POST /admin/api/me/totp/confirm {code}` turns it on once
//! the app produces a valid code. From then on login needs `totp` too. A code is accepted one
//! step early or late ([`SKEW_STEPS`]) for clock drift.

use super::audit;
use super::error::AdminError;
use super::sessions::Session;
use super::{json_body, Admin};
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::{Extension, Json};
use hmac::{Hmac, Mac};
use rusqlite::params;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub const STEP_S: u64 = 30;
pub const DIGITS: u32 = 6;
/// Steps either side of now whose code is still accepted.
pub const SKEW_STEPS: u64 = 1;
/// Secret length in bytes (RFC 4226 recommends 160 bits).
pub const SECRET_BYTES: usize = 20;
/// What an authenticator app shows as the account's issuer.
pub const ISSUER: &str = "Edge shop origin";

/// The HOTP value (RFC 4226) of `secret` at `counter`, as `digits` decimal digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    let code = binary % 10u32.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// The TOTP code of `secret` at Unix time `now_s`.
pub fn code_at(secret: &[u8], now_s: u64) -> String {
    hotp(secret, now_s / STEP_S, DIGITS)
}

/// Whether `code` is `secret`'s code at `now_s`, give or take [`SKEW_STEPS`] steps.
pub fn verify(secret: &[u8], code: &str, now_s: u64) -> bool {
    matching_step(secret, code, now_s).is_some()
}

/// The time step whose code `code` is (within [`SKEW_STEPS`] of `now_s`), if any. Login keeps
/// the last step used per account and refuses it again, so an overheard code cannot be replayed
/// within its window.
pub fn matching_step(secret: &[u8], code: &str, now_s: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = now_s / STEP_S;
    // Every candidate is computed and compared in full, so timing reveals nothing.
    let mut found = None;
    for s in step.saturating_sub(SKEW_STEPS)..=step + SKEW_STEPS {
        let expected = hotp(secret, s, DIGITS);
        let same = expected.len() == code.len()
            && expected
                .bytes()
                .zip(code.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same && found.is_none() {
            found = Some(s);
        }
    }
    found
}

/// RFC 4648 base32 without padding (what `otpauth://` URLs carry).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `otpauth://` URL an authenticator app scans.
pub fn otpauth_url(secret: &[u8], email: &str) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_S}",
        percent(ISSUER),
        percent(email),
        base32(secret),
        percent(ISSUER)
    )
}

/// `POST /admin/api/me/totp`: a fresh pending secret for the session's own account.
pub async fn enrol(
    State(admin): State<Arc<Admin>>,
    Extension(session): Extension<Session>,
) -> Result<Json<Value>, AdminError> {
    let mut secret = vec![0u8; SECRET_BYTES];
    getrandom::fill(&mut secret)
        .map_err(|e| AdminError::Unavailable(format!("no randomness for a secret: {e}")))?;
    let now_ms = admin.now_ms();
    let stored = secret.clone();
    let actor = session.clone();
    admin
        .db
        .write(move |conn| {
            let enabled: bool = conn.query_row(
                "SELECT totp_enabled FROM users WHERE id = ?1",
                [actor.user_id],
                |r| r.get(0),
            )?;
            if enabled {
                return Err(AdminError::Conflict(
                    "TOTP is already on for this account".into(),
                ));
            }
            conn.execute(
                "UPDATE users SET totp_secret = ?1 WHERE id = ?2",
                params![stored, actor.user_id],
            )?;
            audit::append(
                conn,
                &actor.entry(now_ms, "totp.enrol", format!("user:{}", actor.user_id)),
            )?;
            Ok(())
        })
        .await?;
    Ok(Json(json!({
        "secret": base32(&secret),
        "otpauth_url": otpauth_url(&secret, &session.email),
        "confirm": "POST /admin/api/me/totp/confirm {\"code\": \"123456\"}",
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    pub code: String,
}

/// `POST /admin/api/me/totp/confirm {code}`: turns the pending secret on.
pub async fn confirm(
    State(admin): State<Arc<Admin>>,
    Extension(session): Extension<Session>,
    body: Result<Json<Confirm>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let Confirm { code } = json_body(body)?;
    let now_ms = admin.now_ms();
    let actor = session.clone();
    admin
        .db
        .write(move |conn| {
            let (secret, enabled): (Option<Vec<u8>>, bool) = conn.query_row(
                "SELECT totp_secret, totp_enabled FROM users WHERE id = ?1",
                [actor.user_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if enabled {
                return Err(AdminError::Conflict("TOTP is already on".into()));
            }
            let secret = secret.ok_or_else(|| {
                AdminError::Conflict("no TOTP secret pending: POST /admin/api/me/totp".into())
            })?;
            if !verify(&secret, &code, now_ms / 1_000) {
                return Err(AdminError::BadRequest(
                    "that code does not match: check the app's clock and try the next code".into(),
                ));
            }
            conn.execute(
                "UPDATE users SET totp_enabled = 1 WHERE id = ?1",
                [actor.user_id],
            )?;
            audit::append(
                conn,
                &actor
                    .entry(now_ms, "totp.enable", format!("user:{}", actor.user_id))
                    .with_after(json!({ "totp_enabled": true })),
            )?;
            Ok(())
        })
        .await?;
    Ok(Json(json!({ "totp_enabled": true })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        let secret = b"12345678901234567890";
        // RFC 6238 appendix B, 8 digits.
        for (t, expected) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(hotp(secret, t / STEP_S, 8), expected, "t = {t}");
        }
        assert_eq!(code_at(secret, 59), "287082");
        assert!(verify(secret, "287082", 59));
        assert!(
            verify(secret, "287082", 59 + 30),
            "one step late is accepted"
        );
        assert!(
            !verify(secret, "287082", 59 + 90),
            "three steps late is not"
        );
        assert!(!verify(secret, "28708", 59));
        assert!(!verify(secret, "2870820", 59));
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert!(otpauth_url(b"12345678901234567890", "a@b.co").starts_with(
            "otpauth://totp/Edge%20shop%20origin:a%40b.co?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"
        ));
    }
}
