//! Bearer-key authentication against the router's own keys.
//!
//! Keys are compared as SHA-256 digests in constant time (`subtle`): every comparison is of 32
//! bytes, whatever the lengths, so response timing reveals neither how much of a guessed key was
//! right nor how long the key is. A config that asks for auth but whose key secrets are all
//! missing, or one of whose keys is shorter than [`MIN_KEY_CHARS`], fails closed with a 500
//! naming the secret (never its value), never open.
//!
//! A router with no key at all is open only when the operator asks for it
//! (`[server] allow_unauthenticated = true`): a config that forgot `auth_keys` must not spend the
//! upstream keys for anyone who finds the URL, so it serves no call until it is fixed.

use crate::core::error::{ErrorKind, RouterError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The shortest router or admin key accepted: a shorter one can be guessed.
pub const MIN_KEY_CHARS: usize = 16;

/// The router keys in force.
#[derive(Debug, Clone)]
pub enum RouterKeys {
    /// No key names, and the config asks for an open router.
    Open,
    /// No key names, and the config does not ask for an open router: every call fails closed.
    NoneNamed,
    Keys(Vec<String>),
    /// Key names are configured but none of their secrets is set.
    Missing(Vec<String>),
    /// The secret of this name holds a key shorter than [`MIN_KEY_CHARS`].
    TooShort(String),
}

impl RouterKeys {
    /// `names` are the configured secret names; `allow_unauthenticated` opens a router that
    /// names none; `lookup` returns a secret's value.
    pub fn resolve(
        names: &[&str],
        allow_unauthenticated: bool,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> RouterKeys {
        if names.is_empty() {
            return if allow_unauthenticated { RouterKeys::Open } else { RouterKeys::NoneNamed };
        }
        let named: Vec<(&str, String)> =
            names.iter().filter_map(|n| lookup(n).map(|k| (*n, k))).filter(|(_, k)| !k.is_empty()).collect();
        if let Some((name, _)) = named.iter().find(|(_, k)| k.chars().count() < MIN_KEY_CHARS) {
            return RouterKeys::TooShort(name.to_string());
        }
        let keys: Vec<String> = named.into_iter().map(|(_, k)| k).collect();
        if keys.is_empty() {
            RouterKeys::Missing(names.iter().map(|n| n.to_string()).collect())
        } else {
            RouterKeys::Keys(keys)
        }
    }

    /// Checks an `Authorization` header value.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), RouterError> {
        let keys = match self {
            RouterKeys::Open => return Ok(()),
            RouterKeys::Keys(keys) => keys,
            RouterKeys::NoneNamed => {
                return Err(RouterError::new(
                    ErrorKind::Configuration,
                    "server.auth_keys names no router key, so no call is served: list the secrets of router keys in [server] auth_keys, or set [server] allow_unauthenticated = true to serve anyone",
                ))
            }
            RouterKeys::Missing(names) => {
                return Err(RouterError::new(
                    ErrorKind::Configuration,
                    format!(
                        "server.auth_keys names {} but no such secret is set; set one with `wrangler secret put NAME` (or in .dev.vars locally)",
                        names.join(", ")
                    ),
                ))
            }
            RouterKeys::TooShort(name) => {
                return Err(RouterError::new(
                    ErrorKind::Configuration,
                    format!(
                        "the key in secret {name} is shorter than {MIN_KEY_CHARS} characters; set a longer one (for example `openssl rand -hex 24`)"
                    ),
                ))
            }
        };
        let presented = authorization.and_then(bearer).unwrap_or("");
        if presented.is_empty() {
            return Err(RouterError::new(
                ErrorKind::Unauthorized,
                "Missing API key: send `Authorization: Bearer <key>` with a Switchyard router key.",
            ));
        }
        // Digests are all 32 bytes, and every key is checked, so the time taken depends neither
        // on the keys' lengths nor on which one matched.
        let presented = Sha256::digest(presented.as_bytes());
        let mut matched = subtle::Choice::from(0u8);
        for key in keys {
            matched |= presented.as_slice().ct_eq(Sha256::digest(key.as_bytes()).as_slice());
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(RouterError::new(ErrorKind::Unauthorized, "Incorrect API key provided."))
        }
    }

    /// The key values, for redacting them from anything sent out.
    pub fn values(&self) -> &[String] {
        match self {
            RouterKeys::Keys(keys) => keys,
            _ => &[],
        }
    }
}

/// The keys of the admin endpoints (`/v1/admin/*`), which read the decision log. A router key
/// never opens them: it gets a 403 that says so; no key, or a wrong one, a 401. With no
/// `admin_keys` configured the endpoints are off (403), never open.
#[derive(Debug, Clone)]
pub struct AdminKeys(RouterKeys);

impl AdminKeys {
    pub fn resolve(names: &[&str], lookup: impl Fn(&str) -> Option<String>) -> AdminKeys {
        AdminKeys(RouterKeys::resolve(names, false, lookup))
    }

    /// Checks an `Authorization` header value; `router` tells a router key from a wrong key.
    pub fn check(&self, authorization: Option<&str>, router: &RouterKeys) -> Result<(), RouterError> {
        if matches!(self.0, RouterKeys::NoneNamed) {
            return Err(RouterError::new(
                ErrorKind::Forbidden,
                "The admin endpoints are off: list admin key secrets in [server] admin_keys.",
            ));
        }
        match self.0.check(authorization) {
            Err(e) if e.kind == ErrorKind::Unauthorized && authorization.is_some() && router.has_keys() => {
                if router.check(authorization).is_ok() {
                    Err(RouterError::new(
                        ErrorKind::Forbidden,
                        "A router key cannot use the admin endpoints: use a key from [server] admin_keys.",
                    ))
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }

    pub fn values(&self) -> &[String] {
        self.0.values()
    }
}

impl RouterKeys {
    /// Whether keys are configured and set (neither open nor missing).
    pub fn has_keys(&self) -> bool {
        matches!(self, RouterKeys::Keys(_))
    }
}

/// The key in an `Authorization: Bearer <key>` header value.
pub fn bearer(authorization: &str) -> Option<&str> {
    authorization.strip_prefix("Bearer ").or_else(|| authorization.strip_prefix("bearer ")).map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> RouterKeys {
        RouterKeys::resolve(&["A", "B"], false, |n| (n == "B").then(|| "sk-router-0123456789".to_string()))
    }

    #[test]
    fn accepts_only_the_configured_key() {
        assert!(keys().check(Some("Bearer sk-router-0123456789")).is_ok());
        assert_eq!(keys().check(Some("Bearer sk-router-0123456788")).unwrap_err().status(), 401);
        assert_eq!(keys().check(Some("sk-router-0123456789")).unwrap_err().status(), 401);
        assert_eq!(keys().check(None).unwrap_err().status(), 401);
    }

    #[test]
    fn missing_secrets_fail_closed() {
        let keys = RouterKeys::resolve(&["ROUTER_KEY"], false, |_| None);
        let err = keys.check(Some("Bearer anything")).unwrap_err();
        assert_eq!(err.status(), 500);
        assert!(err.message.contains("ROUTER_KEY"));
    }

    #[test]
    fn admin_endpoints_take_only_admin_keys_and_are_off_without_them() {
        let admin =
            AdminKeys::resolve(&["ADMIN"], |n| (n == "ADMIN").then(|| "sk-admin-0123456789".to_string()));
        assert!(admin.check(Some("Bearer sk-admin-0123456789"), &keys()).is_ok());
        assert_eq!(admin.check(Some("Bearer sk-router-0123456789"), &keys()).unwrap_err().status(), 403);
        assert_eq!(admin.check(Some("Bearer sk-wrong"), &keys()).unwrap_err().status(), 401);
        assert_eq!(admin.check(None, &keys()).unwrap_err().status(), 401);
        let off = AdminKeys::resolve(&[], |_| None);
        assert_eq!(off.check(Some("Bearer sk-admin-0123456789"), &keys()).unwrap_err().status(), 403);
        let unset = AdminKeys::resolve(&["ADMIN"], |_| None);
        assert_eq!(unset.check(Some("Bearer sk-admin-0123456789"), &keys()).unwrap_err().status(), 500);
    }

    #[test]
    fn a_short_key_fails_closed_naming_its_secret_not_its_value() {
        let keys = RouterKeys::resolve(&["A", "B"], false, |n| {
            Some(if n == "A" { "sk-short" } else { "sk-long-enough-0123" }.into())
        });
        let err = keys.check(Some("Bearer sk-long-enough-0123")).unwrap_err();
        assert_eq!(err.status(), 500);
        assert!(err.message.contains("secret A") && !err.message.contains("sk-short"), "{}", err.message);
        let admin = AdminKeys::resolve(&["ADMIN"], |_| Some("sk-short".into()));
        assert_eq!(admin.check(Some("Bearer sk-short"), &keys).unwrap_err().status(), 500);
    }

    #[test]
    fn a_presented_key_of_any_length_is_just_wrong() {
        for presented in
            ["", "s", "sk-router-012345678", "sk-router-0123456789-and-more", &"x".repeat(10_000)]
        {
            let header = format!("Bearer {presented}");
            assert_eq!(keys().check(Some(&header)).unwrap_err().status(), 401, "{presented:?}");
        }
    }

    #[test]
    fn no_key_names_fails_closed_unless_an_open_router_is_asked_for() {
        let err = RouterKeys::resolve(&[], false, |_| None).check(None).unwrap_err();
        assert_eq!(err.status(), 500);
        assert!(err.message.contains("allow_unauthenticated"), "{}", err.message);
        assert!(RouterKeys::resolve(&[], false, |_| None)
            .check(Some("Bearer anything-at-all-1234"))
            .is_err());
        assert!(RouterKeys::resolve(&[], true, |_| None).check(None).is_ok());
    }
}
