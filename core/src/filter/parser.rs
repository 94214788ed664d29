//! The filter language's lexer and recursive-descent parser; every token and error carries
//! its character offset into the expression.

use regex::bytes::RegexBuilder;

use super::{
    matcher::{operator, Node, Operator, RexOp},
    FilterError,
};

/// The whitespace that separates tokens (pyparsing's default set, as in mitmproxy).
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Characters that end an unquoted regex.
fn ends_bare(c: char) -> bool {
    is_space(c) || matches!(c, '(' | ')' | '~' | '\'' | '"')
}

/// Characters that end an operator name (`~name`).
fn ends_name(c: char) -> bool {
    ends_bare(c) || matches!(c, '!' | '&' | '|')
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Not,
    And,
    Or,
    Open,
    Close,
    /// `~name`, already checked to be a known operator.
    Op(String),
    /// A regex, unquoted or with its quotes and escapes removed.
    Regex {
        text: String,
        quoted: bool,
    },
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    /// Character offset of the token's first character.
    pos: usize,
}

impl Token {
    fn starts_atom(&self) -> bool {
        matches!(
            self.kind,
            Kind::Not | Kind::Open | Kind::Op(_) | Kind::Regex { .. }
        )
    }

    /// How the token reads in an error message.
    fn describe(&self) -> String {
        match &self.kind {
            Kind::Not => "!".into(),
            Kind::And => "&".into(),
            Kind::Or => "|".into(),
            Kind::Open => "(".into(),
            Kind::Close => ")".into(),
            Kind::Op(name) => format!("~{name}"),
            Kind::Regex { text, .. } => format!("{text:?}"),
        }
    }
}

/// Parses `expr` into a tree of compiled nodes.
pub(crate) fn parse(expr: &str, case_sensitive: bool) -> Result<Node, FilterError> {
    let mut parser = Parser {
        expr,
        chars: expr.chars().collect(),
        pos: 0,
        peeked: None,
        previous: String::new(),
        case_sensitive,
    };
    if parser.chars.iter().all(|&c| is_space(c)) {
        return Err(parser.error(0, "empty filter expression"));
    }
    let node = parser.expression()?;
    match parser.next()? {
        None => Ok(node),
        Some(token) if token.kind == Kind::Close => {
            Err(parser.error(token.pos, "unmatched ) without an opening ("))
        }
        Some(token) => Err(parser.error(token.pos, format!("unexpected {}", token.describe()))),
    }
}

struct Parser<'a> {
    expr: &'a str,
    chars: Vec<char>,
    /// The lexer's position (after the peeked token, if any).
    pos: usize,
    peeked: Option<Token>,
    /// The last token taken, for "missing ... after X" messages.
    previous: String,
    case_sensitive: bool,
}

