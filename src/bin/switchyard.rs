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
    use std::cell::OnceCell;
    use std::collections::{BTreeMap, HashMap};
    use std::io::{BufRead, Read};
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::rc::Rc;
    use std::time::Instant;
    use switchyard::core::admin_api;
    use switchyard::core::api::route_json;
    use switchyard::core::classifier::{self, TrainOptions};
    use switchyard::core::config::{inside_model_folder, Config};
    use switchyard::core::config::{LlmRouterSettings, Price, ProviderKind, RoutingEncoderChoice};
    use switchyard::core::decide::llm_options;
    use switchyard::core::decide::{chosen_level, chosen_route, Requested, AUTO};
    use switchyard::core::decision::{ClassifierSignal, Decision, LlmSignal, SemanticSignal, Signals};
    use switchyard::core::error::ErrorKind;
    use switchyard::core::evaluation::{fit_thresholds, on_grid, parse_rows, EvalReport, LabelledRow};
    use switchyard::core::headers::NEXT_CURSOR;
    use switchyard::core::llm_router::{clip, read_choice, routing_request, RouteOption};
    use switchyard::core::pipeline::{self, Embedder, NoLlm, Platform};
    use switchyard::core::request::ChatRequest;
    use switchyard::core::semantic::{
        embeddings_hash, routing_text, Encode, ExemplarIndex, SemanticModel, ENCODER_DIMENSIONS, ENCODER_ID,
    };
    use switchyard::core::timing::Stopwatch;
    use switchyard::core::tokens::estimate_text_tokens;
    use switchyard::embed::static_encoder::StaticEncoder;
    use switchyard::embed::static_tuning::{self, TuneOptions};
    use switchyard::embed::{cosine, Encoder, RoutingEncoder};
    use switchyard::native::evaluation_page::{self, EvaluationPage, RouteScores, WrongRow};
    use switchyard::native::upstream::NativeUpstream;
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
            #[arg(long, default_value = AUTO)]
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
            /// Also write the evaluation as one self-contained HTML page: the confusion table
            /// as a heat map, score distributions with thresholds, accuracy against threshold,
            /// and the rows that went wrong.
            #[arg(long, value_name = "FILE.html")]
            report: Option<PathBuf>,
        },
        /// Fit per-route thresholds to labelled rows and write them into the config file.
        Fit {
            data: PathBuf,
            /// Show the thresholds without writing them.
            #[arg(long)]
            dry_run: bool,
        },
        /// Train the level-3 classifier head on labelled rows {"text", "label"} and write it where
        /// the config's [classifier] path says (inside --model-dir).
        Train {
            data: PathBuf,
            /// Share of each route's rows held out for the report.
            #[arg(long, default_value_t = 0.2)]
            held_out: f64,
            /// Gradient steps.
            #[arg(long, default_value_t = 400)]
            steps: usize,
            /// Also tune the static student end to end on the rows, write the tuned table to
            /// this file in the model folder, and train the head on it (needs `[semantic]
            /// encoder`).
            #[arg(long, value_name = "FILE")]
            tune_encoder: Option<String>,
        },
        /// Write training rows {"text", "label", "source"} for `train` from a deployed router's
        /// decision log: the LLM router's choices and the routes feedback corrected, where the
        /// log kept the text ([log] store_text = "full").
        Export {
            /// The router's base URL, e.g. https://switchyard.example.workers.dev
            #[arg(long)]
            url: String,
            /// Only decisions made at or after this time (ms since the Unix epoch).
            #[arg(long)]
            since: Option<u64>,
            /// Where to write the rows (JSON Lines); default stdout.
            #[arg(long)]
            out: Option<PathBuf>,
            /// An admin key of the router ([server] admin_keys).
            #[arg(long, env = "SWITCHYARD_ADMIN_KEY", hide_env_values = true)]
            admin_key: String,
        },
        /// Label prompts with the config's LLM router ([llm_router] model), for `train`: JSONL rows
        /// {"text"} in (other fields ignored), rows {"text", "label", "source": "distill"}
        /// appended to --out as they come. Resumable: texts already in --out are skipped.
        Distill {
            prompts: PathBuf,
            #[arg(long)]
            out: PathBuf,
            /// Requests in flight at once.
            #[arg(long, default_value_t = 4)]
            concurrency: usize,
        },
        /// Distil MiniLM into a static encoder (one vector per token; see
        /// src/embed/static_encoder.rs) and report how closely it ranks the config's exemplars
        /// as MiniLM does. Prints JSON.
        DistillEncoder {
            /// Vectors' length (PCA of MiniLM's 384): 128 makes a 4.3 MB file.
            #[arg(long, default_value_t = 128)]
            dimensions: usize,
            /// Where to write it (default MODEL_DIR/router.static).
            #[arg(long)]
            out: Option<PathBuf>,
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

    fn load_config(cli: &Cli) -> Result<(Config, Option<PathBuf>), String> {
        load_config_from(cli.config.as_deref())
    }

    fn load_config_from(config: Option<&Path>) -> Result<(Config, Option<PathBuf>), String> {
        let (path, text) = config_source(config)?;
        let name =
            path.as_ref().map_or("switchyard.toml (built in)".to_string(), |p| p.display().to_string());
        Ok((Config::parse(&name, &text).map_err(|e| e.to_string())?, path))
    }

    fn read_model_file(model_dir: &Path, name: &str) -> Result<Vec<u8>, String> {
        let path = model_dir.join(name);
        std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }

    /// MiniLM, from the model folder.
    fn load_encoder(model_dir: &Path) -> Result<Encoder, String> {
        let read = |name: &str| read_model_file(model_dir, name);
        Encoder::from_bytes(&read("tokenizer.json")?, &read("encoder.onnx")?).map_err(|e| e.to_string())
    }

    /// The encoder the config routes with (`[semantic] encoder`), from the model folder.
    fn load_routing_encoder(model_dir: &Path, config: &Config) -> Result<RoutingEncoder, String> {
        match &config.semantic.encoder {
            RoutingEncoderChoice::MiniLm => load_encoder(model_dir).map(RoutingEncoder::MiniLm),
            RoutingEncoderChoice::Static { path } => {
                let table = read_model_file(model_dir, path).map_err(|e| {
                    let out = model_dir.join(path);
                    format!("{e} (make it with `switchyard distill-encoder --out {}`)", out.display())
                })?;
                StaticEncoder::from_bytes(&table)
                    .map(RoutingEncoder::Static)
                    .map_err(|e| format!("{}: {e}", model_dir.join(path).display()))
            }
        }
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

    fn exemplar_count(config: &Config) -> usize {
        config.routes.iter().filter_map(|r| r.semantic.as_ref()).map(|s| s.exemplars.len()).sum()
    }

    /// Level 2 from the model folder, loaded the first time the pipeline asks for it: the encoder,
    /// and `index.json` when it was built for the config, else the exemplars embedded now.
    struct ModelDir<'c> {
        dir: PathBuf,
        config: &'c Config,
        loaded: OnceCell<Result<Rc<SemanticModel<RoutingEncoder>>, String>>,
    }

    impl<'c> ModelDir<'c> {
        fn new(dir: &Path, config: &'c Config) -> ModelDir<'c> {
            ModelDir { dir: dir.to_path_buf(), config, loaded: OnceCell::new() }
        }

        fn read(&self) -> Result<SemanticModel<RoutingEncoder>, String> {
            let encoder = load_routing_encoder(&self.dir, self.config)?;
            let path = self.dir.join("index.json");
            // The static student embeds every exemplar in microseconds: it needs no index.
            let shipped = match encoder {
                RoutingEncoder::MiniLm(_) => std::fs::read_to_string(&path).ok(),
                RoutingEncoder::Static(_) => None,
            };
            let mut bar = None;
            let (mut model, rejected) =
                SemanticModel::load(encoder, self.config, shipped.as_deref(), || {
                    bar.get_or_insert_with(|| progress(exemplar_count(self.config), "embedding exemplars"))
                        .inc(1)
                })?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if let Some(reason) = rejected {
                eprintln!("note: {}: {reason}; embedded the exemplars instead", path.display());
            }
            if let Some(settings) = &self.config.classifier {
                let path = self.dir.join(&settings.path);
                let artifact = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()));
                model.attach_classifier(self.config, artifact);
                if let Some(Err(reason)) = &model.classifier {
                    eprintln!("note: {reason}; routing goes on without the classifier");
                }
            }
            Ok(model)
        }
    }

    impl ModelDir<'_> {
        /// Loads level 2 now, failing when it cannot be (for `fit`, which has nothing to fit without).
        fn load_now(&self) -> Result<(), String> {
            ready(self.load()).map(|_| ())
        }
    }

    impl Embedder for ModelDir<'_> {
        type Encoder = RoutingEncoder;

        async fn load(&self) -> Result<Rc<SemanticModel<RoutingEncoder>>, String> {
            self.loaded.get_or_init(|| self.read().map(Rc::new)).clone()
        }
    }

    /// Runs a pipeline future: its only waits are [`ModelDir`] loads, which finish when first
    /// polled, so the CLI needs no async runtime.
    fn ready<F: std::future::Future>(future: F) -> F::Output {
        pipeline::run_ready(future).expect("the CLI's embedder never waits")
    }

    /// The CLI makes no model calls (yet): a config's LLM router declines, and routing goes on
    /// without it.
    const CLI_LLM: NoLlm = NoLlm("the CLI does not call the LLM router's model");

    /// A clock for the pipeline's phases.
    fn clock() -> impl Fn() -> f64 {
        let started = Instant::now();
        move || started.elapsed().as_secs_f64() * 1000.0
    }

    /// The decision for `request`, by the same pipeline the Worker runs; when level 2 cannot run,
    /// routed by the other levels, and stderr says why.
    fn route(config: &Config, request: &ChatRequest, embedder: &ModelDir) -> Result<Decision, String> {
        let now = clock();
        let mut watch = Stopwatch::since(0.0, &now);
        let decision =
            ready(pipeline::route(config, request, &Platform { embedder, llm: &CLI_LLM }, &mut watch))
                .map_err(|e| e.message)?;
        if let SemanticSignal::Unavailable(reason) = &decision.signals.semantic {
            eprintln!("note: semantic routing is unavailable: {reason}");
        }
        if let LlmSignal::Declined { reason, .. } = &decision.signals.llm {
            eprintln!("note: {reason}: routed by the other levels");
        }
        Ok(decision)
    }

    fn user_request(model: &str, text: &str) -> Result<ChatRequest, String> {
        ChatRequest::from_value(serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": text}],
        }))
        .map_err(|e| e.message)
    }

    fn read_rows(config: &Config, path: &Path) -> Result<Vec<LabelledRow>, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let rows = parse_rows(&path.display().to_string(), &text)?;
        if let Some(row) = rows.iter().find(|row| config.route(&row.label).is_none()) {
            return Err(format!("label {:?} is not a route of the config", row.label));
        }
        Ok(rows)
    }

    /// Every row's signals as a `model: "auto"` request, gathered once by the routing pipeline;
    /// `eval` and `fit` then only decide. The rows' embeddings are made first on every core
    /// ([`embed_ahead`]); the pipeline then finds them ready (a text it would embed differently
    /// is simply embedded again, so this is only ever a shortcut).
    fn gather_rows(
        config: &Config,
        embedder: &ModelDir,
        rows: &[LabelledRow],
    ) -> Result<Vec<Signals>, String> {
        let requests = rows.iter().map(|row| user_request(AUTO, &row.text)).collect::<Result<Vec<_>, _>>()?;
        let loaded = if config.uses_embeddings() { Some(ready(embedder.load())) } else { None };
        let ahead: Result<Rc<SemanticModel<EmbeddedAhead>>, String> = match &loaded {
            Some(Ok(model)) => {
                let texts: Vec<String> =
                    requests.iter().map(|r| routing_text(r, config.semantic.follow_up_words)).collect();
                let encoder = EmbeddedAhead {
                    ready: embed_ahead(&model.encoder, &texts)?.into_iter().collect(),
                    encoder: model.clone(),
                };
                Ok(Rc::new(SemanticModel {
                    encoder,
                    index: model.index.clone(),
                    classifier: model.classifier.clone(),
                    frustration: model.frustration.clone(),
                }))
            }
            Some(Err(reason)) => Err(reason.clone()),
            None => Err("the config embeds nothing".into()),
        };
        let now = clock();
        let gathered: Vec<Signals> = requests
            .iter()
            .map(|request| {
                let mut watch = Stopwatch::since(now(), &now);
                let platform = Platform { embedder: &ahead, llm: &CLI_LLM };
                ready(pipeline::gather(config, request, Requested::Auto, &platform, &mut watch))
            })
            .collect();
        if let Some(SemanticSignal::Unavailable(reason)) = gathered.first().map(|s| &s.semantic) {
            eprintln!("note: semantic routing is unavailable: {reason}; rows are routed by the other levels");
        }
        if let Some(ClassifierSignal::Unavailable(reason)) = gathered.first().map(|s| &s.classifier) {
            eprintln!("note: the classifier is unavailable: {reason}; rows are routed by the other levels");
        }
        if gathered.iter().any(|s| matches!(s.llm, LlmSignal::Declined { .. })) {
            eprintln!("note: {}; rows it would be asked about are routed by the other levels", CLI_LLM.0);
        }
        Ok(gathered)
    }

    /// Every labelled row of the decision log at `url`, page by page, as training rows: one per
    /// text (the latest label wins, so a correction replaces an earlier LLM choice), in the
    /// order the texts first appeared.
    fn export_training_rows(
        url: &str,
        since: Option<u64>,
        admin_key: &str,
    ) -> Result<Vec<serde_json::Value>, String> {
        let base = url.trim_end_matches('/').trim_end_matches("/v1");
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut rows: Vec<serde_json::Value> = Vec::new();
        let mut by_text: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query =
                vec![("labelled", "true".to_string()), ("limit", admin_api::MAX_LIMIT.to_string())];
            query.extend(since.map(|s| ("since", s.to_string())));
            query.extend(cursor.take().map(|c| ("cursor", c)));
            let page_url = format!("{base}/v1/admin/decisions");
            let mut response = agent
                .get(&page_url)
                .query_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
                .header("authorization", format!("Bearer {admin_key}"))
                .call()
                .map_err(|e| format!("cannot reach {page_url}: {e}"))?;
            let status = response.status().as_u16();
            let next = response.headers().get(NEXT_CURSOR).and_then(|v| v.to_str().ok()).map(str::to_string);
            let body = response
                .body_mut()
                .with_config()
                .limit(256 << 20)
                .read_to_string()
                .map_err(|e| format!("reading {page_url}: {e}"))?;
            if status != 200 {
                let message = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                    .unwrap_or(body);
                return Err(format!("{page_url} answered {status}: {message}"));
            }
            for line in body.lines().filter(|l| !l.trim().is_empty()) {
                let line: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
                    .map_err(|e| format!("{page_url} sent a line that is not JSON: {e}"))?;
                let Some(row) = admin_api::training_row(&line) else { continue };
                let text = row["text"].as_str().unwrap_or_default().to_string();
                match by_text.get(&text) {
                    Some(&at) => rows[at] = row,
                    None => {
                        by_text.insert(text, rows.len());
                        rows.push(row);
                    }
                }
            }
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(rows),
            }
        }
    }

    /// What a distillation run did, for the progress bar and the summary.
    #[derive(Default)]
    struct DistillTally {
        labelled: usize,
        declined: BTreeMap<String, usize>,
        cost_usd: f64,
        /// Set when going on is pointless (the upstream refuses the key): every worker stops.
        fatal: Option<String>,
    }

    /// `switchyard distill`: asks the LLM router's model for the route of every prompt not yet in
    /// `out`, `concurrency` at a time, and appends each answer as soon as it comes, so a run that
    /// stops (Ctrl-C, a crash, a spent budget) loses nothing and the next run resumes.
    fn distill(config: &Config, prompts: &Path, out: &Path, concurrency: usize) -> Result<(), String> {
        let settings = config
            .llm_router
            .as_ref()
            .ok_or("distill labels with the LLM router: the config needs an [llm_router] section")?;
        let model = config.model(&settings.model).ok_or("llm_router.model is not a model")?;
        let kind = config.provider(&model.provider).ok_or("the LLM router's provider is missing")?.kind;
        // Every route it may choose: with no prompt's token count, no bound rules one out.
        let options = llm_options(config, settings, &Signals::default());
        let texts = read_texts(prompts)?;
        let done: std::collections::HashSet<String> =
            if out.exists() { read_texts(out)?.into_iter().collect() } else { Default::default() };
        let mut seen = std::collections::HashSet::new();
        let todo: Vec<&str> =
            texts.iter().map(String::as_str).filter(|t| !done.contains(*t) && seen.insert(*t)).collect();
        eprintln!(
            "{} prompts to label with {:?}, {} already in {}",
            todo.len(),
            settings.model,
            done.len(),
            out.display()
        );
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .map_err(|e| format!("cannot open {}: {e}", out.display()))?;
        let writer = std::sync::Mutex::new(std::io::LineWriter::new(file));
        let tally = std::sync::Mutex::new(DistillTally::default());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let upstream = NativeUpstream::new(config);
        let bar = progress(todo.len(), "labelling");
        std::thread::scope(|scope| {
            for _ in 0..concurrency.min(todo.len().max(1)) {
                scope.spawn(|| loop {
                    let at = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let stop = tally.lock().map_or(true, |t| t.fatal.is_some());
                    let Some(text) = todo.get(at).filter(|_| !stop) else { break };
                    let (answer, cost) = label_one(&upstream, settings, kind, &options, model.price, text);
                    let mut tally = match tally.lock() {
                        Ok(tally) => tally,
                        Err(_) => break,
                    };
                    tally.cost_usd += cost.unwrap_or(0.0);
                    match answer {
                        Ok(route) => {
                            let row = serde_json::json!({"text": text, "label": route, "source": "distill"});
                            let written = writer.lock().map_err(|e| e.to_string()).and_then(|mut w| {
                                use std::io::Write;
                                writeln!(w, "{row}").map_err(|e| e.to_string())
                            });
                            match written {
                                Ok(()) => tally.labelled += 1,
                                Err(e) => tally.fatal = Some(format!("cannot write {}: {e}", out.display())),
                            }
                        }
                        Err(Failure::Fatal(why)) => tally.fatal = Some(why),
                        Err(Failure::Declined(why)) => *tally.declined.entry(why).or_default() += 1,
                    }
                    bar.set_message(format!("labelling (${:.4} so far)", tally.cost_usd));
                    bar.inc(1);
                });
            }
        });
        bar.finish_and_clear();
        let tally = tally.into_inner().map_err(|e| e.to_string())?;
        let declined: usize = tally.declined.values().sum();
        eprintln!(
            "labelled {}, declined {declined}, cost ${:.4}; rows in {}",
            tally.labelled,
            tally.cost_usd,
            out.display()
        );
        for (why, count) in &tally.declined {
            eprintln!("  declined {count}: {why}");
        }
        match tally.fatal {
            Some(why) => Err(format!("stopped: {why} (run again to resume)")),
            None => Ok(()),
        }
    }

    /// Why a prompt got no label: this prompt only, or every prompt (stop the run).
    enum Failure {
        Declined(String),
        Fatal(String),
    }

    /// One prompt's route from the LLM router's model, and what the call cost.
    fn label_one(
        upstream: &NativeUpstream,
        settings: &LlmRouterSettings,
        kind: ProviderKind,
        options: &[RouteOption],
        price: Price,
        text: &str,
    ) -> (Result<String, Failure>, Option<f64>) {
        let request = match routing_request(kind, options, clip(text), settings.prompt.as_deref()) {
            Ok(request) => request,
            Err(e) => return (Err(Failure::Declined(e.message)), None),
        };
        let completion = match upstream.complete(&settings.model, &request) {
            Ok(completion) => completion,
            Err(e) if matches!(e.status(), 401 | 403) || e.kind == ErrorKind::Configuration => {
                return (Err(Failure::Fatal(e.message)), None)
            }
            Err(e) => {
                return (Err(Failure::Declined(format!("the call failed: {}", e.kind.outcome()))), None)
            }
        };
        let cost = completion.usage.map(|u| price.cost_usd(u.prompt_tokens, u.completion_tokens));
        (read_choice(&completion.body, options).map_err(|d| Failure::Declined(d.to_string())), cost)
    }

    /// The `text` of every JSONL row of `path`; errors name the line.
    fn read_texts(path: &Path) -> Result<Vec<String>, String> {
        #[derive(serde::Deserialize)]
        struct Row {
            text: String,
        }
        let content =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        content
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str::<Row>(line)
                    .map(|row| row.text)
                    .map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
            })
            .collect()
    }

    /// A text's token ids and its embedding.
    type Embedded = (Vec<u32>, Vec<f32>);

    /// Token ids and embedding of every text, in order, computed on all cores (the encoder is
    /// shared; each thread takes every n-th text).
    fn embed_ahead(encoder: &(impl Encode + Sync), texts: &[String]) -> Result<Vec<Embedded>, String> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(texts.len().max(1));
        let bar = progress(texts.len(), "embedding rows");
        let embedded = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|first| {
                    let bar = &bar;
                    scope.spawn(move || {
                        texts
                            .iter()
                            .skip(first)
                            .step_by(threads)
                            .map(|text| {
                                let ids = encoder.token_ids(text)?;
                                let embedding = encoder.embed_ids(&ids)?;
                                bar.inc(1);
                                Ok((ids, embedding))
                            })
                            .collect::<Result<Vec<_>, String>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|_| Err("an embedding thread panicked".into())))
                .collect::<Result<Vec<_>, String>>()
        })?;
        bar.finish_and_clear();
        // Thread t made texts t, t + threads, …: deal them back into order.
        let mut per_thread: Vec<_> = embedded.into_iter().map(Vec::into_iter).collect();
        Ok((0..texts.len()).filter_map(|i| per_thread[i % threads].next()).collect())
    }

    /// The encoder with embeddings made ahead: what `gather_rows` hands the pipeline.
    struct EmbeddedAhead {
        encoder: Rc<SemanticModel<RoutingEncoder>>,
        ready: HashMap<Vec<u32>, Vec<f32>>,
    }

    impl Encode for EmbeddedAhead {
        fn id(&self) -> &str {
            self.encoder.encoder.id()
        }

        fn dimensions(&self) -> usize {
            self.encoder.encoder.dimensions()
        }

        fn token_ids(&self, text: &str) -> Result<Vec<u32>, String> {
            Encode::token_ids(&self.encoder.encoder, text)
        }

        fn embed_ids(&self, ids: &[u32]) -> Result<Vec<f32>, String> {
            match self.ready.get(ids) {
                Some(embedding) => Ok(embedding.clone()),
                None => Encode::embed_ids(&self.encoder.encoder, ids),
            }
        }
    }

    /// `(label, predicted route)` for every row: the route the decision would name, from the
    /// row's gathered signals (without building the decision's explanation).
    fn predictions(config: &Config, rows: &[LabelledRow], gathered: &[Signals]) -> Vec<(String, String)> {
        rows.iter()
            .zip(gathered)
            .map(|(row, signals)| (row.label.clone(), chosen_route(config, signals).to_string()))
            .collect()
    }

    /// `eval --report`: the page of [`evaluation_page`], from the rows' gathered signals.
    fn write_evaluation_page(
        path: &Path,
        data: &Path,
        config: &Config,
        report: &EvalReport,
        rows: &[LabelledRow],
        gathered: &[Signals],
        levels: &[&str],
    ) -> Result<(), String> {
        let routes = route_scores(config, rows, gathered);
        let wrong_rows: Vec<WrongRow> = rows
            .iter()
            .zip(gathered)
            .zip(levels)
            .filter_map(|((row, signals), level)| {
                let predicted = chosen_route(config, signals);
                (predicted != row.label).then(|| WrongRow {
                    text: row.text.clone(),
                    label: row.label.clone(),
                    predicted: predicted.to_string(),
                    level: level.to_string(),
                })
            })
            .collect();
        let source =
            data.file_name().map_or_else(|| data.display().to_string(), |n| n.to_string_lossy().into());
        let page = EvaluationPage { source: &source, report, routes: &routes, wrong_rows: &wrong_rows };
        std::fs::write(path, evaluation_page::render(&page))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
        Ok(())
    }

    /// Each route with exemplars: its scores on the rows, split by label, and the accuracy over
    /// all rows with its threshold at each step of 0.01 from 0 to 1 (the other routes' unchanged).
    fn route_scores(config: &Config, rows: &[LabelledRow], gathered: &[Signals]) -> Vec<RouteScores> {
        let mut trial = config.clone();
        let thresholds: Vec<(String, f32)> = config
            .routes
            .iter()
            .filter_map(|r| Some((r.name.clone(), r.semantic.as_ref()?.threshold)))
            .collect();
        thresholds
            .into_iter()
            .map(|(route, threshold)| {
                let mut scores = RouteScores { route: route.clone(), threshold, ..RouteScores::default() };
                for (row, signals) in rows.iter().zip(gathered) {
                    if let Some(&score) = signals.semantic.scores().and_then(|s| s.get(&route)) {
                        if row.label == route { &mut scores.own_rows } else { &mut scores.other_rows }
                            .push(score);
                    }
                }
                if !(scores.own_rows.is_empty() && scores.other_rows.is_empty()) {
                    scores.accuracy_by_threshold = (0..=100)
                        .map(|step| {
                            let t = step as f32 / 100.0;
                            set_thresholds(&mut trial, &[(route.clone(), t)].into());
                            let pairs = predictions(&trial, rows, gathered);
                            (t, EvalReport::compute(&config.default_route, &pairs).accuracy)
                        })
                        .collect();
                    set_thresholds(&mut trial, &[(route.clone(), threshold)].into());
                }
                scores
            })
            .collect()
    }

    fn print_report(report: &EvalReport) {
        println!("rows {}  accuracy {:.3}  macro-F1 {:.3}", report.rows, report.accuracy, report.macro_f1);
        if let Some(oos) = report.oos_recall {
            println!("out-of-scope recall {oos:.3}");
        }
        if !report.per_level.is_empty() {
            println!("\n{:<16} {:>9} {:>7} {:>9}", "level", "decisions", "share", "accuracy");
        }
        for (level, m) in &report.per_level {
            println!("{level:<16} {:>9} {:>7.3} {:>9.3}", m.decisions, m.share, m.accuracy);
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
                let (config, _) = load_config_from(file.as_deref().or(cli.config.as_deref()))?;
                println!(
                    "ok: {} routes, {} models, {} providers; default route {:?}",
                    config.routes.len(),
                    config.models.len(),
                    config.providers.len(),
                    config.default_route
                );
                Ok(())
            }
            Command::Route { model, request, prompt } => {
                let (config, _) = load_config(&cli)?;
                let request = match (request, prompt) {
                    (Some(path), _) => {
                        let bytes = std::fs::read(path)
                            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                        ChatRequest::parse(&bytes).map_err(|e| e.message)?
                    }
                    (None, Some(prompt)) => user_request(model, prompt)?,
                    (None, None) => return Err("give a prompt or --request FILE".into()),
                };
                let decision = route(&config, &request, &ModelDir::new(&cli.model_dir, &config))?;
                // Secrets are Worker secrets at the edge; here, environment variables stand in.
                let plan = switchyard::core::fallback::plan(&config, &decision, &request, |name| {
                    std::env::var_os(name).is_some_and(|v| !v.is_empty())
                });
                let json = route_json(&config, &decision, &[], &plan);
                println!("{}", serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?);
                Ok(())
            }
            Command::Export { url, since, out, admin_key } => {
                let rows = export_training_rows(url, *since, admin_key)?;
                let text: String = rows.iter().map(|row| format!("{row}\n")).collect();
                match out {
                    Some(path) => std::fs::write(path, text)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
                    None => print!("{text}"),
                }
                let from_feedback = rows.iter().filter(|r| r["source"] == "feedback").count();
                eprintln!(
                    "exported {} rows: {} from LLM-router decisions, {from_feedback} from feedback",
                    rows.len(),
                    rows.len() - from_feedback
                );
                Ok(())
            }
            Command::Distill { prompts, out, concurrency } => {
                let (config, _) = load_config(&cli)?;
                distill(&config, prompts, out, (*concurrency).clamp(1, 64))
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
                let (config, _) = load_config(&cli)?;
                if config.semantic.encoder != RoutingEncoderChoice::MiniLm {
                    return Err("the config routes with a static encoder, which embeds its exemplars \
                                when it loads: it needs no index"
                        .into());
                }
                let encoder = load_encoder(&cli.model_dir)?;
                let bar = progress(exemplar_count(&config), "embedding exemplars");
                let index = ExemplarIndex::build(&config, Encode::id(&encoder), |text| {
                    bar.inc(1);
                    encoder.embed(text)
                })
                .map_err(|e| e.to_string())?;
                bar.finish_and_clear();
                let out = out.clone().unwrap_or_else(|| cli.model_dir.join("index.json"));
                std::fs::write(&out, index.to_json())
                    .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
                let count: usize = index.routes.values().map(Vec::len).sum();
                println!("wrote {} ({count} exemplars, config hash {})", out.display(), index.config_hash);
                Ok(())
            }
            Command::Eval { data, json, report: page } => {
                let (config, _) = load_config(&cli)?;
                let rows = read_rows(&config, data)?;
                let gathered = gather_rows(&config, &ModelDir::new(&cli.model_dir, &config), &rows)?;
                let pairs = predictions(&config, &rows, &gathered);
                let levels: Vec<&str> =
                    gathered.iter().map(|signals| chosen_level(&config, signals).as_str()).collect();
                let report = EvalReport::compute(&config.default_route, &pairs).with_levels(&pairs, &levels);
                if let Some(path) = page {
                    write_evaluation_page(path, data, &config, &report, &rows, &gathered, &levels)?;
                }
                if *json {
                    println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
                } else {
                    print_report(&report);
                }
                Ok(())
            }
            Command::Fit { data, dry_run } => fit(&cli, data, *dry_run),
            Command::Train { data, held_out, steps, tune_encoder } => {
                train(&cli, data, *held_out, *steps, tune_encoder.as_deref())
            }
            Command::Bench { iterations } => bench(&cli, *iterations),
            Command::DistillEncoder { dimensions, out } => distill_encoder(&cli, *dimensions, out.as_deref()),
        }
    }

    fn distill_encoder(cli: &Cli, dimensions: usize, out: Option<&Path>) -> Result<(), String> {
        let (config, _) = load_config(cli)?;
        let teacher = load_encoder(&cli.model_dir)?;
        let tokenizer_path = cli.model_dir.join("tokenizer.json");
        let tokenizer_json = std::fs::read(&tokenizer_path)
            .map_err(|e| format!("cannot read {}: {e}", tokenizer_path.display()))?;
        let started = std::time::Instant::now();
        let bar = progress(teacher.vocabulary_size(), "embedding each word piece with MiniLM");
        let student = StaticEncoder::distill(&teacher, &tokenizer_json, dimensions, || bar.inc(1))
            .map_err(|e| e.to_string())?;
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        let bytes = student.to_bytes().map_err(|e| e.to_string())?;
        let out = out.map_or_else(|| cli.model_dir.join("router.static"), Path::to_path_buf);
        std::fs::write(&out, &bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        let texts: Vec<&str> = config
            .routes
            .iter()
            .filter_map(|r| r.semantic.as_ref())
            .flat_map(|s| s.exemplars.iter().map(String::as_str))
            .collect();
        let agreement = similarity_agreement(&teacher, &student, &texts)?;
        let report = serde_json::json!({
            "out": out.display().to_string(),
            "dimensions": dimensions,
            "bytes": bytes.len(),
            "seconds": (seconds * 10.0).round() / 10.0,
            "exemplars": texts.len(),
            "similarity_correlation_with_minilm": agreement.map(|r| (r * 1000.0).round() / 1000.0),
        });
        println!("{report:#}");
        Ok(())
    }

    /// The Pearson correlation between MiniLM's and the student's cosine similarities over every
    /// pair of `texts`: 1 when the student orders pairs as MiniLM does. None for fewer than 3.
    fn similarity_agreement(
        teacher: &Encoder,
        student: &StaticEncoder,
        texts: &[&str],
    ) -> Result<Option<f64>, String> {
        let embed_all = |e: &dyn Encode| texts.iter().map(|t| e.embed(t)).collect::<Result<Vec<_>, _>>();
        let (a, b) = (embed_all(teacher)?, embed_all(student)?);
        let mut pairs = Vec::new();
        for i in 0..texts.len() {
            for j in i + 1..texts.len() {
                pairs.push((cosine(&a[i], &a[j]) as f64, cosine(&b[i], &b[j]) as f64));
            }
        }
        if pairs.len() < 3 {
            return Ok(None);
        }
        let n = pairs.len() as f64;
        let (mx, my) =
            (pairs.iter().map(|p| p.0).sum::<f64>() / n, pairs.iter().map(|p| p.1).sum::<f64>() / n);
        let cov: f64 = pairs.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
        let (vx, vy): (f64, f64) =
            (pairs.iter().map(|p| (p.0 - mx).powi(2)).sum(), pairs.iter().map(|p| (p.1 - my).powi(2)).sum());
        Ok(Some(cov / (vx * vy).sqrt()))
    }

    fn fit(cli: &Cli, data: &Path, dry_run: bool) -> Result<(), String> {
        let (mut config, path) = load_config(cli)?;
        let Some(path) = path.filter(|_| !dry_run).or_else(|| dry_run.then(PathBuf::new)) else {
            return Err("fit writes thresholds into a config file: pass --config FILE".into());
        };
        if !config.uses_semantics() {
            return Err("no route has exemplars: nothing to fit".into());
        }
        let rows = read_rows(&config, data)?;
        // Gathered once: the search below only decides, with each candidate set of thresholds.
        let gathered = {
            let embedder = ModelDir::new(&cli.model_dir, &config);
            embedder.load_now()?;
            gather_rows(&config, &embedder, &rows)?
        };
        let mut scores: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        for signals in &gathered {
            for (route, score) in signals.semantic.scores().into_iter().flatten() {
                scores.entry(route.clone()).or_default().push(*score);
            }
        }
        let start: BTreeMap<String, f32> = config
            .routes
            .iter()
            .filter_map(|r| Some((r.name.clone(), r.semantic.as_ref()?.threshold)))
            .collect();
        let before =
            EvalReport::compute(&config.default_route, &predictions(&config, &rows, &gathered)).accuracy;
        let mut accuracy = |thresholds: &BTreeMap<String, f32>| {
            set_thresholds(&mut config, thresholds);
            EvalReport::compute(&config.default_route, &predictions(&config, &rows, &gathered)).accuracy
        };
        let (fitted, _) = fit_thresholds(&start, &scores, &mut accuracy, 8);
        // The file gets three decimals: report the accuracy of exactly what is written.
        let fitted: BTreeMap<String, f32> =
            fitted.into_iter().map(|(route, t)| (route, on_grid(t))).collect();
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

    fn set_thresholds(config: &mut Config, thresholds: &BTreeMap<String, f32>) {
        for route in config.routes.iter_mut() {
            if let (Some(semantic), Some(t)) = (route.semantic.as_mut(), thresholds.get(&route.name)) {
                semantic.threshold = *t;
            }
        }
    }

    /// `switchyard train`: embeds the rows as the router would (their routing text), holds out a
    /// stratified share for the report, trains the head on the rest less a calibration share,
    /// fits its temperature on that share, reports on the held-out rows, writes the artifact.
    fn train(
        cli: &Cli,
        data: &Path,
        held_out: f64,
        steps: usize,
        tune_encoder: Option<&str>,
    ) -> Result<(), String> {
        let (config, _) = load_config(cli)?;
        let settings = config
            .classifier
            .clone()
            .ok_or("the config has no [classifier] section: add one, e.g. path = \"classifier.json\"")?;
        if !(0.05..=0.5).contains(&held_out) {
            return Err("--held-out must be between 0.05 and 0.5".into());
        }
        if let Some(out) = tune_encoder {
            check_tune_target(&config, out)?;
        }
        let rows = read_rows(&config, data)?;
        let routes: Vec<String> = rows
            .iter()
            .map(|r| r.label.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if routes.len() < 2 {
            return Err("the rows need at least two different labels".into());
        }
        let labels: Vec<usize> =
            rows.iter().map(|r| routes.iter().position(|x| *x == r.label).unwrap_or(0)).collect();
        let texts = rows
            .iter()
            .map(|row| Ok(routing_text(&user_request(AUTO, &row.text)?, config.semantic.follow_up_words)))
            .collect::<Result<Vec<String>, String>>()?;
        let (training, test) = classifier::stratified_split(&labels, held_out);
        let training_labels: Vec<usize> = training.iter().map(|&i| labels[i]).collect();
        let (fitting, calibration) = classifier::stratified_split(&training_labels, 0.2);
        let embed_all =
            |encoder: &RoutingEncoder| texts.iter().map(|t| encoder.embed(t)).collect::<Result<Vec<_>, _>>();
        let (encoder_id, embeddings) = match (&config.semantic.encoder, tune_encoder) {
            // MiniLM takes milliseconds a row: its embeddings are cached, and it loads only on a miss.
            (RoutingEncoderChoice::MiniLm, _) => {
                (ENCODER_ID.to_string(), cached_embeddings(&cli.model_dir, &texts)?)
            }
            (RoutingEncoderChoice::Static { .. }, None) => {
                let student = load_routing_encoder(&cli.model_dir, &config)?;
                (student.id().to_string(), embed_all(&student)?)
            }
            (RoutingEncoderChoice::Static { path: base }, Some(out)) => {
                let student = load_routing_encoder(&cli.model_dir, &config)?;
                let fitting_rows: Vec<(&str, usize)> =
                    fitting.iter().map(|&j| (texts[training[j]].as_str(), labels[training[j]])).collect();
                let tuned = tune_student(cli, student, &fitting_rows, routes.len(), base, out)?;
                (tuned.id().to_string(), embed_all(&tuned)?)
            }
        };
        let pick = |rows: &[usize]| -> (Vec<Vec<f32>>, Vec<usize>) {
            (rows.iter().map(|&i| embeddings[i].clone()).collect(), rows.iter().map(|&i| labels[i]).collect())
        };
        let (fit_x, fit_y) = pick(&fitting.iter().map(|&j| training[j]).collect::<Vec<_>>());
        let (cal_x, cal_y) = pick(&calibration.iter().map(|&j| training[j]).collect::<Vec<_>>());
        let (test_x, test_y) = pick(&test);
        let started = Instant::now();
        let mut head = classifier::train(
            &encoder_id,
            &routes,
            &fit_x,
            &fit_y,
            TrainOptions { steps, ..TrainOptions::default() },
        );
        classifier::calibrate(&mut head, &cal_x, &cal_y);
        let trained_s = started.elapsed().as_secs_f64();

        let predictions: Vec<_> = test_x.iter().map(|x| head.predict(x)).collect();
        let pairs: Vec<(String, String)> =
            test_y.iter().zip(&predictions).map(|(&y, p)| (routes[y].clone(), p.route.clone())).collect();
        let report = EvalReport::compute(&config.default_route, &pairs);
        let confident: Vec<&(String, String)> = pairs
            .iter()
            .zip(&predictions)
            .filter(|(_, p)| p.confidence >= settings.min_confidence)
            .map(|(pair, _)| pair)
            .collect();
        let ece = classifier::calibration_error(
            &pairs.iter().zip(&predictions).map(|((l, p), pr)| (pr.confidence, l == p)).collect::<Vec<_>>(),
        );
        println!(
            "trained on {} rows ({} for calibration, temperature {:.2}) in {trained_s:.1} s; held out {}",
            fit_x.len(),
            cal_x.len(),
            head.temperature,
            test_x.len()
        );
        print_report(&report);
        println!("\ncalibration error (ECE, 10 bins) {ece:.3}");
        println!(
            "at min_confidence {}: decides {:.1}% of held-out rows, {:.3} of them right",
            settings.min_confidence,
            100.0 * confident.len() as f64 / pairs.len().max(1) as f64,
            confident.iter().filter(|(l, p)| l == p).count() as f64 / confident.len().max(1) as f64
        );
        let out = cli.model_dir.join(&settings.path);
        std::fs::write(&out, head.to_json()).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        println!("wrote {}", out.display());
        Ok(())
    }

    /// Where `--tune-encoder` may write: a new `.static` file in the model folder, from a config
    /// that routes with a static student (whose file name is returned).
    fn check_tune_target<'c>(config: &'c Config, out: &str) -> Result<&'c str, String> {
        let RoutingEncoderChoice::Static { path: base } = &config.semantic.encoder else {
            return Err(
                "--tune-encoder tunes the static student: set [semantic] encoder = \"router.static\" first"
                    .into(),
            );
        };
        if !inside_model_folder(out) || !out.ends_with(".static") {
            return Err(format!(
                "--tune-encoder {out:?} must be a file name inside the model folder ending in .static"
            ));
        }
        if Path::new(out).components().eq(Path::new(base).components()) {
            return Err(format!(
                "--tune-encoder {out:?} would replace the table it starts from: name another file"
            ));
        }
        Ok(base)
    }

    /// `train --tune-encoder OUT`: the configured static student (read from `base`) tuned end to
    /// end on `rows` (text, label index), written to OUT in the model folder ([`check_tune_target`]
    /// has checked OUT).
    fn tune_student(
        cli: &Cli,
        encoder: RoutingEncoder,
        rows: &[(&str, usize)],
        classes: usize,
        base: &str,
        out: &str,
    ) -> Result<RoutingEncoder, String> {
        let RoutingEncoder::Static(student) = encoder else {
            return Err("--tune-encoder tunes the static student, and MiniLM was loaded".into());
        };
        let started = Instant::now();
        let rows = rows
            .iter()
            .map(|(text, label)| Ok((student.token_ids(text).map_err(|e| e.to_string())?, *label)))
            .collect::<Result<Vec<_>, String>>()?;
        let tuned = static_tuning::tune(&student, &rows, classes, TuneOptions::default())
            .map_err(|e| e.to_string())?;
        let path = cli.model_dir.join(out);
        std::fs::write(&path, tuned.to_bytes().map_err(|e| e.to_string())?)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!(
            "tuned {base} on {} rows in {:.1} s: wrote {} (route with it: [semantic] encoder = {out:?})",
            rows.len(),
            started.elapsed().as_secs_f64(),
            path.display()
        );
        Ok(RoutingEncoder::Static(tuned))
    }

    /// The rows' MiniLM embeddings, from the cache when they were made before for these exact
    /// texts and this encoder (`~/.cache/switchyard`, or `$XDG_CACHE_HOME/switchyard`), else made
    /// now on every core (MiniLM loaded only then) and cached.
    fn cached_embeddings(model_dir: &Path, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let dir = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
            .join("switchyard");
        let path = dir.join(format!(
            "embeddings-{}.f32",
            embeddings_hash(ENCODER_ID, texts.iter().map(String::as_str))
        ));
        if let Ok(bytes) = std::fs::read(&path) {
            let floats: Vec<f32> =
                bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            // A cache file of the wrong size (cut short, say) is ignored and made again.
            if !texts.is_empty() && floats.len() == texts.len() * ENCODER_DIMENSIONS {
                eprintln!("note: embeddings read from {}", path.display());
                return Ok(floats.chunks_exact(floats.len() / texts.len()).map(<[f32]>::to_vec).collect());
            }
        }
        let encoder = load_encoder(model_dir)?;
        let embeddings: Vec<Vec<f32>> = embed_ahead(&encoder, texts)?.into_iter().map(|(_, e)| e).collect();
        let bytes: Vec<u8> = embeddings.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
        // The cache only saves time: a failure to write it is reported, not fatal.
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, bytes)) {
            eprintln!("note: could not cache embeddings at {}: {e}", path.display());
        }
        Ok(embeddings)
    }

    /// Prompts of 10–30 tokens, as the budget names them.
    const BENCH_PROMPTS: [&str; 4] = [
        "How do I write a SQL join across three tables?",
        "Tell me a joke about Python and the people who love it",
        "What's a good way to plan a weekend hiking trip in the Alps with kids?",
        "Can you refactor this Rust function so it doesn't clone the vector on every call?",
    ];

    fn bench(cli: &Cli, iterations: usize) -> Result<(), String> {
        let (config, _) = load_config(cli)?;
        let started = Instant::now();
        let encoder = load_routing_encoder(&cli.model_dir, &config)?;
        let load_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut results = serde_json::Map::new();
        for prompt in BENCH_PROMPTS {
            let ids = encoder.token_ids(prompt)?;
            for _ in 0..5 {
                encoder.embed_ids(&ids)?;
            }
            let mut times = Vec::with_capacity(iterations);
            for _ in 0..iterations {
                let t = Instant::now();
                encoder.embed_ids(&ids)?;
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
        let report = serde_json::json!({
            "encoder": encoder.id(),
            "load_ms": load_ms,
            "iterations": iterations,
            "prompts": results,
        });
        println!("{report}");
        Ok(())
    }
}
