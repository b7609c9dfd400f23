//! Password hashes: argon2id in the PHC string format (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`),
//! so the cost each hash was made with travels with it and can be raised later without
//! breaking stored accounts.
//!
//! Hashing is deliberately slow (tens of milliseconds at [`HashCost::Standard`]): callers run
//! it on a blocking thread, never on the async runtime or while holding the database.

use super::error::AdminError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest password accepted: long enough that the lockout, not the guess rate, is the limit.
pub const PASSWORD_LEN_MIN: usize = 12;
/// Longest password accepted, in bytes (argon2 input is bounded; a longer one is a mistake).
pub const PASSWORD_BYTES_MAX: usize = 1_024;

/// How expensive new hashes are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HashCost {
    /// OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane.
    #[default]
    Standard,
    /// 8 KiB, 1 pass: for tests only, where dozens of logins must take milliseconds.
    Test,
}

impl HashCost {
    fn argon2(self) -> Argon2<'static> {
        let (m_kib, t, p) = match self {
            HashCost::Standard => (19_456, 2, 1),
            HashCost::Test => (8, 1, 1),
        };
        // Both parameter sets are within argon2's limits, so `new` cannot fail; the default
        // (Standard) is the fallback all the same.
        let params = Params::new(m_kib, t, p, None).unwrap_or_default();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

/// Checks a new password's length (in characters, at most [`PASSWORD_BYTES_MAX`] bytes).
pub fn check_new_password(password: &str) -> Result<(), AdminError> {
    if password.chars().count() < PASSWORD_LEN_MIN || password.len() > PASSWORD_BYTES_MAX {
        return Err(AdminError::BadRequest(format!(
            "a password must be {PASSWORD_LEN_MIN} characters to {PASSWORD_BYTES_MAX} bytes long"
        )));
    }
    Ok(())
}

/// The argon2id hash of `password` with a fresh random 16-byte salt.
pub fn hash_password(password: &str, cost: HashCost) -> Result<String, AdminError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| AdminError::Unavailable(format!("no randomness for a salt: {e}")))?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| AdminError::Unavailable(format!("cannot encode a salt: {e}")))?;
    cost.argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AdminError::Unavailable(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches `stored` (a PHC string; its own parameters are used). A corrupt
/// stored hash matches nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    if password.len() > PASSWORD_BYTES_MAX {
        return false;
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password_and_are_salted() {
        let a = hash_password("correct horse battery", HashCost::Test).unwrap();
        let b = hash_password("correct horse battery", HashCost::Test).unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "two hashes of one password differ by their salt");
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse batterY", &a));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("long enough passphrase").is_ok());
    }
}
