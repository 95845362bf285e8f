//! Bearer-key authentication against the router's own keys.
//!
//! Keys are compared in constant time (`subtle`), so response timing does not reveal how much of
//! a guessed key was right. A config that asks for auth but whose key secrets are all missing
//! fails closed with a 500 naming the secret, never open.

use crate::core::error::{ErrorKind, RouterError};
use subtle::ConstantTimeEq;

/// The router keys in force: `Open` only when the config lists no key names at all.
#[derive(Debug, Clone)]
pub enum RouterKeys {
    Open,
    Keys(Vec<String>),
    /// Key names are configured but none of their secrets is set.
    Missing(Vec<String>),
}

impl RouterKeys {
    /// `names` are the configured secret names; `lookup` returns a secret's value.
    pub fn resolve(names: &[&str], lookup: impl Fn(&str) -> Option<String>) -> RouterKeys {
        if names.is_empty() {
            return RouterKeys::Open;
        }
        let keys: Vec<String> = names.iter().filter_map(|n| lookup(n)).filter(|k| !k.is_empty()).collect();
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
            RouterKeys::Missing(names) => {
                return Err(RouterError::new(
                    ErrorKind::Configuration,
                    format!(
                        "server.auth_keys names {} but no such secret is set; set one with `wrangler secret put NAME` (or in .dev.vars locally)",
                        names.join(", ")
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
        // Check every key so the time taken does not depend on which one matched.
        let mut matched = subtle::Choice::from(0u8);
        for key in keys {
            matched |= presented.as_bytes().ct_eq(key.as_bytes());
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
        AdminKeys(RouterKeys::resolve(names, lookup))
    }

    /// Checks an `Authorization` header value; `router` tells a router key from a wrong key.
    pub fn check(&self, authorization: Option<&str>, router: &RouterKeys) -> Result<(), RouterError> {
        if matches!(self.0, RouterKeys::Open) {
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
        RouterKeys::resolve(&["A", "B"], |n| (n == "B").then(|| "sk-router-123".to_string()))
    }

    #[test]
    fn accepts_only_the_configured_key() {
        assert!(keys().check(Some("Bearer sk-router-123")).is_ok());
        assert_eq!(keys().check(Some("Bearer sk-router-124")).unwrap_err().status(), 401);
        assert_eq!(keys().check(Some("sk-router-123")).unwrap_err().status(), 401);
        assert_eq!(keys().check(None).unwrap_err().status(), 401);
    }

    #[test]
    fn missing_secrets_fail_closed() {
        let keys = RouterKeys::resolve(&["ROUTER_KEY"], |_| None);
        let err = keys.check(Some("Bearer anything")).unwrap_err();
        assert_eq!(err.status(), 500);
        assert!(err.message.contains("ROUTER_KEY"));
    }

    #[test]
    fn admin_endpoints_take_only_admin_keys_and_are_off_without_them() {
        let admin = AdminKeys::resolve(&["ADMIN"], |n| (n == "ADMIN").then(|| "sk-admin-456".to_string()));
        assert!(admin.check(Some("Bearer sk-admin-456"), &keys()).is_ok());
        assert_eq!(admin.check(Some("Bearer sk-router-123"), &keys()).unwrap_err().status(), 403);
        assert_eq!(admin.check(Some("Bearer sk-wrong"), &keys()).unwrap_err().status(), 401);
        assert_eq!(admin.check(None, &keys()).unwrap_err().status(), 401);
        let off = AdminKeys::resolve(&[], |_| None);
        assert_eq!(off.check(Some("Bearer sk-admin-456"), &keys()).unwrap_err().status(), 403);
        let unset = AdminKeys::resolve(&["ADMIN"], |_| None);
        assert_eq!(unset.check(Some("Bearer sk-admin-456"), &keys()).unwrap_err().status(), 500);
    }

    #[test]
    fn no_key_names_means_open() {
        assert!(RouterKeys::resolve(&[], |_| None).check(None).is_ok());
    }
}
