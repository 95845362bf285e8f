//! Reading a request body with a hard size limit.
//!
//! The body is read chunk by chunk and abandoned as soon as it passes `server.max_body_bytes`, so
//! an oversize (or endless chunked) upload costs at most the limit in memory and gets a 413.

use crate::core::error::{ErrorKind, RouterError};
use futures_util::StreamExt;
use worker::Request;

pub async fn read_limited(req: &mut Request, limit: usize) -> Result<Vec<u8>, RouterError> {
    let too_large = || {
        RouterError::new(
            ErrorKind::PayloadTooLarge,
            format!("request body is larger than the limit of {limit} bytes (server.max_body_bytes)"),
        )
    };
    let declared =
        req.headers().get("content-length").ok().flatten().and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let Ok(mut stream) = req.stream() else {
        return Ok(Vec::new()); // no body at all
    };
    let mut body = Vec::with_capacity(declared.map_or(0, |len| len as usize));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| RouterError::invalid_request(format!("could not read the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
