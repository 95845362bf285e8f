//! The playground page, served from the static assets: `core::playground` says which paths
//! reach them and with which headers; everything else in the assets stays the Worker's own.

use crate::core::error::{ErrorKind, RouterError};
use crate::core::playground::HEADERS;
use crate::worker::http;
use crate::worker::semantic::{asset_url, ASSETS_BINDING};
use worker::{Env, Headers, Method, Response};

/// The file at `asset` (a path `core::playground::asset_path` gave), for a GET or a HEAD.
pub async fn serve(env: &Env, method: Method, asset: &str) -> Response {
    if !matches!(method, Method::Get | Method::Head) {
        return http::error(&RouterError::new(
            ErrorKind::MethodNotAllowed,
            "the playground is read with GET",
        ));
    }
    match fetch(env, asset).await {
        Ok((content_type, body)) => {
            let headers = Headers::new();
            let _ = headers.set("content-type", &content_type);
            for (name, value) in HEADERS {
                let _ = headers.set(name, value);
            }
            let body = if method == Method::Head { Vec::new() } else { body };
            Response::builder().with_status(200).with_headers(headers).fixed(body)
        }
        Err(error) => http::error(&error),
    }
}

/// The asset's content type and bytes: a 404 when the playground has no such file, a 500 when
/// the assets cannot be read.
async fn fetch(env: &Env, asset: &str) -> Result<(String, Vec<u8>), RouterError> {
    let assets = env.assets(ASSETS_BINDING).map_err(unreadable)?;
    let mut response =
        assets.fetch(asset_url(asset.trim_start_matches('/')), None).await.map_err(unreadable)?;
    match response.status_code() {
        200 => {}
        404 => return Err(RouterError::new(ErrorKind::NotFound, "no such file in the playground")),
        other => return Err(unreadable(other)),
    }
    let content_type = response
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_else(|| "application/octet-stream".into());
    let body = response.bytes().await.map_err(unreadable)?;
    Ok((content_type, body))
}

/// The 500 of assets that cannot be read (the platform's reason is not the client's to see).
fn unreadable<E>(_: E) -> RouterError {
    RouterError::new(ErrorKind::Internal, "the playground could not be read from the assets")
}
