//! Built-in addons that rewrite traffic by spec, as mitmproxy's do (same option names, same
//! `[/flow-filter]/subject/replacement` syntax, any first character as the separator):
//!
//! - `modify_headers` (ModifyHeaders): `/~q/Host/example.org` sets a header on matching
//!   requests and responses; an empty value removes it; `@path` reads the value from a file.
//! - `modify_body` (ModifyBody): `/~s/regex/replacement` replaces in decoded bodies (the
//!   content encoding is undone and redone); `\1`, `\g<name>` refer to groups, as in Python.
//! - `map_local` (MapLocal): `|example.com/static|~/site` answers matching requests from
//!   a local file or folder (the rest of the URL is looked up in the folder, `index.html`
//!   for folders, never outside it); `404` when no candidate exists.
//! - `map_remote` (MapRemote): `|https://example.com/|http://localhost:8000/` rewrites the
//!   URL of matching requests with a regex, before they go out.
//!
//! A spec that does not parse (or a `@path` that cannot be read) refuses the option: at
//! startup the proxy does not start, at run time `set` fails and nothing changes.

mod local;
mod spec;

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, RwLock,
};

use interpose_plugin_abi::{prelude::*, ConfigureData, Filter, Headers};

/// One parsed spec: which flows, what, with what.
struct Rule<S> {
    filter: Option<Filter>,
    subject: S,
    /// The replacement as written (`@path` is read when used, as mitmproxy does).
    replacement: String,
}

impl<S> Rule<S> {
    fn matches(&self, flow: &HttpFlow) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(flow))
    }
}

/// The rules of one option, replaced as a whole when the option changes.
struct Rules<S> {
    rules: RwLock<Arc<Vec<Rule<S>>>>,
    /// Whether there is any rule: flows skip the lock when there is none.
    any: AtomicBool,
}

impl<S> Default for Rules<S> {
    fn default() -> Self {
        Rules {
            rules: RwLock::new(Arc::new(Vec::new())),
            any: AtomicBool::new(false),
        }
    }
}

impl<S> Rules<S> {
    fn current(&self) -> Option<Arc<Vec<Rule<S>>>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.rules.read().ok().map(|rules| Arc::clone(&rules))
    }

    /// Parses option `name` with `subject` when it changed; a bad spec rejects the change.
    fn configure(
        &self,
        ctx: &Context,
        data: &mut ConfigureData,
        name: &str,
        subject: impl Fn(&str, &str) -> Result<S, String>,
    ) {
        if !data.contains(name) {
            return;
        }
        let mut parsed = Vec::new();
        for option in ctx.get_option::<Vec<String>>(name) {
            match parse_rule(ctx, &option, &subject) {
                Ok(rule) => parsed.push(rule),
                Err(e) => {
                    data.reject(format!("Cannot parse {name} option {option}: {e}"));
                    return;
                }
            }
        }
        self.any.store(!parsed.is_empty(), Ordering::Release);
        if let Ok(mut rules) = self.rules.write() {
            *rules = Arc::new(parsed);
        }
    }
}

fn parse_rule<S>(
    ctx: &Context,
    option: &str,
    subject: impl Fn(&str, &str) -> Result<S, String>,
) -> Result<Rule<S>, String> {
    let parts = spec::parse(option)?;
    let filter = match parts.filter {
        Some(expression) => Some(ctx.filter(expression)?),
        None => None,
    };
    spec::check_replacement(parts.replacement)?;
    Ok(Rule {
        filter,
        subject: subject(parts.subject, parts.replacement)?,
        replacement: parts.replacement.to_string(),
    })
}

/// The replacement's bytes, or `None` (logged) when its file cannot be read now.
fn replacement(ctx: &Context, written: &str) -> Option<Vec<u8>> {
    match spec::read_replacement(written) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            warn!(ctx, "Could not read replacement file: {e}");
            None
        }
    }
}

/// A flow the rewriting addons leave alone: answered by an addon already (for requests),
/// failed, or not live (read from a file).
fn settled(flow: &HttpFlow, request: bool) -> bool {
    (request && flow.response().is_some()) || flow.error().is_some() || !flow.live()
}

/// mitmproxy's ModifyHeaders.
#[derive(Default)]
pub struct ModifyHeaders {
    rules: Rules<String>,
}

