//! The routing encoder and exemplar index of one isolate, loaded on first use.
//!
//! The encoder is the one `[semantic] encoder` names. MiniLM (23 MB) is too large for the Worker
//! script, so it and its tokenizer are static assets fetched through the `ASSETS` binding the
//! first time a request needs them, then kept for the isolate's life; the encoder is decoded
//! straight out of the JavaScript buffer it arrived in, a window at a time, so wasm memory never
//! holds the file next to the decoded weights. The static student is one 4 MB asset holding its
//! vocabulary and table. Concurrent first requests wait for one load instead of each loading a
//! copy (wasm memory, once grown, never shrinks). MiniLM's exemplar index is compiled in; when
//! the running config's exemplars differ from the ones it was built for (a `SWITCHYARD_CONFIG`
//! with other routes), the exemplars are embedded at load instead, and the log says so. The
//! student always embeds them at load: it takes microseconds each.

use crate::core::config::{Config, RoutingEncoderChoice};
use crate::core::error::{ErrorKind, RouterError};
use crate::core::pipeline::Embedder;
use crate::core::semantic::Encode;
use crate::core::semantic::SemanticModel;
use crate::embed::static_encoder::StaticEncoder;
use crate::embed::{load_tokenizer, Encoder, RoutingEncoder};
use crate::worker::http::now_ms;
use futures_util::future::try_join;
use futures_util::lock::Mutex;
use std::cell::RefCell;
use std::rc::Rc;
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{wasm_bindgen, web_sys, Env, Fetcher};

/// The exemplar index `switchyard build-index` made for the built-in config.
const BUILTIN_INDEX: &str = include_str!("../../model/index.json");
/// The static assets binding: the `model/` folder's files and the playground page
/// (scripts/assemble-assets.sh).
pub const ASSETS_BINDING: &str = "ASSETS";
const ENCODER_ASSET: &str = "https://model.assets/encoder.onnx";
const TOKENIZER_ASSET: &str = "https://model.assets/tokenizer.json";

/// Level 2's encoder and index as the Worker has them: [`Embedder`] for the routing pipeline.
pub struct AssetEmbedder<'a> {
    pub env: &'a Env,
    pub config: &'a Config,
}

impl Embedder for AssetEmbedder<'_> {
    type Encoder = RoutingEncoder;

    async fn load(&self) -> Result<Rc<SemanticModel<RoutingEncoder>>, String> {
        engine(self.env, self.config).await.map_err(|e| e.message)
    }
}

