//! Config validation: every problem is reported with file, line and a reason a person can act on.

use switchyard::core::config::Config;
use switchyard::BUILTIN_CONFIG;

const VALID: &str = r#"
[providers.p]
kind = "openai"
base_url = "http://localhost:11434/v1"

[models.m]
provider = "p"
context_window = 8192

[[routes]]
name = "r"
models = ["m"]

[default]
route = "r"
"#;

/// The error for `VALID` with `from` replaced by `to`.
fn error_for(from: &str, to: &str) -> String {
    let text = VALID.replacen(from, to, 1);
    assert_ne!(text, VALID, "replacement {from:?} did not apply");
    Config::parse("test.toml", &text).expect_err("config should be rejected").to_string()
}

#[test]
fn the_builtin_config_is_valid() {
    let config = Config::parse("switchyard.toml", BUILTIN_CONFIG).unwrap();
    assert!(config.route(&config.default_route).is_some());
}

#[test]
fn a_minimal_config_is_valid_and_fills_defaults() {
    let config = Config::parse("test.toml", VALID).unwrap();
    assert!(config.server.auth_keys.is_empty());
    assert_eq!(config.server.max_body_bytes, switchyard::core::config::DEFAULT_MAX_BODY_BYTES);
    assert_eq!(config.model("m").unwrap().upstream, "m");
}

/// Defaults and references are resolved by validation, once: nothing downstream reads a raw value.
#[test]
fn validation_resolves_defaults_names_and_regexes() {
    let text = r#"
[providers.p]
kind = "openai"
base_url = "http://localhost:11434/v1/"

[models.m]
provider = "p"
upstream = "llama3.2:3b"
context_window = 8192

[models.slow]
provider = "p"
context_window = 8192
timeout_ms = 90000

[[routes]]
name = "code"
models = ["m", "slow"]
keywords = ['(?i)\bsql\b']
unless = ['(?i)\bjoke\b']
min_tokens = 3
max_tokens = 900
exemplars = ["Write a SQL join"]
semantic_confirm = true

[[routes]]
name = "poems"
models = ["m"]
exemplars = ["Write a poem"]
threshold = 0.4

[[routes]]
name = "r"
models = ["m"]

[default]
route = "r"

[semantic]
threshold = 0.3

[upstream]
timeout_ms = 5000
"#;
    let config = Config::parse("test.toml", text).unwrap();
    assert_eq!(config.provider("p").unwrap().base_url, "http://localhost:11434/v1");
    let (m, slow) = (config.model("m").unwrap(), config.model("slow").unwrap());
    assert_eq!((m.upstream.as_str(), m.timeout_ms), ("llama3.2:3b", 5000));
    assert_eq!((slow.upstream.as_str(), slow.timeout_ms), ("slow", 90000));

    let code = config.route("code").unwrap();
    assert_eq!((code.rules.tokens.min, code.rules.tokens.max), (Some(3), Some(900)));
    assert!(code.rules.keywords[0].is_match("a SQL query") && code.rules.unless[0].is_match("a joke"));
    let semantic = code.semantic.as_ref().unwrap();
    assert_eq!((semantic.threshold, semantic.confirm_keywords), (0.3, true));
    assert_eq!(config.route("poems").unwrap().semantic.as_ref().unwrap().threshold, 0.4);
    assert!(config.route("r").unwrap().semantic.is_none());
    assert!(!config.route("r").unwrap().rules.has_rules());
}

#[test]
fn syntax_errors_name_the_line() {
    let err = error_for("context_window = 8192", "context_window = ");
    assert!(err.starts_with("test.toml:8:"), "{err}");
}

#[test]
fn unknown_keys_are_rejected_with_their_line() {
    let err = error_for("context_window = 8192", "context_window = 8192\ncontext_windw = 1");
    assert!(err.starts_with("test.toml:9:"), "{err}");
    assert!(err.contains("context_windw"), "{err}");
}

