//! The `#[addon]` attribute of `interpose-plugin-abi`.
//!
//! Rust cannot tell whether a trait method was overridden, so the attribute reads the method
//! names of an `impl Addon for T` block and records them in the hidden `Addon::EVENTS` constant.
//! The export macro then hands the host a function pointer only for those events. It needs no
//! parser crate: it only looks for `fn <name>` at the top level of the impl body.

use proc_macro::{Delimiter, Group, Span, TokenStream, TokenTree};

/// Marks an `impl Addon for T` block so that only the events it implements are dispatched.
///
/// Without it an addon still works, but the host calls every event, including the no-op
/// defaults.
#[proc_macro_attribute]
pub fn addon(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return compile_error("#[addon] takes no arguments", Span::call_site());
    }
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

    let methods = method_names(body.stream());
    if methods.iter().any(|m| m == "EVENTS") {
        return tokens.into_iter().collect();
    }
    let mut constant = String::from(
        "#[doc(hidden)] const EVENTS: ::interpose_plugin_abi::EventSet = \
         ::interpose_plugin_abi::EventSet::NONE",
    );
    for name in &methods {
        constant.push_str(&format!(".with_name(\"{name}\")"));
    }
    constant.push(';');
    let constant: TokenStream = constant.parse().expect("generated constant parses");

    let mut new_body = body.stream();
    new_body.extend(constant);
    let mut group = Group::new(Delimiter::Brace, new_body);
    group.set_span(body.span());
    tokens[body_index] = TokenTree::Group(group);
    tokens.into_iter().collect()
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