/// The loaded model, and how long the load took (for /healthz).
struct Engine {
    model: Rc<SemanticModel<RoutingEncoder>>,
    load_ms: f64,
    /// Milliseconds each step of the load took, in order.
    phases: Vec<(&'static str, f64)>,
}

thread_local! {
    static ENGINE: RefCell<Option<Result<Rc<Engine>, String>>> = const { RefCell::new(None) };
    static LOADING: Rc<Mutex<()>> = Rc::new(Mutex::new(()));
}

thread_local! {
    static WARM_UP_CLAIMED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True the first time it is asked in this isolate: the caller then starts the background load.
pub fn claim_warm_up() -> bool {
    WARM_UP_CLAIMED.with(|claimed| !claimed.replace(true))
}

/// What /healthz reports: `not_loaded`, `ready` or `failed`.
pub fn status() -> &'static str {
    ENGINE.with(|e| match &*e.borrow() {
        None => "not_loaded",
        Some(Ok(_)) => "ready",
        Some(Err(_)) => "failed",
    })
}

pub fn load_ms() -> Option<f64> {
    loaded(|engine| engine.load_ms)
}

/// How long each step of the load took (fetch, tokenizer, decode, …), for /healthz and the log.
pub fn load_phases() -> Option<serde_json::Map<String, serde_json::Value>> {
    loaded(|engine| phases_json(&engine.phases))
}

fn phases_json(phases: &[(&str, f64)]) -> serde_json::Map<String, serde_json::Value> {
    phases.iter().map(|(name, ms)| (name.to_string(), serde_json::json!(ms))).collect()
}

fn loaded<T>(read: impl FnOnce(&Engine) -> T) -> Option<T> {
    ENGINE.with(|e| e.borrow().as_ref().and_then(|r| r.as_ref().ok()).map(|engine| read(engine)))
}

/// The isolate's encoder and index, loading them on first call. A failed load is remembered (the
/// isolate is recycled eventually) so a broken model does not cost every request a 23 MB fetch.
pub async fn engine(env: &Env, config: &Config) -> Result<Rc<SemanticModel<RoutingEncoder>>, RouterError> {
    if let Some(loaded) = cached() {
        return loaded;
    }
    let lock = LOADING.with(Rc::clone);
    let _guard = lock.lock().await;
    if let Some(loaded) = cached() {
        return loaded;
    }
    let started = now_ms();
    let loaded = load(env, config).await.map(|(model, phases)| {
        Rc::new(Engine { model: Rc::new(model), load_ms: now_ms() - started, phases })
    });
    match &loaded {
        Ok(engine) => worker::console_log!(
            "{}",
            serde_json::json!({
                "event": "encoder_loaded",
                "encoder": engine.model.encoder.id(),
                "load_ms": engine.load_ms,
                "phases_ms": phases_json(&engine.phases),
                "int8_matmuls": engine.model.encoder.minilm().map(|e| e.int8_matmuls),
            })
        ),
        Err(e) => worker::console_error!("{}", serde_json::json!({"event": "encoder_failed", "message": e})),
    }
    ENGINE.with(|e| *e.borrow_mut() = Some(loaded));
    cached().unwrap_or_else(|| Err(unavailable("the load left nothing behind".into())))
}

fn cached() -> Option<Result<Rc<SemanticModel<RoutingEncoder>>, RouterError>> {
    ENGINE
        .with(|e| e.borrow().clone())
        .map(|loaded| loaded.map(|engine| engine.model.clone()).map_err(unavailable))
}

/// One model file, read whole into a JavaScript buffer: one allocation outside wasm memory
/// (reading the body stream chunk by chunk into wasm took 1 s of the load in local workerd).
async fn fetch_asset(assets: &Fetcher, url: &str) -> Result<Uint8Array, String> {
    let name = url.rsplit('/').next().unwrap_or(url);
    let response = assets.fetch(url, None).await.map_err(|e| format!("fetching {name}: {e}"))?;
    if response.status_code() != 200 {
        return Err(format!("fetching {name}: HTTP {}", response.status_code()));
    }
    let response: web_sys::Response = response.into();
    let read = |e: wasm_bindgen::JsValue| format!("reading {name}: {e:?}");
    let buffer = JsFuture::from(response.array_buffer().map_err(read)?).await.map_err(read)?;
    Ok(Uint8Array::new(&buffer))
}

fn unavailable(message: String) -> RouterError {
    RouterError::new(ErrorKind::Unavailable, format!("the embedding model is unavailable: {message}"))
}

type Phases = Vec<(&'static str, f64)>;

/// The configured encoder, its exemplar index and the classifier head, and how long each step
/// took.
async fn load(env: &Env, config: &Config) -> Result<(SemanticModel<RoutingEncoder>, Phases), String> {
    let assets =
        env.assets(ASSETS_BINDING).map_err(|e| format!("no {ASSETS_BINDING} assets binding: {e}"))?;
    let (encoder, mut phases, shipped_index) = match &config.semantic.encoder {
        RoutingEncoderChoice::MiniLm => {
            let (encoder, phases) = load_minilm(&assets).await?;
            (RoutingEncoder::MiniLm(encoder), phases, Some(BUILTIN_INDEX))
        }
        // The student embeds an exemplar in microseconds: its index is made at load, not shipped.
        RoutingEncoderChoice::Static { path } => {
            let (encoder, phases) = load_static(&assets, path).await?;
            (RoutingEncoder::Static(encoder), phases, None)
        }
    };
    let index_started = now_ms();
    let (mut model, rejected) = SemanticModel::load(encoder, config, shipped_index, || {})?;
    if let Some(reason) = rejected {
        worker::console_log!(
            "{}",
            serde_json::json!({"event": "index_rebuilt", "reason": reason.to_string()})
        );
    }
    phases.push(("index", now_ms() - index_started));
    if let Some(settings) = &config.classifier {
        let started = now_ms();
        let artifact = fetch_asset(&assets, &asset_url(&settings.path))
            .await
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).map_err(|e| format!("not UTF-8 text: {e}")));
        model.attach_classifier(config, artifact);
        if let Some(Err(reason)) = &model.classifier {
            worker::console_error!(
                "{}",
                serde_json::json!({"event": "classifier_refused", "reason": reason})
            );
        }
        phases.push(("classifier", now_ms() - started));
    }
    Ok((model, phases))
}