impl Parser<'_> {
    fn error(&self, position: usize, message: impl Into<String>) -> FilterError {
        FilterError {
            position,
            message: message.into(),
            expression: self.expr.to_string(),
        }
    }

    // ---- lexer ----

    fn lex(&mut self) -> Result<Option<Token>, FilterError> {
        let chars = &self.chars;
        while self.pos < chars.len() && is_space(chars[self.pos]) {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(&c) = chars.get(start) else {
            return Ok(None);
        };
        self.pos += 1;
        let kind = match c {
            '!' => Kind::Not,
            '&' => Kind::And,
            '|' => Kind::Or,
            '(' => Kind::Open,
            ')' => Kind::Close,
            '~' => {
                while self.pos < chars.len() && !ends_name(chars[self.pos]) {
                    self.pos += 1;
                }
                let name: String = chars[start + 1..self.pos].iter().collect();
                if name.is_empty() {
                    return Err(self.error(start, "expected an operator name after ~"));
                }
                if operator(&name).is_none() {
                    return Err(self.error(start, format!("unknown operator ~{name}")));
                }
                // mitmproxy requires a word end after the name, so `~hq` is never `~h q`;
                // a closing parenthesis or a binary operator also ends it here.
                if let Some(&next) = chars.get(self.pos) {
                    if !(is_space(next) || matches!(next, ')' | '&' | '|')) {
                        return Err(self.error(
                            self.pos,
                            format!("~{name} must be followed by a space, not {next:?}"),
                        ));
                    }
                }
                Kind::Op(name)
            }
            '"' | '\'' => {
                let mut text = String::new();
                loop {
                    match chars.get(self.pos) {
                        None => {
                            return Err(self.error(start, "unterminated quoted string"));
                        }
                        Some(&q) if q == c => {
                            self.pos += 1;
                            break;
                        }
                        Some('\\') if self.pos + 1 < chars.len() => {
                            // pyparsing's QuotedString: \t \n \r \f are whitespace, any
                            // other escaped character stands for itself.
                            text.push(match chars[self.pos + 1] {
                                't' => '\t',
                                'n' => '\n',
                                'r' => '\r',
                                'f' => '\u{c}',
                                other => other,
                            });
                            self.pos += 2;
                        }
                        Some(&other) => {
                            text.push(other);
                            self.pos += 1;
                        }
                    }
                }
                Kind::Regex { text, quoted: true }
            }
            _ => {
                while self.pos < chars.len() && !ends_bare(chars[self.pos]) {
                    self.pos += 1;
                }
                Kind::Regex {
                    text: chars[start..self.pos].iter().collect(),
                    quoted: false,
                }
            }
        };
        Ok(Some(Token { kind, pos: start }))
    }

    fn peek(&mut self) -> Result<Option<&Token>, FilterError> {
        if self.peeked.is_none() {
            self.peeked = self.lex()?;
        }
        Ok(self.peeked.as_ref())
    }

    fn next(&mut self) -> Result<Option<Token>, FilterError> {
        let token = match self.peeked.take() {
            Some(token) => Some(token),
            None => self.lex()?,
        };
        if let Some(token) = &token {
            self.previous = token.describe();
        }
        Ok(token)
    }

    fn peek_is(&mut self, kind: &Kind) -> Result<bool, FilterError> {
        Ok(self.peek()?.is_some_and(|t| t.kind == *kind))
    }

    // ---- grammar ----
    //
    // expression := or_expr+            (juxtaposition is AND, and binds loosest)
    // or_expr    := and_expr ("|" and_expr)*
    // and_expr   := unary ("&" unary)*
    // unary      := "!" unary | atom
    // atom       := "(" expression ")" | ~flag | ~rex regex | ~c number | regex

    fn expression(&mut self) -> Result<Node, FilterError> {
        let mut node = self.or_expr()?;
        while self.peek()?.is_some_and(Token::starts_atom) {
            let rhs = self.or_expr()?;
            node = Node::And(Box::new(node), Box::new(rhs));
        }
        Ok(node)
    }

    fn or_expr(&mut self) -> Result<Node, FilterError> {
        let mut node = self.and_expr()?;
        while self.peek_is(&Kind::Or)? {
            self.next()?;
            let rhs = self.and_expr()?;
            node = Node::Or(Box::new(node), Box::new(rhs));
        }
        Ok(node)
    }

    fn and_expr(&mut self) -> Result<Node, FilterError> {
        let mut node = self.unary()?;
        while self.peek_is(&Kind::And)? {
            self.next()?;
            let rhs = self.unary()?;
            node = Node::And(Box::new(node), Box::new(rhs));
        }
        Ok(node)
    }

    fn unary(&mut self) -> Result<Node, FilterError> {
        if self.peek_is(&Kind::Not)? {
            self.next()?;
            return Ok(Node::Not(Box::new(self.unary()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Node, FilterError> {
        let end = self.chars.len();
        let Some(token) = self.next()? else {
            return Err(self.error(end, format!("missing expression after {}", self.previous)));
        };
        match token.kind {
            Kind::Open => {
                let node = self.expression()?;
                match self.next()? {
                    Some(Token {
                        kind: Kind::Close, ..
                    }) => Ok(node),
                    _ => Err(self.error(token.pos, "unclosed (")),
                }
            }
            Kind::Op(name) => match operator(&name).expect("checked by the lexer") {
                Operator::Flag(flag) => Ok(Node::Flag(flag)),
                Operator::Rex(op) => {
                    let (text, pos) = self.argument(&name, "a regex")?;
                    Ok(Node::Rex(op, self.compile(op, &text, pos)?))
                }
                Operator::Code => self.code(&name),
            },
            Kind::Regex { text, .. } => Ok(Node::Rex(
                RexOp::Url,
                self.compile(RexOp::Url, &text, token.pos)?,
            )),
            Kind::Close | Kind::And | Kind::Or | Kind::Not => Err(self.error(
                token.pos,
                format!("expected an expression, found {}", token.describe()),
            )),
        }
    }

    /// The regex after `~name`, with its position.
    fn argument(&mut self, name: &str, what: &str) -> Result<(String, usize), FilterError> {
        let end = self.chars.len();
        match self.next()? {
            Some(Token {
                kind: Kind::Regex { text, .. },
                pos,
            }) => Ok((text, pos)),
            Some(token) => Err(self.error(
                token.pos,
                format!(
                    "missing argument: ~{name} needs {what}, found {}",
                    token.describe()
                ),
            )),
            None => Err(self.error(end, format!("missing argument: ~{name} needs {what}"))),
        }
    }

    fn code(&mut self, name: &str) -> Result<Node, FilterError> {
        let what = "a status code";
        let peeked_quoted = matches!(
            self.peek()?,
            Some(Token {
                kind: Kind::Regex { quoted: true, .. },
                ..
            })
        );
        let (text, pos) = self.argument(name, what)?;
        if peeked_quoted || text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.error(
                pos,
                format!("~{name} needs {what} (a number), not {text:?}"),
            ));
        }
        // Like mitmproxy's int(), any number of digits is valid; one no status code can
        // equal simply never matches.
        Ok(Node::Code(text.parse().ok()))
    }

    fn compile(
        &self,
        op: RexOp,
        text: &str,
        pos: usize,
    ) -> Result<regex::bytes::Regex, FilterError> {
        let (multi_line, dot_all) = op.flags();
        RegexBuilder::new(text)
            .case_insensitive(!self.case_sensitive)
            .multi_line(multi_line)
            .dot_matches_new_line(dot_all)
            .build()
            .map_err(|e| self.error(pos, format!("invalid regex {text:?}: {}", summary(&e))))
    }
}

/// The one-line reason of a regex error (the crate's message also repeats the pattern with
/// carets under it, over several lines).
fn summary(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .find_map(|line| line.strip_prefix("error: "))
        .or_else(|| text.lines().next())
        .unwrap_or("unknown error")
        .trim()
        .to_string()
}
