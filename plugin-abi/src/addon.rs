//! The [`Addon`] trait authors implement, and the names of the events it can handle, both
//! generated from the one list of events, [`for_each_event!`](crate::for_each_event).
//!
//! `#[addon]` records the event methods written in an `impl Addon` block, so that the host
//! calls only those. It cannot see methods that a macro invoked in the block would produce,
//! so it refuses such a block rather than leave them silently uncalled:
//!
//! ```compile_fail
//! use interpose_plugin_abi::prelude::*;
//!
//! macro_rules! log_responses {
//!     () => {
//!         fn response(&self, ctx: &Context, _flow: &mut HttpFlow) {
//!             info!(ctx, "response");
//!         }
//!     };
//! }
//!
//! struct Generated;
//!
//! #[addon] // error: write the event methods directly, or remove #[addon]
//! impl Addon for Generated {
//!     log_responses!();
//! }
//! # fn main() {}
//! ```
//!
//! Without `#[addon]` the same block compiles, and the host calls every event:
//!
//! ```
//! # use interpose_plugin_abi::prelude::*;
//! # macro_rules! log_responses {
//! #     () => {
//! #         fn response(&self, ctx: &Context, _flow: &mut HttpFlow) {
//! #             info!(ctx, "response");
//! #         }
//! #     };
//! # }
//! struct Generated;
//!
//! impl Addon for Generated {
//!     log_responses!();
//! }
//! # fn main() {}
//! ```

