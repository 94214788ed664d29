//! Finds API keys, tokens and other credentials in live traffic, logs each with a
//! confidence score, masks it in place, and can answer `403` instead of letting a likely leak
//! through (twin of mitmproxy's `examples/addons/secret_leak_detector.py`, from mitmproxy
//! PR #8148).
//!
//! It scans request headers, query parameters and bodies (under 200 kB), then response
//! headers and bodies; JSON values are scanned field by field. Each hit is scored from the
//! pattern's base score (+15 when the header or field name says `authorization`, `api-key`,
//! `token` or `secret`, +10 for `/auth`, `/api`, `/login` or `/token` in the path, +10 for
//! a random-looking value), logged as a warning in JSON (`secret_leak_detected`, with the
//! value masked: its first 8 characters, `...`, its last 4), and masked in the header or body
//! it came from. With blocking on, a hit scoring 75 or more is logged as an error
//! (`secret_leak_blocked`) and answered with `403` (except on `/health`, `/metrics`,
//! `/static`, `/favicon` and `/robots.txt`).
//!
//! The patterns are the original's: Anthropic, OpenAI (project and legacy), AWS access key id
//! and secret access key, JWT, Bearer tokens, Google API keys and GitHub tokens (classic and
//! fine-grained).
//!
//! Differences from the original:
//! - mitmproxy's version has two addon options; Interpose addons cannot declare options yet,
//!   so this one reads environment variables when the plugin is loaded:
//!   `INTERPOSE_SECRETLEAKDETECTOR_BLOCK` (`secretleakdetector_block`: `true`, `1`, `yes` or
//!   `on` turn blocking on; off by default) and `INTERPOSE_SECRETLEAKDETECTOR_THRESHOLD`
//!   (`secretleakdetector_threshold`: `high` reports scores of 75 and up, `medium`, the
//!   default, 60 and up, `low` everything).
//! - A hit is reported once per event (the request's, then the response's); the original
//!   remembers hits for the whole flow.
//! - JSON objects are scanned in key order (serde_json's map), not in document order.
//! - As in the original, a secret in the query is logged but masked in the body (if any),
//!   not in the URL, and a secret inside a JSON header value is not masked.

use std::{
    collections::HashSet,
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
};

use interpose_plugin_abi::{prelude::*, Headers};
use regex::Regex;
use serde_json::Value;

/// The environment variable for `secretleakdetector_block`.
pub const BLOCK_VAR: &str = "INTERPOSE_SECRETLEAKDETECTOR_BLOCK";
/// The environment variable for `secretleakdetector_threshold`.
pub const THRESHOLD_VAR: &str = "INTERPOSE_SECRETLEAKDETECTOR_THRESHOLD";

/// Bodies this large or larger are not scanned.
const MAX_BODY: usize = 200_000;
/// Paths never blocked.
const SAFE_PATHS: [&str; 5] = ["/health", "/metrics", "/static", "/favicon", "/robots.txt"];
/// The score from which a hit is blocked (when blocking is on).
const BLOCK_SCORE: u32 = 75;

/// One kind of secret.
struct Pattern {
    regex: Regex,
    /// For the AWS secret key: only a run of exactly this many characters of the class counts
    /// (the original's lookarounds, which Rust's regex lacks).
    exact_len: Option<usize>,
    name: &'static str,
    base_score: u32,
}

impl Pattern {
    fn new(regex: &str, name: &'static str, base_score: u32) -> Pattern {
        Pattern {
            regex: Regex::new(regex).expect("a valid built-in pattern"),
            exact_len: None,
            name,
            base_score,
        }
    }

    /// The first hit in `line`.
    fn find<'a>(&self, line: &'a str) -> Option<&'a str> {
        match self.exact_len {
            None => self.regex.find(line).map(|m| m.as_str()),
            Some(n) => self
                .regex
                .find_iter(line)
                .find(|m| m.len() == n)
                .map(|m| m.as_str()),
        }
    }
}

