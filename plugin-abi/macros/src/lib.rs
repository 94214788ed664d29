//! The `#[addon]` attribute of `interpose-plugin-abi`.
//!
//! Rust cannot tell whether a trait method was overridden, so the attribute reads the method
//! names of an `impl Addon for T` block and records them in the hidden `Addon::EVENTS` constant.
//! The export macro then hands the host a function pointer only for those events. It needs no
//! parser crate: it only looks for `fn <name>` at the top level of the impl body, and refuses
//! bodies with macro invocations there, whose methods it cannot see.

use proc_macro::{Delimiter, Group, Spacing, Span, TokenStream, TokenTree};

/// Marks an `impl Addon for T` block so that only the events it implements are dispatched.
///
/// Without it an addon still works, but the host calls every event, including the no-op
/// defaults.
///
/// `#[blocking]` on an event method (or `#[addon(blocking)]` for every event of the block)
/// records it in the hidden `Addon::BLOCKING` constant: the host runs it on a thread of its
/// blocking pool instead of a worker.
///
/// Methods written by a macro invoked inside the block cannot be seen, so such a block is a
/// compile error: write the event methods directly, or drop `#[addon]` to receive every event.
#[proc_macro_attribute]
pub fn addon(attr: TokenStream, item: TokenStream) -> TokenStream {
    let all_blocking = match attr.to_string().trim() {
        "" => false,
        "blocking" => true,
        _ => {
            return compile_error(
                "#[addon] takes no arguments, or `blocking` (every event of the block blocks)",
                Span::call_site(),
            )
        }
    };
    let mut tokens: Vec<TokenTree> = item.into_iter().collect();
    let is_impl = tokens
        .iter()
        .any(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "impl"));
    let body_index = tokens
        .iter()
        .rposition(|t| matches!(t, TokenTree::Group(g) if g.delimiter() == Delimiter::Brace));
    let Some(body_index) = body_index.filter(|_| is_impl) else {
        return compile_error(
            "#[addon] goes on an `impl Addon for YourType { ... }` block",
            Span::call_site(),
        );
    };
    let TokenTree::Group(body) = &tokens[body_index] else {
        unreachable!("rposition matched a group")
    };

    let body_tokens: Vec<TokenTree> = body.stream().into_iter().collect();
    let shapes: Vec<Shape> = body_tokens.iter().map(Shape::of).collect();
    if let Some(at) = item_macro_invocation(&shapes) {
        return compile_error(
            "#[addon] cannot see event methods produced by a macro invoked inside the impl \
             block, so the host would never call them; write the event methods directly in \
             the block, or remove #[addon] to have every event called",
            body_tokens[at].span(),
        );
    }

    let (stream, blocking) = strip_blocking(body.stream());
    let methods = method_names(stream.clone());
    let mut constant = String::new();
    if !methods.iter().any(|m| m == "EVENTS") {
        constant.push_str(&event_set("EVENTS", &methods));
    }
    let blocking = if all_blocking { methods } else { blocking };
    if !blocking.is_empty() {
        constant.push_str(&event_set("BLOCKING", &blocking));
    }
    let constant: TokenStream = constant.parse().expect("generated constant parses");

    let mut new_body = stream;
    new_body.extend(constant);
    let mut group = Group::new(Delimiter::Brace, new_body);
    group.set_span(body.span());
    tokens[body_index] = TokenTree::Group(group);
    tokens.into_iter().collect()
}

/// `#[doc(hidden)] const NAME: EventSet = EventSet::NONE.with_name("a")...;`
fn event_set(constant: &str, names: &[String]) -> String {
    let mut out = format!(
        "#[doc(hidden)] const {constant}: ::interpose_plugin_abi::EventSet = \
         ::interpose_plugin_abi::EventSet::NONE"
    );
    for name in names {
        out.push_str(&format!(".with_name(\"{name}\")"));
    }
    out.push(';');
    out
}