macro_rules! event_enum {
    ([] $(($(#[$doc:meta])* $name:ident, $variant:ident, $kind:ident, $host:ident))*) => {
        /// An event the host can send to an addon, named as mitmproxy names it.
        ///
        /// ```
        /// use interpose_plugin_abi::Event;
        ///
        /// assert_eq!(Event::Request.name(), "request");
        /// assert_eq!(Event::from_name("tls_clienthello"), Some(Event::TlsClientHello));
        /// assert_eq!(Event::from_name("no_such_event"), None);
        /// assert_eq!(Event::ALL[0], Event::Load);
        /// assert!(Event::ALL.iter().all(|&e| Event::from_name(e.name()) == Some(e)));
        /// ```
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Event {
            $($(#[$doc])* $variant,)*
        }

        impl Event {
            /// Every event, in the order of the event table.
            ///
            /// See the example on [`Event`].
            pub const ALL: &'static [Event] = &[$(Event::$variant,)*];

            /// The event's name (`request`, `client_connected`, ...).
            ///
            /// See the example on [`Event`].
            pub const fn name(self) -> &'static str {
                match self {
                    $(Event::$variant => ::core::stringify!($name),)*
                }
            }

            /// The event called `name`, if there is one.
            ///
            /// See the example on [`Event`].
            pub const fn from_name(name: &str) -> Option<Event> {
                $(if const_str_eq(name, ::core::stringify!($name)) {
                    return Some(Event::$variant);
                })*
                None
            }
        }
    };
}

crate::for_each_event!(event_enum);

// `EventSet` has one bit per event.
const _: () = assert!(Event::ALL.len() <= 64, "more events than EventSet has bits");

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A set of events, one bit each: which events an addon implements (written by `#[addon]`
/// and `export_plugin!`, never by hand).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventSet(u64);

impl EventSet {
    /// No event.
    pub const NONE: EventSet = EventSet(0);
    /// Every event (what an addon without `#[addon]` declares).
    pub const ALL: EventSet = EventSet(u64::MAX);

    /// This set plus `event`.
    pub const fn with(self, event: Event) -> EventSet {
        EventSet(self.0 | 1 << event as u8)
    }

    /// This set plus the event called `name`; names that are not events are ignored (they are
    /// the addon's other methods).
    pub const fn with_name(self, name: &str) -> EventSet {
        match Event::from_name(name) {
            Some(event) => self.with(event),
            None => self,
        }
    }

    /// Whether `event` is in the set.
    pub const fn contains(self, event: Event) -> bool {
        self.0 & (1 << event as u8) != 0
    }

    /// The set as bits, one per event in event-table order.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// The set with these bits.
    pub const fn from_bits(bits: u64) -> EventSet {
        EventSet(bits)
    }
}

macro_rules! addon_trait {
    ([] $(($(#[$doc:meta])* $name:ident, $variant:ident, $kind:ident, $host:ident))*) => {
        /// An addon: one object reacting to the proxy's events, like a mitmproxy addon class.
        ///
        /// Every event method does nothing unless you override it. Put `#[addon]` on the `impl`
        /// block so that the host only calls the events you implemented (without it, it calls
        /// all of them, which is correct but slower).
        ///
        /// The host calls an addon from all of its worker threads at once, for different
        /// flows, so addons are `Send + Sync`: keep state in atomics or locks. Within one flow,
        /// events come in order and addons are called in load order. Events run on the proxy's
        /// worker threads, which also carry other flows, so an event must not wait: to wait
        /// for something (a timer, a policy service, a person), pause the flow with
        /// [`Context::intercept`](crate::Context::intercept) and resume it from your own thread
        /// or runtime; or mark the method `#[blocking]` (in an `#[addon]` block) and the host
        /// runs it on a thread of its blocking pool, where waiting holds up only its own flow:
        ///
        /// ```
        /// use interpose_plugin_abi::prelude::*;
        ///
        /// struct Policy;
        ///
        /// #[addon]
        /// impl Addon for Policy {
        ///     #[blocking]
        ///     fn request(&self, _ctx: &Context, flow: &mut HttpFlow) {
        ///         std::thread::sleep(std::time::Duration::from_millis(1)); // ask a service
        ///         flow.request.headers.insert("x-policy", "ok");
        ///     }
        /// }
        /// # fn main() {}
        /// ```
        ///
        /// A panic in an event is caught at the plugin boundary: the host logs it with the
        /// addon's name and the event, and by default goes on with the next addon (with
        /// `addon_errors=fail`, the flow fails instead).
        pub trait Addon: Send + Sync + 'static {
            /// The events this addon implements; written by `#[addon]`.
            #[doc(hidden)]
            const EVENTS: EventSet = EventSet::ALL;

            /// The events that block (sleep, wait for I/O or a lock, compute for long): the
            /// host runs them on a thread of its blocking pool instead of a worker, still in
            /// order with the other addons. Written by `#[addon]` from `#[blocking]` on event
            /// methods (or `#[addon(blocking)]` for all of them).
            #[doc(hidden)]
            const BLOCKING: EventSet = EventSet::NONE;

            /// The name the host uses in logs: by default the type's name in lower case.
            ///
            /// ```
            /// use interpose_plugin_abi::prelude::*;
            ///
            /// struct HeaderFixer;
            /// impl Addon for HeaderFixer {}
            ///
            /// struct Named;
            /// impl Addon for Named {
            ///     fn name(&self) -> String {
            ///         "named-addon".into()
            ///     }
            /// }
            ///
            /// assert_eq!(HeaderFixer.name(), "headerfixer");
            /// assert_eq!(Named.name(), "named-addon");
            /// ```
            fn name(&self) -> String {
                let full = std::any::type_name::<Self>();
                let base = full.split('<').next().unwrap_or(full);
                base.rsplit("::").next().unwrap_or(base).to_lowercase()
            }

            $($crate::__event_method!($kind $name $(#[$doc])* =>);)*
        }
    };
}

crate::for_each_event!(addon_trait);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for event in Event::ALL {
            assert_eq!(Event::from_name(event.name()), Some(*event));
        }
        assert_eq!(Event::from_name("name"), None);
        assert_eq!(Event::ALL.last(), Some(&Event::WebsocketEnd));
        assert_eq!(Event::HttpConnect.name(), "http_connect");
        assert_eq!(Event::TlsClientHello.name(), "tls_clienthello");
    }

    #[test]
    fn event_set() {
        let set = EventSet::NONE.with_name("request").with_name("name");
        assert!(set.contains(Event::Request));
        assert!(!set.contains(Event::Response));
        assert!(EventSet::ALL.contains(Event::Error));
    }
}
