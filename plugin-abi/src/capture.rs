//! What the host offers addons for capturing flows: mitmproxy's flow filter language
//! ([`Filter`]) and the capture formats ([`CaptureFormat`]) that mitmproxy and browsers read.
//!
//! Both live in the host, so every addon filters and saves flows exactly as the proxy's own
//! dump output and `-w` do:
//!
//! ```no_run
//! use interpose_plugin_abi::{prelude::*, CaptureFormat, Filter};
//!
//! fn response(ctx: &Context, flow: &mut HttpFlow) {
//!     let filter = ctx.filter("~d example.com & ~c 200").expect("a valid expression");
//!     if filter.matches(flow) {
//!         let mut record = Vec::new();
//!         ctx.encode_flow(flow, CaptureFormat::FlowFile, &mut record).expect("encoded");
//!         // append `record` to a file that `mitmproxy -r` opens
//!     }
//! }
//! # fn main() {}
//! ```

use std::fmt;

use abi_stable::{
    std_types::{RResult, RStr, RVec},
    StableAbi,
};

use crate::{
    ffi::{FilterPtr, HostRef},
    flow::HttpFlow,
};

/// A format the host can encode a flow in ([`Context::encode_flow`](crate::Context::encode_flow)).
///
/// ```no_run
/// use interpose_plugin_abi::{prelude::*, CaptureFormat};
/// use std::{fs::OpenOptions, io::Write};
///
/// /// Appends every finished flow to `flows.mitm`, which `mitmproxy -r flows.mitm` opens.
/// fn response(ctx: &Context, flow: &mut HttpFlow) {
///     let mut record = Vec::new();
///     if ctx.encode_flow(flow, CaptureFormat::FlowFile, &mut record).is_ok() {
///         let mut file = OpenOptions::new().create(true).append(true).open("flows.mitm").unwrap();
///         file.write_all(&record).unwrap();
///     }
/// }
/// # let _ = response;
/// ```
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaptureFormat {
    /// One record of mitmproxy's flow file format (version 21, a tnetstring of the flow's
    /// state): records appended one after another make a file `mitmproxy -r` opens.
    FlowFile,
    /// One entry of a HAR 1.2 file (a JSON object), as mitmproxy's `hardump` writes it.
    HarEntry,
}

/// A compiled flow filter expression in mitmproxy's filter language (`~d example.com & ~c
/// 200`, `!~a`, `~h "x-debug: 1"`...); made by [`Context::filter`](crate::Context::filter).
///
/// Compile once (in `load` or `running`, say) and match as often as needed, from any thread.
///
/// ```no_run
/// use interpose_plugin_abi::{prelude::*, Filter};
/// use std::sync::OnceLock;
///
/// #[derive(Default)]
/// struct OnlyApi {
///     filter: OnceLock<Filter>,
/// }
///
/// #[addon]
/// impl Addon for OnlyApi {
///     fn running(&self, ctx: &Context) {
///         let filter = ctx.filter("~d api.example.com").expect("a valid expression");
///         assert_eq!(filter.expression(), "~d api.example.com");
///         let _ = self.filter.set(filter);
///     }
///
///     fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
///         if self.filter.get().is_some_and(|f| f.matches(flow)) {
///             info!(ctx, "API call: {}", flow.request.path());
///         }
///     }
/// }
/// # fn main() {}
/// ```
pub struct Filter {
    host: HostRef,
    ptr: FilterPtr,
    expression: String,
}

// SAFETY: the host's compiled filters are immutable and `Send + Sync` (the host's contract
// for `filter_compile`); the pointer is only passed back to the host.
unsafe impl Send for Filter {}
// SAFETY: as for `Send`.
unsafe impl Sync for Filter {}

impl Filter {
    /// Compiles `expression` through the host's `filter_compile`.
    pub(crate) fn compile(
        host: HostRef,
        ctx: &crate::Context,
        expression: &str,
    ) -> Result<Self, String> {
        match (host.filter_compile())(ctx, RStr::from_str(expression)) {
            RResult::ROk(ptr) => Ok(Filter {
                host,
                ptr,
                expression: expression.to_string(),
            }),
            RResult::RErr(message) => Err(message.into_string()),
        }
    }

    /// Whether `flow` matches the expression.
    ///
    /// See the example on [`Filter`].
    pub fn matches(&self, flow: &HttpFlow) -> bool {
        (self.host.filter_matches())(self.ptr, flow)
    }

    /// The expression this filter was compiled from.
    ///
    /// See the example on [`Filter`].
    pub fn expression(&self) -> &str {
        &self.expression
    }
}

impl Drop for Filter {
    fn drop(&mut self) {
        (self.host.filter_free())(self.ptr);
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Filter").field(&self.expression).finish()
    }
}

/// Encodes `flow` through the host's `encode_flow`, appending to `out` without copying it.
pub(crate) fn encode(
    host: HostRef,
    ctx: &crate::Context,
    flow: &HttpFlow,
    format: CaptureFormat,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let encode = host.encode_flow();
    let mut buffer = RVec::from(std::mem::take(out));
    let result = encode(ctx, flow, format, &mut buffer);
    *out = buffer.into_vec();
    result
        .into_result()
        .map_err(|message| message.into_string())
}