/// Finds, logs, masks and optionally blocks secrets.
pub struct SecretLeakDetector {
    block: bool,
    threshold: String,
    patterns: Vec<Pattern>,
    /// Secrets reported so far.
    secrets_found: AtomicU64,
}

/// The hits already reported in one event, by secret type and masked value.
type Seen = HashSet<(&'static str, String)>;

impl SecretLeakDetector {
    /// A detector blocking (or not) and reporting from `threshold` (`low`, `medium`, `high`).
    pub fn new(block: bool, threshold: &str) -> Self {
        let mut aws_secret = Pattern::new("[A-Za-z0-9/+=]{40,}", "AWS Secret Access Key", 65);
        aws_secret.exact_len = Some(40);
        let patterns = vec![
            Pattern::new(
                "sk-ant-api[0-9]{2}-[a-zA-Z0-9_-]{86}",
                "Anthropic API Key",
                92,
            ),
            Pattern::new("sk-proj-[a-zA-Z0-9_-]{48,}", "OpenAI API Key (project)", 90),
            Pattern::new("sk-[a-zA-Z0-9]{48}", "OpenAI API Key (legacy)", 85),
            Pattern::new("AKIA[0-9A-Z]{16}", "AWS Access Key ID", 85),
            aws_secret,
            Pattern::new(
                r"eyJ[a-zA-Z0-9_-]{10,}\.[a-zA-Z0-9_-]{10,}\.[a-zA-Z0-9_-]{10,}",
                "JWT Token",
                80,
            ),
            Pattern::new("Bearer [a-zA-Z0-9_.-]{20,}", "Bearer Token", 75),
            Pattern::new("AIza[0-9A-Za-z_-]{35}", "Google API Key", 70),
            Pattern::new("ghp_[a-zA-Z0-9]{36,}", "GitHub PAT", 70),
            Pattern::new(
                "github_pat_[a-zA-Z0-9_]{82,}",
                "GitHub PAT (fine-grained)",
                88,
            ),
        ];
        SecretLeakDetector {
            block,
            threshold: threshold.trim().to_ascii_lowercase(),
            patterns,
            secrets_found: AtomicU64::new(0),
        }
    }

    /// A detector configured by `INTERPOSE_SECRETLEAKDETECTOR_BLOCK` and `..._THRESHOLD`.
    pub fn from_env() -> Self {
        let block = std::env::var(BLOCK_VAR).is_ok_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "true" | "1" | "yes" | "on"
            )
        });
        let threshold = std::env::var(THRESHOLD_VAR).unwrap_or_else(|_| "medium".into());
        SecretLeakDetector::new(block, &threshold)
    }

    /// How many secrets were reported so far.
    pub fn secrets_found(&self) -> u64 {
        self.secrets_found.load(Ordering::Relaxed)
    }

    /// Scans one value found at `location` (`Request Header: x-api-key`, `Response Body`...).
    fn scan_value(
        &self,
        ctx: &Context,
        value: &str,
        location: &str,
        flow: &mut HttpFlow,
        seen: &mut Seen,
    ) {
        if value.chars().count() < 8 {
            return;
        }
        if is_json(value) {
            if let Ok(parsed) = serde_json::from_str::<Value>(value) {
                self.scan_json(ctx, &parsed, &format!("{location} (JSON)"), flow, seen);
                return;
            }
        }
        let path = flow.request.path().to_string();
        // Python's str.splitlines() line boundaries.
        let boundaries = |c: char| {
            matches!(
                c,
                '\n' | '\r'
                    | '\x0b'
                    | '\x0c'
                    | '\x1c'
                    | '\x1d'
                    | '\x1e'
                    | '\u{85}'
                    | '\u{2028}'
                    | '\u{2029}'
            )
        };
        for line in value.split(boundaries).map(str::trim) {
            if line.is_empty() {
                continue;
            }
            for pattern in &self.patterns {
                let Some(found) = pattern.find(line) else {
                    continue;
                };
                let masked = mask(found);
                if !seen.insert((pattern.name, masked.clone())) {
                    continue;
                }
                let confidence = confidence(pattern.base_score, found, location, &path);
                if (self.threshold == "high" && confidence < 75)
                    || (self.threshold == "medium" && confidence < 60)
                {
                    continue;
                }
                self.secrets_found.fetch_add(1, Ordering::Relaxed);
                let url = flow.request.pretty_url();
                warn!(
                    ctx,
                    "{}",
                    json_object(&[
                        ("event", Field::Str("secret_leak_detected")),
                        ("secret_type", Field::Str(pattern.name)),
                        ("confidence", Field::Int(confidence)),
                        ("location", Field::Str(location)),
                        ("url", Field::Str(&url)),
                        ("masked_value", Field::Str(&masked)),
                    ])
                );
                if location.to_lowercase().contains("request") {
                    let request = &mut flow.request;
                    apply_mask(
                        &mut request.headers,
                        &mut request.content,
                        location,
                        found,
                        &masked,
                    );
                } else if let Some(response) = flow.response_mut() {
                    apply_mask(
                        &mut response.headers,
                        &mut response.content,
                        location,
                        found,
                        &masked,
                    );
                }
                if self.block && confidence >= BLOCK_SCORE {
                    if SAFE_PATHS.contains(&path.as_str()) {
                        info!(ctx, "[SAFE PATH] Skipped blocking for {path}");
                        continue;
                    }
                    error!(
                        ctx,
                        "{}",
                        json_object(&[
                            ("event", Field::Str("secret_leak_blocked")),
                            ("reason", Field::Str("high-confidence leak")),
                            ("url", Field::Str(&url)),
                        ])
                    );
                    flow.set_response(Response::make(
                        403,
                        "Secret leak detected and blocked by mitmproxy addon",
                        &[],
                    ));
                    return;
                }
            }
        }
    }

    /// Scans the strings and numbers of a JSON document, naming each by its path.
    fn scan_json(
        &self,
        ctx: &Context,
        data: &Value,
        prefix: &str,
        flow: &mut HttpFlow,
        seen: &mut Seen,
    ) {
        let mut item = |value: &Value, location: String| match value {
            Value::String(s) => self.scan_value(ctx, s, &location, flow, seen),
            Value::Number(n) => self.scan_value(ctx, &n.to_string(), &location, flow, seen),
            Value::Object(_) | Value::Array(_) => self.scan_json(ctx, value, &location, flow, seen),
            // `True`, `False` and `None` are too short to hold a secret.
            Value::Bool(_) | Value::Null => {}
        };
        match data {
            Value::Object(map) => {
                for (key, value) in map {
                    item(value, format!("{prefix} → {key}"));
                }
            }
            Value::Array(items) => {
                for (i, value) in items.iter().enumerate() {
                    item(value, format!("{prefix}[{i}]"));
                }
            }
            _ => {}
        }
    }

    /// Scans a body, unless it is too large.
    fn scan_body(
        &self,
        ctx: &Context,
        content: &Body,
        what: &str,
        flow: &mut HttpFlow,
        seen: &mut Seen,
    ) {
        if content.is_empty() {
            return;
        }
        if content.len() >= MAX_BODY {
            info!(
                ctx,
                "[SKIPPED] Large {} body ({} bytes)",
                what.to_lowercase(),
                content.len()
            );
            return;
        }
        let text = String::from_utf8_lossy(content).into_owned();
        self.scan_value(ctx, &text, &format!("{what} Body"), flow, seen);
    }
}

