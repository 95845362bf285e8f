//! OpenAI Chat Completions and the servers that copy it (Ollama, llama.cpp, vLLM): the request is
//! the client's own, with `model` replaced and usage asked for in streams.

pub mod request;
pub mod response;
pub mod stream;
