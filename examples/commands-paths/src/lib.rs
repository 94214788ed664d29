//! Offers the command `myaddon.histogram FLOWS PATH`, which writes how many of the flows
//! named went to each host, one `N: host` line per host sorted by count then host, to the
//! file at `PATH` (replacing it), then logs "done" (twin of mitmproxy's
//! `examples/addons/commands-paths.py`).
//!
//! Differences: the flows a command can name are the paused ones (mitmproxy's intercepted
//! flows; mitmproxy also reaches finished flows in its view). mitmproxy logs "done" at
//! `ALERT`; Interpose has no such level, so it is logged at info. As in mitmproxy, a path
//! starting with `~` is in the home folder (the host expands it).
//!
//! ```text
//! interpose ctl --control <socket> myaddon.histogram @all ~/hosts.txt
//! ```

use std::collections::BTreeMap;

use interpose_plugin_abi::prelude::*;

/// Writes a histogram of the hosts of the flows its command names.
pub struct MyAddon;

/// The histogram of `hosts` as the file holds it: `N: host` lines, sorted by (N, host).
pub fn histogram<I, S>(hosts: I) -> String
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for host in hosts {
        *totals.entry(host.into()).or_default() += 1;
    }
    let mut rows: Vec<(u64, String)> = totals.into_iter().map(|(h, n)| (n, h)).collect();
    rows.sort();
    rows.iter()
        .map(|(n, host)| format!("{n}: {host}\n"))
        .collect()
}

#[addon]
impl Addon for MyAddon {
    fn load(&self, ctx: &Context) {
        ctx.add_command(
            "myaddon.histogram",
            "Write how many flows went to each host to a file",
            &[("flows", ParamKind::Flows), ("path", ParamKind::Path)],
            |ctx, args| {
                let hosts = args
                    .flows(0)?
                    .into_iter()
                    // A flow resumed or ended since the argument was resolved is skipped.
                    .filter_map(|id| ctx.with_flow(id, |flow| flow.request.host().to_string()));
                let text = histogram(hosts);
                let path = args.str(1)?;
                std::fs::write(path, text).map_err(|e| format!("cannot write {path}: {e}"))?;
                // mitmproxy's ctx.log.alert; Interpose has no alert level.
                info!(ctx, "done");
                Ok(CommandValue::None)
            },
        );
    }
}

export_plugin!(addons = [MyAddon]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::TestContext;

    #[test]
    fn counts_hosts_sorted_by_count_then_host() {
        let hosts = [
            "b.example",
            "a.example",
            "c.example",
            "c.example",
            "b.example",
        ];
        assert_eq!(
            histogram(hosts),
            "1: a.example\n2: b.example\n2: c.example\n"
        );
        assert_eq!(histogram(Vec::<String>::new()), "");
    }

    #[test]
    fn the_command_replaces_the_file_and_logs_done() {
        let dir = std::env::temp_dir().join(format!("commands-paths-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hosts.txt");
        std::fs::write(&path, "old contents\n").unwrap();
        let tctx = TestContext::new();
        MyAddon.load(tctx.ctx());
        // A test context holds no flows: `@all` names none, and the file is emptied.
        let path_text = path.to_str().unwrap();
        assert_eq!(
            tctx.ctx()
                .call_command("myaddon.histogram", &["@all", path_text]),
            Ok(String::new())
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        assert_eq!(tctx.messages(), ["done"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_path_is_an_error_and_not_done() {
        let tctx = TestContext::new();
        MyAddon.load(tctx.ctx());
        let result = tctx
            .ctx()
            .call_command("myaddon.histogram", &["@all", "/nonexistent/dir/hosts.txt"]);
        assert!(result.unwrap_err().contains("/nonexistent/dir/hosts.txt"));
        assert!(tctx.messages().is_empty());
    }
}
