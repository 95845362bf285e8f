//! Which request paths the playground page answers, and the headers it is served with.
//!
//! The Worker's static assets hold the model (private: only the Worker reads it) and the
//! playground (public). Every request reaches the Worker first, and only a path this module maps
//! reaches the assets: `/` is the page, `/playground/NAME` its files. A name is letters, digits,
//! `-`, `_` and one dot before its extension, so no spelling of a path (`..`, `%2e`, `%2f`, a
//! backslash) can climb out of the playground's folder to the encoder or a classifier head.

/// The asset folder of the page (scripts/assemble-assets.sh puts `playground/` there).
pub const FOLDER: &str = "/playground/";

/// The asset path serving a request `path`, or `None` when the path is not the playground's.
pub fn asset_path(path: &str) -> Option<String> {
    if path == "/" {
        return Some(format!("{FOLDER}index.html"));
    }
    let name = path.strip_prefix(FOLDER)?;
    let (stem, extension) = name.split_once('.')?;
    let plain =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (plain(stem) && ["html", "js", "css", "svg", "png"].contains(&extension))
        .then(|| format!("{FOLDER}{name}"))
}

/// Headers on every playground response. The page loads only its own files and talks only to
/// this origin (`connect-src 'self'`), so a text it displays cannot load or send anything; it may
/// not be framed by another site; the router key it holds never leaves in a `Referer`.
pub const HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-cache"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_page_and_its_files_are_served_by_name() {
        assert_eq!(asset_path("/").as_deref(), Some("/playground/index.html"));
        assert_eq!(asset_path("/playground/playground.js").as_deref(), Some("/playground/playground.js"));
        assert_eq!(asset_path("/playground/style-2.css").as_deref(), Some("/playground/style-2.css"));
    }

    #[test]
    fn nothing_outside_the_playground_is_reachable() {
        for path in [
            "/encoder.onnx",
            "/tokenizer.json",
            "/router.static",
            "/playground/",
            "/playground/../encoder.onnx",
            "/playground/%2e%2e/encoder.onnx",
            "/playground/..%2Fencoder.onnx",
            "/playground/a/b.js",
            "/playground/a\\..\\encoder.onnx",
            "/playground/head.json",
            "/playground/x.js.map",
            "/playground/.js",
            "//playground/index.html",
            "/index.html",
        ] {
            assert_eq!(asset_path(path), None, "{path}");
        }
    }
}