/// The URL of a file at `path` in the assets (the host is not used).
pub fn asset_url(path: &str) -> String {
    format!("https://model.assets/{path}")
}

/// MiniLM from `encoder.onnx`, decoded out of the JavaScript buffer a window at a time.
async fn load_minilm(assets: &Fetcher) -> Result<(Encoder, Phases), String> {
    let started = now_ms();
    // Both downloads start at once and the tokenizer (small) is parsed as soon as it is in. In
    // local workerd the encoder's download does not go on while wasm computes (the asset service
    // shares the thread; scripts/bench_asset_floor.mjs), so there this overlaps nothing; where
    // assets arrive from elsewhere it can.
    let tokenizer = async {
        let json = fetch_asset(assets, TOKENIZER_ASSET).await?;
        let fetched = now_ms();
        let tokenizer = load_tokenizer(&json.to_vec()).map_err(|e| e.to_string())?;
        Ok::<_, String>((tokenizer, fetched, now_ms()))
    };
    let ((tokenizer, tokenizer_fetched, tokenizer_parsed), encoder) =
        try_join(tokenizer, fetch_asset(assets, ENCODER_ASSET)).await?;
    let fetched = now_ms();
    let mut encoder =
        Encoder::from_onnx(tokenizer, JsBytesReader::new(encoder), now_ms).map_err(|e| e.to_string())?;
    // Consecutive, so they add up to (nearly) the load: the encoder's download starts with the
    // tokenizer's, and `fetch_encoder` is what was left of it once the tokenizer was parsed.
    let mut phases = vec![
        ("fetch_tokenizer", tokenizer_fetched - started),
        ("tokenizer", tokenizer_parsed - tokenizer_fetched),
        ("fetch_encoder", (fetched - tokenizer_parsed).max(0.0)),
    ];
    phases.append(&mut encoder.load_phases);
    Ok((encoder, phases))
}

/// The static student: one file (a few MB) holding its vocabulary and table.
async fn load_static(assets: &Fetcher, path: &str) -> Result<(StaticEncoder, Phases), String> {
    let started = now_ms();
    let file = fetch_asset(assets, &asset_url(path)).await?.to_vec();
    let fetched = now_ms();
    let encoder = StaticEncoder::from_bytes(&file).map_err(|e| format!("{path}: {e}"))?;
    Ok((encoder, vec![("fetch", fetched - started), ("decode", now_ms() - fetched)]))
}

/// A `bytes::Buf` over a JavaScript byte array, copied into wasm memory one window at a time.
struct JsBytesReader {
    source: Uint8Array,
    /// Where `window` starts in `source`.
    offset: usize,
    window: Vec<u8>,
    /// Bytes of `window` already read.
    read: usize,
    len: usize,
}

impl JsBytesReader {
    const WINDOW: usize = 1 << 20;

    fn new(source: Uint8Array) -> JsBytesReader {
        let len = source.length() as usize;
        let mut reader = JsBytesReader { source, offset: 0, window: Vec::new(), read: 0, len };
        reader.fill();
        reader
    }

    /// Loads the window at `offset`.
    fn fill(&mut self) {
        let end = (self.offset + Self::WINDOW).min(self.len);
        self.window.resize(end - self.offset, 0);
        self.source.subarray(self.offset as u32, end as u32).copy_to(&mut self.window);
        self.read = 0;
    }
}

impl bytes::Buf for JsBytesReader {
    fn remaining(&self) -> usize {
        self.len - self.offset - self.read
    }

    fn chunk(&self) -> &[u8] {
        &self.window[self.read..]
    }

    fn advance(&mut self, mut count: usize) {
        while count > 0 && self.remaining() > 0 {
            let step = count.min(self.window.len() - self.read);
            self.read += step;
            count -= step;
            if self.read == self.window.len() {
                self.offset += self.window.len();
                self.fill();
            }
        }
    }
}