#[addon]
impl Addon for SecretLeakDetector {
    fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
        let mut seen = Seen::new();
        for (name, value) in header_items(&flow.request.headers) {
            self.scan_value(
                ctx,
                &value,
                &format!("Request Header: {name}"),
                flow,
                &mut seen,
            );
        }
        let mut names = HashSet::new();
        for (name, value) in flow.request.query() {
            // mitmproxy's `query.items()`: each name once, with its first value.
            if names.insert(name.clone()) {
                self.scan_value(ctx, &value, &format!("Query: {name}"), flow, &mut seen);
            }
        }
        let content = flow.request.content.clone();
        self.scan_body(ctx, &content, "Request", flow, &mut seen);
    }

    fn response(&self, ctx: &Context, flow: &mut HttpFlow) {
        let Some(response) = flow.response() else {
            return;
        };
        let headers = header_items(&response.headers);
        let content = response.content.clone();
        let mut seen = Seen::new();
        for (name, value) in headers {
            self.scan_value(
                ctx,
                &value,
                &format!("Response Header: {name}"),
                flow,
                &mut seen,
            );
        }
        self.scan_body(ctx, &content, "Response", flow, &mut seen);
    }
}

/// Each header name once, with its values joined by `, ` (mitmproxy's `headers.items()`).
fn header_items(headers: &Headers) -> Vec<(String, String)> {
    let mut items: Vec<(String, String)> = Vec::new();
    for (name, _) in headers.iter() {
        if items.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            continue;
        }
        let values: Vec<String> = headers
            .get_all_bytes(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        items.push((name.to_string(), values.join(", ")));
    }
    items
}

