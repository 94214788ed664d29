//! Commands an addon offers (mitmproxy's `@command.command("myaddon.inc")`): named, with typed
//! parameters, a help line and a result, callable from other addons
//! ([`Context::call_command`](crate::Context::call_command)) and from outside the proxy
//! (`interpose ctl myaddon.inc`, through the control endpoint).
//!
//! ```
//! use interpose_plugin_abi::{prelude::*, commands::ParamKind, testing::TestContext};
//! use std::sync::{atomic::{AtomicU64, Ordering}, Arc};
//!
//! #[derive(Default)]
//! struct MyAddon {
//!     num: Arc<AtomicU64>,
//! }
//!
//! #[addon]
//! impl Addon for MyAddon {
//!     fn load(&self, ctx: &Context) {
//!         let num = Arc::clone(&self.num);
//!         ctx.add_command("myaddon.inc", "Add one to the counter", &[], move |ctx, _args| {
//!             let n = num.fetch_add(1, Ordering::Relaxed) + 1;
//!             info!(ctx, "num = {n}");
//!             Ok(CommandValue::None)
//!         });
//!         ctx.add_command(
//!             "myaddon.add",
//!             "Add to the counter",
//!             &[("amount", ParamKind::Int)],
//!             {
//!                 let num = Arc::clone(&self.num);
//!                 move |_ctx, args| {
//!                     let amount = args.int(0)? as u64;
//!                     Ok(CommandValue::Int((num.fetch_add(amount, Ordering::Relaxed) + amount) as i64))
//!                 }
//!             },
//!         );
//!     }
//! }
//!
//! let tctx = TestContext::new();
//! MyAddon::default().load(tctx.ctx());
//! assert_eq!(tctx.ctx().call_command("myaddon.inc", &[]), Ok(String::new()));
//! assert_eq!(tctx.ctx().call_command("myaddon.add", &["10"]), Ok("11".to_string()));
//! assert_eq!(tctx.messages(), ["num = 1"]);
//! ```

use std::{
    ffi::c_void,
    panic::{catch_unwind, AssertUnwindSafe},
    path::PathBuf,
    sync::Arc,
};

use abi_stable::{
    std_types::{RErr, ROk, RResult, RSlice, RStr, RString},
    StableAbi,
};

use crate::{context::Context, ffi::panic_message, flow::Uuid, options::OptionValue};

/// A command's result, and the values its arguments arrive as (a flows argument arrives as
/// the list of the flows' ids).
pub type CommandValue = OptionValue;

/// The type of a command parameter.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamKind {
    /// `true` or `false`.
    Bool,
    /// A whole number.
    Int,
    /// Text.
    Str,
    /// Any number of texts (the rest of the arguments).
    StrList,
    /// A file path; `~` is expanded to the home folder.
    Path,
    /// Flows, as mitmproxy writes them: `@all`, `@marked`, `@unmarked`, a flow id, or a
    /// filter expression (`~u /login`). The command receives the ids of the matching flows the
    /// proxy holds (the paused ones); reach a flow with
    /// [`Context::with_flow`](crate::Context::with_flow).
    Flows,
}

impl ParamKind {
    /// The parameter type as `commands` lists it (mitmproxy's type names).
    ///
    /// ```
    /// use interpose_plugin_abi::commands::ParamKind;
    ///
    /// assert_eq!(ParamKind::Flows.name(), "flow[]");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            ParamKind::Bool => "bool",
            ParamKind::Int => "int",
            ParamKind::Str => "str",
            ParamKind::StrList => "str[]",
            ParamKind::Path => "path",
            ParamKind::Flows => "flow[]",
        }
    }
}

/// One parameter of a command.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct Param<'a> {
    /// Its name, as the signature shows it.
    pub name: RStr<'a>,
    /// Its type.
    pub kind: ParamKind,
}

/// A command's arguments, typed as its parameters (checked by the host before the call).
///
/// ```
/// use interpose_plugin_abi::commands::{CommandArgs, CommandValue};
///
/// let values = [CommandValue::Int(3), CommandValue::Str("x".into())];
/// let args = CommandArgs::new(&values);
/// assert_eq!(args.int(0), Ok(3));
/// assert_eq!(args.str(1), Ok("x"));
/// assert!(args.bool(0).is_err());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CommandArgs<'a>(&'a [CommandValue]);

impl<'a> CommandArgs<'a> {
    /// Arguments made of `values`.
    pub fn new(values: &'a [CommandValue]) -> Self {
        CommandArgs(values)
    }

