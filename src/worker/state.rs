//! What one isolate builds once and every request then shares: the resolved config, the router
//! keys and the CORS policy.
//!
//! The config comes from the `SWITCHYARD_CONFIG` variable when set, else the built-in
//! `switchyard.toml`. A config that fails validation is kept as its error, so every request
//! answers the same clear 500 (file, line, reason) instead of the isolate crashing.

use crate::core::auth::{AdminKeys, RouterKeys};
use crate::core::config::{Config, ConfigError};
use crate::core::cors::CorsPolicy;
use crate::core::error::{ErrorKind, RouterError};
use crate::core::llm_router::ChoiceCache;
use crate::BUILTIN_CONFIG;
use std::cell::RefCell;
use std::rc::Rc;
use worker::Env;

/// Name of the variable that replaces the built-in config.
pub const CONFIG_VAR: &str = "SWITCHYARD_CONFIG";

pub struct State {
    pub config: Config,
    pub keys: RouterKeys,
    pub admin_keys: AdminKeys,
    pub cors: CorsPolicy,
    /// Where the config came from: `builtin` or `SWITCHYARD_CONFIG`.
    pub config_source: &'static str,
    /// Values of every secret the config names, to scrub from anything sent out.
    pub secret_values: Vec<String>,
    /// The LLM router's recent choices, per isolate.
    pub llm_choices: RefCell<ChoiceCache>,
}

thread_local! {
    static STATE: RefCell<Option<Result<Rc<State>, ConfigError>>> = const { RefCell::new(None) };
}

/// The isolate's state, built on first use.
pub fn get(env: &Env) -> Result<Rc<State>, RouterError> {
    let cached = STATE.with(|s| s.borrow().clone());
    let loaded = match cached {
        Some(loaded) => loaded,
        None => {
            let loaded = load(env).map(Rc::new);
            STATE.with(|s| *s.borrow_mut() = Some(loaded.clone()));
            loaded
        }
    };
    loaded.map_err(|e| RouterError::new(ErrorKind::Configuration, format!("invalid Switchyard config: {e}")))
}

/// A secret or plain variable by name; empty values count as unset.
pub fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .filter(|v| !v.is_empty())
}

fn load(env: &Env) -> Result<State, ConfigError> {
    let (source, config) = match env.var(CONFIG_VAR).map(|v| v.to_string()) {
        Ok(text) if !text.trim().is_empty() => (CONFIG_VAR, Config::parse(CONFIG_VAR, &text)?),
        _ => ("builtin", Config::parse("switchyard.toml", BUILTIN_CONFIG)?),
    };
    let key_names: Vec<&str> = config.server.auth_keys.iter().map(String::as_str).collect();
    let keys = RouterKeys::resolve(&key_names, config.server.allow_unauthenticated, |name| secret(env, name));
    if matches!(keys, RouterKeys::Open) {
        worker::console_warn!(
            "{}",
            serde_json::json!({"event": "open_router", "message": "[server] allow_unauthenticated = true: anyone who can reach this router spends its upstream keys"})
        );
    }
    let admin_names: Vec<&str> = config.server.admin_keys.iter().map(String::as_str).collect();
    let admin_keys = AdminKeys::resolve(&admin_names, |name| secret(env, name));
    let secret_values = config.secret_names().into_iter().filter_map(|name| secret(env, name)).collect();
    let cache_ms = config.llm_router.as_ref().map_or(0, |s| s.cache_seconds) as f64 * 1000.0;
    // The seed only has to be unknown outside the isolate; it is not a key.
    let seed = (js_sys::Math::random() * u64::MAX as f64) as u64;
    Ok(State {
        llm_choices: RefCell::new(ChoiceCache::new(cache_ms, seed)),
        cors: CorsPolicy::new(&config.server.cors_origins),
        keys,
        admin_keys,
        config_source: source,
        secret_values,
        config,
    })
}
