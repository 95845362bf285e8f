//! `switchyard`: the native command line. It runs the same `core` and `embed` code as the Worker,
//! so what it prints is what the edge would decide.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use clap::{Parser, Subcommand};
    use indicatif::{ProgressBar, ProgressStyle};
    use std::collections::BTreeMap;
    use std::io::{BufRead, Read};
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::time::Instant;
    use switchyard::core::api::route_json;
    use switchyard::core::evaluation::{fit_thresholds, parse_rows, EvalReport, LabelledRow};
    use switchyard::core::request::ChatRequest;
    use switchyard::core::router::{Router, Semantic};
    use switchyard::core::semantic::ExemplarIndex;
    use switchyard::core::tokens::estimate_text_tokens;
    use switchyard::embed::Encoder;
    use switchyard::BUILTIN_CONFIG;

    #[derive(Parser)]
    #[command(
        name = "switchyard",
        version,
        about = "Smart LLM router: config checks, routing, embeddings, evaluation"
    )]
    struct Cli {
        /// Routing config (default: ./switchyard.toml, else the built-in one).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        /// Folder holding encoder.onnx and index.json.
        #[arg(long, global = true, env = "SWITCHYARD_MODEL_DIR", default_value = "model")]
        model_dir: PathBuf,
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Validate a config; prints FILE:LINE:COLUMN: reason on error.
        CheckConfig {
            /// Config file (same as --config).
            file: Option<PathBuf>,
        },
        /// Print the routing decision for a prompt, as POST /v1/route would.
        Route {
            /// The `model` field: auto, a route name or a model id.
            #[arg(long, default_value = "auto")]
            model: String,
            /// Read a whole chat request body (JSON) from this file instead of a prompt.
            #[arg(long, conflicts_with = "prompt")]
            request: Option<PathBuf>,
            /// The user message.
            prompt: Option<String>,
        },
        /// Estimate the tokens of text read from stdin.
        Tokens,
        /// Embed each line of stdin; prints one JSON array per line.
        Embed,
        /// Embed every route's exemplars into the index (default MODEL_DIR/index.json).
        BuildIndex {
            #[arg(long)]
            out: Option<PathBuf>,
        },
        /// Score the router on labelled JSONL rows {"text", "label"}.
        Eval {
            data: PathBuf,
            /// Print one JSON object instead of tables.
            #[arg(long)]
            json: bool,
        },
        /// Fit per-route thresholds to labelled rows and write them into the config file.
        Fit {
            data: PathBuf,
            /// Show the thresholds without writing them.
            #[arg(long)]
            dry_run: bool,
        },
        /// Time the native encoder (p50/p90 per embedding, load time) and print JSON.
        Bench {
            #[arg(long, default_value_t = 200)]
            iterations: usize,
        },
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

    /// The config path in force and its text; `None` path means the built-in config.
    fn config_source(explicit: Option<&Path>) -> Result<(Option<PathBuf>, String), String> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from("switchyard.toml")).filter(|p| p.exists()),
        };
        match path {
            Some(p) => {
                let text =
                    std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                Ok((Some(p), text))
            }
            None => Ok((None, BUILTIN_CONFIG.to_string())),
        }
    }

    fn load_router(cli: &Cli) -> Result<(Router, Option<PathBuf>), String> {
        load_router_from(cli.config.as_deref())
    }

    fn load_router_from(config: Option<&Path>) -> Result<(Router, Option<PathBuf>), String> {
        let (path, text) = config_source(config)?;
        let name =
            path.as_ref().map_or("switchyard.toml (built in)".to_string(), |p| p.display().to_string());
        Ok((Router::from_toml(&name, &text).map_err(|e| e.to_string())?, path))
    }

    fn load_encoder(model_dir: &Path) -> Result<Encoder, String> {
        let read = |name: &str| {
            let path = model_dir.join(name);
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        Encoder::from_bytes(&read("tokenizer.json")?, &read("encoder.onnx")?).map_err(|e| e.to_string())
    }

    fn progress(len: usize, what: &str) -> ProgressBar {
        let bar = ProgressBar::new(len as u64);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed_precise}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(what.to_string());
        bar
    }

    /// The exemplar index: `index.json` when it matches the config, else the exemplars embedded
    /// now (saying so).
    fn load_index(router: &Router, encoder: &Encoder, model_dir: &Path) -> Result<ExemplarIndex, String> {
        let path = model_dir.join("index.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            match ExemplarIndex::from_json(&text)
                .and_then(|index| index.check(&router.config).map(|()| index))
            {
                Ok(index) => return Ok(index),
                Err(e) => eprintln!("note: {}: {e}; embedding the exemplars now", path.display()),
            }
        }
        build_index(router, encoder)
    }

    fn build_index(router: &Router, encoder: &Encoder) -> Result<ExemplarIndex, String> {
        let total: usize =
            router.config.routes.iter().filter_map(|r| r.semantic.as_ref()).map(|s| s.exemplars.len()).sum();
        let bar = progress(total, "embedding exemplars");
        let index = ExemplarIndex::build(&router.config, |text| {
            bar.inc(1);
            encoder.embed(text)
        })
        .map_err(|e| e.to_string())?;
        bar.finish_and_clear();
        Ok(index)
    }

    fn user_request(model: &str, text: &str) -> Result<ChatRequest, String> {
        ChatRequest::from_value(serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": text}],
        }))
        .map_err(|e| e.message)
    }

    fn read_rows(path: &Path) -> Result<Vec<LabelledRow>, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        parse_rows(&path.display().to_string(), &text)
    }

    /// Every row's request and routing-text embedding, computed once.
    fn embed_rows(
        router: &Router,
        encoder: &Encoder,
        rows: &[LabelledRow],
    ) -> Result<Vec<(ChatRequest, Vec<f32>)>, String> {
        for row in rows {
            if router.config.route(&row.label).is_none() {
                return Err(format!("label {:?} is not a route of the config", row.label));
            }
        }
        let bar = progress(rows.len(), "embedding rows");
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let request = user_request("auto", &row.text)?;
            let embedding = encoder.embed(&router.routing_text(&request)).map_err(|e| e.to_string())?;
            out.push((request, embedding));
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(out)
    }

    fn predictions(
        router: &Router,
        index: &ExemplarIndex,
        rows: &[LabelledRow],
        embedded: &[(ChatRequest, Vec<f32>)],
    ) -> Vec<(String, String)> {
        rows.iter()
            .zip(embedded)
            .map(|(row, (request, embedding))| {
                let predicted = router
                    .decide(request, Some(Semantic { query: embedding, index }))
                    .map(|d| d.route)
                    .unwrap_or_else(|_| router.config.default_route.clone());
                (row.label.clone(), predicted)
            })
            .collect()
    }

    fn print_report(report: &EvalReport) {
        println!("rows {}  accuracy {:.3}  macro-F1 {:.3}", report.rows, report.accuracy, report.macro_f1);
        if let Some(oos) = report.oos_recall {
            println!("out-of-scope recall {oos:.3}");
        }
        println!("\n{:<16} {:>9} {:>7} {:>7} {:>8}", "route", "precision", "recall", "F1", "support");
        for (route, m) in &report.per_route {
            println!("{route:<16} {:>9.3} {:>7.3} {:>7.3} {:>8}", m.precision, m.recall, m.f1, m.support);
        }
        let predicted: std::collections::BTreeSet<&String> =
            report.confusion.values().flat_map(|row| row.keys()).collect();
        println!("\nconfusion (rows: label, columns: predicted)");
        print!("{:<16}", "");
        for p in &predicted {
            print!(" {p:>10}");
        }
        println!();
        for (label, row) in &report.confusion {
            print!("{label:<16}");
            for p in &predicted {
                print!(" {:>10}", row.get(*p).copied().unwrap_or(0));
            }
            println!();
        }
    }

    fn run(cli: Cli) -> Result<(), String> {
        match &cli.command {
            Command::CheckConfig { file } => {
                let (router, _) = load_router_from(file.as_deref().or(cli.config.as_deref()))?;
                println!(
                    "ok: {} routes, {} models, {} providers; default route {:?}",
                    router.config.routes.len(),
                    router.config.models.len(),
                    router.config.providers.len(),
                    router.config.default_route.as_str()
                );
                Ok(())
            }
            Command::Route { model, request, prompt } => {
                let (router, _) = load_router(&cli)?;
                let request = match (request, prompt) {
                    (Some(path), _) => {
                        let bytes = std::fs::read(path)
                            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                        ChatRequest::parse(&bytes).map_err(|e| e.message)?
                    }
                    (None, Some(prompt)) => user_request(model, prompt)?,
                    (None, None) => return Err("give a prompt or --request FILE".into()),
                };
                let semantic = if router.needs_embedding(&request) {
                    let encoder = load_encoder(&cli.model_dir)?;
                    let index = load_index(&router, &encoder, &cli.model_dir)?;
                    let query = encoder.embed(&router.routing_text(&request)).map_err(|e| e.to_string())?;
                    Some((query, index))
                } else {
                    None
                };
                let semantic = semantic.as_ref().map(|(query, index)| Semantic { query, index });
                let decision = router.decide(&request, semantic).map_err(|e| e.message)?;
                // Secrets are Worker secrets at the edge; here, environment variables stand in.
                let plan = switchyard::core::fallback::plan(&router.config, &decision, &request, |name| {
                    std::env::var_os(name).is_some_and(|v| !v.is_empty())
                });
                let json = route_json(&decision, &[], &plan);
                println!("{}", serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?);
                Ok(())
            }
            Command::Tokens => {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).map_err(|e| format!("cannot read stdin: {e}"))?;
                println!("{}", estimate_text_tokens(&text));
                Ok(())
            }
            Command::Embed => {
                let encoder = load_encoder(&cli.model_dir)?;
                for line in std::io::stdin().lock().lines() {
                    let line = line.map_err(|e| format!("cannot read stdin: {e}"))?;
                    let v = encoder.embed(&line).map_err(|e| e.to_string())?;
                    println!("{}", serde_json::to_string(&v).map_err(|e| e.to_string())?);
                }
                Ok(())
            }
            Command::BuildIndex { out } => {
                let (router, _) = load_router(&cli)?;
                let encoder = load_encoder(&cli.model_dir)?;
                let index = build_index(&router, &encoder)?;
                let out = out.clone().unwrap_or_else(|| cli.model_dir.join("index.json"));
                std::fs::write(&out, index.to_json())
                    .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
                let count: usize = index.routes.values().map(Vec::len).sum();
                println!("wrote {} ({count} exemplars, config hash {})", out.display(), index.config_hash);
                Ok(())
            }
            Command::Eval { data, json } => {
                let (router, _) = load_router(&cli)?;
                let encoder = load_encoder(&cli.model_dir)?;
                let index = load_index(&router, &encoder, &cli.model_dir)?;
                let rows = read_rows(data)?;
                let embedded = embed_rows(&router, &encoder, &rows)?;
                let pairs = predictions(&router, &index, &rows, &embedded);
                let report = EvalReport::compute(router.config.default_route.as_str(), &pairs);
                if *json {
                    println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
                } else {
                    print_report(&report);
                }
                Ok(())
            }
            Command::Fit { data, dry_run } => fit(&cli, data, *dry_run),
            Command::Bench { iterations } => bench(&cli, *iterations),
        }
    }

    fn fit(cli: &Cli, data: &Path, dry_run: bool) -> Result<(), String> {
        let (mut router, path) = load_router(cli)?;
        let Some(path) = path.filter(|_| !dry_run).or_else(|| dry_run.then(PathBuf::new)) else {
            return Err("fit writes thresholds into a config file: pass --config FILE".into());
        };
        if !router.uses_semantics() {
            return Err("no route has exemplars: nothing to fit".into());
        }
        let encoder = load_encoder(&cli.model_dir)?;
        let index = load_index(&router, &encoder, &cli.model_dir)?;
        let rows = read_rows(data)?;
        let embedded = embed_rows(&router, &encoder, &rows)?;
        let config = &router.config;
        let mut scores: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        for (_, embedding) in &embedded {
            for (route, score) in index.scores(embedding, config.semantic.aggregation, config.semantic.top_k)
            {
                scores.entry(route).or_default().push(score);
            }
        }
        let start: BTreeMap<String, f32> = config
            .routes
            .iter()
            .filter_map(|r| Some((r.name.clone(), r.semantic.as_ref()?.threshold)))
            .collect();
        let before = EvalReport::compute(
            config.default_route.as_str(),
            &predictions(&router, &index, &rows, &embedded),
        )
        .accuracy;
        let mut accuracy = |thresholds: &BTreeMap<String, f32>| {
            set_thresholds(&mut router, thresholds);
            let pairs = predictions(&router, &index, &rows, &embedded);
            EvalReport::compute(router.config.default_route.as_str(), &pairs).accuracy
        };
        let (fitted, _) = fit_thresholds(&start, &scores, &mut accuracy, 8);
        // The file gets three decimals: report the accuracy of exactly what is written.
        let fitted: BTreeMap<String, f32> =
            fitted.into_iter().map(|(route, t)| (route, (t * 1000.0).round() / 1000.0)).collect();
        let after = accuracy(&fitted);
        println!("accuracy {before:.3} -> {after:.3}");
        for (route, t) in &fitted {
            println!("  {route:<16} threshold {:.3} -> {t:.3}", start[route]);
        }
        if dry_run {
            return Ok(());
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{}: {e}", path.display()))?;
        let routes = doc
            .get_mut("routes")
            .and_then(|r| r.as_array_of_tables_mut())
            .ok_or("config has no [[routes]]")?;
        for table in routes.iter_mut() {
            let name = table.get("name").and_then(|n| n.as_str()).map(str::to_string);
            if let Some(t) = name.and_then(|n| fitted.get(&n)) {
                table["threshold"] = toml_edit::value(format!("{t:.3}").parse::<f64>().unwrap_or(*t as f64));
            }
        }
        std::fs::write(&path, doc.to_string())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote thresholds into {}", path.display());
        Ok(())
    }

    fn set_thresholds(router: &mut Router, thresholds: &BTreeMap<String, f32>) {
        for route in router.config.routes.iter_mut() {
            if let (Some(semantic), Some(t)) = (route.semantic.as_mut(), thresholds.get(&route.name)) {
                semantic.threshold = *t;
            }
        }
    }

    /// Prompts of 10–30 tokens, as the budget names them.
    const BENCH_PROMPTS: [&str; 4] = [
        "How do I write a SQL join across three tables?",
        "Tell me a joke about Python and the people who love it",
        "What's a good way to plan a weekend hiking trip in the Alps with kids?",
        "Can you refactor this Rust function so it doesn't clone the vector on every call?",
    ];

    fn bench(cli: &Cli, iterations: usize) -> Result<(), String> {
        let started = Instant::now();
        let encoder = load_encoder(&cli.model_dir)?;
        let load_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut results = serde_json::Map::new();
        for prompt in BENCH_PROMPTS {
            let ids = encoder.token_ids(prompt).map_err(|e| e.to_string())?;
            for _ in 0..5 {
                encoder.embed_ids(&ids).map_err(|e| e.to_string())?;
            }
            let mut times = Vec::with_capacity(iterations);
            for _ in 0..iterations {
                let t = Instant::now();
                encoder.embed_ids(&ids).map_err(|e| e.to_string())?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            results.insert(
                prompt.to_string(),
                serde_json::json!({
                    "tokens": ids.len(),
                    "p50_ms": times[times.len() / 2],
                    "p90_ms": times[times.len() * 9 / 10],
                }),
            );
        }
        println!("{}", serde_json::json!({"load_ms": load_ms, "iterations": iterations, "prompts": results}));
        Ok(())
    }
}
