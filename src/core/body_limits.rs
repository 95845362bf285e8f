//! Limits on a request body's shape, checked before the body is parsed.
//!
//! Parsed JSON takes many times the memory of its text: a 4 MiB body of tiny messages
//! (`{"role":"user","content":"a"}`) becomes some 140,000 maps, tens of megabytes of wasm memory,
//! and an isolate's linear memory never shrinks: a few such bodies take it past the 128 MB at
//! which Cloudflare kills it, with every request it was serving. So before the body is parsed, one
//! pass walks its text with serde's visitors, allocating nothing, and counts what the limits
//! bound: JSON values in all, messages, content parts and tools. The first limit passed ends the
//! walk with a 400 that names it; only a body within every limit is parsed.

use crate::core::error::RouterError;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Messages in one request.
pub const MAX_MESSAGES: usize = 2048;
/// Content parts (text, image, audio, file) across all of a request's messages.
pub const MAX_CONTENT_PARTS: usize = 2048;
/// Tool (and legacy function) definitions in one request, OpenAI's own limit.
pub const MAX_TOOLS: usize = 128;
/// JSON values (objects, arrays, strings, numbers, booleans, nulls) in one body, wherever they are.
pub const MAX_JSON_VALUES: usize = 100_000;

/// Checks a JSON body against the limits. A body that is not JSON passes: its parse says why.
pub fn check(bytes: &[u8]) -> Result<(), RouterError> {
    let mut counts = Counts::default();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let walked = Walk { counts: &mut counts, place: Place::Top }.deserialize(&mut deserializer);
    match (walked, counts.exceeded) {
        (_, Some(limit)) => Err(limit.error()),
        _ => Ok(()),
    }
}

#[derive(Default)]
struct Counts {
    values: usize,
    messages: usize,
    parts: usize,
    tools: usize,
    exceeded: Option<Limit>,
}

#[derive(Debug, Clone, Copy)]
enum Limit {
    Values,
    Messages,
    Parts,
    Tools,
}

impl Limit {
    fn error(self) -> RouterError {
        let (what, param) = match self {
            Limit::Values => (format!("the body holds more than {MAX_JSON_VALUES} JSON values"), ""),
            Limit::Messages => (format!("messages holds more than {MAX_MESSAGES} messages"), "messages"),
            Limit::Parts => {
                (format!("the messages hold more than {MAX_CONTENT_PARTS} content parts"), "messages")
            }
            Limit::Tools => (format!("the request defines more than {MAX_TOOLS} tools"), "tools"),
        };
        RouterError::invalid_request(format!("{what}, the most a request may have")).with_param(param)
    }
}

impl Counts {
    /// Counts one more of what `limit` bounds; an error once past it.
    fn add<E: serde::de::Error>(&mut self, limit: Limit) -> Result<(), E> {
        let (count, most) = match limit {
            Limit::Values => (&mut self.values, MAX_JSON_VALUES),
            Limit::Messages => (&mut self.messages, MAX_MESSAGES),
            Limit::Parts => (&mut self.parts, MAX_CONTENT_PARTS),
            Limit::Tools => (&mut self.tools, MAX_TOOLS),
        };
        *count += 1;
        if *count > most {
            self.exceeded = Some(limit);
            return Err(E::custom("over a limit"));
        }
        Ok(())
    }
}

/// Where in the body a value is: the places whose elements are counted.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Top,
    /// The top-level `messages` array.
    Messages,
    /// One message.
    Message,
    /// A message's `content`.
    Content,
    /// The top-level `tools` or `functions` array.
    Tools,
    Elsewhere,
}

/// Walks one value at `place`, counting.
struct Walk<'c> {
    counts: &'c mut Counts,
    place: Place,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.counts.add(Limit::Values)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.counts.add(Limit::Values)
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.counts.add(Limit::Values)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.counts.add(Limit::Values)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.counts.add(Limit::Values)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.counts.add(Limit::Values)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.counts.add(Limit::Values)?;
        let (each, element) = match self.place {
            Place::Messages => (Some(Limit::Messages), Place::Message),
            Place::Content => (Some(Limit::Parts), Place::Elsewhere),
            Place::Tools => (Some(Limit::Tools), Place::Elsewhere),
            _ => (None, Place::Elsewhere),
        };
        loop {
            let walk = Walk { counts: &mut *self.counts, place: element };
            if seq.next_element_seed(walk)?.is_none() {
                return Ok(());
            }
            if let Some(limit) = each {
                self.counts.add(limit)?;
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.counts.add(Limit::Values)?;
        while let Some(key) = map.next_key_seed(KeyName)? {
            let place = match (self.place, key) {
                (Place::Top, Key::Messages) => Place::Messages,
                (Place::Top, Key::Tools) => Place::Tools,
                (Place::Message, Key::Content) => Place::Content,
                _ => Place::Elsewhere,
            };
            map.next_value_seed(Walk { counts: &mut *self.counts, place })?;
        }
        Ok(())
    }
}

/// The keys that lead to counted places.
#[derive(Clone, Copy)]
enum Key {
    Messages,
    Content,
    Tools,
    Other,
}

/// Reads a key without allocating it.
struct KeyName;

impl<'de> DeserializeSeed<'de> for KeyName {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyName {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "messages" => Key::Messages,
            "content" => Key::Content,
            "tools" | "functions" => Key::Tools,
            _ => Key::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limit_of(body: serde_json::Value) -> Option<String> {
        check(body.to_string().as_bytes()).err().map(|e| e.message)
    }

    #[test]
    fn a_body_within_every_limit_passes() {
        let message = json!({"role": "user", "content": [{"type": "text", "text": "hi"}]});
        let tool = json!({"type": "function", "function": {"name": "f", "parameters": {}}});
        let body = json!({"messages": vec![message; MAX_CONTENT_PARTS], "tools": vec![tool; MAX_TOOLS]});
        assert_eq!(limit_of(body), None);
        assert!(check(b"not json").is_ok(), "the parse reports what is wrong");
    }

    #[test]
    fn each_limit_is_a_400_naming_it() {
        let hi = json!({"role": "user", "content": "hi"});
        let too_many = limit_of(json!({"messages": vec![hi.clone(); MAX_MESSAGES + 1]})).unwrap();
        assert!(too_many.contains("more than 2048 messages"), "{too_many}");
        let parts = json!({"role": "user", "content": vec![json!({"type": "text", "text": "a"}); 1025]});
        let too_many = limit_of(json!({"messages": [parts.clone(), parts]})).unwrap();
        assert!(too_many.contains("2048 content parts"), "{too_many}");
        let too_many =
            limit_of(json!({"messages": [hi], "functions": vec![json!({}); MAX_TOOLS + 1]})).unwrap();
        assert!(too_many.contains("128 tools"), "{too_many}");
        let too_many = limit_of(json!({"messages": [], "metadata": vec![1; MAX_JSON_VALUES]})).unwrap();
        assert!(too_many.contains("100000 JSON values"), "{too_many}");
        let err = check(json!({"messages": vec![json!({}); 3000]}).to_string().as_bytes()).unwrap_err();
        assert_eq!((err.status(), err.param.as_deref()), (400, Some("messages")));
    }

    #[test]
    fn only_the_places_that_are_limited_are_counted() {
        // A `messages` or `content` key elsewhere is an ordinary value.
        let nested =
            json!({"messages": [{"role": "user", "content": "hi"}], "metadata": {"messages": vec![1; 3000]}});
        assert_eq!(limit_of(nested), None);
    }
}
