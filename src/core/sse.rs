//! Server-sent events, parsed incrementally as bytes arrive.
//!
//! Upstream streams reach the Worker in network-sized chunks that split lines, CRLF pairs and
//! UTF-8 characters anywhere. The SSE crates on crates.io wrap an async byte stream and bring an
//! executor's worth of types with them; this parser is sans-IO instead (`feed` bytes, get events)
//! so the core stays platform-free and every provider's stream translation is tested natively.
//! It follows the WHATWG "event stream interpretation": LF, CR and CRLF line ends, `:` comments,
//! multi-line `data`, one optional space after the colon, a leading BOM ignored.

use std::fmt;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; `None` means the default type, "message".
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

/// A line (or an event's data) longer than the parser accepts: the stream is not SSE, or is
/// hostile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTooLong(pub usize);

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an event-stream line exceeded {} bytes", self.0)
    }
}

/// Longest line, and longest event's data, kept; a provider's largest single event (a whole tool
/// call's arguments) is far smaller. Past it, the stream fails as malformed.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
    /// The last byte seen was a CR: a LF right after it ends nothing.
    after_cr: bool,
    /// Bytes seen so far (counting stops at 4), to skip a BOM at the very start.
    seen: usize,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, LineTooLong> {
        let mut events = Vec::new();
        for &byte in bytes {
            self.seen = (self.seen + 1).min(4);
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_done(&line) {
                        events.push(event);
                    }
                    if self.data.len() > MAX_LINE_BYTES {
                        return Err(LineTooLong(MAX_LINE_BYTES));
                    }
                }
                _ => {
                    if self.line.len() >= MAX_LINE_BYTES {
                        return Err(LineTooLong(MAX_LINE_BYTES));
                    }
                    self.line.push(byte);
                    if self.seen == 3 && self.line == [0xEF, 0xBB, 0xBF] {
                        self.line.clear();
                    }
                }
            }
        }
        Ok(events)
    }

    /// The stream ended. A last event not followed by a blank line is still dispatched: servers
    /// that end with `data: [DONE]` and no trailing newline exist, and losing their final event
    /// would turn a complete answer into a cut one.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let line = std::mem::take(&mut self.line);
        if let Some(event) = self.line_done(&line) {
            return Some(event);
        }
        self.line_done(b"")
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.event.take();
            if !self.has_data {
                return None;
            }
            self.has_data = false;
            let mut data = std::mem::take(&mut self.data);
            data.pop(); // the "\n" after the last data line
            return Some(SseEvent { event, data });
        }
        if line[0] == b':' {
            return None;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.find(':') {
            Some(i) => (&line[..i], line[i + 1..].strip_prefix(' ').unwrap_or(&line[i + 1..])),
            None => (&line[..], ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "event" => self.event = (!value.is_empty()).then(|| value.to_string()),
            _ => {} // id, retry and unknown fields mean nothing to a one-shot relay
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(parser.feed(chunk).unwrap());
        }
        events.extend(parser.finish());
        events
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent { event: event.map(str::to_string), data: data.to_string() }
    }

    const SAMPLE: &str = "\u{feff}: keep-alive comment\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\ndata:first\ndata: second\n\n:ping\n\nevent: x\rdata:  two spaces\r\rdata: é€😀\n\nid: 7\nretry: 100\ndata\n\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            ev(Some("message_start"), "{\"a\":1}"),
            ev(None, "first\nsecond"),
            ev(Some("x"), " two spaces"),
            ev(None, "é€😀"),
            ev(None, ""),
        ]
    }

    #[test]
    fn crlf_cr_lf_comments_multiline_data_and_bom() {
        assert_eq!(parse_all(&[SAMPLE.as_bytes()]), expected());
    }

    #[test]
    fn chunk_boundaries_anywhere_give_the_same_events() {
        let bytes = SAMPLE.as_bytes();
        for split in 0..=bytes.len() {
            assert_eq!(parse_all(&[&bytes[..split], &bytes[split..]]), expected(), "split at {split}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_all(&singles), expected());
    }

    #[test]
    fn a_last_event_without_blank_line_is_kept() {
        assert_eq!(parse_all(&[b"data: [DONE]"]), vec![ev(None, "[DONE]")]);
        assert_eq!(parse_all(&[b"data: [DONE]\n"]), vec![ev(None, "[DONE]")]);
        assert_eq!(parse_all(&[b"event: ping\n"]), vec![]);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut parser = SseParser::new();
        let chunk = vec![b'a'; 1 << 20];
        let mut result = Ok(vec![]);
        for _ in 0..5 {
            result = parser.feed(&chunk);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(LineTooLong(MAX_LINE_BYTES)));
        // Many short data lines that never end their event are bounded too.
        let mut parser = SseParser::new();
        let lines = format!("data: {}\n", "x".repeat(250)).repeat(4096);
        let mut result = Ok(vec![]);
        for _ in 0..8 {
            result = parser.feed(lines.as_bytes());
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(LineTooLong(MAX_LINE_BYTES)));
    }
}
