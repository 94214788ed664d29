//! `map_local` (mitmproxy's MapLocal): matching requests are answered from local files. A
//! spec names a file (served for every matching URL) or a folder: the part of the URL after
//! the regex's match (or the regex's first group) is looked up in it, `index.html` for
//! folders, and never outside it.

use std::path::{Component, Path, PathBuf};

/// The files a request for `url` may be answered with under `root`, best first (mitmproxy's
/// `file_candidates`); `rule` matched `url` already.
pub fn candidates(url: &str, rule: &regex::Regex, root: &Path) -> Vec<PathBuf> {
    let Some(found) = rule.captures(url) else {
        return Vec::new();
    };
    let suffix = match found.get(1) {
        Some(group) => group.as_str().to_string(),
        None => {
            let after = &url[found.get(0).map_or(0, |m| m.end())..];
            let after = after.split('?').next().unwrap_or_default();
            after.trim_matches('/').to_string()
        }
    };
    if suffix.is_empty() {
        return vec![root.join("index.html")];
    }
    let decoded = percent_decode(&suffix);
    let mut names = vec![decoded.clone(), format!("{decoded}/index.html")];
    let escaped: String = decoded
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.=(),/".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if escaped != decoded {
        names.push(escaped.clone());
        names.push(format!("{escaped}/index.html"));
    }
    names
        .iter()
        .map(|name| safe_join(root, name))
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default()
}

/// `root` joined with an untrusted relative path; `None` when the path would leave `root`
/// (`..`, an absolute path, a drive).
fn safe_join(root: &Path, untrusted: &str) -> Option<PathBuf> {
    let mut joined = root.to_path_buf();
    for component in Path::new(untrusted).components() {
        match component {
            Component::Normal(part) => joined.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(joined)
}

/// `%XX` sequences decoded (invalid ones kept), as UTF-8 with replacement characters.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The media type for a file name's extension (the common web ones), as Python's
/// `mimetypes.guess_type` gives them.
pub fn media_type(path: &Path) -> Option<&'static str> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match extension.as_str() {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "json" | "map" => "application/json",
        "txt" => "text/plain",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/vnd.microsoft.icon",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "csv" => "text/csv",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_the_url_inside_the_folder_only() {
        let root = Path::new("/srv/site");
        let rule = regex::Regex::new("example.com/static").unwrap();
        assert_eq!(
            candidates("https://example.com/static/css/a%20b.css?v=1", &rule, root),
            [
                PathBuf::from("/srv/site/css/a b.css"),
                PathBuf::from("/srv/site/css/a b.css/index.html"),
                PathBuf::from("/srv/site/css/a_b.css"),
                PathBuf::from("/srv/site/css/a_b.css/index.html"),
            ]
        );
        assert_eq!(
            candidates("https://example.com/static", &rule, root),
            [PathBuf::from("/srv/site/index.html")]
        );
        assert!(candidates("https://example.com/static/../../etc/passwd", &rule, root).is_empty());
        let grouped = regex::Regex::new(r"example.com/v\d/(.*)").unwrap();
        assert_eq!(
            candidates("https://example.com/v2/app.js", &grouped, root)[0],
            PathBuf::from("/srv/site/app.js")
        );
    }

    #[test]
    fn media_types() {
        assert_eq!(media_type(Path::new("a/index.HTML")), Some("text/html"));
        assert_eq!(media_type(Path::new("x.bin")), None);
    }
}