#[test]
fn wrong_types_are_rejected() {
    let err = error_for("context_window = 8192", "context_window = \"big\"");
    assert!(err.starts_with("test.toml:8:"), "{err}");
}

#[test]
fn dangling_references_point_at_the_reference() {
    let err = error_for(r#"models = ["m"]"#, r#"models = ["m", "ghost"]"#);
    assert!(err.starts_with("test.toml:12:"), "{err}");
    assert!(err.contains(r#"unknown model "ghost""#), "{err}");

    let err = error_for(r#"provider = "p""#, r#"provider = "q""#);
    assert!(err.starts_with("test.toml:7:"), "{err}");
    assert!(err.contains(r#"unknown provider "q""#), "{err}");

    let err = error_for(r#"route = "r""#, r#"route = "nowhere""#);
    assert!(err.starts_with("test.toml:15:"), "{err}");
}

#[test]
fn bad_regexes_are_rejected_with_their_line() {
    let err = error_for(r#"models = ["m"]"#, "models = [\"m\"]\nkeywords = ['(unclosed']");
    // The pattern itself: validation compiles each regex once, where its place is still known.
    assert!(err.starts_with("test.toml:13:13: "), "{err}");
    assert!(err.contains("invalid regex"), "{err}");
}

#[test]
fn impossible_bounds_and_thresholds_are_rejected() {
    let err = error_for(r#"models = ["m"]"#, "models = [\"m\"]\nmin_tokens = 10\nmax_tokens = 5");
    assert!(err.contains("min_tokens is above max_tokens"), "{err}");
    let err = error_for(r#"models = ["m"]"#, "models = [\"m\"]\nthreshold = 1.5");
    assert!(err.contains("threshold must be in [-1, 1]"), "{err}");
}

#[test]
fn a_pasted_key_is_refused_without_being_echoed() {
    let err = error_for(
        r#"base_url = "http://localhost:11434/v1""#,
        "base_url = \"http://localhost:11434/v1\"\napi_key = \"sk-proj-abcdef123456\"",
    );
    assert!(err.contains("must name a secret"), "{err}");
    assert!(!err.contains("sk-proj-abcdef123456"), "{err}");
}

#[test]
fn names_that_collide_or_are_reserved_are_rejected() {
    assert!(error_for(r#"name = "r""#, r#"name = "m""#).contains("same name as a model"));
    assert!(error_for(r#"name = "r""#, r#"name = "auto""#).contains("reserved"));
    assert!(error_for(r#"name = "r""#, r#"name = "two words""#).contains("reserved or has characters"));
    let err = error_for("[default]", "[[routes]]\nname = \"r\"\nmodels = [\"m\"]\n\n[default]");
    assert!(err.contains("defined twice"), "{err}");
}

#[test]
fn provider_urls_must_be_http() {
    let err = error_for("http://localhost:11434/v1", "ftp://localhost/v1");
    assert!(err.contains("must be http:// or https://"), "{err}");
    let err = error_for("http://localhost:11434/v1", "not a url");
    assert!(err.contains("is not a URL"), "{err}");
}

#[test]
fn unknown_provider_kinds_are_rejected() {
    let err = error_for(r#"kind = "openai""#, r#"kind = "carrier-pigeon""#);
    assert!(err.starts_with("test.toml:3:"), "{err}");
}

#[test]
fn provider_headers_name_secrets_and_cannot_replace_the_routers_own() {
    let base = |headers: &str| {
        format!(
            "[providers.home]\nkind = \"openai\"\nbase_url = \"https://ollama.example.com/v1\"\nheaders = {headers}\n\n[models.m]\nprovider = \"home\"\ncontext_window = 8192\n\n[[routes]]\nname = \"chat\"\nmodels = [\"m\"]\n\n[default]\nroute = \"chat\"\n"
        )
    };
    let config = switchyard::core::config::Config::parse(
        "t.toml",
        &base(r#"{ "CF-Access-Client-Id" = "HOME_ID", "CF-Access-Client-Secret" = "HOME_SECRET" }"#),
    )
    .unwrap();
    let names = config.secret_names();
    assert!(names.contains(&"HOME_ID") && names.contains(&"HOME_SECRET"));
    let e =
        switchyard::core::config::Config::parse("t.toml", &base(r#"{ "Authorization" = "X" }"#)).unwrap_err();
    assert!(e.message.contains("Authorization"), "{e}");
    let e = switchyard::core::config::Config::parse("t.toml", &base(r#"{ "X-Token" = "sk-live-abc" }"#))
        .unwrap_err();
    assert!(e.message.contains("must name a secret"), "{e}");
    assert!(!e.to_string().contains("sk-live-abc"));
}

/// The `FILE:LINE:COLUMN: ` prefix of the first place `needle` stands in `text`.
fn place_of(file: &str, text: &str, needle: &str) -> String {
    let offset = text.find(needle).unwrap_or_else(|| panic!("{needle:?} not in the text"));
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..offset].matches('\n').count() + 1;
    let key = text[line_start..].find(" = ").unwrap() + " = ".len() + 1;
    format!("{file}:{line}:{key}: ")
}

#[test]
fn out_of_range_settings_point_at_their_value() {
    for (from, to, says) in [
        ("max_retries = 1", "max_retries = 11", "upstream.max_retries must be at most 10"),
        ("backoff_max_ms = 4000", "backoff_max_ms = 3600001", "at most 3600000 ms"),
        ("top_k = 2", "top_k = 0", "semantic.top_k must be at least 1"),
        ("max_body_bytes = 4194304", "max_body_bytes = 100", "server.max_body_bytes must be at least 1024"),
    ] {
        let text = BUILTIN_CONFIG.replacen(from, to, 1);
        assert_ne!(text, BUILTIN_CONFIG, "{from:?} is not in the built-in config");
        let err = Config::parse("t.toml", &text).unwrap_err().to_string();
        assert!(err.starts_with(&place_of("t.toml", &text, to)), "{to}: {err}");
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn upstream_policy_is_validated() {
    let text = switchyard::BUILTIN_CONFIG.replace("backoff_max_ms = 4000", "backoff_max_ms = 100");
    let e = switchyard::core::config::Config::parse("t.toml", &text).unwrap_err();
    assert!(e.message.contains("backoff_base_ms"), "{e}");
    // A timer of a month would overflow the runtime's 32-bit milliseconds and fire at once.
    let text = switchyard::BUILTIN_CONFIG.replace("timeout_ms = 60000", "timeout_ms = 2592000000");
    let e = switchyard::core::config::Config::parse("t.toml", &text).unwrap_err();
    assert!(e.message.contains("at most 3600000 ms"), "{e}");
}

#[test]
fn the_classifier_section_names_a_file_in_the_model_folder() {
    let with = |section: &str| format!("{VALID}\n[classifier]\n{section}\n");
    let config = Config::parse("test.toml", &with("path = \"head.json\"")).unwrap();
    let settings = config.classifier.unwrap();
    assert_eq!((settings.path.as_str(), settings.min_confidence), ("head.json", 0.6));
    assert!(Config::parse("test.toml", VALID).unwrap().classifier.is_none());
    for (section, says) in [
        ("path = \"../secrets.json\"", "inside the model folder"),
        ("path = \"/etc/passwd\"", "inside the model folder"),
        ("path = \"head.json\"\nmin_confidence = 1.5", "min_confidence must be in (0, 1]"),
    ] {
        let err = Config::parse("test.toml", &with(section)).unwrap_err().to_string();
        assert!(err.starts_with("test.toml:18:") || err.starts_with("test.toml:19:"), "{err}");
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn the_routing_encoder_is_minilm_unless_a_static_table_in_the_model_folder_is_named() {
    use switchyard::core::config::RoutingEncoderChoice;
    let with = |line: &str| Config::parse("test.toml", &format!("{VALID}\n[semantic]\n{line}\n"));
    assert_eq!(Config::parse("test.toml", VALID).unwrap().semantic.encoder, RoutingEncoderChoice::MiniLm);
    assert_eq!(
        with("encoder = \"router.static\"").unwrap().semantic.encoder,
        RoutingEncoderChoice::Static { path: "router.static".into() }
    );
    for wrong in ["\"../router.static\"", "\"/tmp/router.static\"", "\"encoder.onnx\""] {
        let err = with(&format!("encoder = {wrong}")).unwrap_err().to_string();
        assert!(err.starts_with("test.toml:18:11:"), "{err}");
        assert!(err.contains("must name a static encoder file inside the model folder"), "{err}");
    }
}

#[test]
fn admin_keys_are_secrets_of_their_own() {
    let with = |server: &str| Config::parse("test.toml", &format!("[server]\n{server}\n{VALID}"));
    let config = with("auth_keys = [\"ROUTER\"]\nadmin_keys = [\"ADMIN\"]").unwrap();
    assert_eq!(config.server.admin_keys, ["ADMIN"]);
    assert!(config.secret_names().contains(&"ADMIN"));
    let err = with("auth_keys = [\"KEY\"]\nadmin_keys = [\"KEY\"]").unwrap_err().to_string();
    assert!(err.starts_with("test.toml:3:15:") && err.contains("is also a router key"), "{err}");
}

#[test]
fn an_open_router_is_asked_for_and_never_alongside_keys() {
    let with = |server: &str| Config::parse("test.toml", &format!("[server]\n{server}\n{VALID}"));
    assert!(!Config::parse("test.toml", VALID).unwrap().server.allow_unauthenticated);
    assert!(with("allow_unauthenticated = true").unwrap().server.allow_unauthenticated);
    let err = with("auth_keys = [\"KEY\"]\nallow_unauthenticated = true").unwrap_err().to_string();
    assert!(err.starts_with("test.toml:3:25:") && err.contains("choose one"), "{err}");
}

#[test]
fn a_key_pasted_where_a_list_belongs_is_pointed_at_not_printed() {
    let key = "sk-live-0123456789abcdef";
    let err = Config::parse("test.toml", &format!("[server]\nauth_keys = \"{key}\"\n{VALID}")).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("test.toml:2:13:") && !text.contains("0123456789"), "{text}");
    // A value with a quote in it is left out whole too.
    let err =
        Config::parse("test.toml", &format!("[server]\nauth_keys = 'sk\"live-{key}'\n{VALID}")).unwrap_err();
    assert!(!err.to_string().contains("0123456789"), "{err}");
}

#[test]
fn base_urls_carry_no_credentials_and_leave_loopback_only_encrypted() {
    let with = |url: &str| error_for("http://localhost:11434/v1", url);
    for url in
        ["https://user:sk-live-0123456789@api.example/v1", "https://api.example/v1?key=sk-live-0123456789"]
    {
        let err = with(url);
        assert!(err.starts_with("test.toml:4:12:") && !err.contains("sk-live"), "{err}");
    }
    assert!(with("http://api.example/v1").contains("allow_plain_http"));
    assert!(with("ftp://api.example/v1").contains("must be http:// or https://"));
    for loopback in [
        "http://127.0.0.1:8080/v1",
        "http://[::1]:8080/v1",
        "http://ollama.localhost/v1",
        "https://api.example/v1",
    ] {
        let text = VALID.replace("http://localhost:11434/v1", loopback);
        assert!(Config::parse("test.toml", &text).is_ok(), "{loopback}");
    }
    let opted =
        VALID.replace("http://localhost:11434/v1\"", "http://gpu-box.lan/v1\"\nallow_plain_http = true");
    assert!(Config::parse("test.toml", &opted).is_ok());
}
