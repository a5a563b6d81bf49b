"""mitmproxy addon for the load lab: every name under --set lab_suffix (default lab.test)
connects to --set lab_address (default 127.0.0.1), keeping the name as SNI and for
certificate verification. mitmproxy resolves through the system resolver, which knows
nothing of the lab's names; this replaces only the address it dials.
"""
from mitmproxy import ctx


class LabResolve:
    def load(self, loader):
        loader.add_option("lab_suffix", str, "lab.test", "names mapped to lab_address")
        loader.add_option("lab_address", str, "127.0.0.1", "address the lab names connect to")

    def server_connect(self, data):
        if not data.server.address:
            return
        host, port = data.server.address[0], data.server.address[1]
        suffix = ctx.options.lab_suffix
        if isinstance(host, str) and (host == suffix or host.endswith("." + suffix)):
            if data.server.sni is None:
                data.server.sni = host
            data.server.address = (ctx.options.lab_address, port)


addons = [LabResolve()]
