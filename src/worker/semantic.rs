//! The encoder and exemplar index of one isolate, loaded on first use.
//!
//! The encoder (23 MB) is too large for the Worker script, so it is a static asset fetched through
//! the `MODEL` binding the first time a request needs it, then kept for the isolate's life.
//! Concurrent first requests wait for one load instead of each loading a copy (wasm memory, once
//! grown, never shrinks). The exemplar index is compiled in; when the running config's exemplars
//! differ from the ones it was built for (a `SWITCHYARD_CONFIG` with other routes), the exemplars
//! are embedded at load instead, and the log says so.

use crate::core::error::{ErrorKind, RouterError};
use crate::core::router::Router;
use crate::core::semantic::ExemplarIndex;
use crate::embed::Encoder;
use crate::worker::http::now_ms;
use futures_util::lock::Mutex;
use futures_util::StreamExt;
use std::cell::RefCell;
use std::rc::Rc;
use worker::Env;

/// The exemplar index `switchyard build-index` made for the built-in config.
const BUILTIN_INDEX: &str = include_str!("../../model/index.json");
/// Assets binding serving the `model/` folder.
const ASSETS_BINDING: &str = "MODEL";
const ENCODER_ASSET: &str = "https://model.assets/encoder.onnx";

pub struct Engine {
    pub encoder: Encoder,
    pub index: ExemplarIndex,
    /// How long the load took, for /healthz.
    pub load_ms: f64,
}

thread_local! {
    static ENGINE: RefCell<Option<Result<Rc<Engine>, String>>> = const { RefCell::new(None) };
    static LOADING: Rc<Mutex<()>> = Rc::new(Mutex::new(()));
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
    ENGINE.with(|e| e.borrow().as_ref().and_then(|r| r.as_ref().ok()).map(|engine| engine.load_ms))
}

/// The isolate's engine, loading it on first call. A failed load is remembered (the isolate is
/// recycled eventually) so a broken model does not cost every request a 23 MB fetch.
pub async fn engine(env: &Env, router: &Router) -> Result<Rc<Engine>, RouterError> {
    if let Some(loaded) = ENGINE.with(|e| e.borrow().clone()) {
        return loaded.map_err(unavailable);
    }
    let lock = LOADING.with(Rc::clone);
    let _guard = lock.lock().await;
    if let Some(loaded) = ENGINE.with(|e| e.borrow().clone()) {
        return loaded.map_err(unavailable);
    }
    let started = now_ms();
    let loaded = load(env, router)
        .await
        .map(|(encoder, index)| Rc::new(Engine { encoder, index, load_ms: now_ms() - started }));
    match &loaded {
        Ok(engine) => worker::console_log!(
            "{}",
            serde_json::json!({"event": "encoder_loaded", "load_ms": engine.load_ms, "int8_matmuls": engine.encoder.int8_matmuls})
        ),
        Err(e) => worker::console_error!("{}", serde_json::json!({"event": "encoder_failed", "message": e})),
    }
    ENGINE.with(|e| *e.borrow_mut() = Some(loaded.clone()));
    loaded.map_err(unavailable)
}

fn unavailable(message: String) -> RouterError {
    RouterError::new(ErrorKind::Unavailable, format!("the embedding model is unavailable: {message}"))
}

async fn load(env: &Env, router: &Router) -> Result<(Encoder, ExemplarIndex), String> {
    let assets =
        env.assets(ASSETS_BINDING).map_err(|e| format!("no {ASSETS_BINDING} assets binding: {e}"))?;
    let mut response =
        assets.fetch(ENCODER_ASSET, None).await.map_err(|e| format!("fetching encoder.onnx: {e}"))?;
    if response.status_code() != 200 {
        return Err(format!("fetching encoder.onnx: HTTP {}", response.status_code()));
    }
    // Kept as the chunks it arrives in: the decoder frees each once read (see Encoder).
    let mut stream = response.stream().map_err(|e| format!("reading encoder.onnx: {e}"))?;
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.next().await {
        chunks.push(chunk.map_err(|e| format!("reading encoder.onnx: {e}"))?);
    }
    let encoder = Encoder::from_onnx_chunks(chunks).map_err(|e| e.to_string())?;
    let index =
        match ExemplarIndex::from_json(BUILTIN_INDEX).and_then(|i| i.check(&router.config).map(|()| i)) {
            Ok(index) => index,
            Err(reason) => {
                worker::console_log!(
                    "{}",
                    serde_json::json!({"event": "index_rebuilt", "reason": reason.to_string()})
                );
                ExemplarIndex::build(&router.config, |text| encoder.embed(text)).map_err(|e| e.to_string())?
            }
        };
    Ok((encoder, index))
}