    /// Every argument. See the example on [`CommandArgs`].
    pub fn values(&self) -> &'a [CommandValue] {
        self.0
    }

    fn get(&self, index: usize) -> Result<&'a CommandValue, String> {
        self.0
            .get(index)
            .ok_or_else(|| format!("argument {} is missing", index + 1))
    }

    /// The bool argument at `index`. See the example on [`CommandArgs`].
    pub fn bool(&self, index: usize) -> Result<bool, String> {
        match self.get(index)? {
            CommandValue::Bool(b) => Ok(*b),
            other => Err(format!("argument {} is not a bool: {other:?}", index + 1)),
        }
    }

    /// The number at `index`. See the example on [`CommandArgs`].
    pub fn int(&self, index: usize) -> Result<i64, String> {
        match self.get(index)? {
            CommandValue::Int(n) => Ok(*n),
            other => Err(format!("argument {} is not a number: {other:?}", index + 1)),
        }
    }

    /// The text (or path) at `index`. See the example on [`CommandArgs`].
    pub fn str(&self, index: usize) -> Result<&'a str, String> {
        match self.get(index)? {
            CommandValue::Str(s) => Ok(s.as_str()),
            other => Err(format!("argument {} is not text: {other:?}", index + 1)),
        }
    }

    /// The flows of a flows parameter at `index`, by id: reach each with
    /// [`Context::with_flow`](crate::Context::with_flow).
    ///
    /// ```
    /// use interpose_plugin_abi::{commands::{CommandArgs, CommandValue}, Uuid};
    ///
    /// let id = Uuid([7; 16]);
    /// let values = [CommandValue::StrList(vec![id.to_string().into()].into())];
    /// assert_eq!(CommandArgs::new(&values).flows(0), Ok(vec![id]));
    /// ```
    pub fn flows(&self, index: usize) -> Result<Vec<Uuid>, String> {
        self.list(index)?.into_iter().map(str::parse).collect()
    }

    /// The list (texts, or flow ids for a flows parameter) at `index`. See the example on
    /// [`CommandArgs`].
    pub fn list(&self, index: usize) -> Result<Vec<&'a str>, String> {
        match self.get(index)? {
            CommandValue::StrList(items) => Ok(items.iter().map(RString::as_str).collect()),
            other => Err(format!("argument {} is not a list: {other:?}", index + 1)),
        }
    }
}

/// A command's function, erased: the plugin's `Arc` of the closure and the plugin's own
/// functions to call and drop it, so the host never touches the closure and a panic in it
/// stops at the plugin's shim.
#[repr(C)]
#[derive(StableAbi)]
pub struct CommandHandler {
    state: *const c_void,
    call: unsafe extern "C" fn(
        *const c_void,
        &Context,
        RSlice<'_, CommandValue>,
    ) -> RResult<CommandValue, RString>,
    drop: unsafe extern "C" fn(*const c_void),
}

// SAFETY: the state is an `Arc<F>` with `F: Fn + Send + Sync`; it is only used through the
// functions stored beside it.
unsafe impl Send for CommandHandler {}
// SAFETY: as for `Send`.
unsafe impl Sync for CommandHandler {}

type CommandFn = dyn Fn(&Context, CommandArgs<'_>) -> Result<CommandValue, String> + Send + Sync;

unsafe extern "C" fn call_handler(
    state: *const c_void,
    ctx: &Context,
    args: RSlice<'_, CommandValue>,
) -> RResult<CommandValue, RString> {
    // SAFETY: `state` is the `Arc<Box<CommandFn>>` `CommandHandler::new` leaked.
    let f = unsafe { &*(state as *const Box<CommandFn>) };
    match catch_unwind(AssertUnwindSafe(|| f(ctx, CommandArgs(args.as_slice())))) {
        Ok(Ok(value)) => ROk(value),
        Ok(Err(message)) => RErr(message.into()),
        Err(payload) => {
            RErr(format!("the command panicked: {}", panic_message(payload.as_ref())).into())
        }
    }
}

unsafe extern "C" fn drop_handler(state: *const c_void) {
    // SAFETY: as in `call_handler`; dropped once, by the host.
    drop(unsafe { Arc::from_raw(state as *const Box<CommandFn>) });
}

impl CommandHandler {
    /// Erases `f`.
    pub(crate) fn new<F>(f: F) -> CommandHandler
    where
        F: Fn(&Context, CommandArgs<'_>) -> Result<CommandValue, String> + Send + Sync + 'static,
    {
        let boxed: Box<CommandFn> = Box::new(f);
        CommandHandler {
            state: Arc::into_raw(Arc::new(boxed)) as *const c_void,
            call: call_handler,
            drop: drop_handler,
        }
    }

    /// Calls the command (for the host).
    #[doc(hidden)]
    pub fn call(&self, ctx: &Context, args: &[CommandValue]) -> Result<CommandValue, String> {
        // SAFETY: `call` and `state` were made together by `new`.
        unsafe { (self.call)(self.state, ctx, RSlice::from_slice(args)) }
            .into_result()
            .map_err(RString::into_string)
    }
}

impl Drop for CommandHandler {
    fn drop(&mut self) {
        // SAFETY: `drop` and `state` were made together by `new`; this runs once.
        unsafe { (self.drop)(self.state) }
    }
}

impl std::fmt::Debug for CommandHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommandHandler")
    }
}