/// The first 8 characters, `...`, the last 4.
fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let head: String = chars.iter().take(8).collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("{head}...{tail}")
}

/// The score of a hit: the pattern's, raised by where it was found and how random it looks.
fn confidence(base_score: u32, value: &str, location: &str, path: &str) -> u32 {
    let mut score = base_score;
    let location = location.to_lowercase();
    if ["authorization", "api-key", "token", "secret"]
        .iter()
        .any(|x| location.contains(x))
    {
        score += 15;
    }
    let path = path.to_lowercase();
    if ["/auth", "/api", "/login", "/token"]
        .iter()
        .any(|x| path.contains(x))
    {
        score += 10;
    }
    if entropy(value) > 4.5 {
        score += 10;
    }
    score.min(100)
}

/// Shannon entropy of the characters of `s`, in bits; 0 for fewer than 8 characters.
fn entropy(s: &str) -> f64 {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 8 {
        return 0.0;
    }
    let mut counts = std::collections::HashMap::new();
    for c in &chars {
        *counts.entry(*c).or_insert(0usize) += 1;
    }
    let n = chars.len() as f64;
    -counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            p * p.log2()
        })
        .sum::<f64>()
}

/// Whether `text` looks like a JSON object or array.
fn is_json(text: &str) -> bool {
    let text = text.trim();
    (text.starts_with('{') && text.ends_with('}')) || (text.starts_with('[') && text.ends_with(']'))
}

