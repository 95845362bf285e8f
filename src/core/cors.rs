//! CORS, so a browser page on another origin can call the router directly.
//!
//! Pure header logic: the Worker asks which headers a response to a given `Origin` gets. The
//! decision headers and `Server-Timing` are exposed so browser code can read which model
//! answered and how long each phase took.

use crate::core::headers;

#[derive(Debug, Clone)]
pub struct CorsPolicy {
    any_origin: bool,
    origins: Vec<String>,
}

impl CorsPolicy {
    pub fn new(origins: &[String]) -> CorsPolicy {
        CorsPolicy {
            any_origin: origins.iter().any(|o| o == "*"),
            origins: origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect(),
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it is allowed.
    pub fn allowed_origin(&self, origin: &str) -> Option<String> {
        if self.any_origin {
            Some("*".to_string())
        } else if self.origins.iter().any(|o| *o == origin.trim_end_matches('/').to_ascii_lowercase()) {
            Some(origin.to_string())
        } else {
            None
        }
    }

    /// Headers added to an actual (non-preflight) response.
    pub fn response_headers(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if !self.any_origin {
            headers.push(("vary", "Origin".to_string()));
        }
        if let Some(allowed) = origin.and_then(|o| self.allowed_origin(o)) {
            headers.push(("access-control-allow-origin", allowed.clone()));
            headers.push(("access-control-expose-headers", headers::EXPOSED.join(", ")));
            headers.push(("timing-allow-origin", allowed));
        }
        headers
    }

    /// Headers of a preflight answer, or `None` when the origin is not allowed.
    pub fn preflight_headers(
        &self,
        origin: &str,
        requested_headers: Option<&str>,
    ) -> Option<Vec<(&'static str, String)>> {
        self.allowed_origin(origin)?;
        let mut headers = self.response_headers(Some(origin));
        headers.push(("access-control-allow-methods", "GET, POST, OPTIONS".to_string()));
        headers.push((
            "access-control-allow-headers",
            requested_headers
                .map(str::to_string)
                .unwrap_or_else(|| "authorization, content-type".to_string()),
        ));
        headers.push(("access-control-max-age", "86400".to_string()));
        Some(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_origins_are_echoed_and_others_refused() {
        let policy = CorsPolicy::new(&["https://app.example".to_string()]);
        assert_eq!(policy.allowed_origin("https://app.example").as_deref(), Some("https://app.example"));
        assert_eq!(policy.allowed_origin("https://evil.example"), None);
        assert!(policy.preflight_headers("https://evil.example", None).is_none());
        let headers = policy.response_headers(Some("https://app.example"));
        assert!(headers.contains(&("vary", "Origin".to_string())));
    }

    #[test]
    fn wildcard_allows_any_origin() {
        let policy = CorsPolicy::new(&["*".to_string()]);
        let headers = policy
            .preflight_headers("http://localhost:3000", Some("authorization, content-type, x-stainless-os"))
            .unwrap();
        assert!(headers.contains(&("access-control-allow-origin", "*".to_string())));
        assert!(headers.contains(&(
            "access-control-allow-headers",
            "authorization, content-type, x-stainless-os".to_string()
        )));
    }
}
