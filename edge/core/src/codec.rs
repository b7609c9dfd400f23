//! CBOR encoding (ciborium) for everything the storefront keeps in KV or sends to a stock shard.
//!
//! Decoding never panics: bytes that are not the expected shape come back as [`CodecError`], so a
//! corrupt KV entry degrades one part of a page instead of crashing the worker.

use serde::{de::DeserializeOwned, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("CBOR value is not a valid {type_name}: {reason}")]
pub struct CodecError {
    pub type_name: &'static str,
    pub reason: String,
}

/// Encodes a value as CBOR. Serializing our own types into a `Vec` cannot fail short of running
/// out of memory, so this returns the bytes directly.
pub fn to_cbor<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    ciborium::into_writer(value, &mut out).expect("CBOR encoding into a Vec does not fail");
    out
}

pub fn from_cbor<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    ciborium::from_reader(bytes).map_err(|e| CodecError {
        type_name: std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("value"),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Money, Product, Sku};

    fn product() -> Product {
        Product {
            sku: Sku::parse("MUG-1").unwrap(),
            title: "Mug".into(),
            description: "Stoneware.".into(),
            price: Money::new(1200, "USD"),
            category: "kitchen".into(),
            image: "/images/kitchen.svg".into(),
            vendor: "Potter & Co".into(),
            tags: vec!["ceramic".into()],
            options: vec![],
            variants: vec![],
        }
    }

    #[test]
    fn product_round_trips() {
        let bytes = to_cbor(&product());
        assert_eq!(from_cbor::<Product>(&bytes).unwrap(), product());
    }

    #[test]
    fn corrupt_or_truncated_bytes_are_errors_not_panics() {
        let bytes = to_cbor(&product());
        for cut in 0..bytes.len() {
            assert!(
                from_cbor::<Product>(&bytes[..cut]).is_err(),
                "truncated at {cut} decoded"
            );
        }
        let err = from_cbor::<Product>(b"\xff\x00garbage").unwrap_err();
        assert_eq!(err.type_name, "Product");
        // A well-formed CBOR value of the wrong shape is rejected too.
        assert!(from_cbor::<Product>(&to_cbor(&42u32)).is_err());
    }

    #[test]
    fn invalid_sku_inside_valid_cbor_is_rejected() {
        let mut value = ciborium::Value::serialized(&product()).unwrap();
        if let ciborium::Value::Map(entries) = &mut value {
            entries[0].1 = ciborium::Value::Text("no spaces allowed".into());
        }
        let bytes = to_cbor(&value);
        assert!(from_cbor::<Product>(&bytes).is_err());
    }
}
