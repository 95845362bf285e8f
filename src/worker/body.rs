//! Reading a request body with a hard size limit.
//!
//! The body is read chunk by chunk and abandoned as soon as it passes `server.max_body_bytes`, so
//! an oversize (or endless chunked) upload costs at most the limit in memory and gets a 413.

use crate::core::error::{ErrorKind, RouterError};
use futures_util::StreamExt;
use worker::{ByteStream, Request};

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
    let capacity = declared.map_or(0, |len| len as usize);
    match read_at_most(&mut stream, limit, capacity).await {
        Ok(Some(body)) => Ok(body),
        Ok(None) => Err(too_large()),
        Err(e) => Err(RouterError::invalid_request(format!("could not read the request body: {e}"))),
    }
}

/// The rest of a body, or `None` as soon as it passes `max_bytes` (what follows is not read):
/// a request's body and an upstream's answer are both read this way, so neither can grow memory
/// past its limit.
pub async fn read_at_most(
    stream: &mut ByteStream,
    max_bytes: usize,
    capacity: usize,
) -> worker::Result<Option<Vec<u8>>> {
    let mut body = Vec::with_capacity(capacity.min(max_bytes));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > max_bytes {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}
