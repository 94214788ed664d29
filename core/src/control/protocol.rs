//! The control endpoint's wire format: one JSON object per line each way. A request is
//! `{"command": "set", "args": ["anticache=true"], "token": "..."}` (`args` may be left out;
//! `token` only on TCP), a response `{"ok": true, "result": "..."}` or
//! `{"ok": false, "error": "..."}`.

use serde_json::{Map, Value};

/// The longest request line the server reads (1 MiB); a longer one ends the connection.
pub const MAX_LINE: usize = 1 << 20;

/// One request: a command with its text arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The command's name.
    pub command: String,
    /// Its arguments, as text.
    pub args: Vec<String>,
    /// The token (TCP endpoints).
    pub token: Option<String>,
}

impl Request {
    /// Reads a request line (without its newline); the error says what is wrong with it.
    pub fn parse(line: &[u8]) -> Result<Request, String> {
        let value: Value =
            serde_json::from_slice(line).map_err(|e| format!("malformed request: {e}"))?;
        let Value::Object(mut object) = value else {
            return Err("malformed request: expected a JSON object".to_string());
        };
        let command = match object.remove("command") {
            Some(Value::String(command)) => command,
            Some(_) => return Err("malformed request: \"command\" must be a string".into()),
            None => return Err("malformed request: no \"command\"".into()),
        };
        let args = match object.remove("args") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    _ => Err("malformed request: \"args\" must be strings".to_string()),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("malformed request: \"args\" must be a list".into()),
        };
        let token = match object.remove("token") {
            None | Some(Value::Null) => None,
            Some(Value::String(token)) => Some(token),
            Some(_) => return Err("malformed request: \"token\" must be a string".into()),
        };
        if let Some(other) = object.keys().next() {
            return Err(format!("malformed request: unknown field {other:?}"));
        }
        Ok(Request {
            command,
            args,
            token,
        })
    }

    /// The request as a line, newline included.
    pub fn to_line(&self) -> String {
        let mut object = Map::new();
        object.insert("command".into(), Value::String(self.command.clone()));
        let args = self.args.iter().cloned().map(Value::String).collect();
        object.insert("args".into(), Value::Array(args));
        if let Some(token) = &self.token {
            object.insert("token".into(), Value::String(token.clone()));
        }
        line(object)
    }
}

/// A command's outcome: its result as text, or an error message.
pub type Response = Result<String, String>;

/// `response` as a line, newline included.
pub fn response_line(response: &Response) -> String {
    let mut object = Map::new();
    match response {
        Ok(result) => {
            object.insert("ok".into(), Value::Bool(true));
            object.insert("result".into(), Value::String(result.clone()));
        }
        Err(error) => {
            object.insert("ok".into(), Value::Bool(false));
            object.insert("error".into(), Value::String(error.clone()));
        }
    }
    line(object)
}

/// Reads a response line; `None` when it is not one.
pub fn parse_response(line: &[u8]) -> Option<Response> {
    let Value::Object(object) = serde_json::from_slice(line).ok()? else {
        return None;
    };
    let text = |name: &str| match object.get(name) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    match object.get("ok")? {
        Value::Bool(true) => Some(Ok(text("result").unwrap_or_default())),
        Value::Bool(false) => Some(Err(text("error").unwrap_or_default())),
        _ => None,
    }
}

/// Whether `given` is `expected`, in time that does not depend on where they differ.
pub fn token_matches(given: Option<&str>, expected: &str) -> bool {
    let Some(given) = given else {
        return false;
    };
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn line(object: Map<String, Value>) -> String {
    let mut text = Value::Object(object).to_string();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_ones_say_why() {
        let request = Request {
            command: "set".into(),
            args: vec!["anticache=true".into(), "x=\"y\"\n".into()],
            token: Some("abc".into()),
        };
        let line = request.to_line();
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        assert_eq!(Request::parse(line.trim_end().as_bytes()).unwrap(), request);
        let bare = Request::parse(br#"{"command":"commands"}"#).unwrap();
        assert_eq!((bare.args.len(), bare.token), (0, None));
        for (bad, why) in [
            (&b"not json"[..], "malformed request"),
            (b"[1]", "JSON object"),
            (b"{}", "no \"command\""),
            (br#"{"command":1}"#, "must be a string"),
            (br#"{"command":"a","args":[1]}"#, "must be strings"),
            (br#"{"command":"a","args":"x"}"#, "must be a list"),
            (br#"{"command":"a","extra":1}"#, "unknown field"),
            (b"\xff\xfe", "malformed request"),
        ] {
            let error = Request::parse(bad).unwrap_err();
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn responses_round_trip() {
        for response in [
            Ok("1".to_string()),
            Ok(String::new()),
            Err("no".to_string()),
        ] {
            let line = response_line(&response);
            assert_eq!(parse_response(line.as_bytes()), Some(response));
        }
        assert_eq!(
            response_line(&Ok("a\nb".into())),
            "{\"ok\":true,\"result\":\"a\\nb\"}\n"
        );
        assert_eq!(parse_response(b"{}"), None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(token_matches(Some("abc"), "abc"));
        assert!(!token_matches(Some("abd"), "abc"));
        assert!(!token_matches(Some("ab"), "abc"));
        assert!(!token_matches(None, "abc"));
    }
}
