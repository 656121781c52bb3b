//! API tokens: `byl_<id>_<secret>`. The store keeps only SHA-256 of the secret; a request's
//! token is found by its id and its secret compared in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand_core::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::core::manifest::Timestamp;
use crate::storage::TokenRecord;

/// The prefix that makes byline tokens recognisable (for secret scanners too).
pub const TOKEN_PREFIX: &str = "byl_";

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` metadata.
    #[error("missing authorization: send `authorization: Bearer <token>` (create one with `byline token create`)")]
    Missing,
    /// The metadata is not a bearer token in byline's format.
    #[error("malformed authorization: expected `Bearer byl_<id>_<secret>`")]
    Malformed,
    /// No such token, a wrong secret, revoked or expired (not told apart, on purpose).
    #[error("invalid, revoked or expired token")]
    Invalid,
}

/// A newly created token: the text is shown once and never stored.
pub struct NewToken {
    /// The full token text to give the caller.
    pub text: Zeroizing<String>,
    /// What the store keeps.
    pub record: TokenRecord,
}

/// Creates a token for a publisher.
pub fn create_token(
    publisher: &str,
    admin: bool,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> NewToken {
    let mut id_bytes = [0u8; 6];
    let mut secret = Zeroizing::new([0u8; 32]);
    rand_core::OsRng.fill_bytes(&mut id_bytes);
    rand_core::OsRng.fill_bytes(secret.as_mut());
    let id = hex::encode(id_bytes);
    let secret_text = Zeroizing::new(URL_SAFE_NO_PAD.encode(secret.as_ref()));
    let text = Zeroizing::new(format!("{TOKEN_PREFIX}{id}_{}", secret_text.as_str()));
    NewToken {
        record: TokenRecord {
            id,
            publisher: publisher.to_string(),
            secret_sha256: Sha256::digest(secret_text.as_bytes()).into(),
            admin,
            created_at: now,
            expires_at,
            revoked: false,
        },
        text,
    }
}

/// Splits an `authorization` header value into the token id and its secret.
pub fn parse_bearer(value: &str) -> Result<(String, Zeroizing<String>), AuthError> {
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(AuthError::Malformed)?
        .trim();
    let rest = token
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(AuthError::Malformed)?;
    let (id, secret) = rest.split_once('_').ok_or(AuthError::Malformed)?;
    if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || secret.is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok((id.to_string(), Zeroizing::new(secret.to_string())))
}

/// Checks a presented secret against a stored record at `now`.
pub fn check_token(record: &TokenRecord, secret: &str, now: Timestamp) -> Result<(), AuthError> {
    let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    let matches: bool = presented.ct_eq(&record.secret_sha256).into();
    let expired = record.expires_at.is_some_and(|e| now >= e);
    if !matches || record.revoked || expired {
        return Err(AuthError::Invalid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_token_checks_and_wrong_secret_fails() {
        let now = Timestamp::now();
        let t = create_token("news.example", false, None, now);
        let (id, secret) = parse_bearer(&format!("Bearer {}", t.text.as_str())).unwrap();
        assert_eq!(id, t.record.id);
        assert!(check_token(&t.record, &secret, now).is_ok());
        assert_eq!(check_token(&t.record, "nope", now), Err(AuthError::Invalid));
        let mut revoked = t.record.clone();
        revoked.revoked = true;
        assert_eq!(check_token(&revoked, &secret, now), Err(AuthError::Invalid));
        let mut expired = t.record.clone();
        expired.expires_at = Some(now);
        assert_eq!(check_token(&expired, &secret, now), Err(AuthError::Invalid));
        assert_eq!(parse_bearer("Basic abc").unwrap_err(), AuthError::Malformed);
        assert_eq!(
            parse_bearer("Bearer byl_zz_x").unwrap_err(),
            AuthError::Malformed
        );
    }
}
