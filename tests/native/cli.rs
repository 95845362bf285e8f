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

    let (ok, _, stderr) = switchyard(&["route", "--model", "gpt-17", "hi"]);
    assert!(!ok);
    assert!(stderr.contains("does not exist"), "{stderr}");
}