impl ModifyHeaders {
    fn run(&self, ctx: &Context, flow: &mut HttpFlow, request: bool) {
        let Some(rules) = self.rules.current() else {
            return;
        };
        // Every filter sees the flow as it was, before any rule changed it.
        let matched: Vec<bool> = rules.iter().map(|rule| rule.matches(flow)).collect();
        let headers: &mut Headers = if request {
            &mut flow.request.headers
        } else {
            match flow.response_mut() {
                Some(response) => &mut response.headers,
                None => return,
            }
        };
        for (rule, _) in rules.iter().zip(&matched).filter(|(_, m)| **m) {
            headers.remove(&rule.subject);
        }
        for (rule, _) in rules.iter().zip(&matched).filter(|(_, m)| **m) {
            if let Some(value) = replacement(ctx, &rule.replacement) {
                if !value.is_empty() {
                    headers.append(&rule.subject, value);
                }
            }
        }
    }
}

#[addon]
impl Addon for ModifyHeaders {
    fn name(&self) -> String {
        "modifyheaders".to_string()
    }

    fn load(&self, ctx: &Context) {
        ctx.add_option(
            "modify_headers",
            Vec::<String>::new(),
            "Header modify pattern of the form \"[/flow-filter]/header-name/[@]header-value\", \
             where the separator can be any character. The @ reads the value from a file. An \
             empty header-value removes existing header-name headers.",
        );
    }

    fn configure(&self, ctx: &Context, data: &mut ConfigureData) {
        self.rules
            .configure(ctx, data, "modify_headers", |subject, _| {
                Ok(String::from_utf8_lossy(&spec::unescape(subject)).into_owned())
            });
    }

    fn requestheaders(&self, ctx: &Context, flow: &mut HttpFlow) {
        if !settled(flow, true) {
            self.run(ctx, flow, true);
        }
    }

    fn responseheaders(&self, ctx: &Context, flow: &mut HttpFlow) {
        if !settled(flow, false) {
            self.run(ctx, flow, false);
        }
    }
}

/// mitmproxy's ModifyBody.
#[derive(Default)]
pub struct ModifyBody {
    rules: Rules<regex::bytes::Regex>,
}

impl ModifyBody {
    fn run(&self, ctx: &Context, flow: &mut HttpFlow) {
        let Some(rules) = self.rules.current() else {
            return;
        };
        for rule in rules.iter() {
            if !rule.matches(flow) {
                continue;
            }
            let Some(value) = replacement(ctx, &rule.replacement) else {
                continue;
            };
            let template = spec::rust_template(&value);
            // The response's body once there is one, else the request's.
            match flow.response_mut() {
                Some(response) => {
                    let changed = replace_all(&rule.subject, &template, &response.content_or_raw());
                    if let Some(changed) = changed {
                        response.set_content(changed);
                    }
                }
                None => {
                    let request = &mut flow.request;
                    let changed = replace_all(&rule.subject, &template, &request.content_or_raw());
                    if let Some(changed) = changed {
                        request.set_content(changed);
                    }
                }
            }
        }
    }
}

/// `body` with every match of `subject` replaced by `template`; `None` when nothing matched
/// (the body is then left as it is, its encoding untouched).
fn replace_all(subject: &regex::bytes::Regex, template: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    match subject.replace_all(body, template) {
        std::borrow::Cow::Owned(changed) => Some(changed),
        std::borrow::Cow::Borrowed(_) => None,
    }
}

#[addon]
impl Addon for ModifyBody {
    fn name(&self) -> String {
        "modifybody".to_string()
    }

    fn load(&self, ctx: &Context) {
        ctx.add_option(
            "modify_body",
            Vec::<String>::new(),
            "Replacement pattern of the form \"[/flow-filter]/regex/[@]replacement\", where the \
             separator can be any character. The @ reads the replacement from a file.",
        );
    }

    fn configure(&self, ctx: &Context, data: &mut ConfigureData) {
        self.rules
            .configure(ctx, data, "modify_body", |subject, _| {
                let pattern = String::from_utf8_lossy(&spec::unescape(subject)).into_owned();
                regex::bytes::RegexBuilder::new(&pattern)
                    .dot_matches_new_line(true)
                    .build()
                    .map_err(|e| format!("Invalid regular expression {pattern:?} ({e})"))
            });
        if self.rules.any.load(Ordering::Acquire)
            && ctx
                .option("stream_large_bodies")
                .is_some_and(|v| !v.is_empty())
            && (data.contains("modify_body") || data.contains("stream_large_bodies"))
        {
            warn!(
                ctx,
                "Both modify_body and stream_large_bodies are active. Streamed bodies will not \
                 be modified."
            );
        }
    }

    fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
        if !settled(flow, true) {
            self.run(ctx, flow);
        }
    }

    fn response(&self, ctx: &Context, flow: &mut HttpFlow) {
        if !settled(flow, false) {
            self.run(ctx, flow);
        }
    }
}

/// mitmproxy's MapRemote.
#[derive(Default)]
pub struct MapRemote {
    rules: Rules<regex::Regex>,
}

#[addon]
impl Addon for MapRemote {
    fn name(&self) -> String {
        "mapremote".to_string()
    }

    fn load(&self, ctx: &Context) {
        ctx.add_option(
            "map_remote",
            Vec::<String>::new(),
            "Map remote resources to another remote URL using a pattern of the form \
             \"[/flow-filter]/url-regex/replacement\", where the separator can be any character.",
        );
    }

    fn configure(&self, ctx: &Context, data: &mut ConfigureData) {
        self.rules.configure(ctx, data, "map_remote", |subject, _| {
            regex::Regex::new(subject)
                .map_err(|e| format!("Invalid regular expression {subject:?} ({e})"))
        });
    }

    fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
        if settled(flow, true) {
            return;
        }
        let Some(rules) = self.rules.current() else {
            return;
        };
        for rule in rules.iter() {
            if !rule.matches(flow) {
                continue;
            }
            let url = flow.request.pretty_url();
            let template = spec::rust_template(rule.replacement.as_bytes());
            let template = String::from_utf8_lossy(&template);
            let new_url = rule.subject.replace_all(&url, template.as_ref());
            // Only a URL that changed is set (setting it also updates the Host header).
            if new_url != url {
                if let Err(e) = flow.request.set_url(&new_url) {
                    warn!(ctx, "map_remote: {url} mapped to {new_url}: {e}");
                }
            }
        }
    }
}

/// mitmproxy's MapLocal.
#[derive(Default)]
pub struct MapLocal {
    rules: Rules<(regex::Regex, std::path::PathBuf)>,
}

#[addon]
impl Addon for MapLocal {
    fn name(&self) -> String {
        "maplocal".to_string()
    }

    fn load(&self, ctx: &Context) {
        ctx.add_option(
            "map_local",
            Vec::<String>::new(),
            "Map remote resources to a local file using a pattern of the form \
             \"[/flow-filter]/url-regex/file-or-directory-path\", where the separator can be \
             any character.",
        );
    }

    fn configure(&self, ctx: &Context, data: &mut ConfigureData) {
        self.rules
            .configure(ctx, data, "map_local", |subject, path| {
                let regex = regex::Regex::new(subject)
                    .map_err(|e| format!("Invalid regular expression {subject:?} ({e})"))?;
                let local = interpose_plugin_abi::commands::expand_home(path)
                    .canonicalize()
                    .map_err(|e| format!("Invalid file path: {path} ({e})"))?;
                Ok((regex, local))
            });
    }

    fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
        if settled(flow, true) {
            return;
        }
        let Some(rules) = self.rules.current() else {
            return;
        };
        let url = flow.request.pretty_url();
        let mut tried = Vec::new();
        for rule in rules.iter() {
            let (regex, local) = &rule.subject;
            if !rule.matches(flow) || !regex.is_match(&url) {
                continue;
            }
            let candidates = if local.is_file() {
                vec![local.clone()]
            } else {
                local::candidates(&url, regex, local)
            };
            let Some(file) = candidates.iter().find(|c| c.is_file()).cloned() else {
                tried.extend(candidates);
                continue;
            };
            match std::fs::read(&file) {
                Ok(contents) => {
                    let mut headers = vec![("Server", "Interpose")];
                    if let Some(media) = local::media_type(&file) {
                        headers.push(("Content-Type", media));
                    }
                    // Only the first matching rule answers.
                    flow.set_response(Response::make(200, contents, &headers));
                    return;
                }
                Err(e) => {
                    warn!(ctx, "Could not read file: {e}");
                    tried.extend(candidates);
                }
            }
        }
        if !tried.is_empty() {
            flow.set_response(Response::make(404, "", &[]));
            let names: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
            info!(
                ctx,
                "None of the local file candidates exist: {}",
                names.join(", ")
            );
        }
    }
}

// mitmproxy's order: MapRemote, MapLocal, ModifyBody, ModifyHeaders.
export_plugin!(
    addons = [
        MapRemote::default(),
        MapLocal::default(),
        ModifyBody::default(),
        ModifyHeaders::default(),
    ]
);

#[cfg(test)]
mod tests;