/// Replaces `original` by `masked` in the header a location names, or else in the body.
fn apply_mask(
    headers: &mut Headers,
    content: &mut Body,
    location: &str,
    original: &str,
    masked: &str,
) {
    if location.contains("Header") {
        let Some((_, name)) = location.split_once(": ") else {
            return;
        };
        if headers.contains(name) {
            let value: Vec<String> = headers
                .get_all_bytes(name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect();
            headers.insert(name, value.join(", ").replace(original, masked));
        }
    } else if !content.is_empty() {
        let text = String::from_utf8_lossy(content).replace(original, masked);
        *content = Body::from(text.into_bytes());
    }
}

/// A value of a log line's JSON object.
enum Field<'a> {
    Str(&'a str),
    Int(u32),
}

/// A JSON object as Python's `json.dumps` writes it: `{"a": 1, "b": "x"}`, in the order
/// given, non-ASCII characters escaped.
fn json_object(fields: &[(&str, Field<'_>)]) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        json_string(&mut out, key);
        out.push_str(": ");
        match value {
            Field::Str(s) => json_string(&mut out, s),
            Field::Int(n) => {
                let _ = write!(out, "{n}");
            }
        }
    }
    out.push('}');
    out
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

export_plugin!(addons = [SecretLeakDetector::from_env()]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    const GITHUB: &str = "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8";
    const AWS_ID: &str = "AKIAIOSFODNN7EXAMPLE";
    const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    #[test]
    fn finds_masks_and_logs_header_secrets() {
        let tctx = TestContext::new();
        let addon = SecretLeakDetector::new(false, "medium");
        let mut flow = testing::flow();
        flow.request
            .headers
            .insert("Authorization", format!("Bearer {GITHUB}"));
        addon.request(tctx.ctx(), &mut flow);
        // Bearer (75 + 15) and the GitHub token inside it (70 + 15), both masked.
        let logs = tctx.logs();
        assert_eq!(logs.len(), 2, "{logs:?}");
        assert!(logs.iter().all(|(level, _)| *level == Level::Warn));
        assert!(
            logs[0].1.starts_with(
                "{\"event\": \"secret_leak_detected\", \"secret_type\": \"Bearer Token\", \
             \"confidence\": "
            ),
            "{}",
            logs[0].1
        );
        assert!(
            logs[0].1.ends_with(
                "\"location\": \"Request Header: Authorization\", \
             \"url\": \"http://example.com/path\", \"masked_value\": \"Bearer g...q7R8\"}"
            ),
            "{}",
            logs[0].1
        );
        assert!(logs[1].1.contains("\"masked_value\": \"ghp_a1B2...q7R8\""));
        assert_eq!(
            flow.request.headers.get("authorization"),
            Some("Bearer g...q7R8")
        );
        assert!(flow.response().is_none());
        assert_eq!(addon.secrets_found(), 2);
    }

    #[test]
    fn scans_json_bodies_by_field_and_blocks_when_asked() {
        let tctx = TestContext::new();
        let addon = SecretLeakDetector::new(true, "medium");
        let mut flow = testing::flow();
        flow.request.set_path("/api/keys");
        flow.request.content = Body::from(format!(
            "{{\"aws\": {{\"id\": \"{AWS_ID}\", \"secret\": \"{AWS_SECRET}\"}}}}"
        ));
        addon.request(tctx.ctx(), &mut flow);
        let messages = tctx.messages();
        assert!(
            messages[0].contains("\"location\": \"Request Body (JSON) \\u2192 aws \\u2192 id\""),
            "{messages:?}"
        );
        assert!(messages[1].starts_with("{\"event\": \"secret_leak_blocked\""));
        let response = flow.response().expect("blocked");
        assert_eq!(response.status_code, 403);
        assert!(String::from_utf8_lossy(&flow.request.content).contains("AKIAIOSF...MPLE"));
    }

    #[test]
    fn the_aws_secret_pattern_wants_exactly_40_characters() {
        let addon = SecretLeakDetector::new(false, "low");
        let aws = &addon.patterns[4];
        assert_eq!(aws.find(&format!("key: {AWS_SECRET};")), Some(AWS_SECRET));
        assert_eq!(aws.find(&format!("{AWS_SECRET}x")), None);
    }

    #[test]
    fn the_threshold_drops_low_scores_and_safe_paths_are_not_blocked() {
        let tctx = TestContext::new();
        // A (not very random) Google key in a body scores 70: under "high"'s 75.
        let google = format!("AIza{}", "a".repeat(35));
        assert_eq!(confidence(70, &google, "Response Body", "/"), 70);
        let addon = SecretLeakDetector::new(true, "high");
        let mut flow = testing::flow_with_response();
        flow.response_mut().unwrap().content = Body::from(format!("key: {google}"));
        addon.response(tctx.ctx(), &mut flow);
        assert!(tctx.logs().is_empty(), "{:?}", tctx.logs());

        let mut safe = testing::flow();
        safe.request.set_path("/health");
        safe.request.headers.insert("x-token", GITHUB);
        addon.request(tctx.ctx(), &mut safe);
        assert!(safe.response.is_none());
        assert_eq!(
            tctx.messages().last().map(String::as_str),
            Some("[SAFE PATH] Skipped blocking for /health")
        );
    }

    #[test]
    fn entropy_and_json_strings() {
        assert_eq!(entropy("short"), 0.0);
        assert!((entropy("abcdefgh") - 3.0).abs() < 1e-9);
        let mut out = String::new();
        json_string(&mut out, "a\"→\n");
        assert_eq!(out, "\"a\\\"\\u2192\\n\"");
    }
}
