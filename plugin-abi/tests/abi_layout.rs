//! Pins the layout of everything that crosses the plugin boundary to the ABI version.
//!
//! The fingerprint covers the plugin module and every type reachable from it (the addon
//! descriptors, the event table, the host table, the flow types). When it changes, the ABI
//! changed: bump the minor version of `interpose-plugin-abi` (0.x; appended events and host
//! functions too, since abi_stable refuses a plugin whose tables are shorter than the host's)
//! and pin the new fingerprint here. A plugin built against the old version is then refused by name
//! instead of misbehaving.

use std::collections::HashSet;

use abi_stable::{type_layout::TypeLayout, StableAbi};
use interpose_plugin_abi::{ffi::PluginModuleRef, ABI_VERSION};

/// `(ABI version, layout fingerprint)`.
const PINNED: (&str, u64) = ("0.5.0", 0x3a63_8102_1c28_c591);

/// Every layout reachable from the root module, described without source line numbers (so
/// moving code does not count as an ABI change), hashed with FNV-1a.
fn fingerprint() -> (u64, usize) {
    let mut seen = HashSet::new();
    let mut stack: Vec<&'static TypeLayout> = vec![<PluginModuleRef as StableAbi>::LAYOUT];
    let mut descriptions = Vec::new();
    while let Some(layout) = stack.pop() {
        if !seen.insert(layout as *const TypeLayout) {
            continue;
        }
        let text = layout.to_string();
        let text: String = text
            .lines()
            .map(|line| match line.find("line:") {
                Some(at) => {
                    let rest = &line[at + 5..];
                    let digits = rest.chars().take_while(char::is_ascii_digit).count();
                    format!("{}{}", &line[..at], &rest[digits..])
                }
                None => line.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        descriptions.push(text);
        for child in layout.shared_vars().type_layouts() {
            stack.push(child());
        }
    }
    descriptions.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in descriptions.join("\n\n").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash, descriptions.len())
}

#[test]
fn layout_is_pinned_to_the_abi_version() {
    let (hash, types) = fingerprint();
    assert!(
        types > 20,
        "the walk reaches the flow types ({types} layouts)"
    );
    assert_eq!(
        (ABI_VERSION, hash),
        PINNED,
        "the plugin ABI changed ({types} layouts): bump interpose-plugin-abi's minor version \
         (0.x; appended events and host functions included) and set PINNED to \
         (\"<new version>\", {hash:#x})"
    );
}
