//! `export_plugin!`: the one macro a plugin crate calls to become loadable.

/// Exports this crate's addons to the Interpose host.
///
/// Call it once, at the crate root, in one of two forms:
///
/// - `export_plugin!(addons = [Counter::default(), Blocker::new()]);` exports a list of
///   values implementing [`Addon`](crate::Addon), called in this order (mitmproxy's
///   `addons = [...]`).
/// - `export_plugin!(functions = [request, response]);` exports the crate's free functions of
///   those names as one addon named after the crate (mitmproxy's abbreviated style). Each
///   function takes the event's arguments without `&self`, e.g.
///   `fn request(ctx: &Context, flow: &mut HttpFlow)`.
///
/// The macro writes the library's entry symbol (`__interpose_plugin_entry__<crate name>`,
/// unique per crate so plugins can also be linked into one binary), a `pub fn
/// interpose_plugin()` returning the plugin module, and every `extern "C"` shim, each of
/// which catches panics. Build the crate with `crate-type = ["cdylib"]` (add `"rlib"` to also
/// link it into a binary or test it as a library), and never with `panic = "abort"`: the
/// macro refuses to compile then, since a panic could not be caught and would abort the proxy.
///
/// ```
/// use interpose_plugin_abi::prelude::*;
///
/// struct Blocker {
///     host: &'static str,
/// }
///
/// #[addon]
/// impl Addon for Blocker {
///     fn request(&self, _ctx: &Context, flow: &mut HttpFlow) {
///         if flow.request.host() == self.host {
///             flow.set_response(Response::make(403, "blocked", &[]));
///         }
///     }
/// }
///
/// export_plugin!(addons = [Blocker { host: "ads.example.com" }]);
/// # fn main() {
/// #     use interpose_plugin_abi::testing;
/// #     let mut flow = testing::flow();
/// #     flow.request.set_host("ads.example.com");
/// #     Blocker { host: "ads.example.com" }.request(testing::TestContext::new().ctx(), &mut flow);
/// #     assert_eq!(flow.response().unwrap().status_code, 403);
/// # }
/// ```
#[macro_export]
macro_rules! export_plugin {
    (addons = [$($addon:expr),* $(,)?] $(,)?) => {
        $crate::__export_plugin_entry! {
            $crate::ffi::guard_new_addons(|| {
                let mut addons = $crate::abi_stable::std_types::RVec::new();
                $( addons.push($crate::ffi::RawAddon::new($addon)); )*
                addons
            })
        }
    };
    (functions = [$($event:ident),+ $(,)?] $(,)?) => {
        /// The addon made of this plugin's free functions.
        #[doc(hidden)]
        pub struct InterposeFunctions;

        impl $crate::Addon for InterposeFunctions {
            const EVENTS: $crate::EventSet =
                $crate::EventSet::NONE $(.with_name(::core::stringify!($event)))+;

            fn name(&self) -> ::std::string::String {
                ::std::string::String::from(::core::env!("CARGO_PKG_NAME"))
            }

            $( $crate::__function_event!($event $event); )+
        }

        $crate::export_plugin!(addons = [InterposeFunctions]);
    };
}

/// Defines `__function_event!`, which writes the `Addon` method of one event forwarding to
/// the free function of the same name, with one arm per event of the list. (It is generated
/// so that it cannot miss an event; `$d` is a `$` for the generated macro's own variables.)
macro_rules! define_function_event {
    ([$d:tt] $(($(#[$doc:meta])* $name:ident, $variant:ident, $kind:ident, $host:ident))*) => {
        /// One `Addon` method forwarding to the free function of the same name.
        #[doc(hidden)]
        #[macro_export]
        macro_rules! __function_event {
            $(($name $d f:ident) => {
                $crate::__event_method!($kind $name => $d f);
            };)*
            ($d other:ident $d f:ident) => {
                ::core::compile_error!(::core::concat!(
                    "`", ::core::stringify!($d other), "` is not an Interpose event"
                ));
            };
        }
    };
}

crate::for_each_event!(define_function_event [$]);

/// The entry symbol and root module shared by both forms of `export_plugin!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin_entry {
    ($new_addons:expr) => {
        // With `panic = "abort"` the shims' `catch_unwind` cannot catch anything: a panic in
        // an addon would take the whole proxy down.
        #[cfg(panic = "abort")]
        ::core::compile_error!(
            "an Interpose plugin cannot be built with `panic = \"abort\"`: a panic in an addon \
             would abort the whole proxy. Remove `panic = \"abort\"` from the plugin's \
             profile ([profile.*] in Cargo.toml); Interpose catches addon panics at the plugin \
             boundary."
        );

        /// This plugin's root module; the host links it in directly when the plugin is a
        /// built-in.
        #[doc(hidden)]
        pub fn interpose_plugin() -> $crate::ffi::PluginModuleRef {
            extern "C" fn new_addons() -> $crate::ffi::NewAddonsResult {
                $new_addons
            }
            static MODULE: $crate::ffi::StaticPluginModule =
                $crate::ffi::StaticPluginModule::new($crate::ffi::PluginModule {
                    name: $crate::abi_stable::std_types::RStr::from_str(::core::env!(
                        "CARGO_PKG_NAME"
                    )),
                    version: $crate::abi_stable::std_types::RStr::from_str(::core::env!(
                        "CARGO_PKG_VERSION"
                    )),
                    new_addons,
                    panic_unwind: ::core::cfg!(panic = "unwind"),
                });
            $crate::ffi::PluginModuleRef::from_static(&MODULE)
        }

        const _: () = {
            extern "C" fn constructor() -> $crate::ffi::RootModuleResult {
                $crate::ffi::__call_root_module_loader(interpose_plugin)
            }

            /// The library's entry: abi_stable's header with this crate's ABI version and
            /// the layout of the plugin module, checked by the host before use.
            #[export_name = ::core::concat!(
                                                                "__interpose_plugin_entry__",
                                                                ::core::env!("CARGO_CRATE_NAME")
                                                            )]
            pub static INTERPOSE_PLUGIN_ENTRY: $crate::ffi::LibHeader =
                // SAFETY: `constructor` returns the `PluginModuleRef` of this very plugin,
                // which is the module type the header is declared for.
                unsafe {
                    $crate::ffi::LibHeader::from_constructor::<$crate::ffi::PluginModuleRef>(
                        constructor,
                        $crate::ffi::CheckTypeLayout::Yes,
                    )
                };
        };
    };
}
