//! Built-in addon `block` (mitmproxy's Block): `block_global` (on by default) refuses
//! clients connecting from public addresses, `block_private` those from private ones.
//! Connections from this machine (loopback) are always let in. So a proxy told to listen on
//! every interface does not become an open proxy for the internet by accident.

use std::net::IpAddr;

use interpose_plugin_abi::prelude::*;

/// The `block_global` and `block_private` options.
pub struct Block;

#[addon]
impl Addon for Block {
    fn load(&self, ctx: &Context) {
        ctx.add_option(
            "block_global",
            true,
            "Block connections from public IP addresses.",
        );
        ctx.add_option(
            "block_private",
            false,
            "Block connections from local (private) IP addresses. Loopback addresses \
             (connections from this machine) are always permitted.",
        );
    }

    fn client_connected(&self, ctx: &Context, client: &mut Client) {
        let Some(ip) = client.peername.ip() else {
            return;
        };
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        if ip.is_loopback() {
            return;
        }
        if ctx.get_option::<bool>("block_private") && is_private(ip) {
            warn!(
                ctx,
                "Client connection from {ip} killed by block_private option."
            );
            client.kill("Connection killed by block_private.");
        }
        if ctx.get_option::<bool>("block_global") && is_global(ip) {
            warn!(
                ctx,
                "Client connection from {ip} killed by block_global option."
            );
            client.kill("Connection killed by block_global.");
        }
    }
}

/// Python's `ipaddress` `is_private`: the special-purpose ranges that are not globally
/// reachable (private networks, link-local, documentation, benchmarking, reserved...).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            a == 0
                || a == 10
                || a == 127
                || (a == 169 && b == 254)
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 0 && c == 0 && (d < 8 || d == 170 || d == 171))
                || (a == 192 && b == 0 && c == 2)
                || (a == 192 && b == 168)
                || (a == 198 && (b == 18 || b == 19))
                || (a == 198 && b == 51 && c == 100)
                || (a == 203 && b == 0 && c == 113)
                || a >= 240
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0xffff)
                || (s[0] == 0x100 && s[1] == 0 && s[2] == 0 && s[3] == 0)
                || (s[0] == 0x2001 && s[1] < 0x200)
                || (s[0] == 0x2001 && s[1] == 0xdb8)
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Python's `is_global`: not private, and (IPv4) not in the shared address space
/// 100.64.0.0/10 either.
pub fn is_global(ip: IpAddr) -> bool {
    if let IpAddr::V4(v4) = ip {
        let [a, b, ..] = v4.octets();
        if a == 100 && (64..128).contains(&b) {
            return false;
        }
    }
    !is_private(ip)
}

export_plugin!(addons = [Block]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    fn client_from(address: &str) -> Client {
        let mut client = testing::client();
        client.peername = address.parse::<std::net::SocketAddr>().unwrap().into();
        client
    }

    #[test]
    fn classifies_addresses_as_python_does() {
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "fd00::1",
            "fe80::1",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(is_private(ip) && !is_global(ip), "{private}");
        }
        for global in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            let ip: IpAddr = global.parse().unwrap();
            assert!(is_global(ip) && !is_private(ip), "{global}");
        }
        let shared: IpAddr = "100.64.0.1".parse().unwrap();
        assert!(!is_global(shared) && !is_private(shared));
    }

    #[test]
    fn refuses_public_clients_by_default_and_private_ones_on_request() {
        let tctx = TestContext::new();
        Block.load(tctx.ctx());
        let mut public = client_from("203.0.114.7:5000");
        Block.client_connected(tctx.ctx(), &mut public);
        assert_eq!(public.error(), Some("Connection killed by block_global."));
        let mut mapped = client_from("[::ffff:8.8.8.8]:5000");
        Block.client_connected(tctx.ctx(), &mut mapped);
        assert!(mapped.error().is_some());

        let mut private = client_from("192.168.1.20:5000");
        Block.client_connected(tctx.ctx(), &mut private);
        assert_eq!(private.error(), None);
        tctx.configure(&Block, &[("block_private", "true")])
            .unwrap();
        Block.client_connected(tctx.ctx(), &mut private);
        assert_eq!(private.error(), Some("Connection killed by block_private."));

        let mut local = client_from("127.0.0.1:5000");
        Block.client_connected(tctx.ctx(), &mut local);
        assert_eq!(local.error(), None);
        assert_eq!(
            tctx.messages(),
            [
                "Client connection from 203.0.114.7 killed by block_global option.",
                "Client connection from 8.8.8.8 killed by block_global option.",
                "Client connection from 192.168.1.20 killed by block_private option.",
            ]
        );
    }
}
