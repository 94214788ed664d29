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
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--noproxy", ""])
        .args(extra)
        .arg("--proxy")
        .arg(format!("http://{proxy}"))
        .arg("--cacert")
        .arg(ca)
        .args(["-w", "\n%{http_connect}"])
        .arg(url)
        // Proxy settings of the machine must not steer curl around the proxy under test.
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
    if !output.status.success() {
        return Err(format!(
            "curl failed ({}): {}{stdout}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let (body, connect) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Ok((connect.to_string(), body.to_string()))
}
