//! `switchyard`: the native command line for config checks and offline routing decisions.
//!
//! It runs the same `core` code as the Worker, so what it prints is what the edge would decide.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use clap::{Parser, Subcommand};
    use std::io::Read;
    use std::process::ExitCode;
    use switchyard::core::api::route_json;
    use switchyard::core::request::ChatRequest;
    use switchyard::core::router::Router;
    use switchyard::core::tokens::estimate_text_tokens;
    use switchyard::BUILTIN_CONFIG;

    #[derive(Parser)]
    #[command(name = "switchyard", version, about = "Smart LLM router: config checks and offline routing")]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Validate a config file; prints FILE:LINE:COLUMN: reason on error.
        CheckConfig {
            /// Config file (default: the built-in switchyard.toml).
            file: Option<String>,
        },
        /// Print the routing decision for a prompt, as POST /v1/route would.
        Route {
            #[arg(long)]
            config: Option<String>,
            /// The `model` field: auto, a route name or a model id.
            #[arg(long, default_value = "auto")]
            model: String,
            /// Read a whole chat request body (JSON) from this file instead of a prompt.
            #[arg(long, conflicts_with = "prompt")]
            request: Option<String>,
            /// The user message.
            prompt: Option<String>,
        },
        /// Estimate the tokens of text read from stdin.
        Tokens,
    }

    pub fn main() -> ExitCode {
        match run(Cli::parse()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        }
    }

    fn load(config: Option<&str>) -> Result<Router, String> {
        match config {
            None => {
                Router::from_toml("switchyard.toml (built in)", BUILTIN_CONFIG).map_err(|e| e.to_string())
            }
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
                Router::from_toml(path, &text).map_err(|e| e.to_string())
            }
        }
    }

    fn run(cli: Cli) -> Result<(), String> {
        match cli.command {
            Command::CheckConfig { file } => {
                let router = load(file.as_deref())?;
                println!(
                    "ok: {} routes, {} models, {} providers; default route {:?}",
                    router.config.routes.len(),
                    router.config.models.len(),
                    router.config.providers.len(),
                    router.config.default_route()
                );
                Ok(())
            }
            Command::Route { config, model, request, prompt } => {
                let router = load(config.as_deref())?;
                let request = match (request, prompt) {
                    (Some(path), _) => {
                        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
                        ChatRequest::parse(&bytes)
                    }
                    (None, Some(prompt)) => ChatRequest::from_value(serde_json::json!({
                        "model": model,
                        "messages": [{"role": "user", "content": prompt}],
                    })),
                    (None, None) => return Err("give a prompt or --request FILE".into()),
                }
                .map_err(|e| e.message)?;
                let decision = router.decide(&request).map_err(|e| e.message)?;
                let json = route_json(&decision, &[]);
                println!("{}", serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?);
                Ok(())
            }
            Command::Tokens => {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).map_err(|e| format!("cannot read stdin: {e}"))?;
                println!("{}", estimate_text_tokens(&text));
                Ok(())
            }
        }
    }
}
