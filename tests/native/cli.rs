//! The `switchyard` binary as a user runs it.

use std::process::Command;

fn switchyard(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard")).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn check_config_accepts_the_builtin_and_rejects_a_broken_file_with_its_line() {
    let (ok, stdout, _) = switchyard(&["check-config"]);
    assert!(ok);
    assert!(stdout.starts_with("ok: 5 routes"), "{stdout}");

    let dir = std::env::temp_dir().join(format!("switchyard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.toml");
    let text = switchyard::BUILTIN_CONFIG.replace(r#"route = "chat""#, r#"route = "nowhere""#);
    std::fs::write(&file, text).unwrap();
    let (ok, _, stderr) = switchyard(&["check-config", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("broken.toml:"), "{stderr}");
    assert!(stderr.contains(r#"default.route: unknown route "nowhere""#), "{stderr}");
}

#[test]
fn route_prints_the_decision_as_json() {
    let (ok, stdout, stderr) = switchyard(&["route", "Write a SQL query for the top customers"]);
    assert!(ok, "{stderr}");
    let decision: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(decision["route"], "code");
    assert_eq!(decision["level"], "rules");
    // What it was weighed against: every route with exemplars has its threshold, as the file has it.
    let settings = &decision["settings"];
    assert_eq!(settings["default_route"], "chat");
    let config =
        switchyard::core::config::Config::parse("switchyard.toml", switchyard::BUILTIN_CONFIG).unwrap();
    for route in config.routes.iter().filter(|r| r.semantic.is_some()) {
        let threshold = settings["thresholds"][&route.name].as_f64().unwrap();
        assert!(format!("{threshold}").len() <= 5, "{threshold}: three decimals");
    }
    assert!(settings["token_bounds"].is_object() && settings["cascades"].is_object(), "{settings}");

    let (ok, _, stderr) = switchyard(&["route", "--model", "gpt-17", "hi"]);
    assert!(!ok);
    assert!(stderr.contains("does not exist"), "{stderr}");
}

/// A scratch folder for one test.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Two routes matched by meaning, with thresholds set so high that nothing matches, and a
/// default route; the comment must survive `fit`'s rewrite.
const FIT_CONFIG: &str = r#"
[providers.local]
kind = "openai"
base_url = "http://localhost:11434/v1"

[models.m]
provider = "local"
context_window = 8192

# Poems and stories.
[[routes]]
name = "creative"
models = ["m"]
exemplars = ["Write a short poem about the sea", "Write a haiku about autumn leaves", "Tell me a bedtime story about a fox"]
threshold = 0.95

[[routes]]
name = "code"
models = ["m"]
exemplars = ["Fix this Python function that crashes", "How do I write a SQL join?", "Why does my Rust code not compile?"]
threshold = 0.95

[[routes]]
name = "chat"
models = ["m"]

[default]
route = "chat"
"#;

const FIT_ROWS: &str = r#"{"text": "Write a poem about the mountains at dawn", "label": "creative"}
{"text": "Compose a limerick about a clumsy cat", "label": "creative"}
{"text": "Tell me a story about a dragon who loves books", "label": "creative"}
{"text": "Write a sonnet about the moon", "label": "creative"}
{"text": "My JavaScript loop never ends, what is wrong?", "label": "code"}
{"text": "How do I sort a list of tuples in Python?", "label": "code"}
{"text": "Write a SQL query that counts orders per customer", "label": "code"}
{"text": "Why does this C++ code segfault?", "label": "code"}
{"text": "What is the capital of Canada?", "label": "chat"}
{"text": "How long should I boil an egg?", "label": "chat"}
{"text": "What time zone is Tokyo in?", "label": "chat"}
{"text": "Recommend a good running shoe for beginners", "label": "chat"}
"#;

/// The `accuracy` field of `switchyard eval --json` under a config file.
fn eval_accuracy(config: &std::path::Path, rows: &std::path::Path) -> f64 {
    let (ok, stdout, stderr) =
        switchyard(&["--config", config.to_str().unwrap(), "eval", "--json", rows.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["accuracy"].as_f64().unwrap()
}

#[test]
fn fit_writes_thresholds_that_load_and_give_the_accuracy_it_reports() {
    let dir = scratch("fit");
    let (config, rows) = (dir.join("fit.toml"), dir.join("rows.jsonl"));
    std::fs::write(&config, FIT_CONFIG).unwrap();
    std::fs::write(&rows, FIT_ROWS).unwrap();
    let before = eval_accuracy(&config, &rows);
    assert!((before - 4.0 / 12.0).abs() < 1e-9, "only the default route matches at 0.95: {before}");

    // A dry run prints the same thresholds and writes nothing.
    let (ok, dry, stderr) =
        switchyard(&["--config", config.to_str().unwrap(), "fit", "--dry-run", rows.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), FIT_CONFIG);

    let (ok, stdout, stderr) =
        switchyard(&["--config", config.to_str().unwrap(), "fit", rows.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with(&dry), "fit printed\n{stdout}\nthe dry run printed\n{dry}");
    let reported: Vec<f64> = stdout.lines().next().unwrap()["accuracy ".len()..]
        .split(" -> ")
        .map(|a| a.parse().unwrap())
        .collect();
    assert!((reported[0] - before).abs() < 1e-3, "{stdout}");

    // The written file loads, keeps its comments and the untouched keys, and its thresholds are
    // the ones fit printed, rounded to three decimals.
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.contains("# Poems and stories."), "{written}");
    let loaded = switchyard::core::config::Config::parse("fit.toml", &written).unwrap();
    for route in ["creative", "code"] {
        let line = stdout.lines().find(|l| l.trim_start().starts_with(route)).unwrap();
        let printed: f32 = line.rsplit(" -> ").next().unwrap().trim().parse().unwrap();
        let threshold = loaded.route(route).unwrap().semantic.as_ref().unwrap().threshold;
        assert!((threshold - printed).abs() <= 5e-4, "{route}: wrote {threshold}, printed {printed}");
        assert!(threshold < 0.95, "{route}: threshold not lowered: {threshold}");
    }
    // Routing with the written config scores what fit said it would.
    let after = eval_accuracy(&config, &rows);
    assert!(after > before, "accuracy {before} -> {after}");
    assert!((after - reported[1]).abs() < 0.01, "fit reported {}, eval gives {after}", reported[1]);
}

/// The same decision everywhere, by construction: the CLI binary and the library route one set
/// of requests through the one pipeline, and print the same `/v1/route` JSON.
#[test]
fn the_cli_and_the_library_make_the_same_decisions() {
    use crate::routing::{builtin, decide, index, with_encoder};
    use switchyard::core::{api::route_json, fallback::plan, request::ChatRequest};
    let user = |text: &str| serde_json::json!({"role": "user", "content": text});
    let cases = [
        ("explicit", serde_json::json!({"model": "big", "messages": [user("Write SQL")]})),
        ("explicit", serde_json::json!({"model": "code", "messages": [user("hello")]})),
        ("rules", serde_json::json!({"messages": [user("Write a SQL query for the top customers")]})),
        ("semantic", serde_json::json!({"model": "auto", "messages": [user("Write a poem about my cat")]})),
        (
            "default",
            serde_json::json!({"model": "auto", "messages": [user("What's the capital of Australia?")]}),
        ),
        (
            "semantic",
            serde_json::json!({"model": "auto", "messages": [
                user("Write a limerick about a cat"),
                {"role": "assistant", "content": "There once was a cat..."},
                user("another one?"),
            ]}),
        ),
    ];
    let dir = scratch("same-decisions");
    let (config, level2) = (builtin(), with_encoder(index()));
    for (i, (level, body)) in cases.into_iter().enumerate() {
        let file = dir.join(format!("request-{i}.json"));
        std::fs::write(&file, body.to_string()).unwrap();
        let (ok, stdout, stderr) = switchyard(&["route", "--request", file.to_str().unwrap()]);
        assert!(ok, "{stderr}");
        let from_cli: serde_json::Value = serde_json::from_str(&stdout).unwrap();

        let request = ChatRequest::from_value(body.clone()).unwrap();
        let decision = decide(&config, &level2, &request).unwrap();
        let planned =
            plan(&config, &decision, &request, |name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
        // Byte for byte: what the CLI prints is the library's decision as /v1/route shows it.
        let from_library =
            serde_json::to_string_pretty(&route_json(&config, &decision, &[], &planned)).unwrap();
        assert_eq!(stdout.trim_end(), from_library, "{body}");
        assert_eq!(from_cli["level"], level, "{body}: {from_cli}");
    }
}

#[test]
fn without_the_encoder_the_cli_routes_by_rules_as_the_worker_does() {
    let missing = scratch("no-model").join("nowhere");
    let (ok, stdout, stderr) = switchyard(&[
        "--model-dir",
        missing.to_str().unwrap(),
        "route",
        "Write a SQL query for the top customers",
    ]);
    assert!(ok, "{stderr}");
    let decision: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((decision["route"].as_str(), decision["level"].as_str()), (Some("code"), Some("rules")));
    assert_eq!(decision["signals"]["semantic_available"], false);
    assert!(decision["reasons"].to_string().contains("semantic routing was unavailable"), "{decision}");
    assert!(stderr.contains("semantic routing is unavailable: cannot read"), "{stderr}");
}

#[test]
fn eval_reports_each_level_its_share_and_accuracy() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/routing_eval.jsonl");
    let (ok, stdout, stderr) = switchyard(&["eval", "--json", data]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let levels = report["per_level"].as_object().unwrap();
    // The built-in config decides by keyword, by meaning and by default on this set.
    for level in ["rules", "semantic", "default"] {
        assert!(levels.contains_key(level), "{levels:?}");
    }
    let rows = report["rows"].as_f64().unwrap();
    let decided: f64 = levels.values().map(|m| m["decisions"].as_f64().unwrap()).sum();
    assert_eq!(decided, rows);
    // Each level's accuracy, weighted by its share, adds up to the overall accuracy.
    let weighted: f64 =
        levels.values().map(|m| m["share"].as_f64().unwrap() * m["accuracy"].as_f64().unwrap()).sum();
    assert!((weighted - report["accuracy"].as_f64().unwrap()).abs() < 1e-9, "{report}");
}

#[test]
fn eval_report_writes_a_page_with_every_route_and_every_wrong_row() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/routing_eval.jsonl");
    let page = scratch("eval-report").join("eval.html");
    let (ok, stdout, stderr) = switchyard(&["eval", "--json", "--report", page.to_str().unwrap(), data]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let html = std::fs::read_to_string(&page).unwrap();
    let wrong = (report["rows"].as_f64().unwrap() * (1.0 - report["accuracy"].as_f64().unwrap())).round();
    assert!(html.contains(&format!("Rows that went wrong ({wrong})")), "{html}");
    // A histogram and an accuracy curve for each route with exemplars in the built-in config.
    let config =
        switchyard::core::config::Config::parse("switchyard.toml", switchyard::BUILTIN_CONFIG).unwrap();
    let semantic = config.routes.iter().filter(|r| r.semantic.is_some()).count();
    assert!(semantic > 0);
    assert_eq!(html.matches("<svg").count(), 2 * semantic, "{html}");
    assert!(!html.contains("No scores"), "the encoder was loaded");
}

/// Labelled rows written for the classifier tests (this one and tests/e2e/classifier.test.mjs):
/// three routes, twenty rows each.
const CLASSIFIER_ROWS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/classifier_rows.jsonl");

#[test]
fn train_writes_a_classifier_that_routes_held_out_rows_and_fits_the_config() {
    let dir = scratch("train");
    let (config, rows) = (dir.join("classifier.toml"), dir.join("rows.jsonl"));
    let model_dir = dir.join("model");
    std::fs::create_dir_all(&model_dir).unwrap();
    for file in ["encoder.onnx", "tokenizer.json"] {
        std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/model/").to_owned() + file, model_dir.join(file))
            .unwrap();
    }
    std::fs::write(
        &config,
        format!("{FIT_CONFIG}\n[classifier]\npath = \"head.json\"\nmin_confidence = 0.5\n"),
    )
    .unwrap();
    std::fs::copy(CLASSIFIER_ROWS, &rows).unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["--config", config.to_str().unwrap(), "--model-dir", model_dir.to_str().unwrap()])
            .args(["train", rows.to_str().unwrap()])
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (stdout, _) = run();
    // 12 rows held out (20% of each route); these three topics are easy to tell apart.
    let accuracy: f64 = stdout
        .lines()
        .find(|l| l.starts_with("rows 12"))
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert!(accuracy >= 0.9, "{stdout}");
    assert!(stdout.contains("calibration error"), "{stdout}");
    let head = std::fs::read_to_string(model_dir.join("head.json")).unwrap();
    let routes = ["creative", "code", "chat"];
    let head =
        switchyard::core::classifier::ClassifierHead::from_json(&head, &routes, crate::embedding::encoder())
            .unwrap();
    assert_eq!(head.routes, ["chat", "code", "creative"]);
    // A second run reads the embeddings from the cache instead of embedding again.
    let (_, stderr) = run();
    assert!(stderr.contains("embeddings read from"), "{stderr}");

    // The router now decides with it: exemplar thresholds of 0.95 match nothing, the head does.
    let route = |config: &std::path::Path, prompt: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["--config", config.to_str().unwrap(), "--model-dir", model_dir.to_str().unwrap()])
            .args(["route", prompt])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let decision: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (decision, String::from_utf8_lossy(&out.stderr).to_string())
    };
    for (prompt, expected) in [
        ("Write a short poem about the ocean at night", "creative"),
        ("My Ruby function crashes on empty input, how do I fix it?", "code"),
        ("What is the capital of Australia?", "chat"),
    ] {
        let (decision, _) = route(&config, prompt);
        assert_eq!(
            (decision["route"].as_str(), decision["level"].as_str()),
            (Some(expected), Some("classifier")),
            "{decision}"
        );
        assert_eq!(decision["signals"]["classifier"]["route"], expected);
        assert!(decision["reasons"][0].as_str().unwrap().starts_with("the classifier picked"), "{decision}");
    }
    // An artifact trained for routes the config no longer has is refused, and routing goes on.
    let renamed = dir.join("renamed.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace("name = \"creative\"", "name = \"poetry\"");
    std::fs::write(&renamed, text).unwrap();
    let (decision, stderr) = route(&renamed, "Write a short poem about the ocean at night");
    assert!(stderr.contains("classifier artifact refused") && stderr.contains("\"creative\""), "{stderr}");
    assert_ne!(decision["level"], "classifier");
    assert_eq!(decision["signals"]["classifier"]["available"], false);

    // With no exemplars at all, the head alone still needs the encoder: `eval` uses it, as the
    // router does.
    let bare = dir.join("bare.toml");
    let text: String = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("exemplars") && !l.starts_with("threshold"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&bare, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["--config", bare.to_str().unwrap(), "--model-dir", model_dir.to_str().unwrap()])
        .args(["eval", "--json", rows.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["per_level"]["classifier"]["decisions"].as_u64().unwrap() > 0, "{report}");
}

/// `[semantic] encoder` names the static student: the CLI trains and routes with it from a model
/// folder that holds nothing else (no MiniLM, no tokenizer.json), and its head is refused beside MiniLM.
#[test]
fn the_static_student_trains_and_routes_without_minilm() {
    let dir = scratch("static");
    let (config, rows, model_dir) = (dir.join("static.toml"), dir.join("rows.jsonl"), dir.join("model"));
    std::fs::create_dir_all(&model_dir).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/model/router.static"),
        model_dir.join("router.static"),
    )
    .unwrap();
    let classifier = "[classifier]\npath = \"head.json\"\nmin_confidence = 0.5\n";
    std::fs::write(&config, format!("{FIT_CONFIG}\n[semantic]\nencoder = \"router.static\"\n\n{classifier}"))
        .unwrap();
    std::fs::copy(CLASSIFIER_ROWS, &rows).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["--config", config.to_str().unwrap(), "--model-dir", model_dir.to_str().unwrap()])
            .args(args)
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let stdout = run(&["train", rows.to_str().unwrap()]);
    assert!(stdout.contains("rows 12  accuracy 1.000"), "{stdout}");
    for (prompt, expected) in [
        ("Write a short poem about the ocean at night", "creative"),
        ("My Ruby function crashes on empty input, how do I fix it?", "code"),
        ("What is the capital of Australia?", "chat"),
    ] {
        let decision: serde_json::Value = serde_json::from_str(&run(&["route", prompt])).unwrap();
        assert_eq!(
            (decision["route"].as_str(), decision["level"].as_str()),
            (Some(expected), Some("classifier"))
        );
    }
    let bench: serde_json::Value = serde_json::from_str(&run(&["bench", "--iterations", "3"])).unwrap();
    assert!(bench["encoder"].as_str().unwrap().starts_with("static/all-MiniLM-L6-v2"), "{bench}");

    let head = std::fs::read_to_string(model_dir.join("head.json")).unwrap();
    let refused = switchyard::core::classifier::ClassifierHead::from_json(
        &head,
        &["creative", "code", "chat"],
        crate::embedding::encoder(),
    )
    .unwrap_err();
    assert!(refused.to_string().contains("trained on encoder \"static/"), "{refused}");

    let (ok, _, stderr) = switchyard(&["--config", config.to_str().unwrap(), "build-index"]);
    assert!(!ok && stderr.contains("needs no index"), "{stderr}");

    // Tuned end to end: a new table beside the distilled one, and a head for it; the config
    // routes with it once it names it.
    let stdout = run(&["train", "--tune-encoder", "router.tuned.static", rows.to_str().unwrap()]);
    assert!(stdout.contains("[semantic] encoder = \"router.tuned.static\""), "{stdout}");
    let tuned = std::fs::read(model_dir.join("router.tuned.static")).unwrap();
    assert_ne!(tuned, std::fs::read(model_dir.join("router.static")).unwrap());
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("encoder = \"router.static\"", "encoder = \"router.tuned.static\""))
        .unwrap();
    let decision: serde_json::Value =
        serde_json::from_str(&run(&["route", "Write a short poem about the ocean at night"])).unwrap();
    assert_eq!(
        (decision["route"].as_str(), decision["level"].as_str()),
        (Some("creative"), Some("classifier"))
    );
    for (target, says) in [
        ("router.tuned.static", "would replace the table it starts from"),
        ("../elsewhere.static", "inside the model folder"),
        ("head.json", "ending in .static"),
    ] {
        let (ok, _, stderr) = switchyard(&[
            "--config",
            config.to_str().unwrap(),
            "--model-dir",
            model_dir.to_str().unwrap(),
            "train",
            "--tune-encoder",
            target,
            rows.to_str().unwrap(),
        ]);
        assert!(!ok && stderr.contains(says), "{target}: {stderr}");
    }
}