/// Removes the `#[blocking]` attributes at the top level of an impl body, returning the body
/// without them and the names of the methods they were on.
fn strip_blocking(body: TokenStream) -> (TokenStream, Vec<String>) {
    let tokens: Vec<TokenTree> = body.into_iter().collect();
    let mut out = Vec::with_capacity(tokens.len());
    let mut names = Vec::new();
    let mut marked = false;
    let mut i = 0;
    while i < tokens.len() {
        let is_blocking_attr = matches!(&tokens[i], TokenTree::Punct(p) if p.as_char() == '#')
            && matches!(tokens.get(i + 1), Some(TokenTree::Group(g))
                if g.delimiter() == Delimiter::Bracket && g.stream().to_string().trim() == "blocking");
        if is_blocking_attr {
            marked = true;
            i += 2;
            continue;
        }
        if let TokenTree::Ident(ident) = &tokens[i] {
            if ident.to_string() == "fn" {
                if let (true, Some(TokenTree::Ident(name))) = (marked, tokens.get(i + 1)) {
                    names.push(name.to_string());
                }
                marked = false;
            }
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    (out.into_iter().collect(), names)
}

/// Names of the `fn` items (and `const EVENTS`) at the top level of an impl body.
fn method_names(body: TokenStream) -> Vec<String> {
    let mut names = Vec::new();
    let mut iter = body.into_iter().peekable();
    while let Some(token) = iter.next() {
        if let TokenTree::Ident(ident) = &token {
            let word = ident.to_string();
            if word == "fn" || word == "const" {
                if let Some(TokenTree::Ident(name)) = iter.peek() {
                    let name = name.to_string();
                    if word == "fn" || name == "EVENTS" {
                        names.push(name);
                    }
                }
            }
        }
    }
    names
}

/// The shape of one token, enough to tell items apart (and testable without a compiler
/// session, which `proc_macro` types need).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// An identifier or keyword.
    Ident,
    /// A punctuation character, and whether it is joined to the next one (`::`).
    Punct(char, bool),
    /// A delimited group.
    Group(Delimiter),
    /// A literal.
    Literal,
}

impl Shape {
    fn of(token: &TokenTree) -> Shape {
        match token {
            TokenTree::Ident(_) => Shape::Ident,
            TokenTree::Punct(p) => Shape::Punct(p.as_char(), p.spacing() == Spacing::Joint),
            TokenTree::Group(g) => Shape::Group(g.delimiter()),
            TokenTree::Literal(_) => Shape::Literal,
        }
    }
}

/// The index of the first token of a macro invocation in item position (`name!(...)`,
/// `path::name! { ... }`) in an impl body, if there is one.
///
/// An item starts at the beginning of the body, after a `;` and after a `{ ... }` block
/// (the end of a method); attributes (`#[...]`) in front of it are skipped. Macros inside
/// method bodies and constant expressions are not at item start, so they are fine.
fn item_macro_invocation(tokens: &[Shape]) -> Option<usize> {
    const COLON2: [Shape; 2] = [Shape::Punct(':', true), Shape::Punct(':', false)];
    let mut at_item_start = true;
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i] {
            Shape::Punct('#', _) if at_item_start => {
                // `#[attr]` or `#![attr]`: the item starts after it.
                i += 1;
                if tokens.get(i) == Some(&Shape::Punct('!', false)) {
                    i += 1;
                }
                i += 1;
                continue;
            }
            Shape::Ident | Shape::Punct(':', true) if at_item_start => {
                let start = i;
                // A path: `a`, `a::b`, `::a::b`.
                let is_colon2 = |at: usize| tokens.get(at..at + 2) == Some(&COLON2[..]);
                if tokens[i] == Shape::Ident {
                    i += 1;
                }
                while is_colon2(i) && tokens.get(i + 2) == Some(&Shape::Ident) {
                    i += 3;
                }
                let bang = matches!(tokens.get(i), Some(Shape::Punct('!', _)));
                let group = matches!(tokens.get(i + 1), Some(Shape::Group(_)));
                if bang && group {
                    return Some(start);
                }
                at_item_start = false;
                continue;
            }
            Shape::Punct(';', _) | Shape::Group(Delimiter::Brace) => at_item_start = true,
            _ => at_item_start = false,
        }
        i += 1;
    }
    None
}

fn compile_error(message: &str, span: Span) -> TokenStream {
    let mut out: TokenStream = format!("::core::compile_error!({message:?});")
        .parse()
        .expect("compile_error! parses");
    out = out
        .into_iter()
        .map(|mut t| {
            t.set_span(span);
            t
        })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use Delimiter::{Brace, Bracket, Parenthesis};

    const IDENT: Shape = Shape::Ident;
    const BANG: Shape = Shape::Punct('!', false);
    const SEMI: Shape = Shape::Punct(';', false);
    const COLON2: [Shape; 2] = [Shape::Punct(':', true), Shape::Punct(':', false)];

    /// `fn name(args) { body }`
    fn method() -> Vec<Shape> {
        vec![IDENT, IDENT, Shape::Group(Parenthesis), Shape::Group(Brace)]
    }

    #[test]
    fn methods_alone_pass() {
        let mut body = method();
        body.extend(method());
        assert_eq!(item_macro_invocation(&body), None);
        assert_eq!(item_macro_invocation(&[]), None);
    }

    #[test]
    fn a_macro_between_methods_is_found() {
        // fn a() {}  events!(response);  fn b() {}
        let mut body = method();
        body.extend([IDENT, BANG, Shape::Group(Parenthesis), SEMI]);
        body.extend(method());
        assert_eq!(item_macro_invocation(&body), Some(4));

        // #[doc = ""] my::events! { ... }
        let mut body = vec![Shape::Punct('#', false), Shape::Group(Bracket), IDENT];
        body.extend(COLON2);
        body.extend([IDENT, BANG, Shape::Group(Brace)]);
        assert_eq!(item_macro_invocation(&body), Some(2));
    }

    #[test]
    fn macros_in_expressions_are_not_items() {
        // const X: usize = size!(); fn a() {}   and   const Y: bool = a != b;
        let mut body = vec![
            IDENT,
            IDENT,
            Shape::Punct(':', false),
            IDENT,
            Shape::Punct('=', false),
            IDENT,
            BANG,
            Shape::Group(Parenthesis),
            SEMI,
        ];
        body.extend(method());
        body.extend([
            IDENT,
            IDENT,
            Shape::Punct(':', false),
            IDENT,
            Shape::Punct('=', false),
            IDENT,
            Shape::Punct('!', true),
            Shape::Punct('=', false),
            IDENT,
            SEMI,
        ]);
        assert_eq!(item_macro_invocation(&body), None);
    }
}
