//! curl as the HTTPS client through the proxy.

use std::{net::SocketAddr, path::Path, process::Command};

/// What curl got from `url` through the proxy at `proxy`, trusting only the CA in `ca`: the
/// CONNECT status (`%{http_connect}`) and the body, or curl's complaint. `extra` goes on
/// curl's command line.
pub fn curl_through(
    proxy: SocketAddr,
    url: &str,
    ca: &Path,
    extra: &[&str],
) -> Result<(String, String), String> {
    let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    // An empty --noproxy list: no host escapes the proxy under test.
    args.extend(["--noproxy".to_string(), String::new()]);
    args.extend(["--proxy".to_string(), format!("http://{proxy}")]);
    args.extend([
        "-w".to_string(),
        "\n%{http_connect}".to_string(),
        url.to_string(),
    ]);
    let stdout = run_curl(&args, ca)?;
    let (body, connect) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Ok((connect.to_string(), body.to_string()))
}

/// What curl got from `url` straight (no proxy), trusting only the CA in `ca`: the body, or
/// curl's complaint.
pub fn curl_direct(url: &str, ca: &Path, extra: &[&str]) -> Result<String, String> {
    let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    args.extend(["--noproxy".to_string(), "*".to_string(), url.to_string()]);
    run_curl(&args, ca)
}

/// Runs curl quietly with `args`, trusting only `ca`, ignoring proxies the machine's
/// environment names: stdout, or curl's complaint.
fn run_curl(args: &[String], ca: &Path) -> Result<String, String> {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .arg("--cacert")
        .arg(ca)
        .args(args)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .output()
        .expect("curl is installed (CI installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "curl failed ({}): {}{stdout}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