/// A command declaration as it crosses the boundary (made by
/// [`Context::add_command`](crate::Context::add_command)); the host takes the handler.
#[repr(C)]
#[derive(StableAbi)]
pub struct CommandDecl<'a> {
    /// The command's name (`myaddon.inc`).
    pub name: RStr<'a>,
    /// One line of help.
    pub help: RStr<'a>,
    /// Its parameters, in order.
    pub params: RSlice<'a, Param<'a>>,
    /// Its function.
    pub handler: CommandHandler,
}

/// Checks and types a command's arguments given as text, against its parameters: the count
/// (a trailing list parameter takes the rest) and each value's type. Used by hosts; the
/// error says which argument is wrong.
#[doc(hidden)]
pub fn parse_args(params: &[ParamKind], args: &[&str]) -> Result<Vec<CommandValue>, String> {
    let takes_rest = matches!(params.last(), Some(ParamKind::StrList));
    let fixed = if takes_rest {
        params.len() - 1
    } else {
        params.len()
    };
    if args.len() < fixed || (!takes_rest && args.len() > fixed) {
        return Err(format!(
            "expected {}{} arguments, got {}",
            if takes_rest { "at least " } else { "" },
            fixed,
            args.len()
        ));
    }
    let mut values = Vec::with_capacity(params.len());
    for (index, kind) in params.iter().enumerate() {
        let value = match kind {
            ParamKind::StrList => {
                CommandValue::StrList(args[index..].iter().map(|a| RString::from(*a)).collect())
            }
            ParamKind::Bool => match args[index] {
                "true" => CommandValue::Bool(true),
                "false" => CommandValue::Bool(false),
                other => {
                    return Err(format!(
                        "argument {} must be true or false, got {other:?}",
                        index + 1
                    ))
                }
            },
            ParamKind::Int => match args[index].parse::<i64>() {
                Ok(n) => CommandValue::Int(n),
                Err(_) => {
                    return Err(format!(
                        "argument {} must be a whole number, got {:?}",
                        index + 1,
                        args[index]
                    ))
                }
            },
            ParamKind::Str => CommandValue::Str(args[index].into()),
            ParamKind::Path => {
                CommandValue::Str(expand_home(args[index]).to_string_lossy().as_ref().into())
            }
            // Hosts resolve flow specifications themselves; one without flows sees none.
            ParamKind::Flows => CommandValue::StrList(Default::default()),
        };
        values.push(value);
    }
    Ok(values)
}

/// `~` and `~/...` with the home folder (`HOME`, or `USERPROFILE` on Windows); other paths
/// as they are. What a [`ParamKind::Path`] argument goes through, and what the proxy does
/// with the paths of its options.
///
/// ```
/// use interpose_plugin_abi::commands::expand_home;
/// use std::path::PathBuf;
///
/// assert_eq!(expand_home("/tmp/a.mitm"), PathBuf::from("/tmp/a.mitm"));
/// assert_eq!(expand_home("x/~/y"), PathBuf::from("x/~/y"));
/// if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
///     assert_eq!(expand_home("~/a"), PathBuf::from(home).join("a"));
/// }
/// ```
pub fn expand_home(path: &str) -> PathBuf {
    let rest = match path.strip_prefix('~') {
        Some("") => "",
        Some(rest) if rest.starts_with(['/', std::path::MAIN_SEPARATOR]) => &rest[1..],
        _ => return PathBuf::from(path),
    };
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|home| !home.is_empty());
    match home {
        Some(home) => PathBuf::from(home).join(rest),
        None => PathBuf::from(path),
    }
}
