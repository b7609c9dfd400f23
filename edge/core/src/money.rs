//! Prices: integer minor units plus an ISO 4217 currency code. Never floats.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount of money in the currency's minor units (cents for USD).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Amount in minor units: 1999 is 19.99 in a two-decimal currency.
    pub minor: u64,
    /// Upper-case ISO 4217 code, e.g. "USD". Checked by [`Money::validate`].
    pub currency: String,
}

/// Currencies whose minor unit is the unit itself (no decimals).
const ZERO_DECIMAL_CURRENCIES: [&str; 3] = ["JPY", "KRW", "VND"];

impl Money {
    pub fn new(minor: u64, currency: &str) -> Self {
        Self {
            minor,
            currency: currency.to_owned(),
        }
    }

    /// Checks the currency code's form; the amount is unsigned so it cannot be negative.
    pub fn validate(&self) -> Result<(), String> {
        let code = self.currency.as_bytes();
        if code.len() == 3 && code.iter().all(u8::is_ascii_uppercase) {
            Ok(())
        } else {
            Err(format!(
                "currency {:?} is not a three-letter upper-case ISO 4217 code",
                self.currency
            ))
        }
    }

    fn decimals(&self) -> u32 {
        if ZERO_DECIMAL_CURRENCIES.contains(&self.currency.as_str()) {
            0
        } else {
            2
        }
    }

    fn symbol(&self) -> Option<&'static str> {
        match self.currency.as_str() {
            "USD" => Some("$"),
            "EUR" => Some("€"),
            "GBP" => Some("£"),
            "JPY" => Some("¥"),
            _ => None,
        }
    }
}

impl fmt::Display for Money {
    /// Shop display form: `$19.99`, `€5.00`, `¥1200`, or `CHF 12.50` for currencies without a symbol.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.symbol() {
            Some(symbol) => f.write_str(symbol)?,
            None => write!(f, "{} ", self.currency)?,
        }
        let decimals = self.decimals();
        if decimals == 0 {
            return write!(f, "{}", self.minor);
        }
        let scale = 10u64.pow(decimals);
        write!(
            f,
            "{}.{:0width$}",
            self.minor / scale,
            self.minor % scale,
            width = decimals as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_minor_units_per_currency() {
        assert_eq!(Money::new(1999, "USD").to_string(), "$19.99");
        assert_eq!(Money::new(500, "EUR").to_string(), "€5.00");
        assert_eq!(Money::new(7, "GBP").to_string(), "£0.07");
        assert_eq!(Money::new(1200, "JPY").to_string(), "¥1200");
        assert_eq!(Money::new(1250, "CHF").to_string(), "CHF 12.50");
    }

    #[test]
    fn rejects_malformed_currency_codes() {
        assert!(Money::new(1, "USD").validate().is_ok());
        for bad in ["usd", "US", "USDX", "U$D", ""] {
            assert!(Money::new(1, bad).validate().is_err(), "{bad:?} accepted");
        }
    }
}
