//! HAR
pub fn har_entry(_f: &interpose_plugin_abi::HttpFlow, _o: &mut String) {}
pub fn har_document(_e: &[String], _v: &str) -> String {
    String::new()
}
