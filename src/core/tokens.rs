//! Counting prompt tokens before generation, without the upstream's tokenizer.
//!
//! Routing on prompt size ("short prompts to the small model, 100k prompts to the long-context
//! one") and checking context windows must happen before any upstream is called, in well under a
//! millisecond, for models whose tokenizers we do not ship (a BPE vocabulary alone is megabytes of
//! wasm). So Switchyard *estimates*: the text is split into runs the way GPT-style BPE
//! pre-tokenizers split it (letters, digits, whitespace, punctuation, CJK), and each run is costed
//! by rules fitted to `cl100k_base`. The estimate's error against `cl100k_base` and `o200k_base`
//! on `tests/data/token_sample.jsonl` is checked by a test and stated in the README.
//!
//! Message framing follows OpenAI's published accounting: 3 tokens per message plus 3 priming the
//! reply. A non-text part (image, audio, file) is costed as 765 tokens, OpenAI's cost of a
//! high-detail 1024×1024 image: routing errs towards the larger context window.

use crate::core::request::ChatRequest;

/// Tokens added per message by the chat template.
pub const TOKENS_PER_MESSAGE: u64 = 3;
/// Tokens priming the assistant's reply.
pub const TOKENS_REPLY_PRIMING: u64 = 3;
/// Tokens charged per image, audio or file part.
pub const TOKENS_PER_MEDIA_PART: u64 = 765;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Letter,
    Digit,
    Space,
    Newline,
    Cjk,
    Other,
}

fn classify(c: char) -> Class {
    if c == '\n' || c == '\r' {
        Class::Newline
    } else if c.is_whitespace() {
        Class::Space
    } else if is_cjk(c) {
        Class::Cjk
    } else if c.is_alphabetic() {
        Class::Letter
    } else if c.is_numeric() {
        Class::Digit
    } else {
        Class::Other
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF     // kana
        | 0x3400..=0x4DBF   // CJK extension A
        | 0x4E00..=0x9FFF   // CJK unified ideographs
        | 0xAC00..=0xD7AF   // hangul syllables
        | 0xF900..=0xFAFF   // CJK compatibility ideographs
        | 0x20000..=0x2FA1F)
}

/// Texts up to this many bytes are estimated whole; a longer one from its first and last halves
/// of this, scaled to its length (see [`estimate_text_tokens`]).
pub const EXACT_ESTIMATE_BYTES: usize = 16_384;

/// Estimated tokens of a plain text.
///
/// Above [`EXACT_ESTIMATE_BYTES`] the count is extrapolated, byte for byte, from the text's first
/// and last 8 KiB: the estimate then costs the same for a 100 KB prompt as for a 4 MB one, and
/// on a long text that is alike throughout (the prompts that reach such sizes: pasted files,
/// logs, books) its error is the sample's.
pub fn estimate_text_tokens(text: &str) -> u64 {
    if text.len() <= EXACT_ESTIMATE_BYTES {
        return count_runs(text);
    }
    let half = EXACT_ESTIMATE_BYTES / 2;
    let head_end = floor_char_boundary(text, half);
    let tail_start = floor_char_boundary(text, text.len() - half);
    let (head, tail) = (&text[..head_end], &text[tail_start.max(head_end)..]);
    let sampled = count_runs(head) + count_runs(tail);
    let sampled_bytes = (head.len() + tail.len()) as u64;
    (sampled * text.len() as u64).div_ceil(sampled_bytes)
}

/// Every run of same-class characters of `text`, costed.
fn count_runs(text: &str) -> u64 {
    costed_runs(text, u64::MAX, true).0
}

/// The start of `text` that the estimate, whitespace left out, puts at `tokens` tokens (all of
/// it, if it has fewer).
///
/// An encoder that keeps its first N tokens need not tokenize past this prefix: reading a 1 MB
/// text whole costs the tokenizer time in its length for tokens it then throws away. Word-piece
/// tokenizers drop whitespace, so it is not counted.
pub fn prefix_of_tokens(text: &str, tokens: u64) -> &str {
    // A run is costed whole, and one run can be the whole text (a megabyte of one letter): the
    // prefix is also held to 64 bytes a token, more than any word piece takes.
    let max_bytes = usize::try_from(tokens.saturating_mul(64)).unwrap_or(usize::MAX);
    let end = costed_runs(&text[..floor_char_boundary(text, max_bytes)], tokens, false).1;
    // Ends before a blank, where one is near, so the last word is not cut into other word pieces.
    let to_blank =
        text[end..].char_indices().take(256).find(|(_, c)| c.is_whitespace()).map_or(0, |(i, _)| i);
    &text[..end + to_blank]
}

/// The largest char boundary of `text` at or below `at`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0)
}

/// The cost of `text`'s runs (whitespace included or not), stopping once `limit` is reached;
/// and the byte length read.
fn costed_runs(text: &str, limit: u64, whitespace: bool) -> (u64, usize) {
    let mut total = 0u64;
    let mut read = 0usize;
    let mut previous = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let class = classify(c);
        let mut len = 1usize;
        let mut bytes = c.len_utf8();
        let mut ascii = c.is_ascii();
        while let Some(&next) = chars.peek() {
            if classify(next) != class {
                break;
            }
            len += 1;
            bytes += next.len_utf8();
            ascii &= next.is_ascii();
            chars.next();
        }
        // Indentation after a line break is stored with the break ("\n    " is one token).
        let blank = matches!(class, Class::Space | Class::Newline);
        if !(class == Class::Space && previous == Some(Class::Newline)) && (whitespace || !blank) {
            total += run_cost(class, len, bytes, ascii);
        }
        previous = Some(class);
        read += bytes;
        if total >= limit {
            break;
        }
    }
    (total, read)
}

/// Cost of one run of same-class characters. A single space before a word is absorbed by the
/// word's token, as BPE vocabularies store " word"; longer whitespace runs cost one token.
fn run_cost(class: Class, len: usize, bytes: usize, ascii: bool) -> u64 {
    let len = len as u64;
    let bytes = bytes as u64;
    match class {
        Class::Letter if ascii => 1 + len.saturating_sub(6) / 4,
        Class::Letter => (len * 2).div_ceil(5),
        Class::Digit => len.div_ceil(3),
        Class::Space => u64::from(len > 1),
        Class::Newline => len.div_ceil(2),
        Class::Cjk => len,
        Class::Other if ascii => 1 + (len - 1) / 3,
        Class::Other => bytes.div_ceil(2),
    }
}

/// Estimated prompt tokens of a whole chat request: messages, framing, tool definitions, media.
pub fn estimate_request_tokens(request: &ChatRequest) -> u64 {
    let mut total = TOKENS_REPLY_PRIMING;
    for m in &request.messages {
        total += TOKENS_PER_MESSAGE
            + estimate_text_tokens(&m.text)
            + estimate_text_tokens(&m.tool_call_text)
            + m.media_parts as u64 * TOKENS_PER_MEDIA_PART;
    }
    total + estimate_text_tokens(&request.tools_text)
}
